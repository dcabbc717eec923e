// Plain-text tables as Cilium's CLI prints them: a header row, columns separated by at least
// three spaces, cells may hold several lines (one label per line).
export function renderTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly (string | readonly string[])[]>,
): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'string' ? c.split('\n') : [...c])));
  const widths = header.map((h, i) =>
    Math.max(h.length, ...cells.map((r) => Math.max(0, ...r[i].map((l) => l.length)))),
  );
  const line = (parts: readonly string[]) =>
    parts
      .map((p, i) => (i === parts.length - 1 ? p : p.padEnd(widths[i])))
      .join('   ')
      .trimEnd();
  const out = [line(header)];
  for (const r of cells) {
    const height = Math.max(1, ...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(r.map((c) => c[k] ?? '')));
  }
  return `${out.join('\n')}\n`;
}
