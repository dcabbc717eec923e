// One endpoint's policy in the datapath: two LPM tries (slot A and slot B), both in the outer
// map mbr_policy under (endpointId << 1 | slot). Which one the programs read is a flag of the
// endpoint's mbr_endpoints entry (MBR_EP_F_POLICY_SLOT_B). A change is written to the inactive
// trie and published by flipping that flag, one atomic update of the endpoint's entry: a packet
// sees the whole old policy or the whole new one, never a mixture (in-place add/delete orderings
// cannot promise that for every pair of policies; see docs/datapath.md). Flipping a flag costs no
// RCU grace period; the outer map is written only when a slot gets a fresh trie (first use,
// growth, a large shrink, after a restart), and then in one batch for all endpoints of a change.
// The trie left behind is brought up to date at the start of the next change (replaying the
// previous diff), never right after the flip, and at least MIN_REUSE_MS after it, far beyond the
// microseconds a program that read the old flag can still be running.
//
// Capacity: each trie is sized from the state it must hold with 25% + 64 headroom; a change that
// does not fit gets a fresh, larger trie filled with the full state before the flip. A change that
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
  /** The slot to flip the endpoint to. */
  readonly slot: 0 | 1;
  /**
   * mbr_policy entries to write first (key, trie fd): the new slot's when it got a fresh trie, and
   * the other slot's when its trie is not there yet (a new endpoint's), so that later changes of
   * the endpoint find both and only flip.
   */
  readonly outer: ReadonlyArray<{ readonly key: Buffer; readonly fd: number }>;
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

/** A trie is not written again sooner than this after it stopped being the active one. */
export const MIN_REUSE_MS = 2;

/** mbr_policy's key for an endpoint's slot. */
export function policySlotKey(endpointId: number, slot: 0 | 1): Buffer {
  return u32Key(((endpointId << 1) | slot) >>> 0);
}

/**
 * The id of the trie an endpoint's programs read: the slot its mbr_endpoints entry names, or for
 * an endpoint not attached (no entry) the slot A trie, else B. Undefined when it has none.
 */
export function activePolicyMapId(outer: BpfMap, slot: 0 | 1 | undefined, endpointId: number): number | undefined {
  for (const s of slot === undefined ? ([0, 1] as const) : [slot]) {
    const v = outer.lookup(policySlotKey(endpointId, s));
    if (v) return v.readUInt32LE(0);
  }
  return undefined;
}

/**
 * A trie's capacity for `entries`: +25% + 64, and at least 1024. Tries allocate per element
 * (BPF_F_NO_PREALLOC), so capacity costs no memory; it only bounds the trie, and growing past it
 * means a fresh trie and a write to mbr_policy (an RCU grace period). Cilium sizes every
 * endpoint's map at 16384.
 */
export const MIN_POLICY_MAP_CAPACITY = 1024;

export function policyMapCapacityFor(entries: number): number {
  return Math.max(MIN_POLICY_MAP_CAPACITY, Math.ceil(entries * 1.25) + 64);
}

export class EndpointPolicy {
  readonly endpointId: number;
  #outer: BpfMap;
  #dir: string;
  #hardMax: number;
  #maps: [BpfMap | undefined, BpfMap | undefined];
  #active: 0 | 1;
  /** performance.now() of the last flip: the old trie is not reused before MIN_REUSE_MS. */
  #flippedAt = 0;
  /** Whether each slot's trie is in mbr_policy (a slot can hold a trie not written there yet). */
  #inOuter: [boolean, boolean] = [false, false];
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
   * A new endpoint with an empty policy (deny all while enforced) in slot A; its outer entry is
   * written at once unless `publish` is false (then the caller writes it with its first change,
   * see `staged.outer`, or calls `publishActive()`).
   */
  static create(endpointId: number, outer: BpfMap, pinDir: string, hardMax: number, publish = true): EndpointPolicy {
    const ep = new EndpointPolicy(endpointId, outer, pinDir, hardMax, [undefined, undefined], 1, new Map(), 'resync');
    const a = ep.#freshMap(0, 0);
    if (publish) ep.#setOuter(0, a);
    ep.#inOuter = [publish, false];
    ep.#active = 0;
    return ep;
  }

  /** Writes the active trie's outer entry (for an endpoint created unpublished whose change failed). */
  publishActive(): void {
    this.#setOuter(this.#active, this.activeMap);
  }

  /**
   * Re-opens the pinned pair after a restart; `activeSlot` is the slot the endpoint's mbr_endpoints
   * entry names (undefined when it is not attached). The active trie's content is the realized state.
   */
  static reopen(
    endpointId: number,
    outer: BpfMap,
    pinDir: string,
    hardMax: number,
    activeSlot: 0 | 1 | undefined,
  ): EndpointPolicy | undefined {
    const maps: [BpfMap | undefined, BpfMap | undefined] = [undefined, undefined];
    let active: 0 | 1 | undefined;
    for (const slot of [0, 1] as const) {
      const v = outer.lookup(policySlotKey(endpointId, slot));
      if (!v) continue;
      const id = v.readUInt32LE(0);
      const p = pinPath(pinDir, endpointId, slot);
      let m = existsSync(p) ? BpfMap.fromPinned(p) : undefined;
      if (!m || m.id !== id) {
        // The trie in the outer map is not the pinned one (a crash between publish and pin): adopt it.
        m?.close();
        m = BpfMap.fromId(id);
        unlinkIfExists(p);
        m.pin(p);
      }
      maps[slot] = m;
      if (active === undefined || slot === activeSlot) active = slot;
    }
    if (active === undefined) return undefined;
    const ep0 = maps[0] !== undefined;
    const ep1 = maps[1] !== undefined;
    const state = new Map<PolicyKeyId, RealizedEntry>();
    const activeMap = maps[active];
    if (activeMap) {
      for (const [k, val] of activeMap.entries()) {
        const key = decodePolicyKey(k);
        state.set(policyKeyId(key), new RealizedEntry(key, k, val, 0));
      }
    }
    const ep = new EndpointPolicy(endpointId, outer, pinDir, hardMax, maps, active, state, 'resync');
    ep.#inOuter = [ep0, ep1];
    return ep;
  }

  /** The slot the endpoint's programs are to read (MBR_EP_F_POLICY_SLOT_B when 1). */
  get activeSlot(): 0 | 1 {
    return this.#active;
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
  /**
   * Writes a diff to the inactive trie. The caller writes `outer` when set (a fresh trie's outer
   * entry; batched across endpoints: the kernel waits one RCU grace period per outer write), calls
   * `commit`, then flips the endpoint's slot flag to `slot`; or `abandon` if that failed. Validates
   * every key before touching a map; throws MBR_DATAPATH_BAD_INPUT, MBR_DATAPATH_MAP_FULL or
   * MBR_DATAPATH_SYSCALL with nothing published.
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
    // A program that read the old flag just before the last flip may still hold that trie.
    const wait = this.#flippedAt + MIN_REUSE_MS - performance.now();
    if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.ceil(wait));
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
      slot,
      // A fresh trie, or one that never made it into mbr_policy, is written there first.
      outer: ([0, 1] as const).flatMap((s) => {
        const m = s === slot ? target : this.#maps[s];
        return m && !this.#inOuter[s] ? [{ key: policySlotKey(this.endpointId, s), fd: m.fd }] : [];
      }),
      commit: () => {
        this.#inOuter = [this.#maps[0] !== undefined, this.#maps[1] !== undefined];
        this.#active = slot;
        this.#flippedAt = performance.now();
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
    for (const slot of [0, 1] as const) {
      this.#outer.delete(policySlotKey(this.endpointId, slot));
      this.#maps[slot]?.close();
      this.#maps[slot] = undefined;
      unlinkIfExists(pinPath(this.#dir, this.endpointId, slot));
    }
  }

  close(): void {
    for (const m of this.#maps) m?.close();
  }

  #setOuter(slot: 0 | 1, m: BpfMap): void {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(m.fd);
    this.#outer.update(policySlotKey(this.endpointId, slot), v);
    this.#inOuter[slot] = true;
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
    this.#inOuter[slot] = false;
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

/** A u32 map key, host byte order: mbr_policy's slot keys, mbr_policy_slot's endpoint IDs. */
export function u32Key(n: number): Buffer {
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
