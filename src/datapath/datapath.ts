// The datapath as the agent drives it. One Datapath per node instance: it owns the pinned BPF state
// under /sys/fs/bpf/membrane/<instance> (or pinDir) and the fds it opened.
//
//   const dp = Datapath.open({ instance: 'node1' });          // mounts bpffs, loads or re-opens pins
//   dp.attachEndpoint({ endpointId: 7, netnsPath: '/run/netns/node1', ifname: 'mbr-veth7',
//                       ipv4: '10.1.0.7', identity: 1234 });  // tcx links, pinned
//   dp.upsertIpcache('10.1.0.0/16', 1234); dp.deleteIpcache('10.1.0.0/16');
//   dp.upsertIpcacheBatch(entries); dp.deleteIpcacheBatch(prefixes);           // batch syscalls
//   dp.applyPolicy(diff);                                      // MapStateDiff, atomic per endpoint
//   dp.applyPolicies(diffs);                                   // several endpoints, one publish batch
//   const off = dp.onEvents((events) => ...);                  // DatapathEvent[] per drained batch
//   dp.lostEvents(); dp.metrics(); dp.status();
//   dp.close();                                                // fds only: enforcement goes on
//   dp.destroy();                                              // detach everything, remove the pins
//
// This class is the façade; each concern is its own module: bpffs.ts (mount, pin directory, build
// check), bpf-object.ts (load or re-open the object's maps and programs), endpoint-attach.ts (tcx or
// legacy tc hooks), realized-ipcache.ts, endpoint-policy.ts, ct-gc.ts, event-ring.ts and
// datapath-status.ts. Endpoints are keyed in the datapath by the host-side veth's ifindex, so one
// instance serves the veths of one (node) network namespace.
import { existsSync, readdirSync } from 'node:fs';
import type { LostEvents } from '../monitor/event-types.js';
import type { MapStateDiff } from '../policy/map-state-types.js';
import type { BpfMap } from './bpf-map.js';
import { type MapName, openBpfObject, type ProgramName } from './bpf-object.js';
import { ensureBpffs, makePinDir, pinDirFor, removePinDir } from './bpffs.js';
import { collectCtGarbage, monotonicSeconds, readCtEntries } from './ct-gc.js';
import { DatapathError, isDatapathError } from './datapath-error.js';
import {
  DatapathHealth,
  type DatapathStatus,
  type MapStatus,
  mapStatus,
  readLostEvents,
  readMetrics,
} from './datapath-status.js';
import {
  type AttachedEndpoint,
  attachLegacyTc,
  attachTcx,
  detachLegacyTc,
  detachPinnedLink,
  detachTcx,
  type EndpointAttachment,
  endpointInfoFor,
  type HookPrograms,
  isTcxUnsupported,
  resolveAttachment,
  type TcLocation,
} from './endpoint-attach.js';
import { EndpointPolicy, type RealizedEntry, type StagedPolicy, u32Key } from './endpoint-policy.js';
import { type EventListener, EventRing } from './event-ring.js';
import { ipv4ToNetworkU32 } from './layout.js';
import { attachNetdev, attachSocketLb } from './lb-attach.js';
import { LbRealizer } from './lb-realizer.js';
import { type AuthKey, encodeAuthKey, encodeAuthValue } from './maps/auth-map.js';
import { encodeConfig, TraceLevel } from './maps/config-map.js';
import type { CtEntry, CtKey } from './maps/ct-map.js';
import { decodeEndpointInfo, EndpointFlags, encodeEndpointInfo, encodeIfindexKey } from './maps/endpoint-map.js';
import type { IpcacheEntry, IpcachePrefix } from './maps/ipcache-map.js';
import type { MetricsRow } from './maps/metrics-map.js';
import { nativeBpf, sys, type TestRunResult } from './native.js';
import { RealizedIpcache } from './realized-ipcache.js';

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

export class Datapath {
  readonly pinDir: string;
  #maps: Map<MapName, BpfMap>;
  #progs: Map<ProgramName, number>;
  #policies = new Map<number, EndpointPolicy>();
  #endpoints = new Map<number, AttachedEndpoint>();
  #health = new DatapathHealth();
  #ipcache: RealizedIpcache;
  #ring: EventRing;
  #policyMax: number;
  #closed = false;
  #attachMode: 'auto' | 'tcx' | 'tc';
  #localDelivery: boolean;
  /** Where legacy-tc endpoints are (their filters are not pinned objects). */
  #legacyAt = new Map<number, TcLocation>();
  /** The service load balancer's maps (lb-realizer.ts). */
  readonly lb: LbRealizer;

  private constructor(pinDir: string, maps: Map<MapName, BpfMap>, progs: Map<ProgramName, number>, o: DatapathOptions) {
    this.pinDir = pinDir;
    this.#maps = maps;
    this.#progs = progs;
    this.#policyMax = o.policyMapMaxEntries ?? 262144;
    this.#attachMode = o.attachMode ?? 'auto';
    this.#localDelivery = o.localDelivery ?? true;
    this.#ipcache = new RealizedIpcache(
      () => this.map('mbr_ipcache'),
      () => this.#localIps(),
      this.#health,
    );
    this.#ring = new EventRing(() => this.map('mbr_events').fd, o.drainIntervalMs ?? 5);
    this.lb = new LbRealizer((name) => this.map(name));
  }

  /** Mounts bpffs if needed, then loads the object (reusing pinned maps) or re-opens the pins. */
  static open(opts: DatapathOptions = {}): Datapath {
    const pinDir = opts.pinDir ?? pinDirFor(opts.instance ?? 'default');
    ensureBpffs();
    makePinDir(pinDir);
    const { maps, progs } = openBpfObject(pinDir, opts);
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
   * Attaches mbr_from_pod (ingress) and mbr_to_pod (egress) on the host-side veth and registers
   * the endpoint. Idempotent: re-attaching replaces the links without a gap (new link first, then
   * the old one is detached).
   */
  attachEndpoint(a: EndpointAttachment): AttachedEndpoint {
    const ifindex = resolveAttachment(a);
    const hasLocalDelivery = this.#localDelivery && a.podMac !== undefined && a.hostMac !== undefined;
    if (!this.#policies.has(a.endpointId)) this.#policies.set(a.endpointId, this.#createPolicy(a.endpointId));
    const prev = this.#endpoints.get(a.endpointId);
    const info = endpointInfoFor(a, ifindex, prev, hasLocalDelivery);
    // Known before its /32 is written, so the ipcache entry carries the local-endpoint flag.
    this.#endpoints.set(a.endpointId, info);
    try {
      this.upsertIpcache(`${a.ipv4}/32`, a.identity);
    } catch (err) {
      if (prev) this.#endpoints.set(a.endpointId, prev);
      else this.#endpoints.delete(a.endpointId);
      throw isDatapathError(err) ? DatapathError.wrap(`attach endpoint ${a.endpointId}`, err) : err;
    }
    this.#writeEndpoint(info);
    if (this.#attachMode !== 'tc') {
      try {
        attachTcx(this.pinDir, this.#hookPrograms(), a);
        if (this.#attachMode === 'auto') this.#attachMode = 'tcx';
        return info;
      } catch (err) {
        // A kernel without tcx: fall back to cls_bpf once, for good.
        if (this.#attachMode === 'tcx' || !isTcxUnsupported(err)) throw err;
        this.#attachMode = 'tc';
      }
    }
    attachLegacyTc(this.#hookPrograms(), a);
    this.#legacyAt.set(a.endpointId, { netnsPath: a.netnsPath, ifname: a.ifname });
    const legacy = { ...info, flags: info.flags | EndpointFlags.legacyTc };
    this.#writeEndpoint(legacy);
    return legacy;
  }

  /**
   * Attaches mbr_from_net on tcx ingress of the node's underlay device (L7 ingress redirects of
   * traffic from other nodes, replies to the proxy's transparent upstream sockets; bpf/lib/proxy.h).
   * Pinned, so it outlives the agent: a restarted agent finds it attached (pins are this build's)
   * and leaves it. tcx only. Behind every program there ('last'): the NodePort program
   * (mbr_from_netdev, attached 'first') has translated a NodePort packet to its backend already, so a
   * local backend's ingress L7 policy redirects NodePort traffic as any other.
   */
  attachNetworkDevice(netnsPath: string, ifname: string): void {
    const n = nativeBpf();
    const pin = `${this.pinDir}/links/net-${ifname}-ingress`;
    if (existsSync(pin)) return;
    const link = sys(`attach mbr_from_net: tcx ingress on ${ifname}`, () =>
      n.tcxAttach(this.programFd('mbr_from_net'), netnsPath, ifname, 'ingress', 'last'),
    );
    detachPinnedLink(pin);
    sys(`pin link ${pin}`, () => n.objPin(link.linkFd, pin));
    n.closeFd(link.linkFd);
  }

  /**
   * Attaches mbr_proxy_lookup (sk_lookup) to the node's network namespace ('' = this thread's):
   * the proxy's listener for redirected flows the stack looks a listener up for. Pinned, kept
   * when already there.
   */
  attachProxyLookup(netnsPath: string): void {
    const pin = `${this.pinDir}/links/netns-sk-lookup`;
    if (existsSync(pin)) return;
    const n = nativeBpf();
    const fd = sys('attach mbr_proxy_lookup (sk_lookup)', () =>
      n.netnsAttach(this.programFd('mbr_proxy_lookup'), netnsPath),
    );
    sys(`pin link ${pin}`, () => n.objPin(fd, pin));
    n.closeFd(fd);
  }

  detachNetworkDevice(ifname: string): void {
    detachPinnedLink(`${this.pinDir}/links/net-${ifname}-ingress`);
  }

  /**
   * Detaches and forgets an endpoint. A legacy-tc endpoint attached by another process (before a
   * restart) needs `at`: its filters are found by netns and device, not by a pin.
   */
  detachEndpoint(endpointId: number, at?: TcLocation): void {
    const legacy = at ?? this.#legacyAt.get(endpointId);
    const known = this.#endpoints.get(endpointId);
    if (!legacy && known && known.flags & EndpointFlags.legacyTc)
      throw new DatapathError(
        'MBR_DATAPATH_NO_ENDPOINT',
        `endpoint ${endpointId} is attached with legacy tc: detachEndpoint needs its netnsPath and ifname`,
      );
    if (legacy) detachLegacyTc(endpointId, legacy);
    this.#legacyAt.delete(endpointId);
    detachTcx(this.pinDir, endpointId);
    this.#policies.get(endpointId)?.destroy();
    this.#policies.delete(endpointId);
    this.map('mbr_policy_slot').delete(u32Key(endpointId));
    this.#endpoints.delete(endpointId);
    if (known) {
      this.map('mbr_endpoints').delete(encodeIfindexKey(known.ifindex));
      this.deleteIpcache(`${known.ipv4}/32`);
    }
    this.#health.clearEndpoint(endpointId);
  }

  endpoints(): AttachedEndpoint[] {
    return [...this.#endpoints.values()].sort((a, b) => a.endpointId - b.endpointId);
  }

  // ---- ipcache ----

  upsertIpcache(prefix: string, identity: number): void {
    this.#ipcache.upsert(prefix, identity);
  }

  deleteIpcache(prefix: string): boolean {
    return this.#ipcache.delete(prefix);
  }

  /** Deletes many prefixes with batch syscalls; prefixes not in the ipcache are skipped. Returns how many went. */
  deleteIpcacheBatch(prefixes: readonly IpcachePrefix[]): number {
    return this.#ipcache.deleteBatch(prefixes);
  }

  /**
   * Writes many entries with batch syscalls. Checks capacity first: a batch that cannot fit is
   * refused whole (MBR_DATAPATH_MAP_FULL) instead of being written in part.
   */
  upsertIpcacheBatch(entries: readonly IpcacheEntry[]): void {
    this.#ipcache.upsertBatch(entries);
  }

  ipcacheEntries(): IpcacheEntry[] {
    return this.#ipcache.entries();
  }

  // ---- policy ----

  /**
   * Applies one endpoint's MapStateDiff atomically (see endpoint-policy.ts), then bumps the
   * endpoint's policy revision so established flows are re-checked on their next packet. On failure
   * the previous policy stays in force and the error is kept in status() until a change succeeds.
   */
  /**
   * Applies one endpoint's MapStateDiff atomically (see endpoint-policy.ts), then bumps the
   * endpoint's policy revision so established flows are re-checked on their next packet. On failure
   * the previous policy stays in force and the error is kept in status() until a change succeeds.
   */
  applyPolicy(diff: MapStateDiff): void {
    this.applyPolicies([diff]);
  }

  /**
   * Applies several endpoints' diffs as one change: each is written to its endpoint's inactive
   * trie; the slots that got a fresh trie have their mbr_policy entries written in one batch (after
   * a map-in-map write the kernel waits one RCU grace period, milliseconds, so one batch pays it
   * once); then each endpoint flips to its new slot and bumps its policy revision in one update of
   * its mbr_endpoints entry. Each endpoint switches atomically. One diff per endpoint. On failure,
   * no endpoint whose change was not fully written is flipped.
   */
  applyPolicies(diffs: readonly MapStateDiff[]): void {
    const seen = new Set<number>();
    for (const d of diffs) {
      if (seen.has(d.endpointId))
        throw new DatapathError(
          'MBR_DATAPATH_BAD_INPUT',
          `policy diffs: endpoint ${d.endpointId} appears twice in one batch; expected one diff per endpoint`,
        );
      seen.add(d.endpointId);
    }
    const staged: StagedPolicy[] = [];
    // New endpoints get their first policy in the batch, not an empty one published first (each
    // outer write outside the batch is one more RCU wait); if the batch fails they get the empty one.
    const created: EndpointPolicy[] = [];
    const fail = (endpointId: number, err: unknown): never => {
      for (const x of staged) x.abandon();
      for (const ep of created) ep.publishActive();
      if (isDatapathError(err) && err.code !== 'MBR_DATAPATH_BAD_INPUT')
        this.#health.record(`ep/${endpointId}/policy`, err, endpointId);
      throw err;
    };
    for (const d of diffs) {
      let ep = this.#policies.get(d.endpointId);
      if (!ep) {
        ep = EndpointPolicy.create(
          d.endpointId,
          this.map('mbr_policy'),
          `${this.pinDir}/policy`,
          this.#policyMax,
          false,
        );
        this.#policies.set(d.endpointId, ep);
        created.push(ep);
      }
      try {
        staged.push(ep.stage(d));
      } catch (err) {
        fail(d.endpointId, err);
      }
    }
    const outer = staged.flatMap((x) => x.outer.map((o) => ({ ...o, endpointId: x.endpointId })));
    if (outer.length > 0) {
      const keys = Buffer.alloc(4 * outer.length);
      const values = Buffer.alloc(4 * outer.length);
      outer.forEach((o, i) => {
        o.key.copy(keys, 4 * i);
        values.writeUInt32LE(o.fd, 4 * i);
      });
      try {
        this.map('mbr_policy').updateBatch(keys, values, outer.length);
      } catch (err) {
        // An outer entry of an inactive slot written for nothing is harmless: nothing reads it.
        fail((outer[0] as { endpointId: number }).endpointId, err);
      }
    }
    staged.forEach((x, i) => {
      // The flip first, then the bookkeeping: if the entry cannot be written, the endpoint keeps
      // reading its old slot and this one is rebuilt on the next change.
      const info = this.#endpoints.get(x.endpointId);
      try {
        if (info) this.#writeEndpoint({ ...info, policyRevision: (info.policyRevision + 1) >>> 0 }, x.slot);
      } catch (err) {
        for (const y of staged.slice(i)) y.abandon();
        if (isDatapathError(err)) this.#health.record(`ep/${x.endpointId}/policy`, err, x.endpointId);
        throw err;
      }
      x.commit();
      this.#health.clear(`ep/${x.endpointId}/policy`);
    });
    this.#recordSlots(staged.map((x) => [x.endpointId, x.slot] as const));
  }

  /**
   * Registers an endpoint's mbr_endpoints entry without attaching programs, for programs driven by
   * BPF_PROG_TEST_RUN (fixtures, benchmarks) where there is no veth. Its policy changes publish
   * like an attached endpoint's (the entry names the active slot); `removeEndpointInfo` forgets it.
   */
  writeEndpointInfo(info: AttachedEndpoint): void {
    this.#writeEndpoint(info);
  }

  removeEndpointInfo(endpointId: number): void {
    const info = this.#endpoints.get(endpointId);
    if (!info) return;
    this.map('mbr_endpoints').delete(encodeIfindexKey(info.ifindex));
    this.#endpoints.delete(endpointId);
  }

  /** The policy slot the endpoint's programs read (or will read once attached). */
  activePolicySlot(endpointId: number): 0 | 1 | undefined {
    return this.#policies.get(endpointId)?.activeSlot;
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
    return readCtEntries(this.map('mbr_ct4'));
  }

  /** Deletes entries whose lifetime passed (LRU eviction covers pressure; this covers time). */
  ctGc(nowMonoSeconds: number = monotonicSeconds()): number {
    return collectCtGarbage(this.map('mbr_ct4'), nowMonoSeconds);
  }

  // ---- services: NodePort and socket-LB hooks (maps: this.lb) ----

  /** mbr_from_netdev / mbr_to_netdev on the node's underlay device (NodePort), pinned tcx links. */
  attachNetdev(ifname: string): void {
    attachNetdev(this.pinDir, ifname, {
      ingress: this.programFd('mbr_from_netdev'),
      egress: this.programFd('mbr_to_netdev'),
    });
  }

  /** The socket-LB programs on a cgroup v2 directory; they act only in the netns mbr_lb_config names. */
  attachSocketLb(cgroupDir: string): void {
    attachSocketLb(this.pinDir, cgroupDir, (p) => this.programFd(p as ProgramName));
  }

  // ---- events, metrics, status ----

  /** Subscribes to decoded events; the ring is drained every drainIntervalMs. Returns unsubscribe. */
  onEvents(cb: EventListener): () => void {
    return this.#ring.subscribe(cb);
  }

  /** Drains the ring now (tests, shutdown). */
  drainEvents(): void {
    this.#ring.drain();
  }

  lostEvents(): LostEvents[] {
    return readLostEvents(this.map('mbr_lost'));
  }

  metrics(): MetricsRow[] {
    return readMetrics(this.map('mbr_metrics'), nativeBpf().numPossibleCpus());
  }

  status(): DatapathStatus {
    const maps: MapStatus[] = [
      mapStatus('mbr_ipcache', this.#ipcache.size, this.map('mbr_ipcache').maxEntries),
      mapStatus('mbr_endpoints', this.#endpoints.size, this.map('mbr_endpoints').maxEntries),
    ];
    for (const [id, p] of [...this.#policies].sort((a, b) => a[0] - b[0]))
      maps.push(mapStatus(`mbr_policy/${id}`, p.size, p.capacity));
    const errors = this.#health.list();
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
    this.#ring.close();
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

  #createPolicy(endpointId: number): EndpointPolicy {
    const p = EndpointPolicy.create(endpointId, this.map('mbr_policy'), `${this.pinDir}/policy`, this.#policyMax);
    this.#recordSlots([[endpointId, p.activeSlot]]);
    return p;
  }

  /** Keeps mbr_policy_slot (the restart record of each endpoint's published slot) current. */
  #recordSlots(slots: ReadonlyArray<readonly [number, 0 | 1]>): void {
    if (slots.length === 0) return;
    const keys = Buffer.alloc(4 * slots.length);
    const values = Buffer.alloc(4 * slots.length);
    slots.forEach(([id, slot], i) => {
      keys.writeUInt32LE(id, 4 * i);
      values.writeUInt32LE(slot, 4 * i);
    });
    this.map('mbr_policy_slot').updateBatch(keys, values, slots.length);
  }

  #hookPrograms(): HookPrograms {
    return { ingress: this.programFd('mbr_from_pod'), egress: this.programFd('mbr_to_pod') };
  }

  /**
   * Writes the endpoint's mbr_endpoints entry and keeps it as the known one. The entry names the
   * policy slot the programs read: writing it is what publishes a staged policy change.
   */
  #writeEndpoint(info: AttachedEndpoint, slot = this.#policies.get(info.endpointId)?.activeSlot): void {
    const slotB = slot === 1;
    const flags = (info.flags & ~EndpointFlags.policySlotB) | (slotB ? EndpointFlags.policySlotB : 0);
    const next = { ...info, flags };
    this.map('mbr_endpoints').update(encodeIfindexKey(next.ifindex), encodeEndpointInfo(next));
    this.#endpoints.set(next.endpointId, next);
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
      // What the programs read, for an attached endpoint; else the slot recorded at its last change.
      const info = this.#endpoints.get(id);
      const recorded = this.map('mbr_policy_slot').lookup(u32Key(id))?.readUInt32LE(0);
      const slot =
        info !== undefined
          ? info.flags & EndpointFlags.policySlotB
            ? 1
            : 0
          : recorded === 0 || recorded === 1
            ? recorded
            : undefined;
      const p = EndpointPolicy.reopen(id, this.map('mbr_policy'), dir, this.#policyMax, slot);
      if (p) this.#policies.set(id, p);
    }
  }

  /** Attached endpoints' host-side veths by their address (network-order u32). */
  #localIps(): Map<number, number> {
    return new Map([...this.#endpoints.values()].map((e) => [ipv4ToNetworkU32(e.ipv4), e.ifindex]));
  }
}
