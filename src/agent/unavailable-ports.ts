// The stand-in for a datapath that is not part of the build or failed to open: it says so in
// `membrane status` instead of pretending to enforce anything.
import type { LbDiff, RealizedLb } from '../lb/lb-table.js';
import type { MapStateDiff } from '../policy/map-state-types.js';
import type { Endpoint, SubsystemHealth } from './api-types.js';
import type { DatapathPort, IpcacheChange, IpcacheEntry, RealizedPolicyEntry } from './subsystem-ports.js';

export class NullDatapath implements DatapathPort {
  readonly #reason: string;
  constructor(reason: string) {
    this.#reason = reason;
  }
  health(): SubsystemHealth {
    return { name: 'datapath', state: 'Disabled', message: this.#reason };
  }
  async attachEndpoint(_ep: Endpoint): Promise<void> {}
  async detachEndpoint(_ep: Endpoint): Promise<void> {}
  async updateIpcache(_change: IpcacheChange): Promise<void> {}
  async applyPolicies(_diffs: readonly MapStateDiff[]): Promise<void> {}
  async dumpPolicy(_endpointId: number): Promise<RealizedPolicyEntry[]> {
    return [];
  }
  async dumpIpcache(): Promise<IpcacheEntry[]> {
    return [];
  }
  async dumpCt(): Promise<unknown[]> {
    return [];
  }
  onEvent(_listener: (event: unknown) => void): () => void {
    return () => undefined;
  }
  async enableServices(_o: { nodeIp: string; maglevTableSize: number }): Promise<string> {
    return `disabled: ${this.#reason}`;
  }
  async applyLb(_diff: LbDiff, _maglevTableSize: number): Promise<void> {}
  async dumpLb(): Promise<RealizedLb> {
    return { services: [], backends: [], revNat: [] };
  }
  async lbMaglevTable(_id: number): Promise<number[] | undefined> {
    return undefined;
  }
  lostEvents(): number {
    return 0;
  }
  async close(): Promise<void> {}
}
