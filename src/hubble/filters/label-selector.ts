// Kubernetes label-selector syntax over flow labels ("source:key=value").
//   app=web, app==web, app!=web, app, !app, app in (a,b), app notin (a,b), joined by commas.
// A selector key may carry a label source ("k8s:app"): it then only matches labels of that source;
// without one (or with "any:") it matches the key from any source. Semantics follow Kubernetes:
// `!=` and `notin` also match when the key is absent.
import { FilterError } from './filter-error.js';

export type LabelMatcher = (labels: readonly string[] | undefined) => boolean;

export function compileLabelSelector(selector: string, path: string): LabelMatcher {
  const reqs = parseRequirements(selector, path);
  return (labels) => {
    const set = labels ?? EMPTY;
    for (const r of reqs) if (!r(set)) return false;
    return true;
  };
}

const EMPTY: readonly string[] = [];

type Requirement = (labels: readonly string[]) => boolean;

const KEY = /^(?:([A-Za-z0-9][-A-Za-z0-9_.]*):)?([A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?)$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function parseRequirements(selector: string, path: string): Requirement[] {
  const parts = splitTopLevel(selector);
  if (parts === undefined) throw new FilterError(path, 'a label selector with balanced parentheses', selector);
  const reqs: Requirement[] = [];
  for (const raw of parts) {
    const part = raw.trim();
    if (part === '') throw new FilterError(path, 'a label selector (key, !key, key=value, key in (a,b))', selector);
    reqs.push(parseRequirement(part, selector, path));
  }
  return reqs;
}

function parseRequirement(part: string, selector: string, path: string): Requirement {
  const setMatch = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
  if (setMatch !== null) {
    const key = parseKey(setMatch[1]!, selector, path);
    const values = setMatch[3]!.split(',').map((v) => v.trim());
    for (const v of values) checkValue(v, selector, path);
    const allowed = new Set(values);
    return setMatch[2] === 'in'
      ? (labels) => anyValue(labels, key, (v) => allowed.has(v))
      : (labels) => !anyValue(labels, key, (v) => allowed.has(v));
  }
  const op = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
  if (op !== null) {
    const key = parseKey(op[1]!, selector, path);
    const value = op[3]!.trim();
    checkValue(value, selector, path);
    return op[2] === '!='
      ? (labels) => !anyValue(labels, key, (v) => v === value)
      : (labels) => anyValue(labels, key, (v) => v === value);
  }
  if (part.startsWith('!')) {
    const key = parseKey(part.slice(1).trim(), selector, path);
    return (labels) => !anyValue(labels, key, () => true);
  }
  const key = parseKey(part, selector, path);
  return (labels) => anyValue(labels, key, () => true);
}

interface Key {
  readonly source: string | undefined;
  readonly name: string;
}

function parseKey(raw: string, selector: string, path: string): Key {
  const m = KEY.exec(raw);
  if (m === null)
    throw new FilterError(path, `a label selector with valid keys (bad key ${JSON.stringify(raw)})`, selector);
  const source = m[1] === undefined || m[1] === 'any' ? undefined : m[1];
  return { source, name: m[2]! };
}

function checkValue(v: string, selector: string, path: string): void {
  if (v.length > 63 || !VALUE.test(v))
    throw new FilterError(path, `a label selector with valid values (bad value ${JSON.stringify(v)})`, selector);
}

/** Whether some label with this key (and source, if the key names one) has a value passing `test`. */
function anyValue(labels: readonly string[], key: Key, test: (v: string) => boolean): boolean {
  for (const l of labels) {
    const colon = l.indexOf(':');
    const eq = l.indexOf('=', colon + 1);
    const name = eq < 0 ? l.slice(colon + 1) : l.slice(colon + 1, eq);
    if (name !== key.name) continue;
    if (key.source !== undefined && (colon < 0 ? '' : l.slice(0, colon)) !== key.source) continue;
    if (test(eq < 0 ? '' : l.slice(eq + 1))) return true;
  }
  return false;
}

function splitTopLevel(s: string): string[] | undefined {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      if (depth < 0) return undefined;
    } else if (c === ',' && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) return undefined;
  out.push(s.slice(start));
  return out;
}
