// A datapath port whose maps live in memory and outlive an agent, as pinned maps do: policy per
// endpoint, ipcache, LB maps, and a log of every write. The agent and DNS tests share it.
import type { Endpoint, SubsystemHealth } from '../../src/agent/api-types.js';
import type {
  DatapathPort,
  IpcacheChange,
  IpcacheEntry,
  RealizedPolicyEntry,
} from '../../src/agent/subsystem-ports.js';
import type { LbBackend, LbDiff, LbServiceKey, LbServiceValue, RealizedLb } from '../../src/lb/lb-table.js';
import { mapStateKey } from '../../src/policy/map-state.js';
import type { MapStateDiff } from '../../src/policy/map-state-types.js';

/** A datapath that keeps its maps in memory across agent restarts, like pinned maps do. */
export class MemoryDatapath implements DatapathPort {
  readonly maps = new Map<number, Map<string, RealizedPolicyEntry>>();
  readonly ipcache = new Map<string, number>();
  policyWrites: MapStateDiff[] = [];
  ipcacheWrites: IpcacheChange[] = [];
  attached = new Set<number>();
  failNext = 0;
  health(): SubsystemHealth {
    return { name: 'datapath', state: 'Ok', message: 'memory' };
  }
  async attachEndpoint(ep: Endpoint): Promise<void> {
    this.attached.add(ep.id);
  }
  async detachEndpoint(ep: Endpoint): Promise<void> {
    this.attached.delete(ep.id);
    this.maps.delete(ep.id);
  }
  async updateIpcache(change: IpcacheChange): Promise<void> {
    this.ipcacheWrites.push(change);
    for (const p of change.deletes) this.ipcache.delete(p);
    for (const e of change.upserts) this.ipcache.set(e.prefix, e.identity);
  }
  async applyPolicies(diffs: readonly MapStateDiff[]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw Object.assign(new Error('map update: ENOSPC'), { code: 'MBR_DATAPATH_MAP' });
    }
    for (const d of diffs) this.#apply(d);
  }
  #apply(diff: MapStateDiff): void {
    this.policyWrites.push(diff);
    const m = this.maps.get(diff.endpointId) ?? new Map<string, RealizedPolicyEntry>();
    for (const k of diff.deletes) m.delete(mapStateKey(k));
    for (const [k, v] of diff.adds)
      m.set(mapStateKey(k), [k, { isDeny: v.isDeny, proxyPort: v.proxyPort, authType: v.authType }]);
    this.maps.set(diff.endpointId, m);
  }
  async dumpPolicy(id: number): Promise<RealizedPolicyEntry[]> {
    return [...(this.maps.get(id)?.values() ?? [])];
  }
  async dumpIpcache(): Promise<IpcacheEntry[]> {
    return [...this.ipcache].map(([prefix, identity]) => ({ prefix, identity }));
  }
  /** Destination addresses of "connections" the datapath tracks: dumpCt reports them. */
  readonly ctAddresses = new Set<string>();
  async dumpCt(): Promise<unknown[]> {
    return [...this.ctAddresses].map((daddr) => ({ key: { saddr: '10.201.1.10', daddr } }));
  }
  /** LB maps as key text -> value, and every LB write. */
  readonly lbServices = new Map<string, [LbServiceKey, LbServiceValue]>();
  readonly lbBackends = new Map<number, LbBackend>();
  readonly lbRevNat = new Map<number, { address: string; port: number }>();
  readonly lbMaglev = new Map<number, Uint32Array>();
  lbWrites: LbDiff[] = [];
  async enableServices(): Promise<string> {
    return 'memory';
  }
  async applyLb(d: LbDiff): Promise<void> {
    this.lbWrites.push(d);
    const k = (x: LbServiceKey) => `${x.address}:${x.port}/${x.protocol}#${x.slot}`;
    for (const [id, b] of d.backends.upserts) this.lbBackends.set(id, b);
    for (const [id, f] of d.revNat.upserts) this.lbRevNat.set(id, { address: f.address, port: f.port });
    for (const [id, t] of d.maglev.upserts) this.lbMaglev.set(id, t);
    for (const [key, v] of d.services.upserts) this.lbServices.set(k(key), [key, v]);
    for (const key of d.services.deletes) this.lbServices.delete(k(key));
    for (const id of d.maglev.deletes) this.lbMaglev.delete(id);
    for (const id of d.revNat.deletes) this.lbRevNat.delete(id);
    for (const id of d.backends.deletes) this.lbBackends.delete(id);
  }
  async dumpLb(): Promise<RealizedLb> {
    return { services: [...this.lbServices.values()], backends: [...this.lbBackends], revNat: [...this.lbRevNat] };
  }
  async lbMaglevTable(id: number): Promise<number[] | undefined> {
    const t = this.lbMaglev.get(id);
    return t && [...t];
  }
  onEvent(): () => void {
    return () => undefined;
  }
  lostEvents(): number {
    return 0;
  }
  async close(): Promise<void> {}
  entries(id: number): string[] {
    return [...(this.maps.get(id)?.keys() ?? [])].sort();
  }
}
