// What the cluster store holds, and how: one key per resource under `membrane/state/`, laid out
// like Cilium's kvstore (a resource kind, a schema version, then the object's name), JSON values.
//
//   membrane/state/namespaces/v1/<name>                       ClusterNamespace
//   membrane/state/endpoints/v1/<node>/<endpoint id>          ClusterEndpoint (a pod: labels,
//                                                             named container ports, IPs, identity;
//                                                             this is also the pod's ipcache entry)
//   membrane/state/policies/v1/<kind>/<namespace>/<name>      ClusterPolicy (the YAML document)
//   membrane/state/identities/v1/id/<id>                      identity master key: its labels
//   membrane/state/identities/v1/value/<sha256 of labels>     the id of a label set
//   membrane/state/nodes/v1/<name>                            ClusterNode, under the node's lease
//   membrane/state/services/v1/<namespace>/<name>             ClusterService (the v1 Service YAML)
//
// Identity allocation is a transaction, as in Cilium's kvstore allocator: it creates the master
// key and the value key together only if neither exists, so agents racing for one label set
// agree on one number and two label sets never share one.
import { createHash } from 'node:crypto';
import { type ClusterStore, type KeyValue, StoreError } from './cluster-store.js';

export const STATE_PREFIX = 'membrane/state/';
export const NAMESPACES_PREFIX = `${STATE_PREFIX}namespaces/v1/`;
export const ENDPOINTS_PREFIX = `${STATE_PREFIX}endpoints/v1/`;
export const POLICIES_PREFIX = `${STATE_PREFIX}policies/v1/`;
export const IDENTITY_IDS_PREFIX = `${STATE_PREFIX}identities/v1/id/`;
export const IDENTITY_VALUES_PREFIX = `${STATE_PREFIX}identities/v1/value/`;
export const NODES_PREFIX = `${STATE_PREFIX}nodes/v1/`;
export const SERVICES_PREFIX = `${STATE_PREFIX}services/v1/`;

/** First identity id for label-based (global) identities, as in Cilium. */
export const FIRST_GLOBAL_IDENTITY = 256;
export const MAX_GLOBAL_IDENTITY = 65535;

export interface ClusterNamespace {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ClusterContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  /** IP protocol number (6 TCP, 17 UDP, 132 SCTP). */
  readonly protocol: number;
}

export interface ClusterEndpoint {
  readonly node: string;
  /** The endpoint ID on its own node (meaningless on any other node). */
  readonly id: number;
  readonly ipv4: string;
  readonly identity: number;
  readonly namespace: string;
  readonly podName: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ports: readonly ClusterContainerPort[];
  /** Being deleted: services give it no new connections while its existing ones drain. */
  readonly terminating?: boolean;
}

export interface ClusterNode {
  readonly name: string;
  readonly ipv4: string;
  readonly podCIDR: string;
}

/** A policy document as stored: the parsed YAML object and where it came from. */
export interface ClusterPolicy {
  readonly kind: string;
  /** '' for cluster-wide policies. */
  readonly namespace: string;
  readonly name: string;
  readonly source: string;
  readonly doc: Readonly<Record<string, unknown>>;
}

/** A Service document as stored: the parsed YAML object and where it came from. */
export interface ClusterService {
  readonly namespace: string;
  readonly name: string;
  readonly source: string;
  readonly doc: Readonly<Record<string, unknown>>;
}

export interface IdentityRecord {
  readonly id: number;
  /** "source:key=value", sorted. */
  readonly labels: readonly string[];
}

export function namespaceKey(name: string): string {
  return NAMESPACES_PREFIX + name;
}

export function endpointKey(node: string, id: number): string {
  return `${ENDPOINTS_PREFIX}${node}/${id}`;
}

export function policyKey(p: { kind: string; namespace: string; name: string }): string {
  return `${POLICIES_PREFIX}${p.kind}/${p.namespace}/${p.name}`;
}

export function serviceKey(s: { namespace: string; name: string }): string {
  return `${SERVICES_PREFIX}${s.namespace}/${s.name}`;
}

export function nodeKey(name: string): string {
  return NODES_PREFIX + name;
}

export function identityKey(id: number): string {
  return IDENTITY_IDS_PREFIX + id;
}

/** Canonical key of a label set: order-insensitive. */
export function labelsKey(labels: readonly string[]): string {
  return createHash('sha256')
    .update([...labels].sort().join('\n'))
    .digest('hex')
    .slice(0, 32);
}

/** Decodes a stored value; undefined (not a throw) for a value no reader can use. */
export function decodeValue<T>(kv: { value: string }): T | undefined {
  try {
    const v = JSON.parse(kv.value) as unknown;
    return v !== null && typeof v === 'object' ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

export function decodeIdentity(kv: { key: string; value: string }): IdentityRecord | undefined {
  const id = Number(kv.key.slice(IDENTITY_IDS_PREFIX.length));
  const v = decodeValue<{ labels?: unknown }>(kv);
  if (!Number.isInteger(id) || !Array.isArray(v?.labels)) return undefined;
  return { id, labels: v.labels.map(String) };
}

/** The cluster-wide id of a label set, allocating the lowest free one if no node has yet. */
export async function allocateIdentity(store: ClusterStore, labels: readonly string[]): Promise<number> {
  const sorted = [...labels].sort();
  const valueKey = IDENTITY_VALUES_PREFIX + labelsKey(sorted);
  for (let attempt = 0; attempt < 64; attempt++) {
    const have = await store.get(valueKey);
    if (have) return Number(have.value);
    const used = new Set((await store.list(IDENTITY_IDS_PREFIX)).items.map((kv: KeyValue) => decodeIdentity(kv)?.id));
    let id = FIRST_GLOBAL_IDENTITY;
    while (used.has(id)) id++;
    if (id > MAX_GLOBAL_IDENTITY)
      throw new StoreError(
        'MBR_IDENTITY_EXHAUSTED',
        'identity allocation: expected a free identity in 256-65535, got none left',
      );
    const r = await store.txn({
      compare: [
        { key: valueKey, target: 'createRevision', equals: 0 },
        { key: identityKey(id), target: 'createRevision', equals: 0 },
      ],
      success: [
        { type: 'put', key: identityKey(id), value: JSON.stringify({ labels: sorted }) },
        { type: 'put', key: valueKey, value: String(id) },
      ],
    });
    if (r.succeeded) return id;
    // Lost a race for the id or for the labels: look again.
  }
  throw new StoreError('MBR_IDENTITY_CONFLICT', 'identity allocation: gave up after 64 conflicting attempts');
}
