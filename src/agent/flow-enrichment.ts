// What the flow parser needs to know about this node (src/hubble/flow/enrichment.ts), answered
// from the agent's endpoint table and the policy engine, the node's one copy of the cluster's
// pods, identities and map state. No flow reads the store.
//
// As in Hubble, an endpoint's ID is set only for endpoints of this node: a pod on another node
// carries its identity, namespace, pod name, labels and node, with ID 0.

import type { AttributionQuery, EndpointInfo, FlowEnrichment } from '../hubble/flow/enrichment.js';
import type { Workload } from '../hubble/flow/flow.js';
import { formatLabel, type LabelSet } from '../identity/labels.js';
import { lookupMapState } from '../policy/map-state.js';
import type { PolicyRef } from '../policy/map-state-types.js';
import type { Agent } from './agent.js';

export class AgentFlowEnrichment implements FlowEnrichment {
  readonly #agent: Agent;
  readonly #formattedLabels = new WeakMap<LabelSet, readonly string[]>();

  constructor(agent: Agent) {
    this.#agent = agent;
  }

  endpointById(id: number): EndpointInfo | undefined {
    const ep = this.#agent.storedEndpoint(id);
    if (!ep) return undefined;
    return {
      id: ep.id,
      identity: ep.identity,
      namespace: ep.namespace,
      podName: ep.podName,
      labels: ep.identityLabels,
      workloads: NO_WORKLOADS,
      nodeName: this.#agent.opts.node,
    };
  }

  endpointByIp(ip: string): EndpointInfo | undefined {
    const pod = this.#agent.engine.endpointByIp(ip);
    if (!pod) return undefined;
    return {
      id: pod.isLocal ? pod.endpointId : 0,
      identity: pod.identity,
      namespace: pod.namespace,
      podName: pod.name,
      labels: this.#formatted(pod.labels),
      workloads: NO_WORKLOADS,
      ...(pod.nodeName !== undefined ? { nodeName: pod.nodeName } : {}),
    };
  }

  identityLabels(identity: number): readonly string[] | undefined {
    const labels = this.#agent.engine.identityLabels(identity);
    return labels && this.#formatted(labels);
  }

  /** The names the DNS proxy learned the IP for (destination_names / source_names), from the FQDN cache. */
  namesByIp(ip: string): readonly string[] | undefined {
    // Hubble prints these names without the trailing dot (and --to-fqdn compares them so).
    return this.#agent.opts.fqdn?.namesOf(ip)?.map((n) => (n.endsWith('.') ? n.slice(0, -1) : n));
  }

  serviceByAddress(_ip: string, _port: number): undefined {
    return undefined;
  }

  interfaceName(ifindex: number): string | undefined {
    return this.#agent.endpointByIfindex(ifindex)?.hostIfname;
  }

  /** Label sets are shared and immutable in the engine: each is formatted once, not per flow. */
  #formatted(labels: LabelSet): readonly string[] {
    let out = this.#formattedLabels.get(labels);
    if (!out) {
      out = labels.labels.map(formatLabel);
      this.#formattedLabels.set(labels, out);
    }
    return out;
  }

  policyAttribution(q: AttributionQuery): readonly PolicyRef[] {
    const engine = this.#agent.engine;
    if (q.outcome === 'default-deny')
      return engine.endpointPolicyStatus(q.endpointId)?.[q.direction].defaultDenyBy ?? [];
    const hit = lookupMapState(
      engine.endpointMapState(q.endpointId),
      q.remoteIdentity,
      q.direction,
      q.protocol,
      q.port,
    );
    return hit.entry?.derivedFrom ?? [];
  }
}

const NO_WORKLOADS: readonly Workload[] = [];
