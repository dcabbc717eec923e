// The eBPF datapath (src/datapath) behind the agent's DatapathPort. The agent runs inside its
// node's network namespace, where the host-side veths live, so endpoints attach with netnsPath ''.
// Pins live under the lab's bpffs directory and outlive the agent: a restarted agent re-opens
// them and the programs never stop enforcing.
import { networkInterfaces } from 'node:os';
import { Datapath } from '../datapath/datapath.js';
import { isDatapathError } from '../datapath/datapath-error.js';
import { cgroup2Root } from '../datapath/lb-attach.js';
import { formatIpv4Prefix, parseIpv4Prefix } from '../datapath/maps/ipcache-map.js';
import { nativeBpf } from '../datapath/native.js';
import type { LbDiff, RealizedLb } from '../lb/lb-table.js';
import type { DatapathEvent } from '../monitor/event-types.js';
import type { MapStateDiff } from '../policy/map-state-types.js';
import type { Endpoint, SubsystemHealth } from './api-types.js';
import type { DatapathPort, IpcacheChange, IpcacheEntry, RealizedPolicyEntry } from './subsystem-ports.js';

/** How often expired conntrack entries are removed; the LRU only evicts when the map is full. */
const CT_GC_INTERVAL_MS = 60_000;

export class BpfDatapathPort implements DatapathPort {
  readonly #dp: Datapath;
  readonly #ctGcTimer: NodeJS.Timeout;
  readonly #listeners = new Set<(e: unknown) => void>();
  readonly #off: () => void;

  constructor(pinDir: string) {
    this.#dp = Datapath.open({ pinDir });
    this.#off = this.#dp.onEvents((events: DatapathEvent[]) => {
      for (const e of events) for (const l of this.#listeners) l(e);
    });
    this.#ctGcTimer = setInterval(() => this.#dp.ctGc(), CT_GC_INTERVAL_MS).unref();
  }

  health(): SubsystemHealth {
    const s = this.#dp.status();
    const pressure = Math.max(0, ...s.maps.map((m) => m.pressure));
    const lost = s.lostEvents.reduce((n, l) => n + l.count, 0);
    const msg = `${s.endpoints} endpoints on ${s.attachMode} at ${s.pinDir}, max map pressure ${(pressure * 100).toFixed(1)}%, ${lost} events lost`;
    if (!s.ok)
      return { name: 'datapath', state: 'Degraded', message: `${msg}; ${s.errors.map((e) => e.message).join('; ')}` };
    return { name: 'datapath', state: 'Ok', message: msg };
  }

  async attachEndpoint(ep: Endpoint): Promise<void> {
    // Pinned links survive the agent: a restarted agent finds its endpoints attached already.
    if (this.#dp.endpoints().some((a) => a.endpointId === ep.id && a.ipv4 === ep.ipv4)) return;
    this.#dp.attachEndpoint({
      endpointId: ep.id,
      netnsPath: '',
      ifname: ep.hostIfname,
      ipv4: ep.ipv4,
      identity: ep.identity,
      enforceIngress: true,
      enforceEgress: true,
      // The CNI plugin reports both MACs; with them, pod-to-pod traffic on this node is delivered
      // by the datapath itself.
      ...(ep.podMac && ep.hostMac ? { podMac: ep.podMac, hostMac: ep.hostMac } : {}),
    });
  }

  async attachUnderlay(ifname: string): Promise<void> {
    this.#dp.attachNetworkDevice('', ifname);
  }

  async attachProxyLookup(): Promise<void> {
    this.#dp.attachProxyLookup('');
  }

  async detachEndpoint(ep: Endpoint): Promise<void> {
    this.#dp.detachEndpoint(ep.id);
  }

  async updateIpcache(change: IpcacheChange): Promise<void> {
    // Batches: a cluster's first sync or a namespace going away is thousands of prefixes.
    if (change.upserts.length > 0)
      this.#dp.upsertIpcacheBatch(
        change.upserts.map((e) => ({ prefix: parseIpv4Prefix(e.prefix), identity: e.identity })),
      );
    if (change.deletes.length > 0) this.#dp.deleteIpcacheBatch(change.deletes.map((p) => parseIpv4Prefix(p)));
  }

  async applyPolicies(diffs: readonly MapStateDiff[]): Promise<void> {
    this.#dp.applyPolicies(diffs);
  }

  async dumpPolicy(endpointId: number): Promise<RealizedPolicyEntry[]> {
    try {
      return this.#dp
        .policyEntries(endpointId)
        .map(
          (r) => [r.key, { isDeny: r.value.isDeny, proxyPort: r.value.proxyPort, authType: r.value.authType }] as const,
        );
    } catch (err) {
      // An endpoint with no policy map yet has nothing realized.
      if (isDatapathError(err, 'MBR_DATAPATH_NO_ENDPOINT')) return [];
      throw err;
    }
  }

  async dumpIpcache(): Promise<IpcacheEntry[]> {
    return this.#dp.ipcacheEntries().map((e) => ({ prefix: formatIpv4Prefix(e.prefix), identity: e.identity }));
  }

  async dumpCt(): Promise<unknown[]> {
    return this.#dp.ctEntries().map(([key, entry]) => ({ key, entry }));
  }

  /**
   * NodePort hooks on the device that holds the node's address, socket LB on the cgroup v2 root
   * (the programs act only in this netns: its cookie is in mbr_lb_config), and the LB config.
   */
  async enableServices(o: { nodeIp: string; maglevTableSize: number }): Promise<string> {
    const netnsCookie = nativeBpf().netnsCookie();
    this.#dp.lb.setConfig({ netnsCookie, nodeAddr: o.nodeIp, maglevSize: o.maglevTableSize });
    const parts: string[] = [];
    const device = Object.entries(networkInterfaces()).find(([, addrs]) =>
      (addrs ?? []).some((a) => a.family === 'IPv4' && a.address === o.nodeIp),
    )?.[0];
    if (device) {
      this.#dp.attachNetdev(device);
      parts.push(`NodePort on ${device} ${o.nodeIp}`);
    } else parts.push(`no NodePort: no device holds ${o.nodeIp || 'the node address'}`);
    const cgroup = cgroup2Root();
    if (cgroup) {
      this.#dp.attachSocketLb(cgroup);
      parts.push(`socket LB on ${cgroup} (netns cookie ${netnsCookie})`);
    } else parts.push('no socket LB: no cgroup v2 mounted');
    return parts.join(', ');
  }

  async applyLb(diff: LbDiff, maglevTableSize: number): Promise<void> {
    this.#dp.lb.apply(diff, maglevTableSize);
  }

  async dumpLb(): Promise<RealizedLb> {
    return this.#dp.lb.dump();
  }

  async lbMaglevTable(id: number): Promise<number[] | undefined> {
    const t = this.#dp.lb.maglevTable(id);
    return t && [...t];
  }

  onEvent(listener: (event: unknown) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  lostEvents(): number {
    return this.#dp.lostEvents().reduce((n, l) => n + l.count, 0);
  }

  async close(): Promise<void> {
    clearInterval(this.#ctGcTimer);
    this.#off();
    this.#dp.close();
  }
}
