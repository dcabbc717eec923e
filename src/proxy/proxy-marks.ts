// The marks and policy routing the datapath's L7 redirect and the proxy agree on (bpf/lib/proxy.h).
// Packets handed to the proxy carry MARK_TO_PROXY (| proxy port << 16); the proxy's upstream
// sockets carry a from-proxy magic and the identity of the connection's source (SO_MARK), so the
// datapath neither redirects them again nor applies the ingress verdict the proxy already applied.

export const MARK_MAGIC_MASK = 0x0f00;
export const MARK_TO_PROXY = 0x0200;
export const MARK_FROM_INGRESS_PROXY = 0x0a00;
export const MARK_FROM_EGRESS_PROXY = 0x0b00;

/** Policy routing of to-proxy packets: `ip rule fwmark 0x200/0xf00 lookup 2004 pref 9`. */
export const PROXY_ROUTE_TABLE = 2004;
export const PROXY_RULE_PREF = 9;

/** The largest identity a mark carries (25 bits: global and local identities). */
const MAX_MARK_IDENTITY = 0x1ffffff;

/**
 * SO_MARK of an upstream socket: identity bits 0-15 in the high half, bits 16-23 in the low byte,
 * bit 24 (local identities, 1 << 24) at 0x1000. Mirrors mark_identity() in bpf/lib/proxy.h.
 */
export function fromProxyMark(direction: 'ingress' | 'egress', identity: number): number {
  if (!Number.isInteger(identity) || identity < 0 || identity > MAX_MARK_IDENTITY)
    throw new RangeError(`proxy mark: identity must be 0..${MAX_MARK_IDENTITY}, got ${identity}`);
  const magic = direction === 'ingress' ? MARK_FROM_INGRESS_PROXY : MARK_FROM_EGRESS_PROXY;
  return (((identity & 0xffff) << 16) | ((identity >>> 16) & 0xff) | ((identity >>> 12) & 0x1000) | magic) >>> 0;
}

/** The identity a from-proxy mark carries (the inverse of fromProxyMark). */
export function markIdentity(mark: number): number {
  return ((mark >>> 16) | ((mark & 0xff) << 16) | ((mark & 0x1000) << 12)) >>> 0;
}
