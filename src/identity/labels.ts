// Labels as security identities see them: a source (k8s, reserved, cidr, fqdn, any), a key and a
// value. An identity is the canonical, sorted set of its identity-relevant labels, so two pods
// with the same relevant labels share one identity whatever order their labels were written in.

export interface Label {
  readonly source: string;
  readonly key: string;
  readonly value: string;
}

/** The labels of one identity, with lookups by `source:key` and by key alone (for `any:`). */
export interface LabelSet {
  readonly labels: readonly Label[];
  /** Canonical form: `source:key=value` joined by `;`, sorted. Equal label sets have equal keys. */
  readonly key: string;
  /** source:key -> value */
  readonly bySourceKey: ReadonlyMap<string, string>;
  /** key -> values from any source */
  readonly byKey: ReadonlyMap<string, readonly string[]>;
}

export const SOURCE_K8S = 'k8s';
export const SOURCE_RESERVED = 'reserved';
export const SOURCE_CIDR = 'cidr';
export const SOURCE_FQDN = 'fqdn';
export const SOURCE_ANY = 'any';

export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
export const LABEL_POLICY_CLUSTER = 'io.cilium.k8s.policy.cluster';
export const LABEL_SERVICE_ACCOUNT = 'io.cilium.k8s.policy.serviceaccount';
export const LABEL_NAMESPACE_NAME = 'kubernetes.io/metadata.name';
export const DEFAULT_CLUSTER_NAME = 'default';

/** Sources a selector key may carry as a `source:` prefix. */
export const LABEL_SOURCES = ['k8s', 'reserved', 'any', 'cidr', 'fqdn', 'container', 'unspec', 'cidrgroup'] as const;

export function makeLabelSet(labels: Iterable<Label>): LabelSet {
  const uniq = new Map<string, Label>();
  for (const l of labels) uniq.set(`${l.source}:${l.key}`, l);
  const sorted = [...uniq.values()].sort((a, b) => cmp(formatLabel(a), formatLabel(b)));
  const bySourceKey = new Map<string, string>();
  const byKey = new Map<string, string[]>();
  for (const l of sorted) {
    bySourceKey.set(`${l.source}:${l.key}`, l.value);
    const vs = byKey.get(l.key);
    if (vs) vs.push(l.value);
    else byKey.set(l.key, [l.value]);
  }
  return { labels: sorted, key: sorted.map(formatLabel).join(';'), bySourceKey, byKey };
}

/** `k8s:app=web`; a label with an empty value prints as `reserved:host`. */
export function formatLabel(l: Label): string {
  return l.value === '' ? `${l.source}:${l.key}` : `${l.source}:${l.key}=${l.value}`;
}

/**
 * Splits a selector key into its source and key: `k8s:app` -> (k8s, app); `app` -> (any, app).
 * Only a known source counts as a prefix, so keys with colons of their own stay whole.
 */
export function parseSelectorKey(raw: string): { source: string; key: string } {
  const i = raw.indexOf(':');
  if (i > 0) {
    const src = raw.slice(0, i);
    if ((LABEL_SOURCES as readonly string[]).includes(src)) return { source: src, key: raw.slice(i + 1) };
  }
  return { source: SOURCE_ANY, key: raw };
}

/**
 * True when a pod label is relevant to its security identity. Mirrors the default label filter:
 * keep the namespace, namespace labels, cluster, service account, app.kubernetes.io/* and every
 * other user label; drop Kubernetes' own bookkeeping labels that would split identities per pod.
 */
export function isIdentityRelevantLabel(key: string): boolean {
  if (key === LABEL_POD_NAMESPACE || key.startsWith(LABEL_NAMESPACE_LABELS_PREFIX)) return true;
  if (key === LABEL_POLICY_CLUSTER || key === LABEL_SERVICE_ACCOUNT) return true;
  if (key.startsWith('app.kubernetes.io/')) return true;
  if (IRRELEVANT_EXACT.has(key)) return false;
  if (key.startsWith('annotation.')) return false;
  for (const p of IRRELEVANT_PREFIXES) if (key.startsWith(p)) return false;
  if (key.endsWith('beta.kubernetes.io') || key.includes('beta.kubernetes.io/')) return false;
  return true;
}

/**
 * The identity labels of a pod: its relevant labels (source k8s), its namespace, the labels of
 * its namespace (prefixed), the cluster and its service account.
 */
export function podIdentityLabels(
  podLabels: Readonly<Record<string, string>>,
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>>,
  serviceAccount = 'default',
  cluster = DEFAULT_CLUSTER_NAME,
): LabelSet {
  const out: Label[] = [];
  for (const [k, v] of Object.entries(podLabels)) if (isIdentityRelevantLabel(k)) out.push(k8s(k, v));
  out.push(k8s(LABEL_POD_NAMESPACE, namespace));
  for (const [k, v] of Object.entries(namespaceLabels)) out.push(k8s(LABEL_NAMESPACE_LABELS_PREFIX + k, v));
  out.push(k8s(LABEL_POLICY_CLUSTER, cluster));
  out.push(k8s(LABEL_SERVICE_ACCOUNT, serviceAccount));
  return makeLabelSet(out);
}

// Private helpers.

const IRRELEVANT_EXACT = new Set([
  'pod-template-generation',
  'pod-template-hash',
  'controller-revision-hash',
  'controller-uid',
  'etcd_node',
  'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index',
  'batch.kubernetes.io/job-completion-index',
  'batch.kubernetes.io/controller-uid',
]);
const IRRELEVANT_PREFIXES = ['io.kubernetes', 'kubernetes.io', 'k8s.io', 'topology.kubernetes.io'];

function k8s(key: string, value: string): Label {
  return { source: SOURCE_K8S, key, value };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
