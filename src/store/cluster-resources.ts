// What the cluster store holds, and how: one key per resource under `membrane/state/`, laid out
// like Cilium's kvstore (a resource kind, a schema version, then the object's name), JSON values.
//
//   membrane/state/namespaces/v1/<name>                       ClusterNamespace
//   membrane/state/endpoints/v1/<node>/<endpoint id>          ClusterEndpoint (a pod: labels,
//                                                             named container ports, IPs, identity;
//                                                             this is also the pod's ipcache entry)
//   membrane/state/policies/v1/<kind>/<namespace>/<name>      ClusterPolicy (the YAML document)
//   membrane/state/identities/v1/id/<id>                      identity master key: its labels
//   membrane/state/identities/v1/value/<labels>/<node>        a node's hold on an identity (slave
//                                                             key, its value the id), node lease
//   membrane/state/nodes/v1/<name>                            ClusterNode, under the node's lease
//   membrane/state/services/v1/<namespace>/<name>             ClusterService (the v1 Service YAML)
//   membrane/state/podcidrs/v1/<cidr>                         the node a pod CIDR is allocated to
//   membrane/state/operator/v1/<lock>                         operator locks (identity GC), lease
//
// Identity allocation is Cilium's kvstore allocator (allocateIdentity below): master keys per id,
// slave keys per node under the node's lease, transactions so racing agents agree; the GC
// (identity-gc.ts) deletes a master key once no node has held it for a grace period.
import { type ClusterStore, StoreError } from './cluster-store.js';

export const STATE_PREFIX = 'membrane/state/';
export const NAMESPACES_PREFIX = `${STATE_PREFIX}namespaces/v1/`;
export const ENDPOINTS_PREFIX = `${STATE_PREFIX}endpoints/v1/`;
export const POLICIES_PREFIX = `${STATE_PREFIX}policies/v1/`;
export const IDENTITY_IDS_PREFIX = `${STATE_PREFIX}identities/v1/id/`;
export const IDENTITY_VALUES_PREFIX = `${STATE_PREFIX}identities/v1/value/`;
export const NODES_PREFIX = `${STATE_PREFIX}nodes/v1/`;
export const SERVICES_PREFIX = `${STATE_PREFIX}services/v1/`;
export const PODCIDRS_PREFIX = `${STATE_PREFIX}podcidrs/v1/`;
export const OPERATOR_PREFIX = `${STATE_PREFIX}operator/v1/`;

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
  /** The agent's own health when it last wrote its key ("ok"); the key vanishes with its lease. */
  readonly health?: string;
  /** When the agent registered (ISO time). */
  readonly since?: string;
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

/**
 * A label set in a key, as Cilium's kvstore allocator writes it: each label sorted and ended by
 * ";" ("k8s:app=web;k8s:io.kubernetes.pod.namespace=shop;"). No label contains ";", and a label
 * never starts with "/", so "<labels>/" prefixes one label set's slave keys and no other's.
 */
export function labelsKey(labels: readonly string[]): string {
  return [...labels]
    .sort()
    .map((l) => `${l};`)
    .join('');
}

/** Every node's slave key of a label set starts with this; the node's name follows. */
export function identityValuePrefix(labels: readonly string[]): string {
  return `${IDENTITY_VALUES_PREFIX}${labelsKey(labels)}/`;
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

/** A node's hold on the identities its endpoints use: its slave keys go with its lease. */
export interface IdentityHolder {
  readonly node: string;
  /** The node's lease (0: keys without a lease, for tools and tests). */
  readonly lease: number;
}

/** What the caller already knows (its watch of the master keys): a hint, never trusted alone. */
export interface KnownIdentities {
  /** The id the caller has seen for this label set, if any. */
  readonly id?: number;
  isUsed(id: number): boolean;
}

/**
 * The cluster-wide id of a label set, held by `holder` (its slave key), as Cilium's kvstore
 * allocator does it. Every path that writes is one transaction whose compares make racing
 * allocators agree:
 *  - a label set some node holds: join it, if the slave key we saw still exists unchanged (then
 *    the label set was held all along, so nobody can have created another id for it);
 *  - a label set no node holds: reuse its master key if one is left (within the GC's grace
 *    period), or create the lowest free id, each only if still no node holds the label set.
 * Creating an id and holding it are one write, so a master key without slave keys is only ever
 * one whose last holder left (what the GC collects).
 */
export async function allocateIdentity(
  store: ClusterStore,
  labels: readonly string[],
  holder: IdentityHolder,
  known?: KnownIdentities,
): Promise<number> {
  const sorted = [...labels].sort();
  const prefix = identityValuePrefix(sorted);
  const mine = prefix + holder.node;
  const master = JSON.stringify({ labels: sorted });
  const hold = (id: number) =>
    ({ type: 'put', key: mine, value: String(id), ...(holder.lease ? { lease: holder.lease } : {}) }) as const;
  const noHolder = { prefix, target: 'empty' } as const;
  const tried = new Set<number>();
  for (let attempt = 0; attempt < 64; attempt++) {
    // A label set the caller has not seen is most likely new: the first attempt creates it
    // straight away; every later one (and any label set the caller knows) looks at who holds it.
    if (!(attempt === 0 && known && known.id === undefined)) {
      const slaves = await store.list(prefix);
      const own = slaves.items.find((kv) => kv.key === mine);
      if (own && own.lease === holder.lease) return Number(own.value);
      if (own) {
        // Ours from an earlier lease (the agent restarted): move it onto the current one, or it
        // goes when the old lease expires and the identity looks unheld.
        const id = Number(own.value);
        const r = await store.txn({
          compare: [
            { key: mine, target: 'modRevision', equals: own.modRevision },
            { key: identityKey(id), target: 'value', equals: master },
          ],
          success: [hold(id)],
        });
        if (r.succeeded) return id;
        continue;
      }
      const held = slaves.items[0];
      if (held) {
        const id = Number(held.value);
        const r = await store.txn({
          compare: [
            { key: held.key, target: 'createRevision', equals: held.createRevision },
            { key: identityKey(id), target: 'value', equals: master },
          ],
          success: [hold(id)],
        });
        if (r.succeeded) return id;
        continue;
      }
    }
    // Nobody holds it: its master key if one is left (within the GC's grace period), or a new id.
    let reuse = known?.id;
    let isUsed = known ? (n: number) => known.isUsed(n) : undefined;
    if (!isUsed) {
      const used = new Set<number>();
      for (const kv of (await store.list(IDENTITY_IDS_PREFIX)).items) {
        const n = Number(kv.key.slice(IDENTITY_IDS_PREFIX.length));
        used.add(n);
        if (kv.value === master) reuse = n;
      }
      isUsed = (n) => used.has(n);
    }
    const isReuse = reuse !== undefined && !tried.has(reuse);
    const id = isReuse ? reuse! : pickFreeId((n) => isUsed!(n) || tried.has(n));
    const r = await store.txn({
      compare: [
        isReuse
          ? { key: identityKey(id), target: 'value', equals: master }
          : { key: identityKey(id), target: 'createRevision', equals: 0 },
        noHolder,
      ],
      success: isReuse ? [hold(id)] : [{ type: 'put', key: identityKey(id), value: master }, hold(id)],
    });
    if (r.succeeded) return id;
    // Lost a race for the id, for the label set, or for the master key to the GC: look again.
    tried.add(id);
  }
  throw new StoreError('MBR_IDENTITY_CONFLICT', 'identity allocation: gave up after 64 conflicting attempts');
}

/** Drops `node`'s hold on a label set (its slave key); the GC collects the id once nobody holds it. */
export async function releaseIdentity(store: ClusterStore, labels: readonly string[], node: string): Promise<void> {
  await store.delete(identityValuePrefix([...labels].sort()) + node);
}

/**
 * One of the lowest free ids, at random among the first 128: agents allocating at the same moment
 * from the same view then rarely pick the same one (Cilium's id pool picks at random too), while
 * the numbers stay small.
 */
function pickFreeId(isUsed: (id: number) => boolean): number {
  const free: number[] = [];
  for (let id = FIRST_GLOBAL_IDENTITY; id <= MAX_GLOBAL_IDENTITY && free.length < 128; id++)
    if (!isUsed(id)) free.push(id);
  if (free.length === 0)
    throw new StoreError(
      'MBR_IDENTITY_EXHAUSTED',
      'identity allocation: expected a free identity in 256-65535, got none left',
    );
  return free[Math.floor(Math.random() * free.length)];
}
