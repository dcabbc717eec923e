// DNS name selectors: matchName (exact, case-insensitive) and matchPattern (`*` within one label,
// a leading `**.` for one or more whole labels), both normalised to lower case with a trailing dot.

// The shapes Cilium's CRD schema accepts (FQDNSelector in pkg/policy/api/fqdn.go:
// `^([-a-zA-Z0-9_]+[.]?)+$` and `^([-a-zA-Z0-9_*]+[.]?)+$`): non-empty labels joined by single
// dots, an optional trailing dot. So `a..b`, `.a.com` and `.` are rejected; `**`, `**.a.com` and
// `a.**.com` are accepted. Written without nested quantifiers so a long bad name cannot backtrack.
export const FQDN_NAME_SHAPE = /^[-a-zA-Z0-9_]+(?:\.[-a-zA-Z0-9_]+)*\.?$/;
export const FQDN_PATTERN_SHAPE = /^[-a-zA-Z0-9_*]+(?:\.[-a-zA-Z0-9_*]+)*\.?$/;
/** matchName and matchPattern length limit (matchpattern.MaxFQDNLength). */
export const FQDN_MAX_LENGTH = 255;

/** Lower case, trimmed, with a trailing dot. */
export function normalizeFqdn(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

/** Compiles a matchPattern into an anchored regex over normalised names. */
export function compileMatchPattern(pattern: string): RegExp {
  const p = normalizeFqdn(pattern);
  // All stars (`*`, `**`, `**.`): every DNS name, or the root, as matchpattern.ToAnchoredRegexp.
  if (/^\*+\.?$/.test(p)) return /^(?:[-a-zA-Z0-9_]+\.)+$|^\.$/;
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
