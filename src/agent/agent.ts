// The node agent: the node's endpoints (persisted in its state directory), identities and
// policies (shared through the cluster store), and the reconcile loop that turns that desired
// state into datapath state by diff. The datapath's pinned maps are the realized state: the agent
// can die and restart without the datapath losing or changing anything.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { MapStateDiff, PolicyEntry, PolicyKey } from '../policy/map-state-types.js';
import type { ClusterEndpoint, ClusterStore, PolicySet } from '../store/cluster-store.js';
import { readJsonFile, writeJsonFile } from '../store/json-file.js';
import { VERSION } from '../version.js';
import type {
  AgentStatus,
  Endpoint,
  EndpointRegistration,
  IdentityRecord,
  StoredPolicy,
  SubsystemHealth,
} from './api-types.js';
import { defaultNamespaceLabels } from './security-labels.js';
import type { DatapathPort, EndpointPolicy, IpcacheEntry, PolicyPort } from './subsystem-ports.js';

export interface AgentOptions {
  readonly lab: string;
  readonly node: string;
  readonly stateDir: string;
  readonly podCIDR: string;
  readonly nodeIp: string;
  readonly cluster: ClusterStore;
  readonly policy: PolicyPort;
  readonly datapath: DatapathPort;
  readonly now?: () => Date;
}

/** The cluster's endpoints and identities as of the last reconcile, for per-flow lookups. */
export interface ClusterSnapshot {
  readonly endpointsByIp: ReadonlyMap<string, ClusterEndpoint>;
  readonly identityLabels: ReadonlyMap<number, readonly string[]>;
}

export class AgentError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status: number) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
    this.status = status;
  }
}

/** Reserved identities that always exist (Cilium's numbering). */
export const RESERVED_IDENTITIES: readonly IdentityRecord[] = [
  { id: 1, labels: ['reserved:host'] },
  { id: 2, labels: ['reserved:world'] },
  { id: 3, labels: ['reserved:unmanaged'] },
  { id: 4, labels: ['reserved:health'] },
  { id: 5, labels: ['reserved:init'] },
  { id: 6, labels: ['reserved:remote-node'] },
  { id: 7, labels: ['reserved:kube-apiserver'] },
];

interface LocalState {
  nextId: number;
  endpoints: Endpoint[];
}

export class Agent {
  readonly opts: AgentOptions;
  readonly startedAt: Date;
  #state: LocalState;
  #realized = new Map<number, Map<string, readonly [PolicyKey, PolicyEntry]>>();
  #policyRevision = 0;
  #lastError = '';
  #fingerprint = '';
  #timer: NodeJS.Timeout | undefined;
  #reconciling: Promise<void> = Promise.resolve();
  #dirty = true;
  #policyHealth: SubsystemHealth;
  #snapshot: ClusterSnapshot = { endpointsByIp: new Map(), identityLabels: new Map() };

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.startedAt = (opts.now ?? (() => new Date()))();
    this.#state = readJsonFile<LocalState>(this.#statePath()) ?? { nextId: 1, endpoints: [] };
    this.#policyHealth = opts.policy.health();
  }

  /** Drops endpoints whose pod is gone, re-attaches the rest, then reconciles every 200 ms. */
  async start(): Promise<void> {
    this.opts.cluster.putNode({ name: this.opts.node, ipv4: this.opts.nodeIp, podCIDR: this.opts.podCIDR });
    const alive: Endpoint[] = [];
    for (const ep of this.#state.endpoints) {
      if (ep.netns && !existsSync(ep.netns)) {
        this.opts.cluster.deleteEndpoint(this.opts.node, ep.id);
        continue;
      }
      alive.push(ep);
    }
    this.#state.endpoints = alive;
    this.#save();
    for (const ep of alive) await this.opts.datapath.attachEndpoint(ep);
    for (const ep of alive) {
      const dumped = (await this.opts.datapath.dumpPolicy(ep.id)) as Array<readonly [PolicyKey, PolicyEntry]>;
      this.#realized.set(ep.id, new Map(dumped.filter(Array.isArray).map((kv) => [keyString(kv[0]), kv] as const)));
    }
    await this.reconcile();
    this.#timer = setInterval(() => {
      void this.reconcile();
    }, 200);
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#reconciling;
    await this.opts.datapath.close();
  }

  async registerEndpoint(reg: EndpointRegistration): Promise<Endpoint> {
    const existing = this.#state.endpoints.find((e) => e.containerId === reg.containerId && e.ifname === reg.ifname);
    if (existing) return existing;
    if (this.#state.endpoints.some((e) => e.ipv4 === reg.ipv4))
      throw new AgentError('MBR_ENDPOINT_CONFLICT', `address ${reg.ipv4} already belongs to another endpoint`, 409);
    const nsLabels = this.#namespaceLabels(reg.namespace);
    const labels = this.opts.policy.securityLabels(reg.labels, reg.namespace, nsLabels);
    const identity = this.opts.cluster.allocateIdentity(labels);
    const ep: Endpoint = {
      ...reg,
      id: this.#state.nextId++,
      identity,
      identityLabels: labels,
      policyEnabledIngress: false,
      policyEnabledEgress: false,
      policyRevision: 0,
      state: 'ready',
      createdAt: this.#now().toISOString(),
    };
    this.#state.endpoints.push(ep);
    this.#save();
    this.opts.cluster.putEndpoint({
      node: this.opts.node,
      id: ep.id,
      ipv4: ep.ipv4,
      identity,
      namespace: ep.namespace,
      podName: ep.podName,
      labels: ep.labels,
    });
    // Policy first, then attach: the programs must never run on the veth before the endpoint's
    // policy map holds what its policy says.
    this.#dirty = true;
    await this.reconcile();
    await this.opts.datapath.attachEndpoint(this.endpoint(ep.id) ?? ep);
    return this.endpoint(ep.id)!;
  }

  async deleteEndpoint(containerId: string, ifname: string): Promise<Endpoint> {
    const ep = this.#state.endpoints.find((e) => e.containerId === containerId && e.ifname === ifname);
    if (!ep) throw new AgentError('MBR_ENDPOINT_NOT_FOUND', `no endpoint for container ${containerId}/${ifname}`, 404);
    this.#state.endpoints = this.#state.endpoints.filter((e) => e !== ep);
    this.#save();
    this.opts.cluster.deleteEndpoint(this.opts.node, ep.id);
    this.#realized.delete(ep.id);
    await this.opts.datapath.detachEndpoint(ep);
    this.#dirty = true;
    return ep;
  }

  endpoints(): Endpoint[] {
    return [...this.#state.endpoints].sort((a, b) => a.id - b.id);
  }

  endpoint(id: number): Endpoint | undefined {
    return this.#state.endpoints.find((e) => e.id === id);
  }

  endpointFor(containerId: string, ifname: string): Endpoint | undefined {
    return this.#state.endpoints.find((e) => e.containerId === containerId && e.ifname === ifname);
  }

  clusterSnapshot(): ClusterSnapshot {
    return this.#snapshot;
  }

  identities(): IdentityRecord[] {
    return [...RESERVED_IDENTITIES, ...this.opts.cluster.identities()];
  }

  policies(): PolicySet {
    return this.opts.cluster.policies();
  }

  /** Validates every document first; only a file that is valid as a whole changes the set. */
  async applyPolicies(docs: readonly Record<string, unknown>[], source: string): Promise<PolicySet> {
    this.opts.policy.validate(docs, source);
    const incoming = docs.map((d) => toStored(d, source, 0));
    const set = this.opts.cluster.updatePolicies((cur) => {
      const keep = cur.policies.filter((p) => !incoming.some((n) => samePolicy(n, p)));
      return [...keep, ...incoming.map((p) => ({ ...p, revision: cur.revision + 1 }))];
    });
    this.#dirty = true;
    await this.reconcile();
    return set;
  }

  async deletePolicies(docs: readonly Record<string, unknown>[], source: string): Promise<PolicySet> {
    const gone = docs.map((d) => toStored(d, source, 0));
    const set = this.opts.cluster.updatePolicies((cur) =>
      cur.policies.filter((p) => !gone.some((g) => samePolicy(g, p))),
    );
    this.#dirty = true;
    await this.reconcile();
    return set;
  }

  status(): AgentStatus {
    return {
      node: this.opts.node,
      lab: this.opts.lab,
      version: VERSION,
      startedAt: this.startedAt.toISOString(),
      podCIDR: this.opts.podCIDR,
      endpoints: this.#state.endpoints.length,
      identities: this.identities().length,
      policyRevision: this.opts.cluster.policies().revision,
      realizedPolicyRevision: this.#policyRevision,
      subsystems: [
        { name: 'store', state: 'Ok', message: `${this.opts.stateDir}, cluster store ${this.opts.cluster.dir}` },
        { name: 'endpoints', state: 'Ok', message: `${this.#state.endpoints.length} local endpoints` },
        this.#policyHealth,
        this.opts.datapath.health(),
        this.#lastError
          ? { name: 'reconciler', state: 'Degraded', message: this.#lastError }
          : { name: 'reconciler', state: 'Ok', message: `policy revision ${this.#policyRevision} realized` },
      ],
    };
  }

  /** One pass: ipcache and per-endpoint policy, each written as a diff. Runs one at a time. */
  reconcile(): Promise<void> {
    this.#reconciling = this.#reconciling.then(() => this.#reconcileOnce());
    return this.#reconciling;
  }

  async #reconcileOnce(): Promise<void> {
    const fp = this.opts.cluster.fingerprint();
    if (!this.#dirty && fp === this.#fingerprint) return;
    this.#dirty = false;
    this.#fingerprint = fp;
    try {
      const cluster = this.opts.cluster;
      const clusterEndpoints = cluster.endpoints();
      this.#snapshot = {
        endpointsByIp: new Map(clusterEndpoints.map((e) => [e.ipv4, e])),
        identityLabels: new Map(this.identities().map((i) => [i.id, i.labels])),
      };
      const ipcache = new Map<string, number>();
      for (const e of clusterEndpoints) ipcache.set(`${e.ipv4}/32`, e.identity);
      // The nodes: their underlay address and their pods' gateway address (on the node's lo).
      for (const n of cluster.nodes()) {
        const id = n.name === this.opts.node ? 1 : 6;
        if (n.ipv4) ipcache.set(`${n.ipv4}/32`, id);
        const gw = gatewayOf(n.podCIDR);
        if (gw) ipcache.set(`${gw}/32`, id);
      }
      const set = cluster.policies();
      const namespaces = cluster.namespaces();
      const computed = this.opts.policy.compute({
        policies: set.policies,
        endpoints: this.#state.endpoints,
        clusterEndpoints,
        node: this.opts.node,
        namespaces,
        identities: this.identities(),
      });
      for (const x of this.opts.policy.extraIpcache()) if (!ipcache.has(x.prefix)) ipcache.set(x.prefix, x.identity);
      await this.opts.datapath.syncIpcache(
        [...ipcache].map(([prefix, identity]): IpcacheEntry => ({ prefix, identity })),
      );
      this.#policyHealth = this.opts.policy.health();
      if (computed) {
        for (const ep of computed) await this.#realize(ep, set.revision);
      }
      this.#policyRevision = set.revision;
      this.#lastError = '';
    } catch (err) {
      this.#lastError = (err as Error).message;
      this.#dirty = true;
    }
  }

  async #realize(p: EndpointPolicy, revision: number): Promise<void> {
    const idx = this.#state.endpoints.findIndex((e) => e.id === p.endpointId);
    if (idx < 0) return;
    const before = this.#realized.get(p.endpointId) ?? new Map();
    const after = new Map(p.entries.map((kv) => [keyString(kv[0]), kv] as const));
    const adds: Array<readonly [PolicyKey, PolicyEntry]> = [];
    for (const [k, kv] of after) {
      const old = before.get(k);
      if (!old || !sameEnforcement(old[1], kv[1])) adds.push(kv);
    }
    const deletes = [...before].filter(([k]) => !after.has(k)).map(([, kv]) => kv[0]);
    if (adds.length > 0 || deletes.length > 0) {
      const diff: MapStateDiff = { endpointId: p.endpointId, adds, deletes };
      await this.opts.datapath.applyPolicy(diff);
    }
    this.#realized.set(p.endpointId, after);
    const ep = this.#state.endpoints[idx];
    if (
      ep.policyRevision !== revision ||
      ep.policyEnabledIngress !== p.ingressEnforced ||
      ep.policyEnabledEgress !== p.egressEnforced
    ) {
      this.#state.endpoints[idx] = {
        ...ep,
        policyRevision: revision,
        policyEnabledIngress: p.ingressEnforced,
        policyEnabledEgress: p.egressEnforced,
      };
      this.#save();
    }
  }

  #namespaceLabels(name: string): Record<string, string> {
    const ns = this.opts.cluster.namespaces().find((n) => n.name === name);
    return { ...defaultNamespaceLabels(name), ...(ns?.labels ?? {}) };
  }

  #statePath(): string {
    return join(this.opts.stateDir, 'endpoints.json');
  }

  #save(): void {
    writeJsonFile(this.#statePath(), this.#state);
  }

  #now(): Date {
    return (this.opts.now ?? (() => new Date()))();
  }
}

/** Whether two entries make the datapath do the same (attribution is not in the BPF map). */
function sameEnforcement(a: PolicyEntry, b: PolicyEntry): boolean {
  return a.isDeny === b.isDeny && a.proxyPort === b.proxyPort && a.authType === b.authType;
}

function gatewayOf(podCIDR: string): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/\d+$/.exec(podCIDR);
  if (!m) return undefined;
  return `${m[1]}.${m[2]}.${m[3]}.${Number(m[4]) + 1}`;
}

export function keyString(k: PolicyKey): string {
  return `${k.identity}/${k.direction}/${k.protocol}/${k.port}/${k.portPrefixLen}`;
}

function toStored(d: Record<string, unknown>, source: string, revision: number): StoredPolicy {
  const meta = (d.metadata ?? {}) as Record<string, unknown>;
  const kind = String(d.kind);
  const namespace = kind === 'CiliumClusterwideNetworkPolicy' ? '' : String(meta.namespace ?? 'default');
  return { kind, namespace, name: String(meta.name), source, revision, doc: d };
}

function samePolicy(a: StoredPolicy, b: StoredPolicy): boolean {
  return a.kind === b.kind && a.namespace === b.namespace && a.name === b.name;
}
