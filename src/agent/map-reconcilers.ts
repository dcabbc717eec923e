// The agent's two BPF map reconcilers, as pure functions: what to write so that a map holds
// what the engine wants. In steady state the engine's own diffs are written as they are; these
// comparisons run only when the agent cannot know what the map holds (start, after a failed
// write, after a compacted watch), against a dump of the pinned map.
import type { IpcacheEntry as EngineIpcacheEntry, IpcacheDiff } from '../identity/ipcache.js';
import { mapStateKey } from '../policy/map-state.js';
import type { MapStateDiff, PolicyEntry, PolicyKey } from '../policy/map-state-types.js';
import type { IpcacheChange, IpcacheEntry, RealizedPolicyEntry } from './subsystem-ports.js';

/** The engine's ipcache changes the datapath can hold (IPv4 only for now). */
export function ipv4Change(d: IpcacheDiff): IpcacheChange {
  return {
    upserts: d.upserts.filter(isIpv4).map((e) => ({ prefix: e.prefix, identity: e.identity })),
    deletes: d.deletes.filter((p) => !p.includes(':')),
  };
}

/** What to write so the realized ipcache equals the engine's. */
export function diffIpcache(realized: readonly IpcacheEntry[], desired: readonly EngineIpcacheEntry[]): IpcacheChange {
  const want = new Map(desired.filter(isIpv4).map((e) => [e.prefix, e.identity]));
  const have = new Map(realized.map((e) => [e.prefix, e.identity]));
  const upserts: IpcacheEntry[] = [];
  for (const [prefix, identity] of want) if (have.get(prefix) !== identity) upserts.push({ prefix, identity });
  const deletes = [...have.keys()].filter((p) => !want.has(p));
  return { upserts, deletes };
}

/** What to write so an endpoint's realized policy map equals the engine's; undefined if it does. */
export function diffPolicy(
  endpointId: number,
  realized: readonly RealizedPolicyEntry[],
  desired: Iterable<readonly [PolicyKey, PolicyEntry]>,
): MapStateDiff | undefined {
  const have = new Map(realized.map((kv) => [mapStateKey(kv[0]), kv[1]]));
  const adds: Array<readonly [PolicyKey, PolicyEntry]> = [];
  const wanted = new Set<string>();
  for (const kv of desired) {
    const k = mapStateKey(kv[0]);
    wanted.add(k);
    const old = have.get(k);
    if (!old || !sameEnforcement(old, kv[1])) adds.push(kv);
  }
  const deletes = realized.filter((kv) => !wanted.has(mapStateKey(kv[0]))).map((kv) => kv[0]);
  return adds.length > 0 || deletes.length > 0 ? { endpointId, adds, deletes } : undefined;
}

/**
 * One diff per endpoint from diffs applied in order (one store write can change several
 * policies, each answered with its own diffs): the last word on a key wins; a delete of a key the
 * map does not hold is harmless.
 */
export function mergeDiffs(diffs: readonly MapStateDiff[]): MapStateDiff[] {
  const count = new Map<number, number>();
  for (const d of diffs) count.set(d.endpointId, (count.get(d.endpointId) ?? 0) + 1);
  const merged = new Map<number, Map<string, Write>>();
  const out: MapStateDiff[] = [];
  for (const d of diffs) {
    if (count.get(d.endpointId) === 1) {
      out.push(d);
      continue;
    }
    let m = merged.get(d.endpointId);
    if (!m) {
      m = new Map();
      merged.set(d.endpointId, m);
    }
    for (const k of d.deletes) m.set(mapStateKey(k), { key: k });
    for (const [k, e] of d.adds) m.set(mapStateKey(k), { key: k, entry: e });
  }
  for (const [endpointId, m] of merged) {
    const adds: Array<readonly [PolicyKey, PolicyEntry]> = [];
    const deletes: PolicyKey[] = [];
    for (const w of m.values()) {
      if (w.entry) adds.push([w.key, w.entry]);
      else deletes.push(w.key);
    }
    out.push({ endpointId, adds, deletes });
  }
  return out;
}

interface Write {
  readonly key: PolicyKey;
  /** undefined: a delete. */
  readonly entry?: PolicyEntry;
}

/** Whether two entries make the datapath do the same (attribution is not in the BPF map). */
function sameEnforcement(a: Omit<PolicyEntry, 'derivedFrom'>, b: PolicyEntry): boolean {
  return a.isDeny === b.isDeny && a.proxyPort === b.proxyPort && a.authType === b.authType;
}

function isIpv4(e: { prefix: string }): boolean {
  return !e.prefix.includes(':');
}
