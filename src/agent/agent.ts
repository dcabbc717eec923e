// The node agent. It owns the node's endpoints (persisted in its state directory) and moves the
// cluster's desired state into the datapath, driven by the cluster store's watch:
//
//   store events ──► policy engine (src/policy: incremental, owns desired state)
//                ──► MapStateDiff per endpoint + ipcache diff ──► map reconcilers ──► BPF maps
//
// The engine is the only copy of the cluster's pods, namespaces, policies and ipcache on this
// node; the identity cache (identity-cache.ts) is the only table of identities; the datapath's
// pinned maps are realized state. The agent keeps no third copy: a change is written as exactly
// the engine's diff. On start it lists the store, feeds the engine, and writes only what differs
// from the pinned maps (a restart with nothing changed writes nothing), then follows the watch.
// It can die and restart without the datapath losing or changing anything.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { L7Record } from '../hubble/flow/parser.js';
import { hostPrefix } from '../identity/cidr.js';
import { formatLabel } from '../identity/labels.js';
import { RESERVED_IDENTITIES, reservedIdentityLabels } from '../identity/reserved-identities.js';
import { diffLb, emptyLbDiff, type LbDiff, type LbFrontendView, LbTable } from '../lb/lb-table.js';
import { DEFAULT_MAGLEV_TABLE_SIZE } from '../lb/maglev.js';
import { parseServiceObject, type ServiceSpec } from '../lb/service.js';
import type { MapStateDiff, PolicyRef } from '../policy/map-state-types.js';
import { PolicyEngine } from '../policy/policy-engine.js';
import { parsePolicyObject, validatePolicyDocuments } from '../policy/policy-parser.js';
import type { Namespace, Pod, Secret } from '../policy/world.js';
import {
  type ClusterEndpoint,
  type ClusterNamespace,
  type ClusterNode,
  type ClusterPolicy,
  type ClusterService,
  decodeIdentity,
  decodeValue,
  ENDPOINTS_PREFIX,
  endpointKey,
  IDENTITY_IDS_PREFIX,
  NAMESPACES_PREFIX,
  NODES_PREFIX,
  POLICIES_PREFIX,
  policyKey,
  SERVICES_PREFIX,
  STATE_PREFIX,
  serviceKey,
} from '../store/cluster-resources.js';
import { type ClusterStore, type KeyValue, StoreError, type Watch, type WatchEvent } from '../store/cluster-store.js';
import { IdentityGc } from '../store/identity-gc.js';
import { readJsonFile, writeJsonFile } from '../store/json-file.js';
import { claimPodCIDR, listNodes, type PodCidrPool, registerNode } from '../store/node-registry.js';
import { VERSION } from '../version.js';
import type {
  AgentStatus,
  Endpoint,
  EndpointRegistration,
  IdentityRecord,
  PolicySet,
  ProxyRedirect,
  ProxyStatus,
} from './api-types.js';
import type { FqdnManager } from './fqdn-manager.js';
import { IdentityCache, labelSetOf } from './identity-cache.js';
import { diffIpcache, diffPolicy, ipv4Change, mergeDiffs } from './map-reconcilers.js';
import type { PipelineTrace } from './pipeline-trace.js';
import type { DatapathPort } from './subsystem-ports.js';

export interface AgentOptions {
  readonly lab: string;
  readonly node: string;
  readonly stateDir: string;
  readonly podCIDR: string;
  readonly nodeIp: string;
  readonly store: ClusterStore;
  readonly datapath: DatapathPort;
  readonly now?: () => Date;
  readonly trace?: PipelineTrace;
  /** The node key's lease: other nodes forget this node this long after the agent stops. */
  readonly nodeLeaseTtlSeconds?: number;
  /** toFQDNs state: its names are in the engine before the first map write. */
  readonly fqdn?: FqdnManager;
  /** Maglev table size M, one of Cilium's primes (default 16381). */
  readonly maglevTableSize?: number;
  /** The cluster pool the pod CIDR is a block of (default: the pod CIDR itself, one block). */
  readonly podCidrPool?: PodCidrPool;
  /** Identity GC (Cilium's operator): how often to look and how long an unheld id is kept. */
  readonly identityGc?: { readonly intervalMs: number; readonly graceMs: number };
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

interface LocalState {
  nextId: number;
  endpoints: Endpoint[];
}

export class Agent {
  readonly opts: AgentOptions;
  readonly startedAt: Date;
  /** Desired state: the cluster as this node sees it, and every local endpoint's map state. */
  readonly engine: PolicyEngine;
  readonly identities: IdentityCache;
  #local: LocalState;
  #watch: Watch | undefined;
  #queue: Promise<void> = Promise.resolve();
  #realizedRevision = 0;
  #policyRevision = 0;
  #realizedPolicyRevision = 0;
  #waiters: Array<{ revision: number; resolve: () => void; reject: (err: Error) => void }> = [];
  #needsResync = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #keepAliveTimer: NodeJS.Timeout | undefined;
  #lease = 0;
  #policyErrors = new Map<string, string>();
  #docRefs = new Map<string, PolicyRef[]>();
  /** `v1` Secrets from the store (policy documents of kind Secret), by key: for the node proxy. */
  #secrets = new Map<string, readonly Secret[]>();
  /** Store keys the engine holds (no values: the engine has those), and each endpoint key's pod. */
  #keys = new Set<string>();
  #podOfKey = new Map<string, { namespace: string; name: string }>();
  #stats = { storeEvents: 0, policyEntriesWritten: 0, ipcacheEntriesWritten: 0, lbEntriesWritten: 0, failures: 0 };
  /** Services (desired LB state); built in start() once the realized IDs are known. */
  #lb: LbTable | undefined;
  #lbStatus = 'not enabled yet';
  #serviceErrors = new Map<string, string>();
  #lastError: { message: string; at: string } | undefined;
  #stopped = false;
  #gc: IdentityGc | undefined;
  /** Local endpoint changes the store has not taken yet (it did not answer): keys to put or delete. */
  readonly #pendingPublish = new Set<number>();
  readonly #pendingDelete = new Set<string>();
  #flushTimer: NodeJS.Timeout | undefined;
  #realizedListeners = new Set<() => void>();
  #l7Listeners = new Set<(rec: L7Record) => void>();
  #proxy: { status(): ProxyStatus } | undefined;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.startedAt = this.#now();
    this.#local = readJsonFile<LocalState>(this.#statePath()) ?? { nextId: 1, endpoints: [] };
    this.identities = new IdentityCache(opts.store, opts.node);
    this.engine = new PolicyEngine({ allocator: this.identities });
  }

  /**
   * Drops endpoints whose pod is gone, registers the node, loads the store into the engine,
   * writes what differs from the pinned maps, attaches the endpoints, then follows the watch.
   */
  async start(): Promise<void> {
    const { store, node } = this.opts;
    const alive: Endpoint[] = [];
    for (const ep of this.#local.endpoints) {
      if (ep.netns && !existsSync(ep.netns)) await store.delete(endpointKey(node, ep.id));
      else alive.push(ep);
    }
    this.#local.endpoints = alive;
    this.#save();
    const [block] = this.opts.podCIDR.split('/');
    const prefixLen = Number(this.opts.podCIDR.split('/')[1]);
    await claimPodCIDR(
      store,
      node,
      this.opts.podCidrPool ?? { cidr: `${block}/${prefixLen}`, maskSize: prefixLen },
      this.opts.podCIDR,
    );
    const ttl = this.opts.nodeLeaseTtlSeconds ?? 30;
    await this.#register();
    // (An endpoint recorded without its identity's labels gets its hold when it is created again.)
    for (const ep of alive) if (ep.identityLabels.length > 0) await this.identities.hold(labelSetOf(ep.identityLabels));
    this.#keepAliveTimer = setInterval(() => this.#keepAlive(), (ttl * 1000) / 3).unref();
    if (this.opts.identityGc) {
      this.#gc = new IdentityGc({
        store,
        node,
        lease: () => this.#lease,
        ...this.opts.identityGc,
        onError: (err) => {
          if (!isUnreachable(err)) process.stderr.write(`membrane agent: identity gc: ${err.message}\n`);
        },
      });
      this.#gc.start();
    }

    // Services: the LB table keeps the IDs the maps hold, so established connections never move.
    const realizedLb = await this.opts.datapath.dumpLb();
    this.#lb = new LbTable({
      node,
      nodeIp: this.opts.nodeIp,
      pods: (ns) => this.engine.podsInNamespace(ns),
      maglevTableSize: this.maglevTableSize,
      seed: {
        backends: realizedLb.backends,
        frontends: realizedLb.services
          .filter(([k]) => k.slot === 0)
          .map(([k, v]) => [v.revNatIndex, { address: k.address, port: k.port, protocol: k.protocol }]),
      },
    });
    this.#lbStatus = await this.opts.datapath.enableServices({
      nodeIp: this.opts.nodeIp,
      maglevTableSize: this.maglevTableSize,
    });
    const listed = await store.list(STATE_PREFIX);
    await this.#load(listed.items);
    this.#realizedRevision = listed.revision;
    this.#realizedPolicyRevision = this.#policyRevision;
    // FQDN IPs learned before the restart stay in the ipcache: the engine gets them before the
    // first comparison with the pinned maps.
    for (const [name, ips] of this.opts.fqdn?.selectedNames(this.engine.fqdnSelectors()) ?? [])
      this.engine.updateFqdn(name, ips);
    await this.#realizeByDiff('start');
    for (const ep of alive) await this.opts.datapath.attachEndpoint(ep);
    this.#watch = store.watch(STATE_PREFIX, listed.revision, {
      onEvents: (events) => this.#enqueue(() => this.#onEvents(events)),
      onCompacted: () => this.#enqueue(() => this.#resync('compacted')),
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watch?.close();
    await this.#gc?.stop();
    if (this.#flushTimer) clearInterval(this.#flushTimer);
    if (this.#keepAliveTimer) clearInterval(this.#keepAliveTimer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    await this.#queue;
    for (const w of this.#waiters) w.resolve();
    this.#waiters = [];
    await this.opts.datapath.close();
  }

  // ---- endpoints ----

  async registerEndpoint(reg: EndpointRegistration): Promise<Endpoint> {
    const existing = this.endpointFor(reg.containerId, reg.ifname);
    if (existing) return existing;
    if (this.#local.endpoints.some((e) => e.ipv4 === reg.ipv4))
      throw new AgentError('MBR_ENDPOINT_CONFLICT', `address ${reg.ipv4} already belongs to another endpoint`, 409);
    const id = this.#local.nextId++;
    const pod = this.#pod({ ...toClusterEndpoint(this.opts.node, id, 0, reg) });
    const labels = this.engine.podIdentityLabels(pod);
    const identity = await this.identities.hold(labels);
    const ep: Endpoint = {
      ...reg,
      ports: reg.ports ?? [],
      id,
      identity,
      identityLabels: labels.labels.map(formatLabel),
      policyEnabledIngress: false,
      policyEnabledEgress: false,
      policyRevision: 0,
      state: 'ready',
      createdAt: this.#now().toISOString(),
    };
    this.#local.endpoints.push(ep);
    this.#save();
    // Policy first, then attach: the programs must never run on the veth before the endpoint's
    // policy map holds what its policy says. The watch brings the endpoint to the engine; while
    // the store does not answer, the agent hands it to the engine itself and publishes it later.
    const key = endpointKey(this.opts.node, id);
    try {
      await this.waitRealized(await this.#publishEndpoint(ep, identity));
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      this.#pendingPublish.add(id);
      const value = JSON.stringify(toClusterEndpoint(this.opts.node, id, identity, ep));
      await this.#applyLocally({ type: 'put', key, value, revision: this.#realizedRevision });
    }
    await this.opts.datapath.attachEndpoint(this.endpoint(id) ?? ep);
    return this.endpoint(id)!;
  }

  async deleteEndpoint(containerId: string, ifname: string): Promise<Endpoint> {
    const ep = this.endpointFor(containerId, ifname);
    if (!ep) throw new AgentError('MBR_ENDPOINT_NOT_FOUND', `no endpoint for container ${containerId}/${ifname}`, 404);
    this.#local.endpoints = this.#local.endpoints.filter((e) => e.id !== ep.id);
    this.#save();
    await this.opts.datapath.detachEndpoint(ep);
    const key = endpointKey(this.opts.node, ep.id);
    this.#pendingPublish.delete(ep.id);
    try {
      await this.waitRealized(await this.opts.store.delete(key));
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      this.#pendingDelete.add(key);
      await this.#applyLocally({ type: 'delete', key, value: '', revision: this.#realizedRevision });
    }
    await this.identities.unhold(ep.identity).catch((err) => this.#fail(err as Error));
    return ep;
  }

  endpoints(): Endpoint[] {
    return this.#local.endpoints.map((e) => this.#withPolicyStatus(e)).sort((a, b) => a.id - b.id);
  }

  endpoint(id: number): Endpoint | undefined {
    const ep = this.#local.endpoints.find((e) => e.id === id);
    return ep && this.#withPolicyStatus(ep);
  }

  /** The local endpoint on this host veth, as stored (for per-flow lookups: no policy status). */
  endpointByIfindex(ifindex: number): Endpoint | undefined {
    return this.#local.endpoints.find((e) => e.hostIfindex === ifindex);
  }

  /** The local endpoint, as stored (for per-flow lookups: no policy status). */
  storedEndpoint(id: number): Endpoint | undefined {
    return this.#local.endpoints.find((e) => e.id === id);
  }

  endpointFor(containerId: string, ifname: string): Endpoint | undefined {
    const ep = this.#local.endpoints.find((e) => e.containerId === containerId && e.ifname === ifname);
    return ep && this.#withPolicyStatus(ep);
  }

  /** Reserved identities, then the cluster's global ones. */
  identityList(): IdentityRecord[] {
    const reserved = RESERVED_IDENTITIES.map((r) => ({
      id: r.id,
      labels: reservedIdentityLabels(r.id)!.labels.map(formatLabel),
    }));
    return [...reserved, ...this.identities.globalIdentities()];
  }

  // ---- policies ----

  async policies(): Promise<PolicySet> {
    const listed = await this.opts.store.list(POLICIES_PREFIX);
    const policies = listed.items.flatMap((kv) => {
      const p = decodeValue<ClusterPolicy>(kv);
      return p ? [{ ...p, doc: redactSecretDoc(p.doc), revision: kv.modRevision }] : [];
    });
    // The last store revision that changed a policy, as this node has seen it (deletes too).
    return { revision: Math.max(this.#policyRevision, ...policies.map((p) => p.revision)), policies };
  }

  /**
   * Validates every document first; only a file that is valid as a whole is written, in one
   * store transaction. Returns once this node's datapath enforces it.
   */
  async applyPolicies(docs: readonly Record<string, unknown>[], source: string): Promise<PolicySet> {
    validatePolicyDocuments(docs, source);
    const puts = docs.map((d) => {
      const p = toClusterPolicy(d, source);
      return { type: 'put' as const, key: policyKey(p), value: JSON.stringify(p) };
    });
    const r = await this.opts.store.txn({ compare: [], success: puts });
    await this.waitRealized(r.revision);
    return this.policies();
  }

  async deletePolicies(docs: readonly Record<string, unknown>[], source: string): Promise<PolicySet> {
    const dels = docs.map((d) => ({ type: 'delete' as const, key: policyKey(toClusterPolicy(d, source)) }));
    const r = await this.opts.store.txn({ compare: [], success: dels });
    await this.waitRealized(r.revision);
    return this.policies();
  }

  // ---- services ----

  get maglevTableSize(): number {
    return this.opts.maglevTableSize ?? DEFAULT_MAGLEV_TABLE_SIZE;
  }

  /** Every service frontend on this node with its backends (`membrane service list`). */
  serviceList(): LbFrontendView[] {
    return this.#lb?.frontends() ?? [];
  }

  /** The service of a frontend or of a backend it translates to (flows' destination_service). */
  serviceOfAddress(address: string, port: number): { namespace: string; name: string } | undefined {
    return this.#lb?.serviceOfAddress(address, port);
  }

  /** Validates every Service document first; a file valid as a whole is written in one transaction. */
  async applyServices(docs: readonly Record<string, unknown>[], source: string): Promise<{ revision: number }> {
    const specs = docs.map((d, i) => parseServiceObject(d, `${source}: document ${i + 1}`));
    const puts = specs.map((spec, i) => {
      const rec: ClusterService = { namespace: spec.namespace, name: spec.name, source, doc: docs[i] };
      return { type: 'put' as const, key: serviceKey(spec), value: JSON.stringify(rec) };
    });
    const r = await this.opts.store.txn({ compare: [], success: puts });
    await this.waitRealized(r.revision);
    return { revision: r.revision };
  }

  async deleteServices(docs: readonly Record<string, unknown>[], source: string): Promise<{ revision: number }> {
    const dels = docs.map((d, i) => ({
      type: 'delete' as const,
      key: serviceKey(parseServiceObject(d, `${source}: document ${i + 1}`)),
    }));
    const r = await this.opts.store.txn({ compare: [], success: dels });
    await this.waitRealized(r.revision);
    return { revision: r.revision };
  }

  // ---- status ----

  /**
   * `policyRevision` is the store's revision (what every node should hold) and
   * `realizedPolicyRevision` what this node's maps hold: equal once the node caught up.
   */
  async status(): Promise<AgentStatus> {
    const storeHealth = await this.opts.store.health();
    const storeRevision = storeHealth.state === 'Ok' ? await this.opts.store.currentRevision().catch(() => 0) : 0;
    const pending = this.#pendingPublish.size + this.#pendingDelete.size + this.identities.holdStats().pending;
    const policyErrors = [...this.#policyErrors.values()];
    const ok = this.#lastError === undefined;
    return {
      node: this.opts.node,
      lab: this.opts.lab,
      version: VERSION,
      startedAt: this.startedAt.toISOString(),
      podCIDR: this.opts.podCIDR,
      endpoints: this.#local.endpoints.length,
      identities: this.identityList().length,
      policyRevision: Math.max(storeRevision, this.#realizedRevision),
      realizedPolicyRevision: this.#realizedRevision,
      subsystems: [
        {
          name: 'store',
          state: storeHealth.state,
          message: `${storeHealth.message}, revision ${this.#realizedRevision} realized${pending > 0 ? `, ${pending} local changes waiting for the store` : ''}`,
        },
        { name: 'endpoints', state: 'Ok', message: `${this.#local.endpoints.length} local endpoints` },
        policyErrors.length > 0
          ? { name: 'policy', state: 'Degraded', message: policyErrors.join('; ') }
          : {
              name: 'policy',
              state: 'Ok',
              message: `${this.engine.policyRefs().length} policies, ${this.engine.identityList().length} identities selected against`,
            },
        this.opts.datapath.health(),
        ...(this.opts.fqdn ? [this.opts.fqdn.health()] : []),
        this.#serviceErrors.size > 0
          ? { name: 'services', state: 'Degraded', message: [...this.#serviceErrors.values()].join('; ') }
          : {
              name: 'services',
              state: 'Ok',
              message: `${this.#lb?.services().length ?? 0} services, ${this.serviceList().length} frontends; ${this.#lbStatus}`,
            },
        ok
          ? {
              name: 'reconciler',
              state: 'Ok',
              message: `store revision ${this.#realizedRevision} realized (policy revision ${this.#realizedPolicyRevision})`,
            }
          : { name: 'reconciler', state: 'Degraded', message: `${this.#lastError!.at}: ${this.#lastError!.message}` },
      ],
      reconciler: {
        realizedRevision: this.#realizedRevision,
        ...this.#stats,
        ...(this.#lastError ? { lastError: this.#lastError } : {}),
      },
      ...(this.#proxy ? { proxy: this.#proxy.status() } : {}),
    };
  }

  /** Like waitRealized, with a deadline: false when it passed first. */
  async waitRealizedFor(revision: number, timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([this.waitRealized(revision).then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * toFQDNs (from the DNS proxy through fqdn-manager.ts): each name's current IPs into the
   * engine, its diffs into the ipcache and policy maps, in the pipeline's order. Resolves once
   * the maps hold them.
   */
  applyFqdnNames(names: ReadonlyMap<string, readonly string[]>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#enqueue(async () => {
        try {
          if (this.#stopped) return resolve();
          const diffs: MapStateDiff[] = [];
          for (const [name, ips] of names) diffs.push(...this.engine.updateFqdn(name, ips));
          await this.#write(this.#realizedRevision, diffs, ipv4Change(this.engine.takeIpcacheDiff()));
          resolve();
        } catch (err) {
          reject(err as Error);
          throw err;
        }
      });
    });
  }

  // ---- the pipeline ----

  #enqueue(step: () => Promise<void>): void {
    this.#queue = this.#queue.then(step).catch((err) => this.#fail(err as Error));
  }

  /** One store write's changes: into the engine, its diffs into the maps. */
  async #onEvents(events: readonly WatchEvent[]): Promise<void> {
    if (this.#stopped) return;
    const t0 = performance.now();
    const revision = events[events.length - 1].revision;
    this.#stats.storeEvents += events.length;
    this.opts.trace?.('store-event', {
      rev: revision,
      keys: events.length,
      first: events[0].key.slice(STATE_PREFIX.length),
    });
    if (this.#needsResync) {
      await this.#resync('retry after a failure');
    }
    const diffs: MapStateDiff[] = [];
    for (const ev of events) diffs.push(...(await this.#applyEvent(ev)));
    const ipcache = ipv4Change(this.engine.takeIpcacheDiff());
    const lb = this.#lb?.takeDiff() ?? emptyLbDiff();
    const t1 = performance.now();
    this.opts.trace?.('engine-diff', {
      rev: revision,
      endpoints: diffs.length,
      adds: diffs.reduce((n, d) => n + d.adds.length, 0),
      deletes: diffs.reduce((n, d) => n + d.deletes.length, 0),
      ipcache: `+${ipcache.upserts.length}/-${ipcache.deletes.length}`,
      ms: (t1 - t0).toFixed(2),
    });
    try {
      await this.#write(revision, diffs, ipcache, lb);
    } catch (err) {
      this.#notRealized(revision, err as Error);
      throw err;
    }
    this.#realized(revision);
  }

  async #write(
    revision: number,
    diffs: readonly MapStateDiff[],
    ipcache: ReturnType<typeof ipv4Change>,
    lb: LbDiff = emptyLbDiff(),
  ): Promise<void> {
    try {
      if (ipcache.upserts.length > 0 || ipcache.deletes.length > 0) {
        const t = performance.now();
        await this.opts.datapath.updateIpcache(ipcache);
        this.#stats.ipcacheEntriesWritten += ipcache.upserts.length + ipcache.deletes.length;
        this.opts.trace?.('map-write', {
          rev: revision,
          map: 'ipcache',
          upserts: ipcache.upserts.length,
          deletes: ipcache.deletes.length,
          ms: (performance.now() - t).toFixed(2),
        });
      }
      // An endpoint being deleted has left the local table already; its maps go with it.
      const local = new Set(this.#local.endpoints.map((e) => e.id));
      const mine = mergeDiffs(diffs.filter((d) => local.has(d.endpointId)));
      if (mine.length > 0) {
        const t = performance.now();
        await this.opts.datapath.applyPolicies(mine);
        const entries = mine.reduce((n, d) => n + d.adds.length + d.deletes.length, 0);
        this.#stats.policyEntriesWritten += entries;
        this.opts.trace?.('map-write', {
          rev: revision,
          map: 'policy',
          endpoints: mine.length,
          entries,
          ms: (performance.now() - t).toFixed(2),
        });
      }
      const lbEntries = lbDiffSize(lb);
      if (lbEntries > 0) {
        const t = performance.now();
        await this.opts.datapath.applyLb(lb, this.maglevTableSize);
        this.#stats.lbEntriesWritten += lbEntries;
        this.opts.trace?.('map-write', {
          rev: revision,
          map: 'lb',
          entries: lbEntries,
          ms: (performance.now() - t).toFixed(2),
        });
      }
      if (this.#lastError && !this.#needsResync) this.#lastError = undefined;
    } catch (err) {
      // The datapath may hold part of this change: the next pass compares it with the engine.
      this.#needsResync = true;
      this.#scheduleRetry();
      throw err;
    }
  }

  /** Applies one store event to the engine (allocating identities first); returns its diffs. */
  async #applyEvent(ev: WatchEvent): Promise<MapStateDiff[]> {
    const key = ev.key;
    const kv = { key, value: ev.value };
    if (ev.type === 'put') this.#keys.add(key);
    else this.#keys.delete(key);
    if (key.startsWith(IDENTITY_IDS_PREFIX)) {
      const rec = ev.type === 'put' ? decodeIdentity(kv) : undefined;
      if (rec) this.identities.upsertGlobal(rec);
      else this.identities.removeGlobal(Number(key.slice(IDENTITY_IDS_PREFIX.length)));
      return [];
    }
    if (key.startsWith(NAMESPACES_PREFIX)) {
      const ns = ev.type === 'put' ? decodeValue<ClusterNamespace>(kv) : undefined;
      const name = key.slice(NAMESPACES_PREFIX.length);
      if (!ns) return this.engine.removeNamespace(name);
      const next: Namespace = { name: ns.name, labels: ns.labels ?? {} };
      for (const pod of this.engine.podsInNamespace(name))
        await this.identities.ensure(this.engine.podIdentityLabels(pod, next));
      return this.engine.upsertNamespace(next);
    }
    if (key.startsWith(NODES_PREFIX)) {
      const n = ev.type === 'put' ? decodeValue<ClusterNode>(kv) : undefined;
      if (!n) return this.engine.removeNode(key.slice(NODES_PREFIX.length));
      return this.engine.upsertNode({ name: n.name, ips: nodeAddresses(n), isLocal: n.name === this.opts.node });
    }
    if (key.startsWith(ENDPOINTS_PREFIX)) {
      const ep = ev.type === 'put' ? decodeValue<ClusterEndpoint>(kv) : undefined;
      const had = this.#podOfKey.get(key);
      if (!ep) {
        this.#podOfKey.delete(key);
        if (!had) return [];
        const gone = this.engine.removePod(had.namespace, had.name);
        this.#lb?.podChanged(had.namespace, had.name);
        return gone;
      }
      const pod = this.#pod(ep);
      await this.identities.ensure(this.engine.podIdentityLabels(pod));
      // A key that now names another pod (an endpoint ID reused) removes the old one first.
      const diffs =
        had && (had.namespace !== pod.namespace || had.name !== pod.name)
          ? this.engine.removePod(had.namespace, had.name)
          : [];
      this.#podOfKey.set(key, { namespace: pod.namespace, name: pod.name });
      const out = diffs.concat(this.engine.upsertPod(pod));
      if (had) this.#lb?.podChanged(had.namespace, had.name);
      this.#lb?.podChanged(pod.namespace, pod.name);
      return out;
    }
    if (key.startsWith(SERVICES_PREFIX)) {
      this.#applyServiceDoc(key, ev.type === 'put' ? ev.value : undefined);
      return [];
    }
    if (key.startsWith(POLICIES_PREFIX)) {
      this.#policyRevision = Math.max(this.#policyRevision, ev.revision);
      return this.#applyPolicyDoc(key, ev.type === 'put' ? ev.value : undefined);
    }
    return [];
  }

  #applyServiceDoc(key: string, value: string | undefined): void {
    const [namespace, name] = key.slice(SERVICES_PREFIX.length).split('/');
    this.#serviceErrors.delete(key);
    const stored = value !== undefined ? decodeValue<ClusterService>({ value }) : undefined;
    let spec: ServiceSpec | undefined;
    if (stored) {
      try {
        spec = parseServiceObject(stored.doc as Record<string, unknown>, stored.source);
      } catch (err) {
        // Validated before it was stored; a document another build wrote may still not parse.
        this.#serviceErrors.set(key, `${namespace}/${name}: ${(err as Error).message}`);
      }
    }
    if (spec) this.#lb?.upsertService(spec);
    else this.#lb?.removeService(namespace, name);
  }

  #applyPolicyDoc(key: string, value: string | undefined): MapStateDiff[] {
    const old = this.#docRefs.get(key) ?? [];
    const diffs: MapStateDiff[] = [];
    this.#policyErrors.delete(key);
    let next: ReturnType<typeof parsePolicyObject>['policies'] = [];
    const stored = value !== undefined ? decodeValue<ClusterPolicy>({ value }) : undefined;
    this.#secrets.delete(key);
    if (stored) {
      try {
        const parsed = parsePolicyObject(stored.doc as Record<string, unknown>, stored.source);
        next = parsed.policies;
        if (parsed.secrets?.length) this.#secrets.set(key, parsed.secrets);
      } catch (err) {
        // Validated before it was stored; a document another build wrote may still not parse.
        this.#policyErrors.set(key, `${stored.namespace}/${stored.name}: ${(err as Error).message}`);
      }
    }
    const keep = new Set(next.map((p) => refKey(p.ref)));
    for (const ref of old) if (!keep.has(refKey(ref))) diffs.push(...this.engine.removePolicy(ref));
    for (const p of next) diffs.push(...this.engine.upsertPolicy(p));
    if (next.length > 0)
      this.#docRefs.set(
        key,
        next.map((p) => p.ref),
      );
    else this.#docRefs.delete(key);
    return diffs;
  }

  /** The whole store, as one batch into the engine (start and resync). */
  async #load(items: readonly KeyValue[]): Promise<void> {
    const order = [
      IDENTITY_IDS_PREFIX,
      NAMESPACES_PREFIX,
      NODES_PREFIX,
      ENDPOINTS_PREFIX,
      POLICIES_PREFIX,
      SERVICES_PREFIX,
    ];
    for (const prefix of order)
      for (const kv of items)
        if (kv.key.startsWith(prefix))
          await this.#applyEvent({ type: 'put', key: kv.key, value: kv.value, revision: kv.modRevision });
  }

  /**
   * Compares every local endpoint's realized policy map and the ipcache with the engine and
   * writes the differences: on start, and after a failed write or a compacted watch.
   */
  async #realizeByDiff(why: string): Promise<void> {
    const t0 = performance.now();
    this.engine.takeIpcacheDiff();
    const dp = this.opts.datapath;
    const ipcache = diffIpcache(await dp.dumpIpcache(), this.engine.ipcacheEntries());
    const diffs: MapStateDiff[] = [];
    for (const ep of this.#local.endpoints) {
      const d = diffPolicy(ep.id, await dp.dumpPolicy(ep.id), this.engine.endpointMapState(ep.id).values());
      if (d) diffs.push(d);
    }
    this.opts.trace?.('resync', {
      why,
      endpoints: diffs.length,
      ipcache: `+${ipcache.upserts.length}/-${ipcache.deletes.length}`,
      ms: (performance.now() - t0).toFixed(2),
    });
    const lb = await this.#lbResyncDiff();
    this.#needsResync = false;
    await this.#write(this.#realizedRevision, diffs, ipcache, lb);
  }

  /** The LB maps against the whole desired LB state; Maglev tables only where they differ. */
  async #lbResyncDiff(): Promise<LbDiff> {
    if (!this.#lb) return emptyLbDiff();
    this.#lb.takeDiff();
    const d = diffLb(await this.opts.datapath.dumpLb(), this.#lb.desired());
    const tables: Array<[number, Uint32Array]> = [];
    for (const [id, t] of d.maglev.upserts) {
      const have = await this.opts.datapath.lbMaglevTable(id);
      if (!have || have.length !== t.length || have.some((x, i) => x !== t[i])) tables.push([id, t]);
    }
    d.maglev.upserts.length = 0;
    d.maglev.upserts.push(...tables);
    return d;
  }

  /** After a compacted watch or a failure: the engine catches up with the store, then the maps. */
  async #resync(why: string): Promise<void> {
    const listed = await this.opts.store.list(STATE_PREFIX);
    const present = new Set(listed.items.map((kv) => kv.key));
    // What the engine holds but the store no longer does goes first, as delete events.
    for (const key of [...this.#keys])
      if (!present.has(key)) await this.#applyEvent({ type: 'delete', key, value: '', revision: listed.revision });
    await this.#load(listed.items);
    this.#realizedRevision = Math.max(this.#realizedRevision, listed.revision);
    await this.#realizeByDiff(why);
    this.#realized(listed.revision);
  }

  #realized(revision: number): void {
    this.#realizedRevision = Math.max(this.#realizedRevision, revision);
    this.#realizedPolicyRevision = this.#policyRevision;
    const ready = this.#waiters.filter((w) => w.revision <= this.#realizedRevision);
    this.#waiters = this.#waiters.filter((w) => w.revision > this.#realizedRevision);
    for (const w of ready) w.resolve();
    for (const l of this.#realizedListeners) l();
  }

  /** The Secrets in the store (their values: only the node proxy is given them, never a log or flow). */
  secrets(): Secret[] {
    return [...this.#secrets.values()].flat();
  }

  /** An access record of the node's proxy (run-agent passes each on): `membrane monitor` shows them. */
  emitL7(rec: L7Record): void {
    for (const l of this.#l7Listeners) l(rec);
  }

  onL7(listener: (rec: L7Record) => void): () => void {
    this.#l7Listeners.add(listener);
    return () => this.#l7Listeners.delete(listener);
  }

  /** The labels of an identity, "source:key=value" ([] when this node does not know it). */
  identityLabels(id: number): string[] {
    const set = reservedIdentityLabels(id) ?? this.identities.lookup(id);
    return set ? set.labels.map(formatLabel) : [];
  }

  /** The node proxy's status source (run-agent wires it): shown by `membrane status`. */
  attachProxy(source: { status(): ProxyStatus }): void {
    this.#proxy = source;
  }

  /** Calls `listener` after each store change is realized (the node proxy's rules follow it). */
  onRealized(listener: () => void): () => void {
    this.#realizedListeners.add(listener);
    return () => this.#realizedListeners.delete(listener);
  }

  /** Resolves once every store change up to `revision` is in the datapath (or the agent stops). */
  waitRealized(revision: number): Promise<void> {
    if (revision <= this.#realizedRevision || this.#stopped) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ revision, resolve, reject }));
  }

  /** Callers waiting for a change the datapath refused learn it; the retry heals it later. */
  #notRealized(revision: number, err: Error): void {
    const failed = this.#waiters.filter((w) => w.revision <= revision);
    this.#waiters = this.#waiters.filter((w) => w.revision > revision);
    for (const w of failed)
      w.reject(
        new AgentError(
          'MBR_NOT_REALIZED',
          `stored at revision ${revision}, but node ${this.opts.node}'s datapath did not take it yet (retrying): ${err.message}`,
          503,
        ),
      );
  }

  #fail(err: Error): void {
    this.#stats.failures++;
    this.#lastError = { message: err.message, at: this.#now().toISOString() };
    process.stderr.write(`membrane agent: reconcile failed: ${err.message}\n`);
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#stopped) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#enqueue(() => this.#resync('retry after a failure'));
    }, 1000).unref();
  }

  /** The endpoint as stored locally, with its policy status read from the engine (not stored). */
  #withPolicyStatus(ep: Endpoint): Endpoint {
    const s = this.engine.endpointPolicyStatus(ep.id);
    const redirects = new Map<string, ProxyRedirect>();
    for (const p of this.engine.l7Policies(ep.id))
      redirects.set(`${p.direction}/${p.protocol}/${p.port}`, {
        direction: p.direction,
        port: p.port,
        protocol: p.protocol,
        parser: p.parser,
        proxyPort: p.proxyPort,
      });
    return {
      ...ep,
      policyEnabledIngress: s?.ingress.enforced ?? false,
      policyEnabledEgress: s?.egress.enforced ?? false,
      policyRevision: this.#realizedPolicyRevision,
      ...(redirects.size > 0 ? { proxyRedirects: [...redirects.values()] } : {}),
    };
  }

  async #keepAlive(): Promise<void> {
    try {
      await this.opts.store.keepAlive(this.#lease);
    } catch (err) {
      // The store is away: the lease waits for it (etcd extends leases when it elects a leader).
      if (isUnreachable(err)) return;
      // The lease expired (the agent was stopped or cut off for longer than its TTL): every key
      // on it went with it, so register again and publish the node's endpoints and holds anew.
      this.#fail(err as Error);
      try {
        await this.#register();
      } catch (again) {
        this.#fail(again as Error);
      }
    }
  }

  /** A fresh lease; the node key, every local endpoint and every identity hold written on it. */
  async #register(): Promise<void> {
    const { store, node } = this.opts;
    this.#lease = await store.grantLease(this.opts.nodeLeaseTtlSeconds ?? 30);
    this.identities.setLease(this.#lease);
    const self: ClusterNode = {
      name: node,
      ipv4: this.opts.nodeIp,
      podCIDR: this.opts.podCIDR,
      health: 'ok',
      since: this.startedAt.toISOString(),
    };
    await registerNode(store, self, this.#lease);
    // Every local endpoint on the new lease, in transactions of at most 100 keys (etcd takes
    // 128 operations per transaction): a restart pays a few writes, not one per endpoint.
    const puts = this.#local.endpoints.map((ep) => ({
      type: 'put' as const,
      key: endpointKey(node, ep.id),
      value: JSON.stringify(toClusterEndpoint(node, ep.id, ep.identity, ep)),
      lease: this.#lease,
    }));
    for (let i = 0; i < puts.length; i += 100) await store.txn({ compare: [], success: puts.slice(i, i + 100) });
    // Holds are counted once per endpoint (start, register, delete); a new lease rewrites them.
    await this.identities.syncHolds();
  }

  /**
   * Local endpoint changes made while the store did not answer, written once it does again
   * (every second until then); the watch then brings them back as no-ops.
   */
  #scheduleFlush(): void {
    if (this.#flushTimer || this.#stopped) return;
    this.#flushTimer = setInterval(() => {
      void this.#flushPending().then((done) => {
        if (done && this.#flushTimer) {
          clearInterval(this.#flushTimer);
          this.#flushTimer = undefined;
        }
      });
    }, 1000).unref();
  }

  async #flushPending(): Promise<boolean> {
    try {
      for (const key of [...this.#pendingDelete]) {
        await this.opts.store.delete(key);
        this.#pendingDelete.delete(key);
      }
      for (const id of [...this.#pendingPublish]) {
        const ep = this.#local.endpoints.find((e) => e.id === id);
        if (ep) await this.#publishEndpoint(ep, ep.identity);
        this.#pendingPublish.delete(id);
      }
      await this.identities.syncHolds();
      return true;
    } catch (err) {
      if (!isUnreachable(err)) this.#fail(err as Error);
      return false;
    }
  }

  /** One local change into the engine and the maps without the store (it does not answer). */
  async #applyLocally(ev: WatchEvent): Promise<void> {
    this.#scheduleFlush();
    const step = async () => {
      const diffs = await this.#applyEvent(ev);
      await this.#write(this.#realizedRevision, diffs, ipv4Change(this.engine.takeIpcacheDiff()));
    };
    const done = this.#queue.then(step);
    this.#queue = done.catch((err) => this.#fail(err as Error));
    await done;
  }

  /** Every node the store holds, for `membrane node list`. */
  async nodes(): Promise<ClusterNode[]> {
    return listNodes(this.opts.store);
  }

  async #publishEndpoint(ep: Endpoint, identity: number): Promise<number> {
    const rec = toClusterEndpoint(this.opts.node, ep.id, identity, ep);
    // Under the node's lease, as Cilium's ipcache keys: a node gone is its pods gone everywhere.
    return this.opts.store.put(endpointKey(this.opts.node, ep.id), JSON.stringify(rec), { lease: this.#lease });
  }

  /** A stored endpoint as the engine's pod: local ones keep their endpoint ID. */
  #pod(ep: ClusterEndpoint): Pod {
    const isLocal = ep.node === this.opts.node;
    return {
      namespace: ep.namespace,
      name: ep.podName,
      labels: ep.labels ?? {},
      ports: ep.ports ?? [],
      podIPs: [ep.ipv4],
      nodeName: ep.node,
      ...(ep.terminating ? { terminating: true } : {}),
      ...(isLocal ? { endpointId: ep.id } : { remote: true }),
    };
  }

  #statePath(): string {
    return join(this.opts.stateDir, 'endpoints.json');
  }

  #save(): void {
    writeJsonFile(this.#statePath(), this.#local);
  }

  #now(): Date {
    return (this.opts.now ?? (() => new Date()))();
  }
}

function toClusterEndpoint(
  node: string,
  id: number,
  identity: number,
  reg: Pick<EndpointRegistration, 'ipv4' | 'namespace' | 'podName' | 'labels' | 'ports'>,
): ClusterEndpoint {
  return {
    node,
    id,
    ipv4: reg.ipv4,
    identity,
    namespace: reg.namespace,
    podName: reg.podName,
    labels: reg.labels,
    ports: reg.ports ?? [],
  };
}

/** A Secret document as the API shows it: its entries' names, never their values. */
function redactSecretDoc(doc: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  if (doc.kind !== 'Secret') return doc;
  const out: Record<string, unknown> = { ...doc };
  for (const f of ['data', 'stringData'])
    if (typeof doc[f] === 'object' && doc[f] !== null)
      out[f] = Object.fromEntries(Object.keys(doc[f] as object).map((k) => [k, '[redacted]']));
  return out;
}

function toClusterPolicy(d: Record<string, unknown>, source: string): ClusterPolicy {
  const meta = (d.metadata ?? {}) as Record<string, unknown>;
  const kind = String(d.kind);
  const namespace = kind === 'CiliumClusterwideNetworkPolicy' ? '' : String(meta.namespace ?? 'default');
  return { kind, namespace, name: String(meta.name), source, doc: d };
}

/** A node's addresses: its underlay address and its pods' gateway (on the node's lo). */
function nodeAddresses(n: ClusterNode): string[] {
  const out = n.ipv4 ? [n.ipv4] : [];
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/\d+$/.exec(n.podCIDR ?? '');
  if (m) {
    const gw = `${m[1]}.${m[2]}.${m[3]}.${Number(m[4]) + 1}`;
    if (hostPrefix(gw)) out.push(gw);
  }
  return out;
}

function lbDiffSize(d: LbDiff): number {
  return (
    d.backends.upserts.length +
    d.backends.deletes.length +
    d.revNat.upserts.length +
    d.revNat.deletes.length +
    d.services.upserts.length +
    d.services.deletes.length +
    d.maglev.upserts.length +
    d.maglev.deletes.length
  );
}

function isUnreachable(err: unknown): boolean {
  return err instanceof StoreError && err.code === 'MBR_STORE_UNREACHABLE';
}

function refKey(r: PolicyRef): string {
  return `${r.kind}/${r.namespace}/${r.name}`;
}
