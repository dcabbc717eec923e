// Reserved security identities: fixed numbers every node agrees on without a store.
import { type Label, type LabelSet, makeLabelSet, SOURCE_RESERVED } from './labels.js';

export const IDENTITY_UNKNOWN = 0;
export const IDENTITY_HOST = 1;
export const IDENTITY_WORLD = 2;
export const IDENTITY_UNMANAGED = 3;
export const IDENTITY_HEALTH = 4;
export const IDENTITY_INIT = 5;
export const IDENTITY_REMOTE_NODE = 6;
export const IDENTITY_KUBE_APISERVER = 7;
export const IDENTITY_INGRESS = 8;
export const IDENTITY_WORLD_IPV4 = 9;
export const IDENTITY_WORLD_IPV6 = 10;

/** First identity the global allocator hands out (cluster 0). */
export const MIN_GLOBAL_IDENTITY = 256;
export const MAX_GLOBAL_IDENTITY = 65535;
/** Node-local identities (CIDR, FQDN IPs) carry scope 0x01 in the top 8 bits. */
export const LOCAL_IDENTITY_SCOPE = 1 << 24;

export const RESERVED_IDENTITIES: ReadonlyArray<{ readonly id: number; readonly name: string }> = [
  { id: IDENTITY_HOST, name: 'host' },
  { id: IDENTITY_WORLD, name: 'world' },
  { id: IDENTITY_UNMANAGED, name: 'unmanaged' },
  { id: IDENTITY_HEALTH, name: 'health' },
  { id: IDENTITY_INIT, name: 'init' },
  { id: IDENTITY_REMOTE_NODE, name: 'remote-node' },
  { id: IDENTITY_KUBE_APISERVER, name: 'kube-apiserver' },
  { id: IDENTITY_INGRESS, name: 'ingress' },
  { id: IDENTITY_WORLD_IPV4, name: 'world-ipv4' },
  { id: IDENTITY_WORLD_IPV6, name: 'world-ipv6' },
];

export function reservedIdentityLabels(id: number): LabelSet | undefined {
  const r = RESERVED_IDENTITIES.find((x) => x.id === id);
  if (!r) return undefined;
  const labels: Label[] = [{ source: SOURCE_RESERVED, key: r.name, value: '' }];
  // The split world identities are still "world" to a selector on reserved:world.
  if (id === IDENTITY_WORLD_IPV4 || id === IDENTITY_WORLD_IPV6)
    labels.push({ source: SOURCE_RESERVED, key: 'world', value: '' });
  return makeLabelSet(labels);
}

export function isLocalIdentity(id: number): boolean {
  return id >>> 24 === 1;
}
