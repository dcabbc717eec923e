// The page's filters: `membrane observe` flags as [flag, value] pairs, kept in the URL hash so a
// view can be bookmarked, sent to the server as query parameters (the server compiles them).

export type Filter = readonly [flag: string, value: string];

export interface ViewState {
  readonly namespaces: readonly string[];
  readonly filters: readonly Filter[];
}

/** Flags that take no value. */
export const BOOLEAN_FLAGS = new Set(['not', 'all-namespaces', 'from-all-namespaces', 'to-all-namespaces']);

/** Flags offered in the filter picker: what Hubble UI users ask for first. */
export const COMMON_FLAGS = [
  'namespace',
  'pod',
  'from-pod',
  'to-pod',
  'label',
  'from-label',
  'to-label',
  'ip',
  'from-ip',
  'to-ip',
  'port',
  'to-port',
  'verdict',
  'protocol',
  'http-status',
  'http-method',
  'http-path',
  'fqdn',
  'identity',
  'traffic-direction',
  'drop-reason-desc',
  'type',
  'node-name',
  'not',
] as const;

export function toQuery(v: ViewState, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams();
  for (const ns of v.namespaces) p.append('ns', ns);
  for (const [flag, value] of v.filters) p.append(flag, value);
  for (const [k, val] of Object.entries(extra)) p.set(k, val);
  return p.toString();
}

/** `--verdict DROPPED --to-pod db/` or `verdict=DROPPED to-pod=db/` into filters. */
export function parseFilterText(text: string): Filter[] {
  const tokens = text.match(/"[^"]*"|'[^']*'|\S+/g) ?? [];
  const out: Filter[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const raw = tokens[i]!.replace(/^--?/, '');
    const eq = raw.indexOf('=');
    if (eq > 0) {
      out.push([raw.slice(0, eq), unquote(raw.slice(eq + 1))]);
      continue;
    }
    if (BOOLEAN_FLAGS.has(raw) || i + 1 >= tokens.length) out.push([raw, '']);
    else out.push([raw, unquote(tokens[++i]!)]);
  }
  return out;
}

export function readHash(): ViewState {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  const namespaces = p.getAll('ns');
  const filters: Filter[] = [];
  for (const [k, v] of p) if (k !== 'ns') filters.push([k, v]);
  return { namespaces, filters };
}

export function writeHash(v: ViewState): void {
  const q = toQuery(v);
  if (location.hash.replace(/^#/, '') !== q) history.replaceState(null, '', `#${q}`);
}

function unquote(s: string): string {
  return /^(["']).*\1$/.test(s) ? s.slice(1, -1) : s;
}
