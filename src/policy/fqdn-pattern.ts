// DNS name selectors: matchName (exact, case-insensitive) and matchPattern (`*` within one label,
// a leading `**.` for one or more whole labels), both normalised to lower case with a trailing dot.

export const FQDN_NAME_CHARS = /^[-a-zA-Z0-9_.]+$/;
export const FQDN_PATTERN_CHARS = /^[-a-zA-Z0-9_.*]+$/;

/** Lower case, trimmed, with a trailing dot. */
export function normalizeFqdn(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

/** Compiles a matchPattern into an anchored regex over normalised names. */
export function compileMatchPattern(pattern: string): RegExp {
  const p = normalizeFqdn(pattern);
  if (/^\*+\.?$/.test(p)) return /^.*$/;
  let body = p;
  let prefix = '';
  const lead = /^\*\*+\./.exec(p);
  if (lead) {
    prefix = '(?:[-a-zA-Z0-9_]+\\.)+';
    body = p.slice(lead[0].length);
  }
  const re = body
    .split(/(\*+)/)
    .map((part) => (part.startsWith('*') ? '[-a-zA-Z0-9_]*' : part.replace(/\./g, '\\.')))
    .join('');
  return new RegExp(`^${prefix}${re}$`);
}

export function fqdnSelectorMatches(sel: { matchName?: string; matchPattern?: string }, name: string): boolean {
  const n = normalizeFqdn(name);
  if (sel.matchName !== undefined) return normalizeFqdn(sel.matchName) === n;
  if (sel.matchPattern !== undefined) return compileMatchPattern(sel.matchPattern).test(n);
  return false;
}
