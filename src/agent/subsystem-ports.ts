// The agent's seam to the datapath. The agent moves the policy engine's diffs (desired state)
// into it; the datapath owns realized state (pinned BPF maps) and can dump it, so a restarted
// agent writes only the differences. A datapath that cannot open reports itself Disabled with
// the reason (unavailable-ports.ts) and the agent keeps serving everything else.
import type { LbDiff, RealizedLb } from '../lb/lb-table.js';
import type { MapStateDiff, PolicyEntry, PolicyKey } from '../policy/map-state-types.js';
import type { Endpoint, SubsystemHealth } from './api-types.js';

export interface IpcacheEntry {
  /** IPv4 prefix text, "10.0.0.1/32". */
  readonly prefix: string;
  readonly identity: number;
}

export interface IpcacheChange {
  readonly upserts: readonly IpcacheEntry[];
  /** Prefix texts. */
  readonly deletes: readonly string[];
}

/** A realized policy entry: what the BPF map holds (no attribution). */
export type RealizedPolicyEntry = readonly [PolicyKey, Omit<PolicyEntry, 'derivedFrom'>];

export interface DatapathPort {
  health(): SubsystemHealth;
  /** Attaches the programs to the endpoint's host veth; a no-op when they are attached already. */
  attachEndpoint(ep: Endpoint): Promise<void>;
  detachEndpoint(ep: Endpoint): Promise<void>;
  /** Writes exactly these ipcache changes (batched). */
  updateIpcache(change: IpcacheChange): Promise<void>;
  /**
   * Writes the policy changes of several endpoints (one store change), each atomically for its
   * endpoint, published together.
   */
  applyPolicies(diffs: readonly MapStateDiff[]): Promise<void>;
  /** The endpoint's realized policy entries; empty when it has none. */
  dumpPolicy(endpointId: number): Promise<RealizedPolicyEntry[]>;
  dumpIpcache(): Promise<IpcacheEntry[]>;
  dumpCt(): Promise<unknown[]>;
  onEvent(listener: (event: unknown) => void): () => void;
  /**
   * Service load balancing: NodePort on the device holding nodeIp, socket LB for the node's own
   * processes, the node's address for NodePort SNAT. Returns a line for `membrane status`.
   */
  enableServices(o: { nodeIp: string; maglevTableSize: number }): Promise<string>;
  /** Writes exactly these LB changes. */
  applyLb(diff: LbDiff, maglevTableSize: number): Promise<void>;
  dumpLb(): Promise<RealizedLb>;
  /** A frontend's Maglev table (cell -> backend ID), undefined when it has none. */
  lbMaglevTable(id: number): Promise<number[] | undefined>;
  /** Events the datapath could not hand over (ring buffer full), counted since its maps were made. */
  lostEvents(): number;
  /** Attaches the underlay program (L7 redirects of traffic from other nodes) to this device. */
  attachUnderlay?(ifname: string): Promise<void>;
  /** Attaches the node proxy's listener lookup (sk_lookup) to this network namespace. */
  attachProxyLookup?(): Promise<void>;
  close(): Promise<void>;
}
