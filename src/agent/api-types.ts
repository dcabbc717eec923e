// The agent's local API (HTTP/JSON on a unix socket): request and response shapes shared by the
// agent, the CNI plugin and the CLI.

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
}

export interface Endpoint extends EndpointRegistration {
  readonly id: number;
  readonly identity: number;
  /** Security labels of the identity, "source:key=value". */
  readonly identityLabels: readonly string[];
  readonly policyEnabledIngress: boolean;
  readonly policyEnabledEgress: boolean;
  readonly policyRevision: number;
  readonly state: 'ready' | 'waiting-for-identity' | 'regenerating' | 'not-ready';
  readonly createdAt: string;
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
}

/** A policy document as stored: the parsed YAML object and where it came from. */
export interface StoredPolicy {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly source: string;
  readonly revision: number;
  readonly doc: Readonly<Record<string, unknown>>;
}

export interface ApiErrorBody {
  readonly code: string;
  readonly message: string;
}
