// The agent's seams to the policy engine and the datapath. The agent owns the desired state and
// the reconcile loop; these ports turn it into map state and into BPF map writes. A port that is
// not available reports itself as Disabled with the reason, and the agent keeps serving
// everything else (endpoints, identities, stored policies).
import type { AttributionQuery } from '../hubble/flow/enrichment.js';
import type { MapStateDiff, PolicyEntry, PolicyKey, PolicyRef } from '../policy/map-state-types.js';
import type { ClusterEndpoint } from '../store/cluster-store.js';
import type { Endpoint, StoredPolicy, SubsystemHealth } from './api-types.js';

export interface PolicyInput {
  readonly policies: readonly StoredPolicy[];
  /** This node's endpoints: the ones to compute map state for. */
  readonly endpoints: readonly Endpoint[];
  /** Every endpoint of the cluster (remote ones are peers for selectors). */
  readonly clusterEndpoints: readonly ClusterEndpoint[];
  readonly node: string;
  readonly namespaces: ReadonlyArray<{ name: string; labels: Readonly<Record<string, string>> }>;
  readonly identities: ReadonlyArray<{ id: number; labels: readonly string[] }>;
}

export interface EndpointPolicy {
  readonly endpointId: number;
  readonly ingressEnforced: boolean;
  readonly egressEnforced: boolean;
  readonly entries: ReadonlyArray<readonly [PolicyKey, PolicyEntry]>;
}

export interface PolicyPort {
  health(): SubsystemHealth;
  /** Throws an error with a `code` when any document is invalid; changes nothing. */
  validate(docs: readonly Record<string, unknown>[], file: string): void;
  /** Map state for every local endpoint; undefined when no engine is available. */
  compute(input: PolicyInput): readonly EndpointPolicy[] | undefined;
  /** The identity labels ("source:key=value", sorted) of a pod. */
  securityLabels(
    podLabels: Readonly<Record<string, string>>,
    namespace: string,
    namespaceLabels: Readonly<Record<string, string>>,
  ): string[];
  /** The policies behind a datapath verdict, for flows (allowed_by / denied_by). */
  attribution(q: AttributionQuery): readonly PolicyRef[];
  /** Prefixes the engine maps to identities beyond pods (CIDR and FQDN identities). */
  extraIpcache(): readonly IpcacheEntry[];
  /** The verdict for a connection (pods as NS/POD, others by IP); undefined without an engine. */
  trace(q: TraceRequest): unknown;
}

export interface TraceRequest {
  readonly src: string;
  readonly dst: string;
  readonly dport: number;
  readonly protocol: string;
}

export interface IpcacheEntry {
  readonly prefix: string;
  readonly identity: number;
}

export interface DatapathPort {
  health(): SubsystemHealth;
  /** Attaches the programs to the endpoint's host veth; a no-op when they are attached already. */
  attachEndpoint(ep: Endpoint): Promise<void>;
  detachEndpoint(ep: Endpoint): Promise<void>;
  /** Makes the ipcache equal to `entries` (by diff). */
  syncIpcache(entries: readonly IpcacheEntry[]): Promise<void>;
  applyPolicy(diff: MapStateDiff): Promise<void>;
  dumpPolicy(endpointId: number): Promise<unknown[]>;
  dumpIpcache(): Promise<unknown[]>;
  dumpCt(): Promise<unknown[]>;
  onEvent(listener: (event: unknown) => void): () => void;
  close(): Promise<void>;
}
