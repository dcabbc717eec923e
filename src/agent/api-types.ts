// The agent's local API (HTTP/JSON on a unix socket): request and response shapes shared by the
// agent, the CNI plugin and the CLI.
import type { ClusterContainerPort, ClusterPolicy } from '../store/cluster-resources.js';

/** What the CNI plugin tells the agent on ADD. */
export interface EndpointRegistration {
  readonly containerId: string;
  readonly ifname: string;
  readonly netns: string;
  readonly hostIfname: string;
  readonly hostIfindex: number;
  readonly hostMac: string;
  readonly podMac: string;
  readonly ipv4: string;
  readonly podName: string;
  readonly namespace: string;
  /** Pod labels as the runtime passed them (key → value, no source prefix). */
  readonly labels: Readonly<Record<string, string>>;
  /** The pod's container ports, with their names (for named ports in policy). */
  readonly ports?: readonly ClusterContainerPort[];
}

export interface Endpoint extends EndpointRegistration {
  readonly id: number;
  readonly identity: number;
  /** Security labels of the identity, "source:key=value". */
  readonly identityLabels: readonly string[];
  readonly policyEnabledIngress: boolean;
  readonly policyEnabledEgress: boolean;
  readonly policyRevision: number;
  /** The ports this endpoint's L7 rules redirect to the node's proxy (Cilium's proxy-statistics). */
  readonly proxyRedirects?: readonly ProxyRedirect[];
  readonly state: 'ready' | 'waiting-for-identity' | 'regenerating' | 'not-ready';
  readonly createdAt: string;
}

export interface ProxyRedirect {
  readonly direction: 'ingress' | 'egress';
  readonly port: number;
  /** IP protocol number. */
  readonly protocol: number;
  /** The L7 parser: http, kafka or dns. */
  readonly parser: string;
  /** The proxy port the policy map entries carry. */
  readonly proxyPort: number;
}

export interface IdentityRecord {
  readonly id: number;
  readonly labels: readonly string[];
}

export type HealthState = 'Ok' | 'Degraded' | 'Failure' | 'Disabled';

export interface SubsystemHealth {
  readonly name: string;
  readonly state: HealthState;
  readonly message: string;
}

export interface AgentStatus {
  readonly node: string;
  readonly lab: string;
  readonly version: string;
  readonly startedAt: string;
  readonly podCIDR: string;
  readonly endpoints: number;
  readonly identities: number;
  readonly policyRevision: number;
  /** The policy revision the datapath enforces on this node (equal to policyRevision when caught up). */
  readonly realizedPolicyRevision: number;
  readonly subsystems: readonly SubsystemHealth[];
  readonly reconciler: ReconcilerStatus;
  /** The node's L7 proxy; absent when the agent runs without one. */
  readonly proxy?: ProxyStatus;
}

/** The node's L7 proxy as the agent sees it (src/agent/proxy-link.ts, proxy-supervisor.ts). */
export interface ProxyStatus {
  /** Proxy worker processes connected to the agent. */
  readonly workers: number;
  /** Redirects (endpoint, direction, port) with L7 rules on this node. */
  readonly redirects: number;
  readonly connections: number;
  readonly activeConnections: number;
  readonly denials: number;
  readonly process?: { readonly pid: number; readonly running: boolean; readonly restarts: number };
}

/** The store → engine → BPF maps pipeline, as `membrane status` shows it. */
export interface ReconcilerStatus {
  /** The last store revision whose changes the datapath holds. */
  readonly realizedRevision: number;
  readonly storeEvents: number;
  readonly policyEntriesWritten: number;
  readonly ipcacheEntriesWritten: number;
  readonly lbEntriesWritten?: number;
  readonly failures: number;
  /** The last failure, with when it happened; undefined once a later pass succeeded. */
  readonly lastError?: { readonly message: string; readonly at: string };
}

/** A policy document as stored, with the store revision of its last write. */
export interface StoredPolicy extends ClusterPolicy {
  readonly revision: number;
}

export interface PolicySet {
  /** The store's revision of the last policy change. */
  readonly revision: number;
  readonly policies: readonly StoredPolicy[];
}

export interface ApiErrorBody {
  readonly code: string;
  readonly message: string;
}
