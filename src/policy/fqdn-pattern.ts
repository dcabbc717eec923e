// DNS name selectors: matchName (exact, case-insensitive) and matchPattern, both compared on
// names normalised to lower case with a trailing dot.
//
// matchPattern semantics are those of Cilium's pkg/fqdn/matchpattern (its test table on main is
// reproduced in test/policy/fqdn-pattern.test.ts):
// - `*` inside a label is any run (possibly empty) of DNS characters [-a-z0-9_], never a dot;
//   runs of stars inside a label count as one star;
// - a label made only of two or more stars followed by a dot (`**.`) stands for one or more whole
//   labels (Cilium first accepted it as a prefix only; its current tests accept it anywhere);
// - a pattern of stars alone (`*`, `**`, `**.`) selects every DNS name, and the root.
// Matching works label by label with dynamic programming, never through a backtracking regex,
// so a pattern of many stars costs O(pattern x name) on any input.

// The shapes Cilium's CRD schema accepts (FQDNSelector in pkg/policy/api/fqdn.go:
// `^([-a-zA-Z0-9_]+[.]?)+$` and `^([-a-zA-Z0-9_*]+[.]?)+$`): non-empty labels joined by single
// dots, an optional trailing dot. So `a..b`, `.a.com` and `.` are rejected; `**`, `**.a.com` and
// `a.**.com` are accepted. Written without nested quantifiers so a long bad name cannot backtrack.
export const FQDN_NAME_SHAPE = /^[-a-zA-Z0-9_]+(?:\.[-a-zA-Z0-9_]+)*\.?$/;
export const FQDN_PATTERN_SHAPE = /^[-a-zA-Z0-9_*]+(?:\.[-a-zA-Z0-9_*]+)*\.?$/;
/** matchName and matchPattern length limit (matchpattern.MaxFQDNLength). */
export const FQDN_MAX_LENGTH = 255;

export interface FqdnSelectorSpec {
  readonly matchName?: string;
  readonly matchPattern?: string;
}

/** A compiled selector: true when the normalised name (see normalizeFqdn) is selected. */
export type FqdnMatcher = (normalizedName: string) => boolean;

/** Lower case, trimmed, with a trailing dot. */
export function normalizeFqdn(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

/** Compiles a matchPattern once; the matcher takes names already normalised. */
export function compileMatchPattern(pattern: string): FqdnMatcher {
  const p = normalizeFqdn(pattern);
  if (/^\*+\.$/.test(p)) return (n) => n === '.' || isDnsName(n);
  if (p === '.') return (n) => n === '.';
  const labels = p.slice(0, -1).split('.').map(compileLabel);
  return (n) => {
    if (n === '.' || !n.endsWith('.')) return false;
    return matchLabels(labels, n.slice(0, -1).split('.'));
  };
}

/** Compiles a selector (matchName or matchPattern); one with neither selects nothing. */
export function compileFqdnSelector(sel: FqdnSelectorSpec): FqdnMatcher {
  if (sel.matchName !== undefined) {
    const want = normalizeFqdn(sel.matchName);
    return (n) => n === want;
  }
  if (sel.matchPattern !== undefined) return compileMatchPattern(sel.matchPattern);
  return () => false;
}

export function fqdnSelectorMatches(sel: FqdnSelectorSpec, name: string): boolean {
  if (name.trim() === '') return false;
  const key = sel.matchName !== undefined ? `n:${sel.matchName}` : `p:${sel.matchPattern ?? ''}`;
  let m = COMPILED.get(key);
  if (!m) {
    m = compileFqdnSelector(sel);
    if (COMPILED.size >= COMPILED_MAX) COMPILED.clear();
    COMPILED.set(key, m);
  }
  return m(normalizeFqdn(name));
}

/** The selector as Cilium prints it: `matchName: x` / `matchPattern: *.x`. */
export function formatFqdnSelector(sel: FqdnSelectorSpec): string {
  return sel.matchName !== undefined ? `matchName: ${sel.matchName}` : `matchPattern: ${sel.matchPattern ?? ''}`;
}

// ---- internals ----

const COMPILED = new Map<string, FqdnMatcher>();
const COMPILED_MAX = 4096;

/** One pattern label: `**` (one or more whole labels) or a glob within one label. */
type LabelMatcher = { readonly isMulti: true } | { readonly isMulti: false; readonly parts: readonly string[] };

function compileLabel(label: string): LabelMatcher {
  if (/^\*{2,}$/.test(label)) return { isMulti: true };
  // "a*b*c" -> ["a", "b", "c"]: literal parts between stars (star runs collapse).
  return { isMulti: false, parts: label.split(/\*+/) };
}

const DNS_CHAR = /^[-a-z0-9_]$/;

function isDnsName(n: string): boolean {
  if (!n.endsWith('.')) return false;
  for (const l of n.slice(0, -1).split('.')) if (l === '' || !/^[-a-z0-9_]+$/.test(l)) return false;
  return true;
}

/** Label-sequence DP: at[i][j] = pattern labels from i match name labels from j. */
function matchLabels(pat: readonly LabelMatcher[], name: readonly string[]): boolean {
  if (name.some((l) => l === '')) return false;
  const P = pat.length;
  const N = name.length;
  // next[j]: pat[i+1..] matches name[j..]; computed from the end.
  let next = new Array<boolean>(N + 1).fill(false);
  next[N] = true;
  for (let i = P - 1; i >= 0; i--) {
    const cur = new Array<boolean>(N + 1).fill(false);
    const m = pat[i]!;
    if (m.isMulti) {
      // one or more whole labels, each of DNS characters only
      let anyAfter = false;
      for (let j = N - 1; j >= 0; j--) {
        if (!/^[-a-z0-9_]+$/.test(name[j]!)) {
          anyAfter = false;
          continue;
        }
        anyAfter = anyAfter || next[j + 1]!;
        cur[j] = anyAfter;
      }
    } else {
      for (let j = 0; j < N; j++) if (next[j + 1] && matchGlob(m.parts, name[j]!)) cur[j] = true;
    }
    next = cur;
  }
  return next[0]!;
}

/** Glob within one label: parts are the literals between stars; a star spans DNS characters. */
function matchGlob(parts: readonly string[], s: string): boolean {
  if (parts.length === 1) return parts[0] === s;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last)) return false;
  // Greedy leftmost placement of the middle literals is exact for `*` globs; the text a star
  // spans must be DNS characters only.
  let pos = first.length;
  const end = s.length - last.length;
  for (let k = 1; k < parts.length - 1; k++) {
    const lit = parts[k]!;
    const at = s.indexOf(lit, pos);
    if (at < 0 || at + lit.length > end || !spanIsDns(s, pos, at)) return false;
    pos = at + lit.length;
  }
  return spanIsDns(s, pos, end);
}

function spanIsDns(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!DNS_CHAR.test(s[i]!)) return false;
  return true;
}
