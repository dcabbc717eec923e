// The policy engine (src/policy) behind the agent's PolicyPort. The engine is fed the cluster's
// desired state on every reconcile (namespaces, every node's pods, the stored policy documents);
// it keeps its own selector cache and returns each local endpoint's map state, which the agent
// diffs against what the datapath holds. Identities come from the cluster store, so every node's
// engine gives a label set the same number.

import type { AttributionQuery } from '../hubble/flow/enrichment.js';
import type { IdentityAllocator, IdentityScope } from '../identity/identity-allocator.js';
import { formatLabel, type LabelSet, makeLabelSet, podIdentityLabels } from '../identity/labels.js';
import { LOCAL_IDENTITY_SCOPE } from '../identity/reserved-identities.js';
import { lookupMapState } from '../policy/map-state.js';
import type { PolicyRef } from '../policy/map-state-types.js';
import { PolicyEngine } from '../policy/policy-engine.js';
import { parsePolicyObject } from '../policy/policy-parser.js';
import { policyRefKey } from '../policy/policy-rule.js';
import { tracePolicy } from '../policy/policy-trace.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { SubsystemHealth } from './api-types.js';
import type { EndpointPolicy, IpcacheEntry, PolicyInput, PolicyPort, TraceRequest } from './subsystem-ports.js';

export class EnginePolicyPort implements PolicyPort {
  readonly #engine: PolicyEngine;
  readonly #allocator: ClusterIdentityAllocator;
  #pods = new Map<string, string>();
  #namespaces = new Map<string, string>();
  #policies = new Map<string, { ref: PolicyRef; json: string }>();
  #error = '';

  constructor(cluster: ClusterStore) {
    this.#allocator = new ClusterIdentityAllocator(cluster);
    this.#engine = new PolicyEngine({ allocator: this.#allocator });
  }

  health(): SubsystemHealth {
    if (this.#error) return { name: 'policy', state: 'Degraded', message: this.#error };
    return {
      name: 'policy',
      state: 'Ok',
      message: `${this.#policies.size} policies, ${this.#pods.size} pods, ${this.#engine.identityList().length} identities`,
    };
  }

  validate(docs: readonly Record<string, unknown>[], file: string): void {
    validatePolicyDocs(docs, file);
  }

  compute(input: PolicyInput): readonly EndpointPolicy[] {
    const e = this.#engine;
    const nsSeen = new Set<string>();
    for (const ns of input.namespaces) {
      nsSeen.add(ns.name);
      const json = JSON.stringify(ns.labels);
      if (this.#namespaces.get(ns.name) !== json) {
        e.upsertNamespace({ name: ns.name, labels: ns.labels });
        this.#namespaces.set(ns.name, json);
      }
    }
    const nodes = [...new Set(input.clusterEndpoints.map((c) => c.node))].sort();
    const podSeen = new Set<string>();
    for (const c of input.clusterEndpoints) {
      const key = `${c.namespace}/${c.podName}`;
      podSeen.add(key);
      // Local endpoints keep their IDs; remote pods get IDs in a range of their own so they never
      // collide with a local one (the engine needs an ID per pod; only local ones reach the datapath).
      const endpointId = c.node === input.node ? c.id : (nodes.indexOf(c.node) + 1) * 0x10000 + c.id;
      const pod = {
        namespace: c.namespace,
        name: c.podName,
        labels: c.labels,
        ports: [],
        podIPs: [c.ipv4],
        endpointId,
      };
      const json = JSON.stringify(pod);
      if (this.#pods.get(key) !== json) {
        e.upsertPod(pod);
        this.#pods.set(key, json);
      }
    }
    for (const key of [...this.#pods.keys()])
      if (!podSeen.has(key)) {
        const [ns, name] = key.split('/');
        e.removePod(ns, name);
        this.#pods.delete(key);
      }
    this.#error = '';
    const polSeen = new Set<string>();
    for (const p of input.policies) {
      const json = JSON.stringify(p.doc);
      let parsed: ReturnType<typeof parsePolicyObject>;
      try {
        parsed = parsePolicyObject(p.doc, p.source);
      } catch (err) {
        this.#error = `${p.namespace}/${p.name}: ${(err as Error).message}`;
        continue;
      }
      for (const pol of parsed.policies) {
        const key = policyRefKey(pol.ref);
        polSeen.add(key);
        if (this.#policies.get(key)?.json !== json) {
          e.upsertPolicy(pol);
          this.#policies.set(key, { ref: pol.ref, json });
        }
      }
    }
    for (const [key, v] of [...this.#policies])
      if (!polSeen.has(key)) {
        e.removePolicy(v.ref);
        this.#policies.delete(key);
      }
    for (const ns of [...this.#namespaces.keys()])
      if (!nsSeen.has(ns)) {
        e.removeNamespace(ns);
        this.#namespaces.delete(ns);
      }
    return input.endpoints.map((ep) => {
      const status = e.endpointPolicyStatus(ep.id);
      return {
        endpointId: ep.id,
        ingressEnforced: status?.ingress.enforced ?? false,
        egressEnforced: status?.egress.enforced ?? false,
        entries: [...e.endpointMapState(ep.id).values()],
      };
    });
  }

  attribution(q: AttributionQuery): readonly PolicyRef[] {
    if (q.outcome === 'default-deny')
      return this.#engine.endpointPolicyStatus(q.endpointId)?.[q.direction].defaultDenyBy ?? [];
    const hit = lookupMapState(
      this.#engine.endpointMapState(q.endpointId),
      q.remoteIdentity,
      q.direction,
      q.protocol,
      q.port,
    );
    return hit.entry?.derivedFrom ?? [];
  }

  trace(q: TraceRequest): unknown {
    return tracePolicy(this.#engine, { src: q.src, dst: q.dst, dport: q.dport, protocol: q.protocol });
  }

  securityLabels(
    podLabels: Readonly<Record<string, string>>,
    namespace: string,
    namespaceLabels: Readonly<Record<string, string>>,
  ): string[] {
    return podIdentityLabels(podLabels, namespace, namespaceLabels).labels.map(formatLabel);
  }

  extraIpcache(): readonly IpcacheEntry[] {
    return (
      this.#engine
        .ipcacheEntries()
        // The datapath is IPv4-only for now; pods come from the cluster store.
        .filter((x) => x.source !== 'pod' && !x.prefix.includes(':'))
        .map((x) => ({ prefix: x.prefix, identity: x.identity }))
    );
  }
}

/** Parses every document with the engine's parser; throws its PolicyError (with `code`). */
export function validatePolicyDocs(docs: readonly Record<string, unknown>[], file: string): void {
  docs.forEach((d, i) => {
    parsePolicyObject(d, file, i + 1);
  });
}

/** Global identities from the cluster store (same on every node); local ones per node. */
class ClusterIdentityAllocator implements IdentityAllocator {
  readonly #cluster: ClusterStore;
  readonly #byId = new Map<number, LabelSet>();
  readonly #byKey = new Map<string, number>();
  #nextLocal = LOCAL_IDENTITY_SCOPE + 1;

  constructor(cluster: ClusterStore) {
    this.#cluster = cluster;
  }

  acquire(labels: LabelSet, scope: IdentityScope): number {
    const have = this.#byKey.get(labels.key);
    if (have !== undefined) return have;
    const id = scope === 'global' ? this.#cluster.allocateIdentity(labels.labels.map(formatLabel)) : this.#nextLocal++;
    this.#byKey.set(labels.key, id);
    this.#byId.set(id, labels);
    return id;
  }

  // Identities are never freed in the lab: the store keeps them, so numbers stay stable.
  release(_id: number): boolean {
    return false;
  }

  lookup(id: number): LabelSet | undefined {
    const local = this.#byId.get(id);
    if (local) return local;
    const rec = this.#cluster.identities().find((i) => i.id === id);
    if (!rec) return undefined;
    return makeLabelSet(
      rec.labels.map((l) => {
        const colon = l.indexOf(':');
        const eq = l.indexOf('=', colon);
        return eq < 0
          ? { source: l.slice(0, colon), key: l.slice(colon + 1), value: '' }
          : { source: l.slice(0, colon), key: l.slice(colon + 1, eq), value: l.slice(eq + 1) };
      }),
    );
  }

  lookupByLabels(labels: LabelSet): number | undefined {
    return this.#byKey.get(labels.key);
  }
}
