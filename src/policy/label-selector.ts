// A compiled label selector (matchLabels + matchExpressions) over identity labels. Keys carry a
// source (`k8s:app`, `reserved:host`, or `any:`/unprefixed which matches any source).
import type { LabelSet } from '../identity/labels.js';

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelRequirement {
  readonly source: string;
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values: readonly string[];
}

export interface LabelSelector {
  /** All must hold; none = selects every identity. */
  readonly requirements: readonly LabelRequirement[];
  /** Canonical text, equal for equal selectors (the selector cache interns by it). */
  readonly key: string;
}

export function makeLabelSelector(requirements: readonly LabelRequirement[]): LabelSelector {
  const reqs = requirements
    .map((r) => ({ ...r, values: [...new Set(r.values)].sort() }))
    .sort((a, b) => cmp(requirementText(a), requirementText(b)));
  const uniq = reqs.filter((r, i) => i === 0 || requirementText(r) !== requirementText(reqs[i - 1]));
  return { requirements: uniq, key: uniq.map(requirementText).join(',') };
}

export function selectorMatches(sel: LabelSelector, labels: LabelSet): boolean {
  for (const r of sel.requirements) if (!requirementMatches(r, labels)) return false;
  return true;
}

/** The value a selector requires for a label by equality (`source:key` In [one value]), if any. */
export function requiredValue(sel: LabelSelector, source: string, key: string): string | undefined {
  for (const r of sel.requirements)
    if (r.key === key && (r.source === source || r.source === 'any') && r.operator === 'In' && r.values.length === 1)
      return r.values[0];
  return undefined;
}

export function selectorNamesKey(sel: LabelSelector, key: string): boolean {
  return sel.requirements.some((r) => r.key === key);
}

export function requirementText(r: LabelRequirement): string {
  const k = `${r.source}:${r.key}`;
  switch (r.operator) {
    case 'In':
      return r.values.length === 1 ? `${k}=${r.values[0]}` : `${k} in (${r.values.join(',')})`;
    case 'NotIn':
      return `${k} notin (${r.values.join(',')})`;
    case 'Exists':
      return k;
    case 'DoesNotExist':
      return `!${k}`;
  }
}

// Private helpers.

function requirementMatches(r: LabelRequirement, labels: LabelSet): boolean {
  let have: readonly string[];
  if (r.source === 'any') have = labels.byKey.get(r.key) ?? [];
  else {
    const v = labels.bySourceKey.get(`${r.source}:${r.key}`);
    have = v === undefined ? [] : [v];
  }
  switch (r.operator) {
    case 'In':
      return have.some((v) => r.values.includes(v));
    case 'NotIn':
      return !have.some((v) => r.values.includes(v));
    case 'Exists':
      return have.length > 0;
    case 'DoesNotExist':
      return have.length === 0;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
