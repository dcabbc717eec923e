// The engine's normalized policy model: what every accepted NetworkPolicy,
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy becomes after validation. Kubernetes'
// and Cilium's surface differences are gone here; resolution works on this only.
import type { Prefix } from '../identity/cidr.js';
import type { LabelSelector } from './label-selector.js';
import type { PolicyRef } from './map-state-types.js';

export type Peer =
  /** Every peer, any identity (map key identity 0). */
  | { readonly kind: 'any' }
  | { readonly kind: 'labels'; readonly selector: LabelSelector }
  | { readonly kind: 'entity'; readonly entity: string }
  /**
   * Peers whose IP is in cidr and in no except prefix. matchPods: pod IPs count too
   * (Kubernetes ipBlock); otherwise only non-pod (CIDR / world) identities match (Cilium).
   */
  | { readonly kind: 'cidr'; readonly cidr: Prefix; readonly except: readonly Prefix[]; readonly matchPods: boolean }
  | { readonly kind: 'fqdn'; readonly matchName?: string; readonly matchPattern?: string }
  | {
      readonly kind: 'service';
      readonly namespace: string;
      readonly name?: string;
      readonly selector?: LabelSelector;
    };

export interface PortSpec {
  /** IP protocol number (6, 17, 132, 1, 58); never 0: ANY is expanded at validation. */
  readonly protocol: number;
  /** 0 = every port of the protocol. For ICMP, the ICMP type. */
  readonly port: number;
  /** Last port of a range; equal to port for one port. */
  readonly endPort: number;
  /** A named port, resolved per endpoint (ingress) or per destination (egress). */
  readonly name?: string;
}

export interface HttpRule {
  readonly method?: string;
  readonly path?: string;
  readonly host?: string;
  readonly headers?: readonly string[];
  readonly headerMatches?: ReadonlyArray<{
    readonly name: string;
    readonly value?: string;
    readonly mismatch?: string;
    readonly secret?: { readonly namespace?: string; readonly name: string };
  }>;
}

export interface DnsRule {
  readonly matchName?: string;
  readonly matchPattern?: string;
}

export interface KafkaRule {
  /** Kafka API keys this rule allows (role expanded); empty = every key. */
  readonly apiKeys: readonly number[];
  readonly apiVersion?: number;
  readonly clientID?: string;
  readonly topic?: string;
}

export type L7Parser = 'http' | 'dns' | 'kafka';

export interface L7Rules {
  readonly parser: L7Parser;
  readonly http?: readonly HttpRule[];
  readonly dns?: readonly DnsRule[];
  readonly kafka?: readonly KafkaRule[];
}

export interface RuleEntry {
  readonly isDeny: boolean;
  /** Empty = selects nothing. */
  readonly peers: readonly Peer[];
  /** undefined = every protocol and port. */
  readonly ports?: readonly PortSpec[];
  readonly l7?: L7Rules;
  /** 0 disabled, 1 required (spire), 2 test-always-fail. */
  readonly authType: number;
}

export interface DirectionRules {
  /** This rule turns on default-deny in the direction for the endpoints it selects. */
  readonly defaultDeny: boolean;
  readonly entries: readonly RuleEntry[];
}

export interface PolicyRule {
  /** The endpoints this rule applies to (matched on their identity labels). */
  readonly subject: LabelSelector;
  /** nodeSelector rules apply to nodes (host firewall); the engine keeps but does not resolve them. */
  readonly isNodeRule: boolean;
  /** undefined = the rule has no section for this direction (no enforcement from it). */
  readonly ingress?: DirectionRules;
  readonly egress?: DirectionRules;
  readonly log?: string;
  readonly description?: string;
}

export interface Policy {
  readonly ref: PolicyRef;
  readonly rules: readonly PolicyRule[];
}

export function policyRefKey(ref: PolicyRef): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}`;
}
