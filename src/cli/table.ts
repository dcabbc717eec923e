// Plain-text tables as Cilium's CLI prints them: columns separated by at least three spaces; a
// header or a cell may hold several lines (a two-line header, one label per line).
export function renderTable(
  header: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | readonly string[]>>,
): string {
  const toLines = (c: string | readonly string[]): string[] => (typeof c === 'string' ? c.split('\n') : [...c]);
  const head = header.map((h) => h.split('\n'));
  const cells = rows.map((r) => r.map(toLines));
  const widths = head.map((h, i) =>
    Math.max(...h.map((l) => l.length), ...cells.map((r) => Math.max(0, ...r[i].map((l) => l.length)))),
  );
  const line = (parts: readonly string[]) =>
    parts
      .map((p, i) => (i === parts.length - 1 ? p : p.padEnd(widths[i])))
      .join('   ')
      .trimEnd();
  const out: string[] = [];
  for (const r of [head, ...cells]) {
    const height = Math.max(1, ...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(r.map((c) => c[k] ?? '')));
  }
  return `${out.join('\n')}\n`;
}
