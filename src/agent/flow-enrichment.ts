// What the flow parser needs to know about this node (src/hubble/flow/enrichment.ts), answered
// from the agent's endpoint table, the cluster's endpoints and identities (a snapshot refreshed
// by each reconcile, so a flow never reads the store) and the policy engine's map state.

import type { AttributionQuery, EndpointInfo, FlowEnrichment } from '../hubble/flow/enrichment.js';
import type { Workload } from '../hubble/flow/flow.js';
import type { PolicyRef } from '../policy/map-state-types.js';
import type { Agent } from './agent.js';

export class AgentFlowEnrichment implements FlowEnrichment {
  readonly #agent: Agent;

  constructor(agent: Agent) {
    this.#agent = agent;
  }

  endpointById(id: number): EndpointInfo | undefined {
    const ep = this.#agent.endpoint(id);
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

  /**
   * An endpoint ID names an endpoint on the node that numbered it, so only this node's endpoints
   * carry theirs; a pod on another node comes back with ID 0 (Hubble leaves Endpoint.ID unset
   * for it) but with its identity, namespace, pod name and labels.
   */
  endpointByIp(ip: string): EndpointInfo | undefined {
    const snap = this.#agent.clusterSnapshot();
    const ep = snap.endpointsByIp.get(ip);
    if (!ep) return undefined;
    return {
      id: ep.node === this.#agent.opts.node ? ep.id : 0,
      identity: ep.identity,
      namespace: ep.namespace,
      podName: ep.podName,
      labels: snap.identityLabels.get(ep.identity) ?? [],
      workloads: NO_WORKLOADS,
      nodeName: ep.node,
    };
  }

  identityLabels(identity: number): readonly string[] | undefined {
    return this.#agent.clusterSnapshot().identityLabels.get(identity);
  }

  namesByIp(_ip: string): readonly string[] | undefined {
    // No DNS proxy yet: the FQDN cache is empty.
    return undefined;
  }

  serviceByAddress(_ip: string, _port: number): undefined {
    return undefined;
  }

  interfaceName(ifindex: number): string | undefined {
    return this.#agent.endpoints().find((e) => e.hostIfindex === ifindex)?.hostIfname;
  }

  policyAttribution(q: AttributionQuery): readonly PolicyRef[] {
    return this.#agent.opts.policy.attribution(q);
  }
}

const NO_WORKLOADS: readonly Workload[] = [];
