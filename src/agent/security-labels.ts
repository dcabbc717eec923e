// Pod labels → the security-relevant label set an identity is made of, in Cilium's spelling
// ("k8s:key=value"), with the namespace and its labels folded in. Pure.

export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
export const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster';

// Labels that change without changing what a workload is (Cilium's default label filter).
const EXCLUDED = [
  /^io\.kubernetes(?!\.pod\.namespace$)/,
  /^kubernetes\.io\//,
  /beta\.kubernetes\.io/,
  /^k8s\.io/,
  /^pod-template-generation$/,
  /^pod-template-hash$/,
  /^controller-revision-hash$/,
  /^controller-uid$/,
  /^annotation\./,
  /^statefulset\.kubernetes\.io\/pod-name$/,
];

export function securityLabels(
  podLabels: Readonly<Record<string, string>>,
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>>,
  cluster = 'default',
): string[] {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(podLabels)) if (!EXCLUDED.some((re) => re.test(k))) out.add(`k8s:${k}=${v}`);
  out.add(`k8s:${NAMESPACE_LABEL}=${namespace}`);
  for (const [k, v] of Object.entries(namespaceLabels)) out.add(`k8s:${NAMESPACE_LABELS_PREFIX}${k}=${v}`);
  out.add(`k8s:${CLUSTER_LABEL}=${cluster}`);
  return [...out].sort();
}

/** The namespace labels Kubernetes always sets. */
export function defaultNamespaceLabels(name: string): Record<string, string> {
  return { 'kubernetes.io/metadata.name': name };
}
