// Conntrack reads and garbage collection over mbr_ct4. LRU eviction covers pressure; the GC covers
// time: entries whose lifetime (CLOCK_MONOTONIC seconds, as bpf_ktime_get_ns / 1e9) has passed.
import type { BpfMap } from './bpf-map.js';
import { type CtEntry, type CtKey, decodeCt, decodeCtEntry } from './maps/ct-map.js';

/** Now on the clock conntrack lifetimes use: CLOCK_MONOTONIC, whole seconds. */
export function monotonicSeconds(): number {
  return Math.floor(Number(process.hrtime.bigint() / 1_000_000_000n));
}

export function readCtEntries(ct: BpfMap): Array<[CtKey, CtEntry]> {
  const out: Array<[CtKey, CtEntry]> = [];
  for (const [k, v] of ct.entries()) {
    const { key, entry } = decodeCt(k, v);
    out.push([key, entry]);
  }
  return out;
}

/** Deletes the entries whose lifetime passed; returns how many went. */
export function collectCtGarbage(ct: BpfMap, nowMonoSeconds: number): number {
  const dead: Buffer[] = [];
  for (const [k, v] of ct.entries()) if (decodeCtEntry(v).lifetime <= nowMonoSeconds) dead.push(k);
  for (const k of dead) ct.delete(k);
  return dead.length;
}
