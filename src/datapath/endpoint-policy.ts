// One endpoint's policy in the datapath: two LPM tries (A and B) of which mbr_policy[endpointId]
// points at one, the active one. A change is written to the inactive trie and then published by
// swapping the outer map's entry, one atomic pointer store: a packet sees the whole old policy or
// the whole new one, never a mixture (in-place add/delete orderings cannot promise that for every
// pair of policies; see docs/datapath.md). The trie left behind is brought up to date at the start
// of the next change (replaying the previous diff), not right after the swap, so a packet that
// looked it up just before the swap never sees it change under it.
//
// Capacity: each trie is sized from the state it must hold with 25% + 64 headroom; a change that
// does not fit gets a fresh, larger trie filled with the full state before the swap. A change that
// cannot be written (map full past the hard limit, or a kernel error) leaves the active trie, the
// realized state and the revision untouched, and throws.
import { existsSync, unlinkSync } from 'node:fs';
import type { MapStateDiff, PolicyKey } from '../policy/map-state-types.js';
import { BPF_F_NO_PREALLOC, BPF_MAP_TYPE, BpfMap } from './bpf-map.js';
import { DatapathError, isMapFullErrno } from './datapath-error.js';
import {
  decodePolicyEntry,
  decodePolicyKey,
  encodePolicyEntry,
  encodePolicyKey,
  POLICY_ENTRY,
  POLICY_KEY,
  type PolicyKeyId,
  type PolicyMapValue,
  policyKeyId,
  validatePolicyKey,
} from './maps/policy-map.js';

/** A change written to an endpoint's inactive trie, not yet published (see EndpointPolicy.stage). */
export interface StagedPolicy {
  readonly endpointId: number;
  /** The trie to publish in mbr_policy[endpointId]. */
  readonly map: BpfMap;
  commit(): void;
  abandon(): void;
}

/**
 * One entry as written: its key, and its encoded key and value as slices of the buffers its change
 * was encoded into (one pair of buffers per change, not two small buffers per entry: a 100k-entry
 * change stays a handful of allocations). The decoded value is computed when asked for.
 */
export class RealizedEntry {
  readonly key: PolicyKey;
  readonly #keys: Buffer;
  readonly #values: Buffer;
  readonly #index: number;

  constructor(key: PolicyKey, keys: Buffer, values: Buffer, index: number) {
    this.key = key;
    this.#keys = keys;
    this.#values = values;
    this.#index = index;
  }

  get value(): PolicyMapValue {
    return decodePolicyEntry(this.#values, this.#index * POLICY_ENTRY.size);
  }

  get keyBytes(): Buffer {
    return this.#keys.subarray(this.#index * POLICY_KEY.size, (this.#index + 1) * POLICY_KEY.size);
  }

  get valueBytes(): Buffer {
    return this.#values.subarray(this.#index * POLICY_ENTRY.size, (this.#index + 1) * POLICY_ENTRY.size);
  }

  /** Copies the encoded key and value to slot i of a batch. */
  copyTo(keys: Buffer, values: Buffer, i: number): void {
    this.#keys.copy(keys, i * POLICY_KEY.size, this.#index * POLICY_KEY.size, (this.#index + 1) * POLICY_KEY.size);
    this.#values.copy(
      values,
      i * POLICY_ENTRY.size,
      this.#index * POLICY_ENTRY.size,
      (this.#index + 1) * POLICY_ENTRY.size,
    );
  }
}

/** A change as the inactive trie must replay it: deletes, then one batch of upserts. */
interface Change {
  readonly deletes: readonly Buffer[];
  readonly keys: Buffer;
  readonly values: Buffer;
  readonly count: number;
}

export function policyMapCapacityFor(entries: number): number {
  return Math.ceil(entries * 1.25) + 64;
}

export class EndpointPolicy {
  readonly endpointId: number;
  #outer: BpfMap;
  #dir: string;
  #hardMax: number;
  #maps: [BpfMap | undefined, BpfMap | undefined];
  #active: 0 | 1;
  #state: Map<PolicyKeyId, RealizedEntry>;
  /** What the inactive trie lacks: the previous change, or 'resync' when its content is unknown. */
  #pending: Change | 'resync';

  private constructor(
    endpointId: number,
    outer: BpfMap,
    pinDir: string,
    hardMax: number,
    maps: [BpfMap | undefined, BpfMap | undefined],
    active: 0 | 1,
    state: Map<PolicyKeyId, RealizedEntry>,
    pending: Change | 'resync',
  ) {
    this.endpointId = endpointId;
    this.#outer = outer;
    this.#dir = pinDir;
    this.#hardMax = hardMax;
    this.#maps = maps;
    this.#active = active;
    this.#state = state;
    this.#pending = pending;
  }

  /**
   * A new endpoint with an empty policy (deny all while enforced), published at once unless
   * `publish` is false: then the caller publishes its first staged change, or `publishEmpty()`.
   */
  static create(endpointId: number, outer: BpfMap, pinDir: string, hardMax: number, publish = true): EndpointPolicy {
    const ep = new EndpointPolicy(endpointId, outer, pinDir, hardMax, [undefined, undefined], 1, new Map(), 'resync');
    const a = ep.#freshMap(0, 0);
    if (publish) ep.#publish(a);
    ep.#maps[0] = a;
    ep.#active = 0;
    return ep;
  }

  /** Publishes the active trie (for an endpoint created unpublished whose first change failed). */
  publishActive(): void {
    this.#publish(this.activeMap);
  }

  /** Re-opens the pinned pair after a restart; the active trie's content is the realized state. */
  static reopen(endpointId: number, outer: BpfMap, pinDir: string, hardMax: number): EndpointPolicy | undefined {
    const key = u32(endpointId);
    const v = outer.lookup(key);
    if (!v) return undefined;
    const activeId = v.readUInt32LE(0);
    const maps: [BpfMap | undefined, BpfMap | undefined] = [undefined, undefined];
    let active: 0 | 1 | undefined;
    for (const slot of [0, 1] as const) {
      const p = pinPath(pinDir, endpointId, slot);
      if (!existsSync(p)) continue;
      const m = BpfMap.fromPinned(p);
      maps[slot] = m;
      if (m.id === activeId) active = slot;
    }
    if (active === undefined) {
      // The published trie is not pinned (a crash between publish and pin): adopt it by id.
      const m = BpfMap.fromId(activeId);
      maps[0]?.close();
      maps[0] = m;
      active = 0;
      unlinkIfExists(pinPath(pinDir, endpointId, 0));
      m.pin(pinPath(pinDir, endpointId, 0));
    }
    const state = new Map<PolicyKeyId, RealizedEntry>();
    const activeMap = maps[active];
    if (activeMap) {
      for (const [k, val] of activeMap.entries()) {
        const key = decodePolicyKey(k);
        state.set(policyKeyId(key), new RealizedEntry(key, k, val, 0));
      }
    }
    return new EndpointPolicy(endpointId, outer, pinDir, hardMax, maps, active, state, 'resync');
  }

  get size(): number {
    return this.#state.size;
  }

  get capacity(): number {
    return this.#maps[this.#active]?.maxEntries ?? 0;
  }

  get activeMap(): BpfMap {
    const m = this.#maps[this.#active];
    if (!m) throw new DatapathError('MBR_DATAPATH_CLOSED', `endpoint ${this.endpointId}: no active policy map`);
    return m;
  }

  entries(): IterableIterator<RealizedEntry> {
    return this.#state.values();
  }

  /**
   * Applies one diff atomically. Validates every key before touching a map; throws
   * MBR_DATAPATH_BAD_INPUT, MBR_DATAPATH_MAP_FULL or MBR_DATAPATH_SYSCALL with nothing published.
   */
  apply(diff: MapStateDiff): void {
    const staged = this.stage(diff);
    try {
      this.#publish(staged.map);
    } catch (err) {
      staged.abandon();
      throw err;
    }
    staged.commit();
  }

  /**
   * Writes a diff to the inactive trie without publishing it: the caller publishes `map` (alone,
   * or in one batch with other endpoints' tries, so the kernel waits for in-flight programs once
   * for all of them), then calls `commit`, or `abandon` if publishing failed. Same checks and
   * errors as `apply`.
   */
  stage(diff: MapStateDiff): StagedPolicy {
    for (let i = 0; i < diff.adds.length; i++) withPath('adds', i, (diff.adds[i] as (typeof diff.adds)[number])[0]);
    for (let i = 0; i < diff.deletes.length; i++) withPath('deletes', i, diff.deletes[i] as PolicyKey);

    // The change as a delta over the current state (no copy of the state: a one-entry change to a
    // 100k-entry endpoint stays cheap). Encoded into two contiguous buffers, which are also the
    // batch the inactive trie replays later.
    const upserted = new Map<PolicyKeyId, RealizedEntry>();
    const keyBuf = Buffer.allocUnsafe(diff.adds.length * POLICY_KEY.size);
    const valBuf = Buffer.allocUnsafe(diff.adds.length * POLICY_ENTRY.size);
    let n = 0;
    // Denies before allows (a write that fails part-way leaves the unpublished trie deny-biased).
    for (const pass of [true, false])
      for (const [k, e] of diff.adds) {
        if (e.isDeny !== pass) continue;
        encodePolicyKey(k, keyBuf, n * POLICY_KEY.size);
        encodePolicyEntry(e, k, valBuf, n * POLICY_ENTRY.size);
        upserted.set(policyKeyId(k), new RealizedEntry(k, keyBuf, valBuf, n));
        n++;
      }
    const deleted = new Map<PolicyKeyId, RealizedEntry>();
    for (const k of diff.deletes) {
      const id = policyKeyId(k);
      const had = this.#state.get(id);
      if (had && !upserted.has(id)) deleted.set(id, had);
    }
    let nextSize = this.#state.size - deleted.size;
    for (const id of upserted.keys()) if (!this.#state.has(id)) nextSize++;
    // Nobody reads the inactive trie, so deletes go first: it never holds more than it must. A key
    // added twice in one diff is written twice in order; the last one stands, as in `upserted`.
    const change: Change = {
      deletes: [...deleted.values()].map((d) => d.keyBytes),
      keys: keyBuf,
      values: valBuf,
      count: n,
    };
    if (nextSize > this.#hardMax)
      throw new DatapathError(
        'MBR_DATAPATH_MAP_FULL',
        `endpoint ${this.endpointId}: policy needs ${nextSize} entries, more than the limit of ${this.#hardMax} (policyMapMaxEntries); the previous policy stays in force`,
      );

    const slot: 0 | 1 = this.#active === 0 ? 1 : 0;
    let target = this.#maps[slot];
    try {
      // Replaying the previous change brings the trie to the current state first: it must hold both.
      // A fresh trie too when the change deletes more than will remain (one batch of what stays
      // beats one syscall per delete, and a trie that shrank by 100k entries gives its memory back).
      if (
        !target ||
        this.#pending === 'resync' ||
        target.maxEntries < Math.max(nextSize, this.#state.size) ||
        change.deletes.length + this.#pending.deletes.length > nextSize
      ) {
        target = this.#freshMap(slot, nextSize);
        // A first load is the change itself: its buffers are the batch, no copy.
        if (this.#state.size === 0) writeChange(target, { deletes: [], keys: keyBuf, values: valBuf, count: n });
        else writeAll(target, this.#nextEntries(upserted, deleted), nextSize);
      } else {
        writeChange(target, this.#pending);
        writeChange(target, change);
      }
    } catch (err) {
      this.#pending = 'resync';
      if (isMapFullErrno(err))
        throw new DatapathError(
          'MBR_DATAPATH_MAP_FULL',
          `endpoint ${this.endpointId}: policy map full writing ${nextSize} entries; the previous policy stays in force`,
          { errno: err.errno, cause: err },
        );
      throw err;
    }
    return {
      endpointId: this.endpointId,
      map: target,
      commit: () => {
        this.#active = slot;
        // A first load takes the change's Map as the state rather than copying 100k entries.
        if (this.#state.size === 0) this.#state = upserted;
        else {
          for (const id of deleted.keys()) this.#state.delete(id);
          for (const [id, u] of upserted) this.#state.set(id, u);
        }
        this.#pending = change;
      },
      // The inactive trie holds the change but was never published: rebuild it next time.
      abandon: () => {
        this.#pending = 'resync';
      },
    };
  }

  *#nextEntries(
    upserted: Map<PolicyKeyId, RealizedEntry>,
    deleted: Map<PolicyKeyId, RealizedEntry>,
  ): Generator<RealizedEntry> {
    for (const [id, e] of this.#state) if (!deleted.has(id) && !upserted.has(id)) yield e;
    yield* upserted.values();
  }

  /** Removes both tries' pins and the outer entry; fds closed. */
  destroy(): void {
    this.#outer.delete(u32(this.endpointId));
    for (const slot of [0, 1] as const) {
      this.#maps[slot]?.close();
      this.#maps[slot] = undefined;
      unlinkIfExists(pinPath(this.#dir, this.endpointId, slot));
    }
  }

  close(): void {
    for (const m of this.#maps) m?.close();
  }

  #publish(m: BpfMap): void {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(m.fd);
    this.#outer.update(u32(this.endpointId), v);
  }

  #freshMap(slot: 0 | 1, entries: number): BpfMap {
    const m = BpfMap.create({
      name: `mbr_pol_${this.endpointId}`.slice(0, 15),
      type: BPF_MAP_TYPE.lpmTrie,
      keySize: POLICY_KEY.size,
      valueSize: POLICY_ENTRY.size,
      maxEntries: Math.min(policyMapCapacityFor(entries), Math.max(this.#hardMax, 64)),
      flags: BPF_F_NO_PREALLOC,
    });
    this.#maps[slot]?.close();
    this.#maps[slot] = m;
    const p = pinPath(this.#dir, this.endpointId, slot);
    unlinkIfExists(p);
    m.pin(p);
    return m;
  }
}

export function pinPath(dir: string, endpointId: number, slot: 0 | 1): string {
  return `${dir}/${endpointId}-${slot === 0 ? 'a' : 'b'}`;
}

function writeAll(m: BpfMap, entries: Iterable<RealizedEntry>, n: number): void {
  if (n === 0) return;
  const keys = Buffer.allocUnsafe(n * POLICY_KEY.size);
  const values = Buffer.allocUnsafe(n * POLICY_ENTRY.size);
  let i = 0;
  for (const e of entries) e.copyTo(keys, values, i++);
  m.updateBatch(keys, values, n);
}

function writeChange(m: BpfMap, c: Change | 'resync'): void {
  if (c === 'resync') return;
  for (const k of c.deletes) m.delete(k);
  if (c.count > 0) m.updateBatch(c.keys, c.values, c.count);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function unlinkIfExists(p: string): void {
  try {
    unlinkSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Validates diff.<list>[i]'s key; the error names that path. */
function withPath(list: 'adds' | 'deletes', i: number, k: PolicyKey): void {
  validatePolicyKey(k, `policy diff ${list}[${i}].key`);
}
