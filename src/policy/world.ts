// The world the policy engine resolves against: namespaces, pods and services, fed from
// manifests (`v1` Namespace / Pod / Service / Endpoints) or directly by the agent; and the
// `v1` Secrets whose values L7 rules (headerMatches) compare against.

export interface Namespace {
  readonly name: string;
  /** As written; the engine adds kubernetes.io/metadata.name=<name> itself. */
  readonly labels: Readonly<Record<string, string>>;
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  /** IP protocol number (TCP 6 when the manifest omits it). */
  readonly protocol: number;
}

export interface Pod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ports: readonly ContainerPort[];
  readonly podIPs: readonly string[];
  readonly serviceAccount?: string;
  /** Endpoint ID; the engine assigns the lowest free one from 1 when absent. */
  readonly endpointId?: number;
  /** spec.nodeName: the node the pod runs on. */
  readonly nodeName?: string;
  /** The pod runs on another node: a peer for selectors, not an endpoint of this engine. */
  readonly remote?: boolean;
  /** Being deleted (EndpointSlice `terminating`): services give it no new connections. */
  readonly terminating?: boolean;
}

export interface Service {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** undefined = a service without a pod selector (backends come from Endpoints). */
  readonly selector?: Readonly<Record<string, string>>;
  /** Backend IPs (from a v1 Endpoints of the same name). */
  readonly endpointIPs: readonly string[];
}

export interface Secret {
  readonly namespace: string;
  readonly name: string;
  /** Entries, decoded (`data` is base64 in the manifest, `stringData` plain). */
  readonly data: Readonly<Record<string, string>>;
}

/**
 * The value a headerMatches rule compares with: the Secret's only entry. A Secret with none or
 * several gives no value (Cilium: "The secret must only contain one entry").
 */
export function secretMatchValue(s: Secret): string | undefined {
  const values = Object.values(s.data);
  return values.length === 1 ? values[0] : undefined;
}

export function podKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}
