// Cilium's `rules.http` as the proxy enforces them (cilium/proxy's HTTP policy filter), pure.
//
// A request is allowed when a rule of any applicable policy matches it (rules are OR-ed):
//   method, path, host: RE2 regexes matched against the whole method, `:path` (the request
//     target, query included) and `:authority` (the Host header);
//   headers: "Name" (present) or "Name: value" (exact value; repeated fields joined with ",");
//   headerMatches: name + value (or the value of a Secret), compared exactly; an empty value is a
//     presence match. On a mismatch the rule fails unless `mismatch` says otherwise:
//     LOG the mismatch and go on; ADD the value as another field; DELETE the field (if present
//     with a wrong value); REPLACE every field by one with the value. A secret that cannot be
//     found, with no value to fall back on, fails the rule whatever `mismatch` says.
// When any rule has headerMatches, every rule is evaluated so that each action runs (as Cilium
// does); otherwise the first match decides. A policy with `allowAll` (some rule allows the port
// without L7 restriction) allows everything: the proxy only observes.
import RE2 from 're2';
import type { PolicyRef } from '../../policy/map-state-types.js';
import type { L7Policy } from '../../policy/policy-engine.js';
import type { HttpRule } from '../../policy/policy-rule.js';
import { type Secret, secretMatchValue } from '../../policy/world.js';
import type { HttpHeader } from './http1-parser.js';

/** The request as rules see it. Header names are lower-case. */
export interface HttpRequestView {
  readonly method: string;
  /** `:path`: the request target in origin form (path and query). */
  readonly path: string;
  /** `:authority`: the Host header (or the authority of an absolute target). */
  readonly host: string;
  readonly headers: readonly HttpHeader[];
}

/** An edit the proxy makes to the request's header fields before forwarding it. */
export type HeaderEdit =
  | { readonly op: 'add'; readonly name: string; readonly value: string }
  | { readonly op: 'delete'; readonly name: string }
  | { readonly op: 'set'; readonly name: string; readonly value: string };

export interface HttpDecision {
  readonly allowed: boolean;
  /** The policies that decided: the matching one(s) when allowed, every applicable one when denied. */
  readonly policies: readonly PolicyRef[];
  /** Header edits to apply, in order (empty for most requests). */
  readonly edits: readonly HeaderEdit[];
  /** Header names whose values must not appear in logs or flows (matched against secrets). */
  readonly redact: ReadonlySet<string>;
}

/** Secret values by namespace and name; `version` changes whenever any value does. */
export interface SecretSource {
  readonly version: number;
  get(namespace: string, name: string): string | undefined;
}

export const NO_SECRETS: SecretSource = { version: 0, get: () => undefined };

/** Secrets as read from manifests (policy files, lab worlds): each gives its only entry. */
export class SecretValues implements SecretSource {
  version = 0;
  private readonly values = new Map<string, string | undefined>();
  /** Replaces every Secret at once; the version moves so compiled rules see the change. */
  set(secrets: readonly Secret[]): void {
    this.values.clear();
    for (const s of secrets) this.values.set(`${s.namespace}/${s.name}`, secretMatchValue(s));
    this.version++;
  }
  get(namespace: string, name: string): string | undefined {
    return this.values.get(`${namespace}/${name}`);
  }
}

/**
 * Decides one request against the policies applying to it. Compiled rules are cached per policy
 * object (and secret version), so the cost of compiling is paid once per rule change.
 */
export function decideHttp(
  policies: readonly L7Policy[],
  req: HttpRequestView,
  secrets: SecretSource = NO_SECRETS,
): HttpDecision {
  if (policies.length === 0) return DENY_NONE;
  const compiled: CompiledPolicy[] = [];
  let needAll = false;
  let allowAll: CompiledPolicy | undefined;
  // Fields compared with a secret are redacted in every record, whichever rule decides.
  let redact = NO_REDACT;
  for (const p of policies) {
    const c = compilePolicy(p, secrets);
    if (c.secretFields.length > 0) {
      if (redact === NO_REDACT) redact = new Set();
      for (const f of c.secretFields) (redact as Set<string>).add(f);
    }
    if ((c.allowAll || c.rules.length === 0) && allowAll === undefined) allowAll = c;
    if (c.hasHeaderMatches) needAll = true;
    compiled.push(c);
  }
  if (allowAll !== undefined) return redact === NO_REDACT ? allowAll.allowed : { ...allowAll.allowed, redact };
  if (!needAll) {
    for (const c of compiled) for (const r of c.rules) if (matchesBasic(r, req)) return c.allowed;
    return denied(compiled, NO_EDITS, redact);
  }
  // Header actions mutate the request as they run; later rules see the edited fields.
  const state = new HeaderState(req.headers);
  const refs: PolicyRef[] = [];
  for (const c of compiled) {
    for (const r of c.rules) {
      if (!matchesBasic(r, { ...req, headers: state.fields })) continue;
      let ok = true;
      for (const hm of r.headerMatches) if (!runHeaderMatch(hm, state, secrets)) ok = false;
      if (ok) for (const ref of c.refs) if (!refs.includes(ref)) refs.push(ref);
    }
  }
  if (refs.length === 0) return denied(compiled, state.edits, redact);
  return { allowed: true, policies: refs, edits: state.edits, redact };
}

/** Applies header edits to a field list (the same semantics the head rewriter uses). */
export function applyHeaderEdits(fields: readonly HttpHeader[], edits: readonly HeaderEdit[]): HttpHeader[] {
  const s = new HeaderState(fields);
  for (const e of edits) s.apply(e);
  return s.fields;
}

// Private helpers.

interface CompiledHeaderMatch {
  readonly name: string;
  readonly value: string;
  readonly secret?: { readonly namespace: string; readonly name: string };
  readonly mismatch: '' | 'LOG' | 'ADD' | 'DELETE' | 'REPLACE';
}

/** A whole-value match: RE2, or a plain comparison when the regex is a literal (or literal.*). */
interface ValueMatcher {
  test(value: string): boolean;
}

interface CompiledRule {
  readonly method?: ValueMatcher;
  readonly path?: ValueMatcher;
  readonly host?: ValueMatcher;
  /** [lower-case name, exact value or undefined for presence]. */
  readonly headers: ReadonlyArray<readonly [string, string | undefined]>;
  readonly headerMatches: readonly CompiledHeaderMatch[];
}

interface CompiledPolicy {
  readonly allowAll: boolean;
  readonly rules: readonly CompiledRule[];
  readonly hasHeaderMatches: boolean;
  readonly refs: readonly PolicyRef[];
  readonly secretVersion: number;
  /** The decision when this policy allows without header actions (one object, shared). */
  readonly allowed: HttpDecision;
  /** Lower-case names of fields some headerMatches compares with a secret. */
  readonly secretFields: readonly string[];
}

const NO_EDITS: readonly HeaderEdit[] = [];
const NO_REDACT: ReadonlySet<string> = new Set();
const DENY_NONE: HttpDecision = { allowed: false, policies: [], edits: NO_EDITS, redact: NO_REDACT };
const cache = new WeakMap<L7Policy, CompiledPolicy>();
const regexCache = new Map<string, ValueMatcher>();

function compilePolicy(p: L7Policy, secrets: SecretSource): CompiledPolicy {
  const hit = cache.get(p);
  if (hit && (!hit.hasHeaderMatches || hit.secretVersion === secrets.version)) return hit;
  const rules = (p.http ?? []).map(compileRule);
  const c: CompiledPolicy = {
    allowAll: p.allowAll,
    rules,
    hasHeaderMatches: rules.some((r) => r.headerMatches.length > 0),
    refs: p.derivedFrom,
    secretVersion: secrets.version,
    allowed: { allowed: true, policies: p.derivedFrom, edits: NO_EDITS, redact: NO_REDACT },
    secretFields: rules.flatMap((r) => r.headerMatches.filter((m) => m.secret).map((m) => m.name)),
  };
  cache.set(p, c);
  return c;
}

function compileRule(r: HttpRule): CompiledRule {
  const headers = (r.headers ?? []).map((h): readonly [string, string | undefined] => {
    // Cilium splits "Name: value" at the first space and trims the colon(s) off the name.
    const sp = h.indexOf(' ');
    if (sp < 0) return [h.toLowerCase(), undefined];
    return [h.slice(0, sp).replace(/:+$/, '').toLowerCase(), h.slice(sp + 1)];
  });
  return {
    ...(r.method ? { method: fullRegex(r.method) } : {}),
    ...(r.path ? { path: fullRegex(r.path) } : {}),
    ...(r.host ? { host: fullRegex(r.host) } : {}),
    headers,
    headerMatches: (r.headerMatches ?? []).map((m) => ({
      name: m.name.toLowerCase(),
      value: m.value ?? '',
      ...(m.secret ? { secret: { namespace: m.secret.namespace ?? 'default', name: m.secret.name } } : {}),
      mismatch: (m.mismatch ?? '') as CompiledHeaderMatch['mismatch'],
    })),
  };
}

/**
 * Regexes are compiled once per text: rule sets of many endpoints share them. A regex that is a
 * literal ("GET", "/api/v1/payments$") is compared with ===, and a literal followed by ".*" with
 * startsWith: the same answers as RE2 anchored at both ends (the values never hold a newline,
 * which "." would not match), without a call into RE2.
 */
function fullRegex(re: string): ValueMatcher {
  let r = regexCache.get(re);
  if (r === undefined) {
    const lit = literalPrefix(re);
    if (lit !== undefined && !lit.open) {
      const text = lit.text;
      r = { test: (v: string) => v === text };
    } else if (lit !== undefined) {
      const text = lit.text;
      r = { test: (v: string) => v.startsWith(text) };
    } else r = new RE2(`^(?:${re})$`);
    regexCache.set(re, r);
  }
  return r;
}

/**
 * The literal a regex stands for: `text` exactly, or (`open`) `text` then anything (a final
 * ".*"). Leading "^" and trailing "$" are dropped (the match is anchored anyway); escaped
 * punctuation is literal. undefined for anything else.
 */
function literalPrefix(re: string): { text: string; open: boolean } | undefined {
  let src = re;
  if (src.startsWith('^')) src = src.slice(1);
  let open = false;
  if (src.endsWith('.*') && !src.endsWith('\\.*')) {
    open = true;
    src = src.slice(0, -2);
  } else if (src.endsWith('$') && !src.endsWith('\\$')) src = src.slice(0, -1);
  let text = '';
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined || /[A-Za-z0-9]/.test(n)) return undefined;
      text += n;
      i++;
    } else if ('.+*?()[]{}|^$'.includes(c)) return undefined;
    else text += c;
  }
  return { text, open };
}

function matchesBasic(r: CompiledRule, req: HttpRequestView): boolean {
  if (r.method && !r.method.test(req.method)) return false;
  if (r.path && !r.path.test(req.path)) return false;
  if (r.host && !r.host.test(req.host)) return false;
  for (const [name, value] of r.headers) {
    const v = joinedValue(req.headers, name);
    if (v === undefined) return false;
    if (value !== undefined && v !== value) return false;
  }
  return true;
}

function joinedValue(fields: readonly HttpHeader[], name: string): string | undefined {
  let out: string | undefined;
  for (const f of fields) if (f.name === name) out = out === undefined ? f.value : `${out},${f.value}`;
  return out;
}

function runHeaderMatch(hm: CompiledHeaderMatch, state: HeaderState, secrets: SecretSource): boolean {
  let want = hm.value;
  if (hm.secret) {
    const v = secrets.get(hm.secret.namespace, hm.secret.name);
    if (v !== undefined) want = v;
    else if (want === '') return false;
  }
  const isPresence = want === '';
  const have = joinedValue(state.fields, hm.name);
  const matches = isPresence ? have !== undefined : have !== undefined && constantTimeEqual(have, want);
  if (matches) return true;
  switch (hm.mismatch) {
    case 'LOG':
      return true;
    case 'ADD':
      state.apply({ op: 'add', name: hm.name, value: want });
      return true;
    case 'DELETE':
      if (!isPresence && have !== undefined) state.apply({ op: 'delete', name: hm.name });
      return true;
    case 'REPLACE':
      state.apply({ op: 'set', name: hm.name, value: want });
      return true;
    default:
      return false;
  }
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

function denied(
  compiled: readonly CompiledPolicy[],
  edits: readonly HeaderEdit[],
  redact: ReadonlySet<string>,
): HttpDecision {
  const refs: PolicyRef[] = [];
  for (const c of compiled) for (const r of c.refs) if (!refs.includes(r)) refs.push(r);
  return { allowed: false, policies: refs, edits, redact };
}

class HeaderState {
  fields: HttpHeader[];
  readonly edits: HeaderEdit[] = [];
  constructor(fields: readonly HttpHeader[]) {
    this.fields = fields.slice();
  }
  apply(e: HeaderEdit): void {
    this.edits.push(e);
    if (e.op === 'add') this.fields.push({ name: e.name, value: e.value });
    else if (e.op === 'delete') this.fields = this.fields.filter((f) => f.name !== e.name);
    else {
      // Envoy's setCopy: the first field keeps its place with the new value, the others go.
      const i = this.fields.findIndex((f) => f.name === e.name);
      const rest = this.fields.filter((f) => f.name !== e.name);
      if (i < 0) rest.push({ name: e.name, value: e.value });
      else rest.splice(i, 0, { name: e.name, value: e.value });
      this.fields = rest;
    }
  }
}
