// What the flow parser needs to know about the node, injected so the parser stays pure: the
// agent implements it from its endpoint table, identity cache, ipcache and FQDN cache; tests
// and `--input-file` replays use InMemoryEnrichment.
import type { PolicyRef, TrafficDirection } from '../../policy/map-state-types.js';
import type { Service, Workload } from './flow.js';

export interface EndpointInfo {
  /** Local endpoint ID; 0 for a pod known by IP that runs on another node. */
  readonly id: number;
  readonly identity: number;
  readonly namespace: string;
  readonly podName: string;
  /** "source:key=value", e.g. "k8s:app=web". */
  readonly labels: readonly string[];
  readonly workloads: readonly Workload[];
  readonly nodeName?: string;
  readonly clusterName?: string;
}

/** How policy decided a connection, for attribution. */
export type PolicyOutcome = 'allowed' | 'denied' | 'default-deny';

export interface AttributionQuery {
  /** The local endpoint whose policy decided. */
  readonly endpointId: number;
  readonly direction: TrafficDirection;
  readonly remoteIdentity: number;
  readonly protocol: number;
  readonly port: number;
  readonly outcome: PolicyOutcome;
}

export interface FlowEnrichment {
  endpointById(id: number): EndpointInfo | undefined;
  /** Local endpoints, and pods elsewhere in the cluster (id 0) when the agent knows them. */
  endpointByIp(ip: string): EndpointInfo | undefined;
  /** Labels of a security identity ("reserved:world", "k8s:app=web", ...). */
  identityLabels(identity: number): readonly string[] | undefined;
  /** DNS names the FQDN cache holds for an IP. */
  namesByIp(ip: string): readonly string[] | undefined;
  serviceByAddress(ip: string, port: number): Service | undefined;
  interfaceName(ifindex: number): string | undefined;
  /**
   * The policies behind a verdict: for 'allowed' the rules whose entry allowed it, for 'denied' the
   * deny rules, for 'default-deny' the policies whose selection of the endpoint made this direction
   * default-deny. Empty when nothing is known (never undefined), so a drop always has an answer
   * shape.
   */
  policyAttribution(q: AttributionQuery): readonly PolicyRef[];
}

export interface InMemoryEnrichmentData {
  readonly endpoints?: readonly (EndpointInfo & { readonly ips: readonly string[] })[];
  readonly identities?: Readonly<Record<number, readonly string[]>>;
  readonly names?: Readonly<Record<string, readonly string[]>>;
  readonly services?: readonly { readonly ip: string; readonly port: number; readonly service: Service }[];
  readonly interfaces?: Readonly<Record<number, string>>;
  readonly attributions?: readonly (Partial<AttributionQuery> & { readonly policies: readonly PolicyRef[] })[];
}

/**
 * A table-backed FlowEnrichment. Attribution rules match when every field they set equals the
 * query's; the first match wins.
 */
export class InMemoryEnrichment implements FlowEnrichment {
  private readonly byId = new Map<number, EndpointInfo>();
  private readonly byIp = new Map<string, EndpointInfo>();
  private readonly services = new Map<string, Service>();

  constructor(private readonly data: InMemoryEnrichmentData = {}) {
    for (const ep of data.endpoints ?? []) {
      this.byId.set(ep.id, ep);
      for (const ip of ep.ips) this.byIp.set(ip, ep);
    }
    for (const s of data.services ?? []) this.services.set(`${s.ip}:${s.port}`, s.service);
  }

  endpointById(id: number): EndpointInfo | undefined {
    return this.byId.get(id);
  }

  endpointByIp(ip: string): EndpointInfo | undefined {
    return this.byIp.get(ip);
  }

  identityLabels(identity: number): readonly string[] | undefined {
    return this.data.identities?.[identity];
  }

  namesByIp(ip: string): readonly string[] | undefined {
    return this.data.names?.[ip];
  }

  serviceByAddress(ip: string, port: number): Service | undefined {
    return this.services.size === 0 ? undefined : this.services.get(`${ip}:${port}`);
  }

  interfaceName(ifindex: number): string | undefined {
    return this.data.interfaces?.[ifindex];
  }

  policyAttribution(q: AttributionQuery): readonly PolicyRef[] {
    for (const a of this.data.attributions ?? []) {
      if (
        (a.endpointId === undefined || a.endpointId === q.endpointId) &&
        (a.direction === undefined || a.direction === q.direction) &&
        (a.remoteIdentity === undefined || a.remoteIdentity === q.remoteIdentity) &&
        (a.protocol === undefined || a.protocol === q.protocol) &&
        (a.port === undefined || a.port === q.port) &&
        (a.outcome === undefined || a.outcome === q.outcome)
      )
        return a.policies;
    }
    return [];
  }
}
