// The datapath as the agent drives it. One Datapath per node instance: it owns the pinned BPF state
// under /sys/fs/bpf/membrane/<instance> (or pinDir) and the fds it opened.
//
//   const dp = Datapath.open({ instance: 'node1' });          // mounts bpffs, loads or re-opens pins
//   dp.attachEndpoint({ endpointId: 7, netnsPath: '/run/netns/node1', ifname: 'mbr-veth7',
//                       ipv4: '10.1.0.7', identity: 1234 });  // tcx links, pinned
//   dp.upsertIpcache('10.1.0.0/16', 1234); dp.deleteIpcache('10.1.0.0/16');
//   dp.upsertIpcacheBatch(entries); dp.deleteIpcacheBatch(prefixes);           // batch syscalls
//   dp.applyPolicy(diff);                                      // MapStateDiff, atomic per endpoint
//   const off = dp.onEvents((events) => ...);                  // DatapathEvent[] per drained batch
//   dp.lostEvents(); dp.metrics(); dp.status();
//   dp.close();                                                // fds only: enforcement goes on
//   dp.destroy();                                              // detach everything, remove the pins
//
// Layout of the pin directory: maps/<mbr_*>, progs/<mbr_from_pod|mbr_to_pod|mbr_pass>,
// links/<endpointId>-<ingress|egress>, policy/<endpointId>-<a|b> (see endpoint-policy.ts), and
// object-sha256, a symlink to the digest of the object that made them: another build refuses them.
// Endpoints are keyed in the datapath by the host-side veth's ifindex, so one instance serves the
// veths of one (node) network namespace. Attach is tcx where the kernel has it (>= 6.6), else legacy
// tc filters (attachMode 'tc'), which need no pin to outlive the process.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statfsSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { decodeEventBatch } from '../monitor/event-codec.js';
import type { DatapathEvent, LostEvents } from '../monitor/event-types.js';
import type { MapStateDiff } from '../policy/map-state-types.js';
import { BpfMap } from './bpf-map.js';
import { DatapathError } from './datapath-error.js';
import { EndpointPolicy, type RealizedEntry } from './endpoint-policy.js';
import { ipv4ToNetworkU32 } from './layout.js';
import { type AuthKey, encodeAuthKey, encodeAuthValue } from './maps/auth-map.js';
import { encodeConfig, TraceLevel } from './maps/config-map.js';
import { type CtEntry, type CtKey, decodeCt, decodeCtEntry } from './maps/ct-map.js';
import {
  decodeEndpointInfo,
  EndpointFlags,
  type EndpointInfo,
  encodeEndpointInfo,
  encodeIfindexKey,
  parseMac,
} from './maps/endpoint-map.js';
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
import { METRICS_ENTRIES, type MetricsRow, sumPerCpuMetrics } from './maps/metrics-map.js';
import { BPF_OBJECT_PATH, nativeBpf, sys, type TestRunResult } from './native.js';

export const BPFFS_ROOT = '/sys/fs/bpf';
export const MAP_NAMES = [
  'mbr_ipcache',
  'mbr_policy',
  'mbr_endpoints',
  'mbr_ct4',
  'mbr_auth',
  'mbr_metrics',
  'mbr_lost',
  'mbr_config',
  'mbr_events',
] as const;
export type MapName = (typeof MAP_NAMES)[number];
export const PROGRAM_NAMES = ['mbr_from_pod', 'mbr_to_pod', 'mbr_pass'] as const;
export type ProgramName = (typeof PROGRAM_NAMES)[number];

export interface DatapathOptions {
  /** Instance name: pins go to /sys/fs/bpf/membrane/<instance>. */
  readonly instance?: string;
  /** Explicit pin directory (wins over instance). */
  readonly pinDir?: string;
  /** Sizes used only when the maps are first created (pinned maps keep theirs). */
  readonly ipcacheMaxEntries?: number;
  readonly ctMaxEntries?: number;
  /** Hard limit of entries in one endpoint's policy map (default 262144). */
  readonly policyMapMaxEntries?: number;
  /** 'connections' (default): new flows and SYN/FIN/RST; 'all'; 'none'. */
  readonly traceLevel?: keyof typeof TraceLevel;
  /** Ring drain period in ms (default 5). */
  readonly drainIntervalMs?: number;
  /** 'auto' (default): tcx links, legacy tc (cls_bpf) when the kernel has no tcx. */
  readonly attachMode?: 'auto' | 'tcx' | 'tc';
  /**
   * true (default): traffic between two endpoints of this node whose MACs are known skips the
   * node's IP stack (mbr_from_pod enforces both halves and redirects into the receiving pod).
   * false: every packet is routed by the node's stack, as with Cilium's legacy host routing.
   */
  readonly localDelivery?: boolean;
}

export interface EndpointAttachment {
  readonly endpointId: number;
  /** The netns holding the host-side veth ('' = this process's netns). */
  readonly netnsPath: string;
  /** Host-side veth name. */
  readonly ifname: string;
  readonly ipv4: string;
  /** The pod's security identity; also written to the ipcache for ipv4/32. */
  readonly identity: number;
  /** Policy drops are reported as audit verdicts and let through. */
  readonly audit?: boolean;
  readonly enforceIngress?: boolean;
  readonly enforceEgress?: boolean;
  /** The pod's eth0 MAC and the host-side veth's MAC: with both, the endpoint takes local delivery. */
  readonly podMac?: string;
  readonly hostMac?: string;
}

export interface AttachedEndpoint extends EndpointInfo {
  readonly ifindex: number;
}

export interface MapStatus {
  readonly name: string;
  readonly entries: number;
  readonly maxEntries: number;
  /** entries / maxEntries, 0..1. */
  readonly pressure: number;
}

export interface DatapathHealthError {
  readonly code: string;
  readonly message: string;
  readonly endpointId?: number;
  readonly at: string;
}

export interface DatapathStatus {
  readonly pinDir: string;
  /** How endpoints are attached: tcx links, or legacy tc filters on kernels without tcx. */
  readonly attachMode: 'tcx' | 'tc';
  readonly endpoints: number;
  readonly maps: readonly MapStatus[];
  readonly lostEvents: readonly LostEvents[];
  /** Failures still in effect (e.g. an endpoint whose last policy change did not fit). */
  readonly errors: readonly DatapathHealthError[];
  readonly ok: boolean;
}

export class Datapath {
  readonly pinDir: string;
  #maps: Map<MapName, BpfMap>;
  #progs: Map<ProgramName, number>;
  #policies = new Map<number, EndpointPolicy>();
  #endpoints = new Map<number, AttachedEndpoint>();
  /** Keys present in mbr_ipcache (addr * 64 + prefixLen), so batches know what is new. */
  #ipcacheKeys = new Set<number>();
  #policyMax: number;
  #drainMs: number;
  #ring: object | undefined;
  #listeners = new Set<(events: DatapathEvent[]) => void>();
  #errors = new Map<string, DatapathHealthError>();
  #closed = false;
  #attachMode: 'auto' | 'tcx' | 'tc';
  #localDelivery: boolean;
  /** Where legacy-tc endpoints are (their filters are not pinned objects). */
  #legacyAt = new Map<number, { netnsPath: string; ifname: string }>();

  private constructor(pinDir: string, maps: Map<MapName, BpfMap>, progs: Map<ProgramName, number>, o: DatapathOptions) {
    this.pinDir = pinDir;
    this.#maps = maps;
    this.#progs = progs;
    this.#policyMax = o.policyMapMaxEntries ?? 262144;
    this.#drainMs = o.drainIntervalMs ?? 5;
    this.#attachMode = o.attachMode ?? 'auto';
    this.#localDelivery = o.localDelivery ?? true;
    for (const k of this.map('mbr_ipcache').keys()) this.#ipcacheKeys.add(ipcacheKeyNumber(decodeIpcacheKey(k)));
  }

  /** Mounts bpffs if needed, then loads the object (reusing pinned maps) or re-opens the pins. */
  static open(opts: DatapathOptions = {}): Datapath {
    const pinDir = opts.pinDir ?? `${BPFFS_ROOT}/membrane/${opts.instance ?? 'default'}`;
    ensureBpffs();
    for (const d of ['maps', 'progs', 'links', 'policy']) mkdirSync(`${pinDir}/${d}`, { recursive: true });
    const n = nativeBpf();
    const maps = new Map<MapName, BpfMap>();
    const progs = new Map<ProgramName, number>();
    const pinnedProgs = PROGRAM_NAMES.every((p) => existsSync(`${pinDir}/progs/${p}`));
    const pinnedMaps = MAP_NAMES.every((m) => existsSync(`${pinDir}/maps/${m}`));
    const build = objectDigest();
    if (pinnedProgs && pinnedMaps) {
      assertSameBuild(pinDir, build);
      for (const m of MAP_NAMES) maps.set(m, BpfMap.fromPinned(`${pinDir}/maps/${m}`));
      for (const p of PROGRAM_NAMES)
        progs.set(
          p,
          sys(`open pinned program ${p}`, () => n.objGet(`${pinDir}/progs/${p}`)),
        );
    } else {
      const pinMaps: Record<string, string> = {};
      for (const m of MAP_NAMES) pinMaps[m] = `${pinDir}/maps/${m}`;
      const maxEntries: Record<string, number> = {};
      if (opts.ipcacheMaxEntries) maxEntries.mbr_ipcache = opts.ipcacheMaxEntries;
      if (opts.ctMaxEntries) maxEntries.mbr_ct4 = opts.ctMaxEntries;
      const obj = sys(`load ${BPF_OBJECT_PATH}`, () => n.loadObject(BPF_OBJECT_PATH, { pinMaps, maxEntries }));
      for (const m of obj.maps) {
        if ((MAP_NAMES as readonly string[]).includes(m.name)) maps.set(m.name as MapName, new BpfMap(m.fd, m));
        else n.closeFd(m.fd);
      }
      for (const p of obj.programs) {
        const name = p.name as ProgramName;
        progs.set(name, p.fd);
        const path = `${pinDir}/progs/${name}`;
        if (existsSync(path)) unlinkSync(path);
        sys(`pin program ${name}`, () => n.objPin(p.fd, path));
      }
    }
    if (!(pinnedProgs && pinnedMaps)) {
      // bpffs holds no regular files: the build is recorded as a symlink's target.
      rmSync(`${pinDir}/${OBJECT_LINK}`, { force: true });
      symlinkSync(build, `${pinDir}/${OBJECT_LINK}`);
    }
    const dp = new Datapath(pinDir, maps, progs, opts);
    dp.setTraceLevel(opts.traceLevel ?? 'connections');
    dp.#reopenEndpoints();
    return dp;
  }

  map(name: MapName): BpfMap {
    const m = this.#maps.get(name);
    if (!m || this.#closed) throw new DatapathError('MBR_DATAPATH_CLOSED', `datapath at ${this.pinDir} is closed`);
    return m;
  }

  programFd(name: ProgramName): number {
    const fd = this.#progs.get(name);
    if (fd === undefined || this.#closed)
      throw new DatapathError('MBR_DATAPATH_CLOSED', `datapath at ${this.pinDir} is closed`);
    return fd;
  }

  setTraceLevel(level: keyof typeof TraceLevel): void {
    const zero = Buffer.alloc(4);
    // Force a wakeup only past 256 KiB pending; the drain timer handles everything below.
    this.map('mbr_config').update(zero, encodeConfig({ traceLevel: TraceLevel[level], wakeupBytes: 256 * 1024 }));
  }

  // ---- endpoints ----

  /**
   * Attaches mbr_from_pod (tcx ingress) and mbr_to_pod (tcx egress) on the host-side veth and
   * registers the endpoint. Idempotent: re-attaching replaces the links without a gap (new link
   * first, then the old one is detached).
   */
  attachEndpoint(a: EndpointAttachment): AttachedEndpoint {
    if (a.podMac !== undefined) parseMac(a.podMac, `attach endpoint ${a.endpointId}: podMac`);
    if (a.hostMac !== undefined) parseMac(a.hostMac, `attach endpoint ${a.endpointId}: hostMac`);
    const n = nativeBpf();
    const ifindex = sys(`attach endpoint ${a.endpointId}: find ${a.ifname}`, () => n.ifIndex(a.netnsPath, a.ifname));
    const local = this.#localDelivery && a.podMac !== undefined && a.hostMac !== undefined;
    if (!this.#policies.has(a.endpointId))
      this.#policies.set(
        a.endpointId,
        EndpointPolicy.create(a.endpointId, this.map('mbr_policy'), `${this.pinDir}/policy`, this.#policyMax),
      );
    const prev = this.#endpoints.get(a.endpointId);
    const info: AttachedEndpoint = {
      endpointId: a.endpointId,
      identity: a.identity,
      ipv4: a.ipv4,
      flags:
        (a.audit ? EndpointFlags.audit : 0) |
        (a.enforceIngress === false ? EndpointFlags.noEnforceIngress : 0) |
        (a.enforceEgress === false ? EndpointFlags.noEnforceEgress : 0) |
        (local ? EndpointFlags.localDelivery : 0),
      policyRevision: (prev?.policyRevision ?? 0) + 1,
      ...(a.podMac !== undefined ? { podMac: a.podMac.toLowerCase() } : {}),
      ...(a.hostMac !== undefined ? { hostMac: a.hostMac.toLowerCase() } : {}),
      ifindex,
    };
    // Known before its /32 is written, so the ipcache entry carries the local-endpoint flag.
    this.#endpoints.set(a.endpointId, info);
    try {
      this.upsertIpcache(`${a.ipv4}/32`, a.identity);
    } catch (err) {
      if (prev) this.#endpoints.set(a.endpointId, prev);
      else this.#endpoints.delete(a.endpointId);
      throw err;
    }
    this.map('mbr_endpoints').update(encodeIfindexKey(ifindex), encodeEndpointInfo(info));
    if (this.#attachMode !== 'tc') {
      try {
        this.#attachTcx(a);
        if (this.#attachMode === 'auto') this.#attachMode = 'tcx';
        return info;
      } catch (err) {
        // Kernels before 6.6 reject the tcx attach types: fall back to cls_bpf once, for good.
        const errno = (err as DatapathError).errno;
        if (this.#attachMode === 'tcx' || (errno !== 22 && errno !== 95 && errno !== 524)) throw err;
        this.#attachMode = 'tc';
      }
    }
    for (const [dir, prog] of [
      ['ingress', 'mbr_from_pod'],
      ['egress', 'mbr_to_pod'],
    ] as const)
      sys(`attach endpoint ${a.endpointId}: tc ${dir} on ${a.ifname}`, () =>
        n.tcAttach(this.programFd(prog), a.netnsPath, a.ifname, dir),
      );
    this.#legacyAt.set(a.endpointId, { netnsPath: a.netnsPath, ifname: a.ifname });
    const legacy = { ...info, flags: info.flags | EndpointFlags.legacyTc };
    this.map('mbr_endpoints').update(encodeIfindexKey(ifindex), encodeEndpointInfo(legacy));
    this.#endpoints.set(a.endpointId, legacy);
    return legacy;
  }

  #attachTcx(a: EndpointAttachment): void {
    const n = nativeBpf();
    for (const [dir, prog] of [
      ['ingress', 'mbr_from_pod'],
      ['egress', 'mbr_to_pod'],
    ] as const) {
      const pin = `${this.pinDir}/links/${a.endpointId}-${dir}`;
      const link = sys(`attach endpoint ${a.endpointId}: tcx ${dir} on ${a.ifname}`, () =>
        n.tcxAttach(this.programFd(prog), a.netnsPath, a.ifname, dir),
      );
      if (existsSync(pin)) {
        const old = sys(`open pinned link ${pin}`, () => n.objGet(pin));
        try {
          n.linkDetach(old);
        } catch {
          // The old link's device may be gone already (defunct link): nothing to detach.
        }
        n.closeFd(old);
        unlinkSync(pin);
      }
      sys(`pin link ${pin}`, () => n.objPin(link.linkFd, pin));
      n.closeFd(link.linkFd);
    }
  }

  /**
   * Detaches and forgets an endpoint. A legacy-tc endpoint attached by another process (before a
   * restart) needs `at`: its filters are found by netns and device, not by a pin.
   */
  detachEndpoint(endpointId: number, at?: { netnsPath: string; ifname: string }): void {
    const n = nativeBpf();
    const legacy = at ?? this.#legacyAt.get(endpointId);
    const known = this.#endpoints.get(endpointId);
    if (!legacy && known && known.flags & EndpointFlags.legacyTc)
      throw new DatapathError(
        'MBR_DATAPATH_NO_ENDPOINT',
        `endpoint ${endpointId} is attached with legacy tc: detachEndpoint needs its netnsPath and ifname`,
      );
    if (legacy)
      for (const dir of ['ingress', 'egress'] as const)
        sys(`detach endpoint ${endpointId}: tc ${dir} on ${legacy.ifname}`, () =>
          n.tcDetach(legacy.netnsPath, legacy.ifname, dir),
        );
    this.#legacyAt.delete(endpointId);
    for (const dir of ['ingress', 'egress']) {
      const pin = `${this.pinDir}/links/${endpointId}-${dir}`;
      if (!existsSync(pin)) continue;
      const fd = sys(`open pinned link ${pin}`, () => n.objGet(pin));
      try {
        n.linkDetach(fd);
      } catch {
        // Device already gone: the link is defunct, removing the pin frees it.
      }
      n.closeFd(fd);
      unlinkSync(pin);
    }
    const ep = this.#endpoints.get(endpointId);
    this.#policies.get(endpointId)?.destroy();
    this.#policies.delete(endpointId);
    this.#endpoints.delete(endpointId);
    if (ep) {
      this.map('mbr_endpoints').delete(encodeIfindexKey(ep.ifindex));
      this.deleteIpcache(`${ep.ipv4}/32`);
    }
    for (const k of this.#errors.keys()) if (k.startsWith(`ep/${endpointId}/`)) this.#errors.delete(k);
  }

  endpoints(): AttachedEndpoint[] {
    return [...this.#endpoints.values()].sort((a, b) => a.endpointId - b.endpointId);
  }

  // ---- ipcache ----

  upsertIpcache(prefix: string, identity: number): void {
    const p = parseIpv4Prefix(prefix);
    try {
      const ifindex = this.#localIfindex(p, this.#localIps());
      this.map('mbr_ipcache').update(
        encodeIpcacheKey(p),
        encodeIpcacheValue(identity, undefined, 0, ifindex ? IpcacheFlags.localEndpoint : 0, ifindex),
      );
    } catch (err) {
      throw this.#capacityError('ipcache', `ipcache upsert ${prefix}`, err);
    }
    this.#ipcacheKeys.add(ipcacheKeyNumber(p));
  }

  deleteIpcache(prefix: string): boolean {
    const p = parseIpv4Prefix(prefix);
    this.#ipcacheKeys.delete(ipcacheKeyNumber(p));
    return this.map('mbr_ipcache').delete(encodeIpcacheKey(p));
  }

  /** Deletes many prefixes with batch syscalls; prefixes not in the ipcache are skipped. Returns how many went. */
  deleteIpcacheBatch(prefixes: readonly IpcachePrefix[]): number {
    const ids = new Map<number, IpcachePrefix>();
    for (const p of prefixes) {
      const id = ipcacheKeyNumber(p);
      if (this.#ipcacheKeys.has(id)) ids.set(id, p);
    }
    if (ids.size === 0) return 0;
    const keys = Buffer.alloc(ids.size * 8);
    let i = 0;
    for (const p of ids.values()) encodeIpcacheKey(p, keys, 8 * i++);
    const m = this.map('mbr_ipcache');
    try {
      m.deleteBatch(keys, ids.size);
    } catch {
      // A batch stops at a key the map lacks (the key set and the map disagree): finish one by one.
      for (let j = 0; j < ids.size; j++) m.delete(keys.subarray(8 * j, 8 * j + 8));
    }
    for (const id of ids.keys()) this.#ipcacheKeys.delete(id);
    return ids.size;
  }

  /**
   * Writes many entries with batch syscalls. Checks capacity first: a batch that cannot fit is
   * refused whole (MBR_DATAPATH_MAP_FULL) instead of being written in part.
   */
  upsertIpcacheBatch(entries: readonly IpcacheEntry[]): void {
    const m = this.map('mbr_ipcache');
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
      if (!this.#ipcacheKeys.has(id)) freshIds.add(id);
      encodeIpcacheKeyAt(addr, e.prefix.prefixLen, keys, i * 8);
      const ifindex = e.prefix.prefixLen === 32 ? (local.get(addr) ?? 0) : 0;
      encodeIpcacheValue(e.identity, values, i * IPCACHE_VALUE.size, ifindex ? IpcacheFlags.localEndpoint : 0, ifindex);
    }
    const fresh = freshIds.size;
    if (this.#ipcacheKeys.size + fresh > m.maxEntries)
      throw this.#recordError(
        'ipcache',
        new DatapathError(
          'MBR_DATAPATH_MAP_FULL',
          `ipcache: ${fresh} new entries do not fit (${this.#ipcacheKeys.size} of ${m.maxEntries} used); nothing written`,
        ),
      );
    try {
      m.updateBatch(keys, values, entries.length);
    } finally {
      // On a partial failure the first `done` entries are in; re-reading is exact either way.
      for (const id of ids) this.#ipcacheKeys.add(id);
    }
    this.#errors.delete('ipcache');
  }

  ipcacheEntries(): IpcacheEntry[] {
    const out: IpcacheEntry[] = [];
    for (const [k, v] of this.map('mbr_ipcache').entries())
      out.push({
        prefix: decodeIpcacheKey(k),
        identity: decodeIpcacheValue(v),
        flags: decodeIpcacheFlags(v),
        ifindex: decodeIpcacheIfindex(v),
      });
    return out.sort((a, b) => formatIpv4Prefix(a.prefix).localeCompare(formatIpv4Prefix(b.prefix)));
  }

  // ---- policy ----

  /**
   * Applies one endpoint's MapStateDiff atomically (see endpoint-policy.ts), then bumps the
   * endpoint's policy revision so established flows are re-checked on their next packet. On failure
   * the previous policy stays in force and the error is kept in status() until a change succeeds.
   */
  applyPolicy(diff: MapStateDiff): void {
    let ep = this.#policies.get(diff.endpointId);
    if (!ep) {
      ep = EndpointPolicy.create(diff.endpointId, this.map('mbr_policy'), `${this.pinDir}/policy`, this.#policyMax);
      this.#policies.set(diff.endpointId, ep);
    }
    try {
      ep.apply(diff);
    } catch (err) {
      if (err instanceof DatapathError && err.code !== 'MBR_DATAPATH_BAD_INPUT')
        this.#recordError(`ep/${diff.endpointId}/policy`, err, diff.endpointId);
      throw err;
    }
    this.#errors.delete(`ep/${diff.endpointId}/policy`);
    const info = this.#endpoints.get(diff.endpointId);
    if (info) {
      const bumped = { ...info, policyRevision: (info.policyRevision + 1) >>> 0 };
      this.map('mbr_endpoints').update(encodeIfindexKey(info.ifindex), encodeEndpointInfo(bumped));
      this.#endpoints.set(diff.endpointId, bumped);
    }
  }

  policyEntries(endpointId: number): RealizedEntry[] {
    const ep = this.#policies.get(endpointId);
    if (!ep) throw new DatapathError('MBR_DATAPATH_NO_ENDPOINT', `endpoint ${endpointId} has no policy map`);
    return [...ep.entries()];
  }

  upsertAuth(key: AuthKey, expiryMonoNs: bigint): void {
    this.map('mbr_auth').update(encodeAuthKey(key), encodeAuthValue(expiryMonoNs));
  }

  // ---- conntrack ----

  ctEntries(): Array<[CtKey, CtEntry]> {
    const out: Array<[CtKey, CtEntry]> = [];
    for (const [k, v] of this.map('mbr_ct4').entries()) {
      const { key, entry } = decodeCt(k, v);
      out.push([key, entry]);
    }
    return out;
  }

  /** Deletes entries whose lifetime passed (LRU eviction covers pressure; this covers time). */
  ctGc(nowMonoSeconds: number = monotonicSeconds()): number {
    const m = this.map('mbr_ct4');
    const dead: Buffer[] = [];
    for (const [k, v] of m.entries()) if (decodeCtEntry(v).lifetime <= nowMonoSeconds) dead.push(k);
    for (const k of dead) m.delete(k);
    return dead.length;
  }

  // ---- events, metrics, status ----

  /** Subscribes to decoded events; the ring is drained every drainIntervalMs. Returns unsubscribe. */
  onEvents(cb: (events: DatapathEvent[]) => void): () => void {
    this.#listeners.add(cb);
    if (!this.#ring) {
      const n = nativeBpf();
      this.#ring = sys('open event ring', () =>
        n.ringOpen(
          this.map('mbr_events').fd,
          (buf, count) => {
            const events = decodeEventBatch(buf, count);
            for (const l of this.#listeners) l(events);
          },
          { intervalMs: this.#drainMs, maxBatch: 4096 },
        ),
      );
    }
    return () => {
      this.#listeners.delete(cb);
      if (this.#listeners.size === 0) this.#closeRing();
    };
  }

  /** Drains the ring now (tests, shutdown). */
  drainEvents(): void {
    if (this.#ring) nativeBpf().ringDrain(this.#ring);
  }

  lostEvents(): LostEvents[] {
    const v = this.map('mbr_lost').lookup(Buffer.alloc(4));
    let count = 0;
    if (v) for (let o = 0; o + 8 <= v.length; o += 8) count += v.readUInt32LE(o) + v.readUInt32LE(o + 4) * 2 ** 32;
    return [{ source: 'datapath-ring', count }];
  }

  metrics(): MetricsRow[] {
    const m = this.map('mbr_metrics');
    const cpus = nativeBpf().numPossibleCpus();
    const out: MetricsRow[] = [];
    const key = Buffer.alloc(4);
    const buf = Buffer.alloc(m.valueBufferSize);
    for (let i = 0; i < METRICS_ENTRIES; i++) {
      key.writeUInt32LE(i);
      if (!m.lookup(key, buf)) continue;
      const s = sumPerCpuMetrics(buf, cpus);
      if (s.packets === 0) continue;
      out.push({ direction: i >> 8 ? 'egress' : 'ingress', reason: i & 255, ...s });
    }
    return out;
  }

  status(): DatapathStatus {
    const maps: MapStatus[] = [];
    const add = (name: string, entries: number, maxEntries: number) =>
      maps.push({ name, entries, maxEntries, pressure: maxEntries ? entries / maxEntries : 0 });
    add('mbr_ipcache', this.#ipcacheKeys.size, this.map('mbr_ipcache').maxEntries);
    add('mbr_endpoints', this.#endpoints.size, this.map('mbr_endpoints').maxEntries);
    for (const [id, p] of [...this.#policies].sort((a, b) => a[0] - b[0])) add(`mbr_policy/${id}`, p.size, p.capacity);
    const errors = [...this.#errors.values()];
    return {
      pinDir: this.pinDir,
      attachMode: this.#attachMode === 'tc' ? 'tc' : 'tcx',
      endpoints: this.#endpoints.size,
      maps,
      lostEvents: this.lostEvents(),
      errors,
      ok: errors.length === 0,
    };
  }

  testRun(program: ProgramName, packet: Buffer, repeat = 1, ctx: Buffer | null = null): TestRunResult {
    return sys(`test run ${program}`, () => nativeBpf().progTestRun(this.programFd(program), packet, repeat, ctx));
  }

  /** Closes this process's fds. Pinned maps, programs and links stay: enforcement goes on. */
  close(): void {
    if (this.#closed) return;
    this.#closeRing();
    for (const p of this.#policies.values()) p.close();
    for (const m of this.#maps.values()) m.close();
    for (const fd of this.#progs.values()) nativeBpf().closeFd(fd);
    this.#closed = true;
  }

  /** Detaches every endpoint, closes everything and removes the pin directory. */
  destroy(): void {
    if (!this.#closed) for (const id of [...this.#endpoints.keys()]) this.detachEndpoint(id);
    this.close();
    removePinDir(this.pinDir);
  }

  #closeRing(): void {
    if (this.#ring) nativeBpf().ringClose(this.#ring);
    this.#ring = undefined;
  }

  #reopenEndpoints(): void {
    for (const [k, v] of this.map('mbr_endpoints').entries()) {
      const info = decodeEndpointInfo(v);
      this.#endpoints.set(info.endpointId, { ...info, ifindex: k.readUInt32LE(0) });
      if (info.flags & EndpointFlags.legacyTc && this.#attachMode === 'auto') this.#attachMode = 'tc';
    }
    const dir = `${this.pinDir}/policy`;
    const ids = new Set<number>();
    for (const f of readdirSync(dir)) {
      const m = /^(\d+)-[ab]$/.exec(f);
      if (m) ids.add(Number(m[1]));
    }
    for (const id of ids) {
      const p = EndpointPolicy.reopen(id, this.map('mbr_policy'), dir, this.#policyMax);
      if (p) this.#policies.set(id, p);
    }
  }

  /** A /32 of an attached endpoint carries the local flag and its host-side veth, whoever writes
   * it (attach or the agent); 0 for every other prefix. */
  #localIfindex(p: IpcachePrefix, localIps: ReadonlyMap<number, number>): number {
    return p.prefixLen === 32 ? (localIps.get(ipv4ToNetworkU32(p.addr)) ?? 0) : 0;
  }

  /** Attached endpoints' host-side veths by their address (network-order u32). */
  #localIps(): Map<number, number> {
    return new Map([...this.#endpoints.values()].map((e) => [ipv4ToNetworkU32(e.ipv4), e.ifindex]));
  }

  #capacityError(what: string, doing: string, err: unknown): DatapathError {
    const e = DatapathError.fromNative(doing, err);
    if (e.errno === 7 || e.errno === 28)
      return this.#recordError(
        what,
        new DatapathError('MBR_DATAPATH_MAP_FULL', `${doing}: map is full`, { errno: e.errno, cause: err }),
      );
    return e;
  }

  #recordError(key: string, err: DatapathError, endpointId?: number): DatapathError {
    this.#errors.set(key, { code: err.code, message: err.message, endpointId, at: new Date().toISOString() });
    return err;
  }
}

/** Opens only the pinned maps of an instance, read side (the CLI's `membrane bpf ...`). */
export function openPinnedMap(pinDir: string, name: MapName): BpfMap {
  const p = `${pinDir}/maps/${name}`;
  if (!existsSync(p))
    throw new DatapathError('MBR_DATAPATH_NOT_PINNED', `no datapath pinned at ${pinDir} (${p} does not exist)`);
  if (existsSync(BPF_OBJECT_PATH)) assertSameBuild(pinDir, objectDigest());
  return BpfMap.fromPinned(p);
}

function ipcacheKeyNumber(p: { addr: string; prefixLen: number }): number {
  return ipv4ToNetworkU32(p.addr) * 64 + p.prefixLen;
}

export function pinDirFor(instance: string): string {
  return `${BPFFS_ROOT}/membrane/${instance}`;
}

export function monotonicSeconds(): number {
  return Math.floor(Number(process.hrtime.bigint() / 1_000_000_000n));
}

/** Removes a pin directory tree (bpffs supports unlink/rmdir). */
/** Removes an instance's pins, and Membrane's bpffs directory too once no instance is left. */
/** The pin directory's record of the object that made it: a symlink to its sha256. */
const OBJECT_LINK = 'object-sha256';

function objectDigest(): string {
  return createHash('sha256').update(readFileSync(BPF_OBJECT_PATH)).digest('hex');
}

/**
 * Pins of another build hold other layouts (or other program semantics): refused whole rather than
 * driven or decoded with this build's codecs.
 */
function assertSameBuild(pinDir: string, build: string): void {
  let pinned: string | undefined;
  try {
    pinned = readlinkSync(`${pinDir}/${OBJECT_LINK}`);
  } catch {
    pinned = undefined;
  }
  if (pinned !== build)
    throw new DatapathError(
      'MBR_DATAPATH_STALE_PINS',
      `${pinDir}: pinned by another build of the datapath (object ${pinned?.slice(0, 12) ?? 'not recorded'}, ` +
        `this build ${build.slice(0, 12)}); its maps and programs do not fit this build. Remove it ` +
        `(rm -r ${pinDir}; unpinning detaches its tcx links) or run the build that made it`,
    );
}

export function removePinDir(dir: string): void {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  const root = `${BPFFS_ROOT}/membrane`;
  if (dirname(dir) === root && existsSync(root) && readdirSync(root).length === 0) rmdirSync(root);
}

const BPF_FS_MAGIC = 0xcafe4a11;

export function ensureBpffs(): void {
  if (statfsSync(BPFFS_ROOT).type === BPF_FS_MAGIC) return;
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS_ROOT], { stdio: 'pipe' });
  } catch (err) {
    throw new DatapathError('MBR_DATAPATH_SYSCALL', `mount bpffs at ${BPFFS_ROOT}: ${(err as Error).message}`);
  }
}
