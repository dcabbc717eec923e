// Nodes in the cluster store: each agent's node key (under its lease, so a node whose agent
// stops answering disappears from every other node's view once the lease expires) and its pod
// CIDR, allocated through the store so two nodes never get overlapping ones.
//
// Pod CIDRs come from one cluster pool cut into blocks of one size (Cilium's cluster-pool IPAM:
// --cluster-pool-ipv4-cidr, --cluster-pool-ipv4-mask-size). Every block is claimed by a
// transaction that creates its key only if it does not exist, so blocks of one size never
// overlap and two nodes racing for a block get one each.
import { formatIpv4, parseCidr, parseIpv4 } from '../cni/ipv4.js';
import { type ClusterNode, decodeValue, NODES_PREFIX, nodeKey, PODCIDRS_PREFIX } from './cluster-resources.js';
import { type ClusterStore, StoreError } from './cluster-store.js';

export interface PodCidrPool {
  /** e.g. 10.201.0.0/16 */
  readonly cidr: string;
  /** The size of each node's block, e.g. 24. */
  readonly maskSize: number;
}

export const DEFAULT_POD_CIDR_POOL: PodCidrPool = { cidr: '10.201.0.0/16', maskSize: 24 };

/**
 * The node's pod CIDR, claimed in the store: `requested` when given (it must be a block of the
 * pool, and free or already this node's), else the block this node already has, else the
 * lowest free one.
 */
export async function claimPodCIDR(
  store: ClusterStore,
  node: string,
  pool: PodCidrPool,
  requested?: string,
): Promise<string> {
  const blocks = poolBlocks(pool);
  if (requested) {
    const c = parseCidr(requested);
    const text = c ? `${c.network}/${c.prefixLen}` : '';
    if (!c || text !== requested || !blocks.includes(text))
      throw new StoreError(
        'MBR_PODCIDR_CONFLICT',
        `pod CIDR: expected a /${pool.maskSize} block of the cluster pool ${pool.cidr}, got "${requested}"`,
      );
    if (await claim(store, node, text)) return text;
    const owner = (await store.get(PODCIDRS_PREFIX + text))?.value ?? '?';
    throw new StoreError(
      'MBR_PODCIDR_CONFLICT',
      `pod CIDR ${text}: expected it free, got it allocated to node ${owner}`,
    );
  }
  const claims = (await store.list(PODCIDRS_PREFIX)).items;
  const own = claims.find((kv) => kv.value === node);
  if (own) return own.key.slice(PODCIDRS_PREFIX.length);
  const taken = new Set(claims.map((kv) => kv.key.slice(PODCIDRS_PREFIX.length)));
  for (const b of blocks) if (!taken.has(b) && (await claim(store, node, b))) return b;
  throw new StoreError('MBR_PODCIDR_EXHAUSTED', `pod CIDR: no free /${pool.maskSize} block left in ${pool.cidr}`);
}

/** Every node the store holds (each one's key lives as long as its agent's lease). */
export async function listNodes(store: ClusterStore): Promise<ClusterNode[]> {
  const listed = await store.list(NODES_PREFIX);
  return listed.items.flatMap((kv) => {
    const n = decodeValue<ClusterNode>(kv);
    return n ? [n] : [];
  });
}

/** Writes the node's key under its lease. */
export async function registerNode(store: ClusterStore, node: ClusterNode, lease: number): Promise<number> {
  return store.put(nodeKey(node.name), JSON.stringify(node), { lease });
}

async function claim(store: ClusterStore, node: string, block: string): Promise<boolean> {
  const key = PODCIDRS_PREFIX + block;
  const r = await store.txn({
    compare: [{ key, target: 'createRevision', equals: 0 }],
    success: [{ type: 'put', key, value: node }],
  });
  if (r.succeeded) return true;
  return (await store.get(key))?.value === node;
}

function poolBlocks(pool: PodCidrPool): string[] {
  const c = parseCidr(pool.cidr);
  if (!c || pool.maskSize < c.prefixLen || pool.maskSize > 30)
    throw new StoreError(
      'MBR_PODCIDR_CONFLICT',
      `cluster pool: expected a CIDR and a mask size between its prefix and 30, got ${pool.cidr} /${pool.maskSize}`,
    );
  const base = parseIpv4(c.network)!;
  const count = Math.min(2 ** (pool.maskSize - c.prefixLen), 65536);
  const size = 2 ** (32 - pool.maskSize);
  return Array.from({ length: count }, (_, i) => `${formatIpv4(base + i * size)}/${pool.maskSize}`);
}
