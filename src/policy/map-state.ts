// Per-endpoint policy map state: keys, port-range splitting, and the pure lookup that the BPF
// datapath mirrors (semantics written in map-state-types.ts). A MapState is keyed by
// mapStateKey(); the engine keeps one per endpoint and hands out diffs against it.
import { MatchType, type PolicyEntry, type PolicyKey, PROTO_ANY, type TrafficDirection } from './map-state-types.js';

/** The L4 part of a key: protocol (0 = any) and a port prefix. */
export interface L4Prefix {
  readonly protocol: number;
  /** Port with the bits below the prefix cleared. */
  readonly port: number;
  /** 0..16; 0 whenever protocol is 0. */
  readonly portPrefixLen: number;
}

export type MapState = ReadonlyMap<string, readonly [PolicyKey, PolicyEntry]>;

export interface LookupResult {
  readonly verdict: 'allow' | 'deny' | 'no-match';
  /** The entry that decided (the deny, or the winning allow); undefined for no-match. */
  readonly key?: PolicyKey;
  readonly entry?: PolicyEntry;
  /** Auth type after inheritance from the other hit (step 4). */
  readonly authType: number;
  /** Cilium match type of the deciding entry (MatchType.none for no-match). */
  readonly matchType: number;
}

export const L4_ANY: L4Prefix = { protocol: PROTO_ANY, port: 0, portPrefixLen: 0 };

export function mapStateKey(k: PolicyKey): string {
  return `${k.direction === 'ingress' ? 'i' : 'e'}|${k.identity}|${k.protocol}|${k.port}|${k.portPrefixLen}`;
}

export function l4Key(l4: L4Prefix): string {
  return `${l4.protocol}/${l4.port}/${l4.portPrefixLen}`;
}

/** Bits of L4 specificity: protocol (8) plus port prefix length. */
export function l4Specificity(l4: L4Prefix): number {
  return l4.protocol === PROTO_ANY ? 0 : 8 + l4.portPrefixLen;
}

/** True when every (protocol, port) that b matches, a matches too. */
export function l4Covers(a: L4Prefix, b: L4Prefix): boolean {
  if (a.protocol === PROTO_ANY) return true;
  if (a.protocol !== b.protocol || a.portPrefixLen > b.portPrefixLen) return false;
  const shift = 16 - a.portPrefixLen;
  return a.portPrefixLen === 0 || b.port >>> shift === a.port >>> shift;
}

/**
 * Splits the port range [start, end] into the fewest power-of-two aligned prefixes.
 * start 0 means every port (one prefix of length 0), as in policy.
 */
export function portRangePrefixes(start: number, end: number): Array<{ port: number; portPrefixLen: number }> {
  if (start === 0) return [{ port: 0, portPrefixLen: 0 }];
  const out: Array<{ port: number; portPrefixLen: number }> = [];
  let p = start;
  while (p <= end) {
    let size = 1;
    let len = 16;
    // Grow the block while it stays aligned and inside the range.
    while (len > 0 && p % (size * 2) === 0 && p + size * 2 - 1 <= end) {
      size *= 2;
      len--;
    }
    out.push({ port: p, portPrefixLen: len });
    p += size;
  }
  return out;
}

/**
 * The lookup of map-state-types.ts: the longest-prefix hit among keys with the remote identity
 * and among identity-0 keys; a deny in either wins; else the longer L4 prefix, ties to the
 * identity hit; auth inherited from the other hit when the winner has none.
 */
export function lookupMapState(
  state: MapState,
  identity: number,
  direction: TrafficDirection,
  protocol: number,
  port: number,
): LookupResult {
  const hitId = identity === 0 ? undefined : longestHit(state, identity, direction, protocol, port);
  const hitAny = longestHit(state, 0, direction, protocol, port);
  if (!hitId && !hitAny) return { verdict: 'no-match', authType: 0, matchType: MatchType.none };
  const denyHit = hitId?.[1].isDeny ? hitId : hitAny?.[1].isDeny ? hitAny : undefined;
  if (denyHit) return result('deny', denyHit, 0);
  let winner: readonly [PolicyKey, PolicyEntry];
  let other: readonly [PolicyKey, PolicyEntry] | undefined;
  if (!hitId) winner = hitAny!;
  else if (!hitAny) winner = hitId;
  else if (l4Specificity(hitAny[0]) > l4Specificity(hitId[0])) {
    winner = hitAny;
    other = hitId;
  } else {
    winner = hitId;
    other = hitAny;
  }
  const auth = winner[1].authType === 0 && other ? other[1].authType : winner[1].authType;
  return result('allow', winner, auth);
}

export function matchTypeOf(k: PolicyKey): number {
  const hasId = k.identity !== 0;
  if (k.protocol === PROTO_ANY) return hasId ? MatchType.l3Only : MatchType.all;
  if (k.portPrefixLen === 0) return hasId ? MatchType.l3Proto : MatchType.protoOnly;
  return hasId ? MatchType.l3l4 : MatchType.l4Only;
}

// Private helpers.

function longestHit(
  state: MapState,
  identity: number,
  direction: TrafficDirection,
  protocol: number,
  port: number,
): readonly [PolicyKey, PolicyEntry] | undefined {
  const d = direction === 'ingress' ? 'i' : 'e';
  if (protocol !== PROTO_ANY)
    for (let len = 16; len >= 0; len--) {
      const masked = len === 0 ? 0 : (port >>> (16 - len)) << (16 - len);
      const hit = state.get(`${d}|${identity}|${protocol}|${masked}|${len}`);
      if (hit) return hit;
    }
  return state.get(`${d}|${identity}|0|0|0`);
}

function result(verdict: 'allow' | 'deny', hit: readonly [PolicyKey, PolicyEntry], authType: number): LookupResult {
  return { verdict, key: hit[0], entry: hit[1], authType, matchType: matchTypeOf(hit[0]) };
}
