// mbr_ipcache as the datapath realized it, with the set of keys present so a batch knows what is
// new and can be refused whole when it does not fit. A /32 of an attached endpoint carries the
// local-endpoint flag and its host-side veth, whoever writes it (attach or the agent).
import type { BpfMap } from './bpf-map.js';
import { DatapathError, isMapFullErrno } from './datapath-error.js';
import type { DatapathHealth } from './datapath-status.js';
import { ipv4ToNetworkU32 } from './layout.js';
import {
  decodeIpcacheFlags,
  decodeIpcacheIfindex,
  decodeIpcacheKey,
  decodeIpcacheValue,
  encodeIpcacheKey,
  encodeIpcacheKeyAt,
  encodeIpcacheValue,
  formatIpv4Prefix,
  IPCACHE_VALUE,
  type IpcacheEntry,
  IpcacheFlags,
  type IpcachePrefix,
  parseIpv4Prefix,
} from './maps/ipcache-map.js';

/** Attached endpoints' host-side veth ifindexes by their address (network-order u32). */
export type LocalIps = () => ReadonlyMap<number, number>;

export class RealizedIpcache {
  readonly #map: () => BpfMap;
  readonly #localIps: LocalIps;
  readonly #health: DatapathHealth;
  /** Keys present in mbr_ipcache (addr * 64 + prefixLen). */
  #keys = new Set<number>();

  /** map is asked for on every use: it throws once the datapath is closed. */
  constructor(map: () => BpfMap, localIps: LocalIps, health: DatapathHealth) {
    this.#map = map;
    this.#localIps = localIps;
    this.#health = health;
    for (const k of map().keys()) this.#keys.add(keyNumber(decodeIpcacheKey(k)));
  }

  get size(): number {
    return this.#keys.size;
  }

  upsert(prefix: string, identity: number): void {
    const p = parseIpv4Prefix(prefix);
    try {
      const ifindex = p.prefixLen === 32 ? (this.#localIps().get(ipv4ToNetworkU32(p.addr)) ?? 0) : 0;
      this.#map().update(
        encodeIpcacheKey(p),
        encodeIpcacheValue(identity, undefined, 0, ifindex ? IpcacheFlags.localEndpoint : 0, ifindex),
      );
    } catch (err) {
      throw this.#capacityError(`ipcache upsert ${prefix}`, err);
    }
    this.#keys.add(keyNumber(p));
  }

  delete(prefix: string): boolean {
    const p = parseIpv4Prefix(prefix);
    this.#keys.delete(keyNumber(p));
    return this.#map().delete(encodeIpcacheKey(p));
  }

  /** Deletes many prefixes with batch syscalls; prefixes not present are skipped. Returns how many went. */
  deleteBatch(prefixes: readonly IpcachePrefix[]): number {
    const ids = new Map<number, IpcachePrefix>();
    for (const p of prefixes) {
      const id = keyNumber(p);
      if (this.#keys.has(id)) ids.set(id, p);
    }
    if (ids.size === 0) return 0;
    const keys = Buffer.alloc(ids.size * 8);
    let i = 0;
    for (const p of ids.values()) encodeIpcacheKey(p, keys, 8 * i++);
    const m = this.#map();
    try {
      m.deleteBatch(keys, ids.size);
    } catch {
      // A batch stops at a key the map lacks (the key set and the map disagree): finish one by one.
      for (let j = 0; j < ids.size; j++) m.delete(keys.subarray(8 * j, 8 * j + 8));
    }
    for (const id of ids.keys()) this.#keys.delete(id);
    return ids.size;
  }

  /**
   * Writes many entries with batch syscalls. Checks capacity first: a batch that cannot fit is
   * refused whole (MBR_DATAPATH_MAP_FULL) instead of being written in part.
   */
  upsertBatch(entries: readonly IpcacheEntry[]): void {
    const m = this.#map();
    const n = entries.length;
    // One pass: each address is parsed once for its key, its bookkeeping id and its local flag.
    const keys = Buffer.allocUnsafe(n * 8);
    const values = Buffer.allocUnsafe(n * IPCACHE_VALUE.size);
    const ids = new Array<number>(n);
    const freshIds = new Set<number>();
    const local = this.#localIps();
    for (let i = 0; i < n; i++) {
      const e = entries[i] as IpcacheEntry;
      const addr = ipv4ToNetworkU32(e.prefix.addr);
      const id = addr * 64 + e.prefix.prefixLen;
      ids[i] = id;
      if (!this.#keys.has(id)) freshIds.add(id);
      encodeIpcacheKeyAt(addr, e.prefix.prefixLen, keys, i * 8);
      const ifindex = e.prefix.prefixLen === 32 ? (local.get(addr) ?? 0) : 0;
      encodeIpcacheValue(e.identity, values, i * IPCACHE_VALUE.size, ifindex ? IpcacheFlags.localEndpoint : 0, ifindex);
    }
    const fresh = freshIds.size;
    if (this.#keys.size + fresh > m.maxEntries)
      throw this.#health.record(
        'ipcache',
        new DatapathError(
          'MBR_DATAPATH_MAP_FULL',
          `ipcache: ${fresh} new entries do not fit (${this.#keys.size} of ${m.maxEntries} used); nothing written`,
        ),
      );
    try {
      m.updateBatch(keys, values, entries.length);
    } finally {
      // On a partial failure the first `done` entries are in; re-reading is exact either way.
      for (const id of ids) this.#keys.add(id);
    }
    this.#health.clear('ipcache');
  }

  /** Every entry, sorted by prefix. */
  entries(): IpcacheEntry[] {
    const out: IpcacheEntry[] = [];
    for (const [k, v] of this.#map().entries())
      out.push({
        prefix: decodeIpcacheKey(k),
        identity: decodeIpcacheValue(v),
        flags: decodeIpcacheFlags(v),
        ifindex: decodeIpcacheIfindex(v),
      });
    return out.sort((a, b) => formatIpv4Prefix(a.prefix).localeCompare(formatIpv4Prefix(b.prefix)));
  }

  /** A full map (E2BIG, ENOSPC) becomes MBR_DATAPATH_MAP_FULL, kept in status(); the rest as raised. */
  #capacityError(doing: string, err: unknown): DatapathError {
    const e = DatapathError.fromNative(doing, err);
    if (isMapFullErrno(e))
      return this.#health.record(
        'ipcache',
        new DatapathError('MBR_DATAPATH_MAP_FULL', `${doing}: map is full`, { errno: e.errno, cause: err }),
      );
    return e;
  }
}

function keyNumber(p: IpcachePrefix): number {
  return ipv4ToNetworkU32(p.addr) * 64 + p.prefixLen;
}
