// The contract between the policy engine (src/policy) and the datapath (src/datapath, bpf/):
// per-endpoint, per-direction policy map state, keyed like the BPF policy map
// (struct policy_key in bpf/include/membrane/maps.h, mirrored by the datapath's policy-map codec,
// maps/policy-map.ts under src/datapath).
//
// Lookup semantics (the engine's pure lookup and the BPF program implement the same):
//   For a packet with remote identity ID, direction D, protocol P and destination port N:
//   1. hitId  = the longest-prefix entry among keys with identity == ID matching (D, P, N)
//      hitAny = the longest-prefix entry among keys with identity == 0  matching (D, P, N)
//      A key matches when direction is equal, and protocol is 0 (any; then the port is any too)
//      or equal, and the top portPrefixLen bits of port equal those of N.
//   2. If either hit is a deny, the verdict is deny (DROP_POLICY_DENY, 181); the ID hit is
//      reported when both are denies.
//   3. If neither hits, the verdict is "no allow" (DROP_POLICY, 133).
//   4. Otherwise the hit with the longer L4 prefix (protocol bits + port bits) wins; a tie goes to
//      the ID hit. If the winner has no authType and the other hit has one, it is inherited.
//   5. The winner's proxyPort > 0 means redirect to the L7 proxy on that port.
//   Match type (Cilium's numbering): ID+proto+port L3-L4 (2), ANY+proto+port L4-Only (3),
//   ID+proto L3-Proto (5), ANY+proto Proto-Only (6), ID only L3-Only (1), ANY/ANY/ANY all (4).
//   A port prefix shorter than 16 but longer than 0 (a range) counts as "+port".
//
// The engine guarantees deny-wins by construction as Cilium does, and the lookup above
// enforces it again, so a stale allow can never beat a deny.

export type TrafficDirection = 'ingress' | 'egress';

export const PROTO_ANY = 0;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
export const PROTO_SCTP = 132;

/** Cilium's policy match types, as carried in policy-verdict events and flows. */
export const MatchType = {
  none: 0,
  l3Only: 1,
  l3l4: 2,
  l4Only: 3,
  all: 4,
  l3Proto: 5,
  protoOnly: 6,
} as const;

export interface PolicyKey {
  /** Remote security identity; 0 = any peer. */
  readonly identity: number;
  readonly direction: TrafficDirection;
  /** IP protocol number; 0 = any protocol (and then port is 0 with portPrefixLen 0). */
  readonly protocol: number;
  /** Destination port in host byte order; with portPrefixLen 0 it is 0 (any port). */
  readonly port: number;
  /** 0..16: how many leading bits of port are significant; 16 = one exact port. */
  readonly portPrefixLen: number;
}
// For ICMP (1) and ICMPv6 (58) keys, port holds the ICMP type (0..255) with portPrefixLen 16.

/** A policy that contributed to an entry, for flow attribution (allowed_by / denied_by). */
export interface PolicyRef {
  readonly kind: 'NetworkPolicy' | 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy';
  /** '' for cluster-wide policies. */
  readonly namespace: string;
  readonly name: string;
}

export interface PolicyEntry {
  readonly isDeny: boolean;
  /** L7 proxy port to redirect to; 0 = no redirect. */
  readonly proxyPort: number;
  /** Cilium AuthType: 0 none (disabled), 1 spire, 2 always-fail. */
  readonly authType: number;
  readonly derivedFrom: readonly PolicyRef[];
}

/** One endpoint's change set: apply deletes and adds together, atomically for the endpoint. */
export interface MapStateDiff {
  readonly endpointId: number;
  readonly adds: ReadonlyArray<readonly [PolicyKey, PolicyEntry]>;
  readonly deletes: readonly PolicyKey[];
}
