// The policy engine: a stateful, I/O-free model of the world (namespaces, pods, services),
// policies, identities, the selector cache and the ipcache, that resolves every endpoint's
// policy map state and answers each change with a diff of map entries (never a rebuild).
//
// API for the agent (every mutator returns MapStateDiff[], one per endpoint whose map changed):
//   const engine = new PolicyEngine({ allocator, allocateProxyPort });
//   engine.upsertNamespace({ name, labels });           engine.removeNamespace(name);
//   engine.upsertPod({ namespace, name, labels, ports, podIPs, endpointId? });
//   engine.removePod(namespace, name);
//   (a pod with `remote: true` runs on another node: its identity, IPs and named ports count
//    for every selector and the ipcache, but it is no endpoint here and gets no map state)
//   engine.upsertNode({ name, ips, isLocal }) / removeNode(name)   (host / remote-node ipcache)
//   engine.podIdentityLabels(pod)     // the label set a pod's identity is made of (allocate first)
//   engine.upsertService(svc) / removeService(ns, name)  (selectorless services for toServices)
//   engine.applyFile(parsed)          // a whole parsed file at once; replaces that file's policies
//   engine.removeFile(file)           // removes every policy the file carried
//   engine.upsertPolicy(policy) / removePolicy(ref)
//   engine.updateFqdn(name, ips)      // DNS proxy: the current IPs of a name (local identities)
//   engine.fqdnSelectors()            // every toFQDNs selector of the current policies
//   engine.endpointMapState(epId)     // MapState to program (a live view, not a snapshot); lookupMapState()
//   engine.endpointPolicyStatus(epId) // per-direction enforcement + which policies default-deny
//   engine.l7Policies(epId)           // L7 rules per (direction, port, protocol, remote ids)
//   engine.ipcacheEntries() / takeIpcacheDiff()   // IP/prefix -> identity, and its changes
//   engine.takeL7Changes()            // endpoints whose L7 rules changed since the last call
//   engine.endpointList() / endpointByPod(ns, name) / endpointByIp(ip)   // endpoint ID, identity
//   engine.identityList() / identityLabels(id) / ipcacheLookup(ip) / policyRefs()
// Endpoint IDs come from the pod (endpointId) or are the lowest free from 1. Mutators batch
// their work: endpoints touched by one call are resolved once, at its end; endpoints with the
// same identity and container ports share one resolution.
// Resolution rules: deny beats allow; a direction is enforced when a rule selecting the endpoint
// has a section for it, default-deny when such a rule asks for it (Cilium's enableDefaultDeny,
// Kubernetes' policyTypes); an enforced but not default-deny direction, or an unenforced one,
// carries an allow-all entry (identity 0, any protocol) so that L7 and deny rules still apply.
import { hostPrefix, type Prefix, prefixContains } from '../identity/cidr.js';
import { type IdentityAllocator, MemoryIdentityAllocator } from '../identity/identity-allocator.js';
import { IpCache, type IpcacheDiff, type IpcacheEntry } from '../identity/ipcache.js';
import {
  DEFAULT_CLUSTER_NAME,
  LABEL_NAMESPACE_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POLICY_CLUSTER,
  type LabelSet,
  makeLabelSet,
  podIdentityLabels,
  SOURCE_CIDR,
  SOURCE_K8S,
  SOURCE_RESERVED,
} from '../identity/labels.js';
import {
  IDENTITY_HOST,
  IDENTITY_REMOTE_NODE,
  IDENTITY_WORLD,
  IDENTITY_WORLD_IPV4,
  IDENTITY_WORLD_IPV6,
  RESERVED_IDENTITIES,
  reservedIdentityLabels,
} from '../identity/reserved-identities.js';
import { fqdnSelectorMatches } from './fqdn-pattern.js';
import { requiredValue, selectorMatches } from './label-selector.js';
import {
  L4_ANY,
  type L4Prefix,
  l4Covers,
  l4Key,
  l4Specificity,
  type MapState,
  mapStateKey,
  portRangePrefixes,
} from './map-state.js';
import {
  type MapStateDiff,
  type PolicyEntry,
  type PolicyKey,
  type PolicyRef,
  PROTO_TCP,
  PROTO_UDP,
  type TrafficDirection,
} from './map-state-types.js';
import type { ParsedPolicyFile } from './policy-parser.js';
import type { DnsRule, HttpRule, KafkaRule, L7Parser, L7Rules, Peer, Policy, PortSpec } from './policy-rule.js';
import { policyRefKey } from './policy-rule.js';
import { type IdentityInfo, type SelectionChange, SelectorCache } from './selector-cache.js';
import type { Namespace, Pod, Service } from './world.js';
import { podKey } from './world.js';

export type ProxyPortAllocator = (parser: L7Parser, direction: TrafficDirection) => number;

/**
 * Default proxy ports, one listener per (parser, direction), stable across runs:
 * http 10001 ingress / 10002 egress, kafka 10003 / 10004, dns 10005 / 10006.
 */
export function defaultProxyPort(parser: L7Parser, direction: TrafficDirection): number {
  const base = { http: 10001, kafka: 10003, dns: 10005 }[parser];
  return base + (direction === 'egress' ? 1 : 0);
}

export interface PolicyEngineOptions {
  readonly allocator?: IdentityAllocator;
  readonly allocateProxyPort?: ProxyPortAllocator;
  /** Allow ingress from the local host (kubelet probes) into default-deny endpoints. Default true. */
  readonly allowLocalhost?: boolean;
  readonly clusterName?: string;
}

export interface DirectionStatus {
  /** Some rule selecting the endpoint has a section for this direction. */
  readonly enforced: boolean;
  readonly defaultDeny: boolean;
  /** The policies whose rules turned on default-deny (for "which policy dropped this"). */
  readonly defaultDenyBy: readonly PolicyRef[];
}

export interface EndpointPolicyStatus {
  readonly ingress: DirectionStatus;
  readonly egress: DirectionStatus;
}

export interface EndpointInfo {
  readonly endpointId: number;
  readonly namespace: string;
  readonly name: string;
  readonly identity: number;
  readonly podIPs: readonly string[];
  readonly labels: LabelSet;
  /** The node the pod runs on, when known. */
  readonly nodeName?: string;
  /** False for a pod of another node (endpointId is then 0: it has no endpoint here). */
  readonly isLocal: boolean;
}

/** A node of the cluster: its addresses map to host (this node) or remote-node in the ipcache. */
export interface NodeInfo {
  readonly name: string;
  readonly ips: readonly string[];
  readonly isLocal: boolean;
}

/** The L7 rules the proxy enforces for one (endpoint, direction, port, protocol) and remote set. */
export interface L7Policy {
  readonly endpointId: number;
  readonly direction: TrafficDirection;
  readonly protocol: number;
  readonly port: number;
  readonly portPrefixLen: number;
  readonly proxyPort: number;
  readonly parser: L7Parser;
  /** Remote identities these rules apply to; 0 = any remote. */
  readonly remoteIdentities: readonly number[];
  /** Some rule allows this traffic without L7 restriction: the proxy only observes. */
  readonly allowAll: boolean;
  readonly http?: readonly HttpRule[];
  readonly dns?: readonly DnsRule[];
  readonly kafka?: readonly KafkaRule[];
  readonly derivedFrom: readonly PolicyRef[];
}

export class PolicyEngineError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class PolicyEngine {
  private readonly allocator: IdentityAllocator;
  private readonly proxyPort: ProxyPortAllocator;
  private readonly allowLocalhost: boolean;
  private readonly cluster: string;
  private readonly sc = new SelectorCache();
  private readonly ipc = new IpCache();
  private readonly namespaces = new Map<string, Namespace>();
  private readonly pods = new Map<string, PodRec>();
  private readonly podsByIp = new Map<string, PodRec>();
  private readonly nodes = new Map<string, { info: NodeInfo; prefixes: Prefix[] }>();
  private readonly services = new Map<string, ServiceRec>();
  private readonly policies = new Map<string, CompiledPolicy>();
  /** Which policies each applied file carries (applyFile replaces a file's set). */
  private readonly fileRefs = new Map<string, Set<string>>();
  private readonly rulesBySubject = new Map<string, Set<CompiledRule>>();
  private readonly endpoints = new Map<number, EpState>();
  private readonly epsByIdentity = new Map<number, Set<EpState>>();
  private readonly selUsers = new Map<string, Set<EpState>>();
  private readonly namedEgressEps = new Set<EpState>();
  /** identity -> `name/proto` -> port -> pod count */
  private readonly namedPorts = new Map<number, Map<string, Map<number, number>>>();
  private readonly allNamedPorts = new Map<string, Map<number, number>>();
  /** Pod identities: how many pods hold each, and their IPs. */
  private readonly podIdentityPrefixes = new Map<number, Map<string, Prefix>>();
  /** Local CIDR identities by prefix text, with a reference count of their holders. */
  private readonly cidrIds = new Map<string, { id: number; refs: number; prefix: Prefix }>();
  private readonly fqdnIps = new Map<string, Set<string>>();
  private readonly ipNames = new Map<string, Set<string>>();
  private l7Changed = new Set<number>();
  private changes: ChangeLog = new Map();
  /** Endpoints to resolve again at the end of the current operation (batched). */
  private dirtyFull = new Set<EpState>();
  /** No endpoint ID below this is free (IDs are handed out lowest-free first). */
  private lowestFreeEpId = 1;
  private dirtyPartial = new Map<EpState, Set<number>>();

  constructor(opts: PolicyEngineOptions = {}) {
    this.allocator = opts.allocator ?? new MemoryIdentityAllocator();
    this.proxyPort = opts.allocateProxyPort ?? defaultProxyPort;
    this.allowLocalhost = opts.allowLocalhost ?? true;
    this.cluster = opts.clusterName ?? DEFAULT_CLUSTER_NAME;
    for (const r of RESERVED_IDENTITIES) this.sc.upsertIdentity({ id: r.id, labels: reservedIdentityLabels(r.id)! });
    // The engine's own selectors: allow-localhost and the entity every direction may need.
    this.sc.addSelector('e:host', this.entityMatcher('host'));
  }

  // ---- world ----

  upsertNamespace(ns: Namespace): MapStateDiff[] {
    this.namespaces.set(ns.name, ns);
    for (const rec of [...this.pods.values()]) if (rec.pod.namespace === ns.name) this.applyPod(rec.pod);
    return this.flush();
  }

  removeNamespace(name: string): MapStateDiff[] {
    this.namespaces.delete(name);
    for (const rec of [...this.pods.values()]) if (rec.pod.namespace === name) this.applyPod(rec.pod);
    return this.flush();
  }

  upsertPod(pod: Pod): MapStateDiff[] {
    this.checkEndpointIds([pod]);
    this.applyPod(pod);
    return this.flush();
  }

  removePod(namespace: string, name: string): MapStateDiff[] {
    const rec = this.pods.get(podKey({ namespace, name }));
    if (!rec) return [];
    if (rec.epId !== undefined) this.dropEndpoint(this.endpoints.get(rec.epId)!);
    this.pods.delete(podKey(rec.pod));
    this.updatePodAttachments(rec, undefined);
    this.releasePodIdentity(rec.identity);
    return this.flush();
  }

  /** Pods (local and remote) of a namespace. */
  podsInNamespace(namespace: string): Pod[] {
    return [...this.pods.values()].filter((r) => r.pod.namespace === namespace).map((r) => r.pod);
  }

  /**
   * The label set a pod's identity is made of, with its namespace's labels as known now, or as
   * `ns` would make them (to allocate identities before a namespace change is applied).
   */
  podIdentityLabels(pod: Pod, ns: Namespace | undefined = this.namespaces.get(pod.namespace)): LabelSet {
    const nsLabels = { ...(ns?.labels ?? {}), [LABEL_NAMESPACE_NAME]: pod.namespace };
    return podIdentityLabels(pod.labels, pod.namespace, nsLabels, pod.serviceAccount ?? 'default', this.cluster);
  }

  upsertNode(node: NodeInfo): MapStateDiff[] {
    const old = this.nodes.get(node.name);
    const prefixes = node.ips.flatMap((ip) => hostPrefix(ip) ?? []);
    const id = node.isLocal ? IDENTITY_HOST : IDENTITY_REMOTE_NODE;
    for (const p of old?.prefixes ?? []) if (!prefixes.some((x) => x.text === p.text)) this.ipc.delete(p, 'node');
    for (const p of prefixes) this.ipc.upsert(p, id, 'node');
    this.nodes.set(node.name, { info: node, prefixes });
    return this.flush();
  }

  removeNode(name: string): MapStateDiff[] {
    const old = this.nodes.get(name);
    if (!old) return [];
    for (const p of old.prefixes) this.ipc.delete(p, 'node');
    this.nodes.delete(name);
    return this.flush();
  }

  upsertService(svc: Service): MapStateDiff[] {
    this.applyService(svc);
    return this.flush();
  }

  private applyService(svc: Service): void {
    const key = `${svc.namespace}/${svc.name}`;
    const old = this.services.get(key);
    const holds = svc.selector === undefined ? svc.endpointIPs.flatMap((ip) => hostPrefix(ip) ?? []) : [];
    for (const p of holds) this.acquireCidr(p);
    this.services.set(key, { svc, holds });
    if (old) for (const p of old.holds) this.releaseCidr(p);
    this.refreshSelectors('s:');
  }

  removeService(namespace: string, name: string): MapStateDiff[] {
    const key = `${namespace}/${name}`;
    const old = this.services.get(key);
    if (!old) return [];
    this.services.delete(key);
    for (const p of old.holds) this.releaseCidr(p);
    this.refreshSelectors('s:');
    return this.flush();
  }

  // ---- policy ----

  /**
   * Applies a whole validated file as one change: its namespaces, services, policies and pods.
   * The file's policies replace those it carried before (a policy dropped from the file is
   * removed); world objects are upserted.
   */
  applyFile(parsed: ParsedPolicyFile): MapStateDiff[] {
    this.checkEndpointIds(parsed.pods);
    const now = new Set(parsed.policies.map((p) => policyRefKey(p.ref)));
    for (const key of this.fileRefs.get(parsed.file) ?? []) if (!now.has(key)) this.dropPolicy(key);
    this.fileRefs.set(parsed.file, now);
    for (const ns of parsed.namespaces) {
      this.namespaces.set(ns.name, ns);
      for (const rec of [...this.pods.values()]) if (rec.pod.namespace === ns.name) this.applyPod(rec.pod);
    }
    for (const s of parsed.services) this.applyService(s);
    for (const p of parsed.policies) this.applyPolicy(p);
    for (const p of parsed.pods) this.applyPod(p);
    return this.flush();
  }

  /** Removes every policy the file carried (world objects stay). */
  removeFile(file: string): MapStateDiff[] {
    for (const key of this.fileRefs.get(file) ?? []) this.dropPolicy(key);
    this.fileRefs.delete(file);
    return this.flush();
  }

  upsertPolicy(policy: Policy): MapStateDiff[] {
    this.applyPolicy(policy);
    return this.flush();
  }

  removePolicy(ref: PolicyRef): MapStateDiff[] {
    this.dropPolicy(policyRefKey(ref));
    return this.flush();
  }

  private dropPolicy(key: string): void {
    const old = this.policies.get(key);
    if (!old) return;
    this.policies.delete(key);
    for (const ep of this.unindexPolicy(old)) this.dirtyFull.add(ep);
    this.releasePolicy(old);
  }

  policyRefs(): PolicyRef[] {
    return [...this.policies.values()].map((p) => p.ref);
  }

  // ---- FQDN ----

  /** The DNS proxy learned that `name` resolves to `ips` now (replacing what it knew before). */
  updateFqdn(name: string, ips: readonly string[]): MapStateDiff[] {
    const n = name.trim().toLowerCase().replace(/\.?$/, '.');
    const before = this.fqdnIps.get(n) ?? new Set<string>();
    const after = new Set<string>();
    for (const ip of ips) {
      const p = hostPrefix(ip);
      if (p) after.add(p.text);
    }
    const touched: Prefix[] = [];
    for (const t of after)
      if (!before.has(t)) {
        const p = hostPrefix(t.split('/')[0])!;
        this.acquireCidr(p);
        let names = this.ipNames.get(t);
        if (!names) {
          names = new Set();
          this.ipNames.set(t, names);
        }
        names.add(n);
        touched.push(p);
      }
    for (const t of before)
      if (!after.has(t)) {
        const p = hostPrefix(t.split('/')[0])!;
        this.ipNames.get(t)?.delete(n);
        if (this.ipNames.get(t)?.size === 0) this.ipNames.delete(t);
        touched.push(p);
      }
    if (after.size === 0) this.fqdnIps.delete(n);
    else this.fqdnIps.set(n, after);
    for (const p of touched) {
      const c = this.cidrIds.get(p.text);
      if (c) this.onSelectionChanges(this.sc.upsertIdentity(this.cidrInfo(c.id, c.prefix), (k) => k.startsWith('f:')));
    }
    for (const t of before) if (!after.has(t)) this.releaseCidr(hostPrefix(t.split('/')[0])!);
    return this.flush();
  }

  /** Every toFQDNs selector of the current policies (what the DNS proxy's answers are learned for). */
  fqdnSelectors(): Array<{ matchName?: string; matchPattern?: string }> {
    const keys = new Set<string>();
    for (const p of this.policies.values()) for (const k of p.selKeys) if (k.startsWith('f:')) keys.add(k);
    return [...keys]
      .sort()
      .map((k) => (k.startsWith('f:n:') ? { matchName: k.slice(4) } : { matchPattern: k.slice(4) }));
  }

  // ---- reading the state ----

  endpointMapState(endpointId: number): MapState {
    return this.endpoints.get(endpointId)?.view ?? new Map();
  }

  endpointPolicyStatus(endpointId: number): EndpointPolicyStatus | undefined {
    const ep = this.endpoints.get(endpointId);
    if (!ep) return undefined;
    const st = (d: DirPolicy): DirectionStatus => ({
      enforced: d.enforced,
      defaultDeny: d.defaultDeny,
      defaultDenyBy: d.defaultDenyBy,
    });
    return { ingress: st(ep.dirs.ingress), egress: st(ep.dirs.egress) };
  }

  l7Policies(endpointId: number): L7Policy[] {
    const ep = this.endpoints.get(endpointId);
    if (!ep) return [];
    const groups = new Map<string, { base: Omit<L7Policy, 'remoteIdentities'>; ids: number[] }>();
    for (const r of [...ep.partitions.values()].flatMap((m) => [...m.values()])) {
      if (!r.l7) continue;
      const k = r.key;
      const base = {
        endpointId,
        direction: k.direction,
        protocol: k.protocol,
        port: k.port,
        portPrefixLen: k.portPrefixLen,
        proxyPort: r.entry.proxyPort,
        parser: r.l7.parser,
        allowAll: r.l7.allowAll,
        ...(r.l7.http ? { http: r.l7.http } : {}),
        ...(r.l7.dns ? { dns: r.l7.dns } : {}),
        ...(r.l7.kafka ? { kafka: r.l7.kafka } : {}),
        derivedFrom: r.entry.derivedFrom,
      };
      const gk = `${k.direction}|${k.protocol}|${k.port}|${k.portPrefixLen}|${r.l7.sig}`;
      const g = groups.get(gk);
      if (g) g.ids.push(k.identity);
      else groups.set(gk, { base, ids: [k.identity] });
    }
    return [...groups.values()].map((g) => ({ ...g.base, remoteIdentities: g.ids.sort((a, b) => a - b) }));
  }

  endpointList(): EndpointInfo[] {
    return [...this.endpoints.values()].map((ep) => this.endpointInfo(ep)).sort((a, b) => a.endpointId - b.endpointId);
  }

  endpointByPod(namespace: string, name: string): EndpointInfo | undefined {
    const rec = this.pods.get(podKey({ namespace, name }));
    return rec ? podEndpointInfo(rec) : undefined;
  }

  /** The pod (local or remote) that holds this address. */
  endpointByIp(ip: string): EndpointInfo | undefined {
    const p = hostPrefix(ip);
    const rec = p && this.podsByIp.get(p.text);
    return rec ? podEndpointInfo(rec) : undefined;
  }

  /** Container ports of a pod (for resolving a named destination port). */
  podPorts(namespace: string, name: string): Pod['ports'] | undefined {
    return this.pods.get(podKey({ namespace, name }))?.pod.ports;
  }

  identityLabels(id: number): LabelSet | undefined {
    return this.sc.identity(id)?.labels;
  }

  identityList(): Array<{ id: number; labels: LabelSet }> {
    return [...this.sc.identities()].map((i) => ({ id: i.id, labels: i.labels })).sort((a, b) => a.id - b.id);
  }

  ipcacheLookup(ip: string): IpcacheEntry | undefined {
    return this.ipc.lookup(ip);
  }

  ipcacheEntries(): IpcacheEntry[] {
    return this.ipc.entries();
  }

  takeIpcacheDiff(): IpcacheDiff {
    return this.ipc.takeDiff();
  }

  takeL7Changes(): number[] {
    const out = [...this.l7Changed].sort((a, b) => a - b);
    this.l7Changed = new Set();
    return out;
  }

  // ---- internals: pods and identities ----

  /** Rejects, before anything changes, a pod whose endpoint ID another pod holds. */
  private checkEndpointIds(pods: readonly Pod[]): void {
    const claimed = new Map<number, string>();
    for (const pod of pods) {
      if (pod.remote) continue;
      const key = podKey(pod);
      const id = this.pods.get(key)?.epId ?? pod.endpointId;
      if (id === undefined) continue;
      const holder = this.endpoints.get(id)?.rec.pod;
      const other = claimed.get(id) ?? (holder && podKey(holder) !== key ? podKey(holder) : undefined);
      if (other !== undefined && other !== key)
        throw new PolicyEngineError(
          'MBR_ENDPOINT_ID_IN_USE',
          `pod ${key}: endpoint ID ${id} is already in use by ${other}`,
        );
      claimed.set(id, key);
    }
  }

  private applyPod(pod: Pod): void {
    const key = podKey(pod);
    const old = this.pods.get(key);
    const labels = this.podIdentityLabels(pod);
    const isNew = this.allocator.lookupByLabels(labels) === undefined;
    const identity = this.allocator.acquire(labels, 'global');
    if (isNew || !this.sc.identity(identity))
      this.onSelectionChanges(this.sc.upsertIdentity(this.podInfo(identity, labels, pod.namespace)));
    if (pod.remote) {
      if (old?.epId !== undefined) this.dropEndpoint(this.endpoints.get(old.epId)!);
      const rec: PodRec = { pod, epId: undefined, identity, labels, prefixes: podPrefixes(pod) };
      this.pods.set(key, rec);
      this.updatePodAttachments(old, rec);
      if (old) this.releasePodIdentity(old.identity);
      return;
    }
    let epId = old?.epId ?? pod.endpointId;
    if (epId === undefined) {
      epId = this.lowestFreeEpId;
      while (this.endpoints.has(epId)) epId++;
      this.lowestFreeEpId = epId + 1;
    }
    const rec: PodRec = {
      pod,
      epId,
      identity,
      labels,
      prefixes: podPrefixes(pod),
    };
    this.pods.set(key, rec);
    let ep = this.endpoints.get(epId);
    if (!ep) {
      ep = newEpState(epId, rec);
      this.endpoints.set(epId, ep);
    } else {
      this.epsByIdentity.get(ep.rec.identity)?.delete(ep);
      ep.rec = rec;
    }
    let set = this.epsByIdentity.get(identity);
    if (!set) {
      set = new Set();
      this.epsByIdentity.set(identity, set);
    }
    set.add(ep);
    this.updatePodAttachments(old, rec);
    if (old) this.releasePodIdentity(old.identity);
    this.dirtyFull.add(ep);
  }

  /** Tears down a local endpoint's state (its pod record stays with the caller). */
  private dropEndpoint(ep: EpState): void {
    this.installPartitions(ep, new Map());
    this.dirtyFull.delete(ep);
    this.dirtyPartial.delete(ep);
    this.setSelUsers(ep, new Set());
    this.namedEgressEps.delete(ep);
    this.epsByIdentity.get(ep.rec.identity)?.delete(ep);
    this.endpoints.delete(ep.id);
    this.lowestFreeEpId = Math.min(this.lowestFreeEpId, ep.id);
  }

  /** Moves a pod's ipcache entries, named ports and IPs (for ipBlock) from old to new. */
  private updatePodAttachments(old: PodRec | undefined, now: PodRec | undefined): void {
    for (const p of old?.prefixes ?? []) if (this.podsByIp.get(p.text) === old) this.podsByIp.delete(p.text);
    for (const p of now?.prefixes ?? []) this.podsByIp.set(p.text, now!);
    for (const p of old?.prefixes ?? []) if (!now?.prefixes.some((x) => x.text === p.text)) this.ipc.delete(p, 'pod');
    for (const p of now?.prefixes ?? []) this.ipc.upsert(p, now!.identity, 'pod');
    let namedChanged = false;
    if (old) namedChanged = this.countNamedPorts(old, -1) || namedChanged;
    if (now) namedChanged = this.countNamedPorts(now, 1) || namedChanged;
    const touchedIds = new Set<number>();
    if (old) {
      const m = this.podIdentityPrefixes.get(old.identity);
      for (const p of old.prefixes) m?.delete(`${old.pod.namespace}/${old.pod.name}|${p.text}`);
      touchedIds.add(old.identity);
    }
    if (now) {
      let m = this.podIdentityPrefixes.get(now.identity);
      if (!m) {
        m = new Map();
        this.podIdentityPrefixes.set(now.identity, m);
      }
      for (const p of now.prefixes) m.set(`${now.pod.namespace}/${now.pod.name}|${p.text}`, p);
      touchedIds.add(now.identity);
    }
    for (const id of touchedIds) {
      const info = this.sc.identity(id);
      if (!info) continue;
      const next = this.podInfo(id, info.labels, info.namespace!);
      this.onSelectionChanges(this.sc.upsertIdentity(next, (k) => k.startsWith('c:') && k.endsWith('|p')));
    }
    if (namedChanged) for (const ep of this.namedEgressEps) this.dirtyFull.add(ep);
  }

  private countNamedPorts(rec: PodRec, delta: number): boolean {
    let changed = false;
    for (const cp of rec.pod.ports) {
      if (!cp.name) continue;
      const nk = `${cp.name}/${cp.protocol}`;
      for (const [outer, key] of [
        [this.namedPorts, rec.identity],
        [null, 0],
      ] as const) {
        let byName: Map<string, Map<number, number>>;
        if (outer) {
          let m = outer.get(key);
          if (!m) {
            m = new Map();
            outer.set(key, m);
          }
          byName = m;
        } else byName = this.allNamedPorts;
        let ports = byName.get(nk);
        if (!ports) {
          ports = new Map();
          byName.set(nk, ports);
        }
        const n = (ports.get(cp.containerPort) ?? 0) + delta;
        if (n <= 0) {
          ports.delete(cp.containerPort);
          changed = true;
        } else {
          if (n === 1 && delta > 0) changed = true;
          ports.set(cp.containerPort, n);
        }
      }
    }
    return changed;
  }

  private releasePodIdentity(id: number): void {
    if (this.allocator.release(id)) {
      this.podIdentityPrefixes.delete(id);
      this.namedPorts.delete(id);
      this.epsByIdentity.delete(id);
      this.onSelectionChanges(this.sc.removeIdentity(id));
    }
  }

  private podInfo(id: number, labels: LabelSet, namespace: string): IdentityInfo {
    const m = this.podIdentityPrefixes.get(id);
    return { id, labels, namespace, podPrefixes: m ? [...m.values()] : [] };
  }

  private cidrInfo(id: number, prefix: Prefix): IdentityInfo {
    return { id, labels: cidrLabels(prefix), prefix };
  }

  private acquireCidr(prefix: Prefix): void {
    if (prefix.len === 0) return; // 0.0.0.0/0 and ::/0 are world
    const have = this.cidrIds.get(prefix.text);
    if (have) {
      have.refs++;
      return;
    }
    const id = this.allocator.acquire(cidrLabels(prefix), 'local');
    this.cidrIds.set(prefix.text, { id, refs: 1, prefix });
    this.ipc.upsert(prefix, id, 'cidr');
    this.onSelectionChanges(this.sc.upsertIdentity(this.cidrInfo(id, prefix)));
  }

  private releaseCidr(prefix: Prefix): void {
    const have = this.cidrIds.get(prefix.text);
    if (!have || --have.refs > 0) return;
    this.cidrIds.delete(prefix.text);
    this.allocator.release(have.id);
    this.ipc.delete(prefix, 'cidr');
    this.onSelectionChanges(this.sc.removeIdentity(have.id));
  }

  private refreshSelectors(prefix: string): void {
    for (const info of [...this.sc.identities()])
      this.onSelectionChanges(this.sc.upsertIdentity(info, (k) => k.startsWith(prefix)));
  }

  // ---- internals: policies ----

  private applyPolicy(policy: Policy): void {
    const key = policyRefKey(policy.ref);
    const compiled = this.compilePolicy(policy);
    const old = this.policies.get(key);
    this.policies.set(key, compiled);
    const affected = old ? this.unindexPolicy(old) : new Set<EpState>();
    for (const r of compiled.rules) {
      let s = this.rulesBySubject.get(r.subjectKey);
      if (!s) {
        s = new Set();
        this.rulesBySubject.set(r.subjectKey, s);
      }
      s.add(r);
      for (const id of this.sc.selections(r.subjectKey))
        for (const ep of this.epsByIdentity.get(id) ?? []) affected.add(ep);
    }
    for (const ep of affected) this.dirtyFull.add(ep);
    if (old) this.releasePolicy(old);
  }

  /** Removes a policy's rules from the subject index; returns the endpoints they selected. */
  private unindexPolicy(p: CompiledPolicy): Set<EpState> {
    const affected = new Set<EpState>();
    for (const r of p.rules) {
      this.rulesBySubject.get(r.subjectKey)?.delete(r);
      if (this.rulesBySubject.get(r.subjectKey)?.size === 0) this.rulesBySubject.delete(r.subjectKey);
      for (const id of this.sc.selections(r.subjectKey))
        for (const ep of this.epsByIdentity.get(id) ?? []) affected.add(ep);
    }
    return affected;
  }

  private releasePolicy(p: CompiledPolicy): void {
    for (const k of p.selKeys) this.sc.releaseSelector(k);
    for (const c of p.cidrs) this.releaseCidr(c);
  }

  private compilePolicy(policy: Policy): CompiledPolicy {
    const selKeys: string[] = [];
    const cidrs: Prefix[] = [];
    const sel = (key: string, match: (i: IdentityInfo) => boolean, ns?: string): string => {
      this.sc.addSelector(key, match, ns);
      selKeys.push(key);
      return key;
    };
    const peerKey = (peer: Peer): string | null => {
      switch (peer.kind) {
        case 'any':
          return null;
        case 'labels': {
          const s = peer.selector;
          return sel(
            `l:${s.key}`,
            (i) => selectorMatches(s, i.labels),
            requiredValue(s, SOURCE_K8S, LABEL_POD_NAMESPACE),
          );
        }
        case 'entity':
          return sel(`e:${peer.entity}`, this.entityMatcher(peer.entity));
        case 'cidr': {
          cidrs.push(peer.cidr, ...peer.except);
          for (const p of [peer.cidr, ...peer.except]) this.acquireCidr(p);
          const k = `c:${peer.cidr.text}!${peer.except.map((e) => e.text).join(',')}|${peer.matchPods ? 'p' : ''}`;
          return sel(k, cidrMatcher(peer.cidr, peer.except, peer.matchPods));
        }
        case 'fqdn': {
          const k = peer.matchName !== undefined ? `f:n:${peer.matchName}` : `f:p:${peer.matchPattern}`;
          return sel(k, (i) => this.fqdnMatches(peer, i));
        }
        case 'service': {
          const k = `s:${peer.namespace}/${peer.name ?? `sel:${peer.selector!.key}`}`;
          return sel(k, (i) => this.serviceMatches(peer, i));
        }
      }
    };
    const rules: CompiledRule[] = [];
    for (const r of policy.rules) {
      if (r.isNodeRule) continue;
      const subjectKey = sel(
        `l:${r.subject.key}`,
        (i) => i.namespace !== undefined && selectorMatches(r.subject, i.labels),
        requiredValue(r.subject, SOURCE_K8S, LABEL_POD_NAMESPACE),
      );
      const dir = (d: typeof r.ingress): CompiledDir | undefined =>
        d && {
          defaultDeny: d.defaultDeny,
          entries: d.entries.map((e) => ({
            isDeny: e.isDeny,
            sels: e.peers.map(peerKey),
            ...(e.ports ? { ports: e.ports } : {}),
            ...(e.l7 ? { l7: e.l7 } : {}),
            authType: e.authType,
          })),
        };
      const ingress = dir(r.ingress);
      const egress = dir(r.egress);
      rules.push({ subjectKey, origin: policy.ref, ...(ingress ? { ingress } : {}), ...(egress ? { egress } : {}) });
    }
    return { ref: policy.ref, rules, selKeys, cidrs };
  }

  private entityMatcher(entity: string): (i: IdentityInfo) => boolean {
    const has = (i: IdentityInfo, name: string) => i.labels.bySourceKey.has(`${SOURCE_RESERVED}:${name}`);
    switch (entity) {
      case 'world':
        return (i) => has(i, 'world');
      case 'world-ipv4':
        return (i) => i.id === IDENTITY_WORLD || i.id === IDENTITY_WORLD_IPV4 || i.prefix?.family === 4;
      case 'world-ipv6':
        return (i) => i.id === IDENTITY_WORLD || i.id === IDENTITY_WORLD_IPV6 || i.prefix?.family === 6;
      case 'cluster':
      case 'cluster-mesh':
        return (i) =>
          CLUSTER_RESERVED.some((n) => has(i, n)) ||
          (entity === 'cluster'
            ? i.labels.bySourceKey.get(`${SOURCE_K8S}:${LABEL_POLICY_CLUSTER}`) === this.cluster
            : i.labels.bySourceKey.has(`${SOURCE_K8S}:${LABEL_POLICY_CLUSTER}`));
      default:
        return (i) => has(i, entity);
    }
  }

  private fqdnMatches(peer: { matchName?: string; matchPattern?: string }, i: IdentityInfo): boolean {
    if (!i.prefix || i.prefix.len !== (i.prefix.family === 4 ? 32 : 128)) return false;
    const names = this.ipNames.get(i.prefix.text);
    if (!names) return false;
    for (const n of names) if (fqdnSelectorMatches(peer, n)) return true;
    return false;
  }

  private serviceMatches(peer: Extract<Peer, { kind: 'service' }>, i: IdentityInfo): boolean {
    if (!i.prefix) return false;
    for (const { svc } of this.services.values()) {
      if (svc.selector !== undefined || svc.namespace !== peer.namespace) continue;
      if (peer.name !== undefined && svc.name !== peer.name) continue;
      if (peer.selector) {
        const ls = makeLabelSet(Object.entries(svc.labels).map(([key, value]) => ({ source: SOURCE_K8S, key, value })));
        if (!selectorMatches(peer.selector, ls)) continue;
      }
      if (svc.endpointIPs.some((ip) => hostPrefix(ip)?.text === i.prefix!.text)) return true;
    }
    return false;
  }

  // ---- internals: resolution ----

  private rulesFor(identity: number): CompiledRule[] {
    const out: CompiledRule[] = [];
    for (const key of this.sc.selectorsOf(identity)) for (const r of this.rulesBySubject.get(key) ?? []) out.push(r);
    return out;
  }

  /** Resolves an endpoint from scratch; endpoints with the same identity and ports share the work. */
  private recomputeEndpoint(
    ep: EpState,
    cache: Map<string, ComputedEndpoint>,
    pending: ReadonlySet<EpState>,
    partial: ReadonlyMap<EpState, unknown>,
  ): void {
    const sig = `${ep.rec.identity}|${JSON.stringify(ep.rec.pod.ports)}`;
    let c = cache.get(sig);
    if (!c) {
      // A sibling with the same identity and ports that this operation did not touch already
      // holds the answer (resolution depends on nothing else).
      for (const sib of this.epsByIdentity.get(ep.rec.identity) ?? [])
        if (sib !== ep && sib.computed && sib.sig === sig && !pending.has(sib) && !partial.has(sib)) {
          // The partitions map becomes shared: neither endpoint may change it in place any more.
          sib.ownsPartitions = false;
          c = { ...sib.computed, partitions: sib.partitions };
          break;
        }
      if (!c) {
        c = this.computeEndpoint(ep.rec);
        // Keep the old partition objects where nothing changed: every endpoint sharing them
        // then skips the comparison (diffPartition returns at once on identical objects).
        c = { ...c, partitions: reuseEqualPartitions(c.partitions, ep.partitions) };
      }
      cache.set(sig, c);
    }
    ep.sig = sig;
    ep.computed = c;
    ep.dirs = c.dirs;
    this.setSelUsers(ep, c.sels);
    if (c.usesNamedEgress) this.namedEgressEps.add(ep);
    else this.namedEgressEps.delete(ep);
    this.installPartitions(ep, c.partitions);
  }

  private computeEndpoint(rec: PodRec): ComputedEndpoint {
    const rules = this.rulesFor(rec.identity);
    const usedSels = new Set<string>();
    let usesNamedEgress = false;
    const dirs = {} as Record<TrafficDirection, DirPolicy>;
    for (const d of ['ingress', 'egress'] as const) {
      const filters: Filter[] = [];
      let enforced = false;
      let defaultDeny = false;
      const ddBy = new Map<string, PolicyRef>();
      for (const r of rules) {
        const section = r[d];
        if (!section) continue;
        enforced = true;
        if (section.defaultDeny) {
          defaultDeny = true;
          ddBy.set(policyRefKey(r.origin), r.origin);
        }
        for (const e of section.entries) {
          const { l4s, named } = this.entryPorts(e, d, rec.pod);
          if (named.length > 0 && d === 'egress') usesNamedEgress = true;
          if (l4s.length === 0 && named.length === 0) continue;
          for (const s of e.sels) {
            if (s !== null) usedSels.add(s);
            filters.push({
              selKey: s,
              l4s,
              named,
              isDeny: e.isDeny,
              ...(e.l7 ? { l7: e.l7 } : {}),
              authType: e.authType,
              origin: r.origin,
            });
          }
        }
      }
      if (!defaultDeny) filters.push({ selKey: null, l4s: [L4_ANY], named: [], isDeny: false, authType: 0 });
      else if (d === 'ingress' && this.allowLocalhost) {
        filters.push({ selKey: 'e:host', l4s: [L4_ANY], named: [], isDeny: false, authType: 0 });
        usedSels.add('e:host');
      }
      const anyContribs = filters.filter((f) => f.selKey === null).flatMap((f) => this.contributions(f, 0));
      dirs[d] = {
        enforced,
        defaultDeny,
        defaultDenyBy: [...ddBy.values()].sort(refCmp),
        filters,
        anyContribs,
      };
    }
    // Group filters by the identities they select, so each partition sees only its own.
    const byId = new Map<number, Record<TrafficDirection, Filter[]>>();
    byId.set(0, { ingress: [], egress: [] });
    for (const d of ['ingress', 'egress'] as const)
      for (const f of dirs[d].filters) {
        if (f.selKey === null) continue;
        for (const id of this.sc.selections(f.selKey)) {
          let g = byId.get(id);
          if (!g) {
            g = { ingress: [], egress: [] };
            byId.set(id, g);
          }
          g[d].push(f);
        }
      }
    const partitions = new Map<number, ReadonlyMap<string, Resolved>>();
    for (const [id, filters] of byId) {
      const part = this.computePartition(dirs, id, filters);
      if (part.size > 0) partitions.set(id, part);
    }
    return { dirs, sels: usedSels, usesNamedEgress, partitions };
  }

  private recomputePartition(
    ep: EpState,
    id: number,
    cache: WeakMap<object, Map<number, ReadonlyMap<string, Resolved>>>,
  ): void {
    let byId = cache.get(ep.dirs);
    if (!byId) {
      byId = new Map();
      cache.set(ep.dirs, byId);
    }
    let part = byId.get(id);
    if (!part) {
      part = this.computePartition(ep.dirs, id);
      byId.set(id, part);
    }
    this.diffPartition(ep, ep.partitions.get(id), part);
    if (!ep.ownsPartitions) {
      ep.partitions = new Map(ep.partitions);
      ep.ownsPartitions = true;
    }
    const own = ep.partitions as Map<number, ReadonlyMap<string, Resolved>>;
    if (part.size > 0) own.set(id, part);
    else own.delete(id);
  }

  private entryPorts(e: CompiledEntry, d: TrafficDirection, pod: Pod): { l4s: L4Prefix[]; named: NamedPort[] } {
    if (!e.ports) return { l4s: [L4_ANY], named: [] };
    const l4s: L4Prefix[] = [];
    const named: NamedPort[] = [];
    for (const p of e.ports) {
      if (!portCarriesL7(p, e.l7)) continue;
      if (p.name !== undefined) {
        if (d === 'egress') named.push({ name: p.name, protocol: p.protocol });
        else
          for (const cp of pod.ports)
            if (cp.name === p.name && cp.protocol === p.protocol)
              l4s.push({ protocol: p.protocol, port: cp.containerPort, portPrefixLen: 16 });
        continue;
      }
      if (p.protocol === 0) {
        l4s.push(L4_ANY);
        continue;
      }
      for (const r of portRangePrefixes(p.port, p.endPort)) l4s.push({ protocol: p.protocol, ...r });
    }
    return { l4s, named };
  }

  private contributions(f: Filter, id: number): Contribution[] {
    const out: Contribution[] = [];
    const push = (l4: L4Prefix) =>
      out.push({
        l4,
        isDeny: f.isDeny,
        authType: f.authType,
        ...(f.l7 ? { l7: f.l7 } : {}),
        ...(f.origin ? { origin: f.origin } : {}),
      });
    for (const l4 of f.l4s) push(l4);
    for (const n of f.named) {
      const table = id === 0 ? this.allNamedPorts : this.namedPorts.get(id);
      for (const port of table?.get(`${n.name}/${n.protocol}`)?.keys() ?? [])
        push({ protocol: n.protocol, port, portPrefixLen: 16 });
    }
    return out;
  }

  private computePartition(
    dirs: Record<TrafficDirection, DirPolicy>,
    id: number,
    filtersOfId?: Record<TrafficDirection, readonly Filter[]>,
  ): Map<string, Resolved> {
    const out = new Map<string, Resolved>();
    for (const d of ['ingress', 'egress'] as const) {
      const dp = dirs[d];
      let own: readonly Contribution[];
      if (id === 0) own = dp.anyContribs;
      else {
        const acc: Contribution[] = [];
        if (filtersOfId) for (const f of filtersOfId[d]) acc.push(...this.contributions(f, id));
        else
          for (const f of dp.filters)
            if (f.selKey !== null && this.sc.selections(f.selKey).has(id)) acc.push(...this.contributions(f, id));
        own = acc;
      }
      if (own.length === 0) continue;
      const any = id === 0 ? [] : dp.anyContribs;
      for (const r of this.resolveEntries(own, any, d, id)) out.set(mapStateKey(r.key), r);
    }
    return out;
  }

  /**
   * Map entries for one remote identity (or 0) in one direction. Every L4 prefix of an own
   * contribution gets an entry, plus each identity-0 allow prefix that an own allow covers (so
   * the longest match for this identity always carries the union of every rule that covers
   * the traffic); an entry merges all allows covering its prefix; any covering deny removes it.
   */
  private resolveEntries(
    own: readonly Contribution[],
    any: readonly Contribution[],
    d: TrafficDirection,
    id: number,
  ): Resolved[] {
    // Fast path for the common partition: one rule allows this peer, nothing else applies.
    if (own.length === 1 && !own[0].isDeny && any.length === 0) {
      const c = own[0];
      const l7 = c.l7 ? mergeL7(own) : undefined;
      const entry: PolicyEntry = {
        isDeny: false,
        proxyPort: l7 ? this.proxyPort(l7.parser, d) : 0,
        authType: c.authType,
        derivedFrom: c.origin ? [c.origin] : [],
      };
      return [resolved(policyKey(id, d, c.l4), entry, l7)];
    }
    const denies = [...own, ...any].filter((c) => c.isDeny);
    const ownAllows = own.filter((c) => !c.isDeny);
    const anyAllows = any.filter((c) => !c.isDeny);
    const denyKeys = new Map<string, { l4: L4Prefix; origins: PolicyRef[] }>();
    for (const c of own)
      if (c.isDeny) {
        const k = l4Key(c.l4);
        const have = denyKeys.get(k);
        if (have) {
          if (c.origin) have.origins.push(c.origin);
        } else denyKeys.set(k, { l4: c.l4, origins: c.origin ? [c.origin] : [] });
      }
    const candidates = new Map<string, L4Prefix>();
    for (const c of ownAllows) candidates.set(l4Key(c.l4), c.l4);
    for (const c of anyAllows)
      if (!candidates.has(l4Key(c.l4)) && ownAllows.some((o) => l4Covers(o.l4, c.l4)))
        candidates.set(l4Key(c.l4), c.l4);
    const out: Resolved[] = [];
    for (const { l4, origins } of denyKeys.values())
      out.push(
        resolved(policyKey(id, d, l4), { isDeny: true, proxyPort: 0, authType: 0, derivedFrom: uniqRefs(origins) }),
      );
    for (const [k, l4] of candidates) {
      if (denyKeys.has(k) || denies.some((x) => l4Covers(x.l4, l4))) continue;
      const covering = [...ownAllows, ...anyAllows].filter((c) => l4Covers(c.l4, l4));
      let authType = 0;
      for (const c of covering) authType = Math.max(authType, c.authType);
      const l7 = mergeL7(covering);
      const entry: PolicyEntry = {
        isDeny: false,
        proxyPort: l7 ? this.proxyPort(l7.parser, d) : 0,
        authType,
        derivedFrom: uniqRefs(covering.flatMap((c) => (c.origin ? [c.origin] : []))),
      };
      out.push(resolved(policyKey(id, d, l4), entry, l7));
    }
    return out;
  }

  private setSelUsers(ep: EpState, sels: Set<string>): void {
    for (const s of ep.sels)
      if (!sels.has(s)) {
        this.selUsers.get(s)?.delete(ep);
        if (this.selUsers.get(s)?.size === 0) this.selUsers.delete(s);
      }
    for (const s of sels) {
      let u = this.selUsers.get(s);
      if (!u) {
        u = new Set();
        this.selUsers.set(s, u);
      }
      u.add(ep);
    }
    ep.sels = sels;
  }

  /** Installs an endpoint's new partitions, logging every changed key for the diff. */
  private installPartitions(ep: EpState, next: ReadonlyMap<number, ReadonlyMap<string, Resolved>>): void {
    for (const [id, prev] of ep.partitions) if (!next.has(id)) this.diffPartition(ep, prev, undefined);
    for (const [id, part] of next) this.diffPartition(ep, ep.partitions.get(id), part);
    // Shared with sibling endpoints until one of them changes a single partition (copy on write).
    ep.partitions = next;
    ep.ownsPartitions = false;
  }

  /** Applies one identity's partition change to the endpoint's flat map state and the change log. */
  private diffPartition(
    ep: EpState,
    prev: ReadonlyMap<string, Resolved> | undefined,
    next: ReadonlyMap<string, Resolved> | undefined,
  ): void {
    if (prev === next) return;
    let log = this.changes.get(ep.id);
    if (!log) {
      log = new Map();
      this.changes.set(ep.id, log);
    }
    let l7Changed = false;
    if (prev)
      for (const [k, r] of prev) {
        const n = next?.get(k);
        if (n && sameResolved(r, n)) continue;
        if (!log.has(k)) log.set(k, r);
        if ((r.l7?.sig ?? '') !== (n?.l7?.sig ?? '')) l7Changed = true;
      }
    if (next)
      for (const [k, n] of next) {
        const r = prev?.get(k);
        if (r && sameResolved(r, n)) continue;
        if (!log.has(k)) log.set(k, r);
        if ((r?.l7?.sig ?? '') !== (n.l7?.sig ?? '')) l7Changed = true;
      }
    if (l7Changed) this.l7Changed.add(ep.id);
  }

  private onSelectionChanges(changes: readonly SelectionChange[]): void {
    for (const c of changes) {
      if (this.rulesBySubject.has(c.selector))
        for (const ep of this.epsByIdentity.get(c.identity) ?? []) this.dirtyFull.add(ep);
      for (const ep of this.selUsers.get(c.selector) ?? []) {
        let s = this.dirtyPartial.get(ep);
        if (!s) {
          s = new Set();
          this.dirtyPartial.set(ep, s);
        }
        s.add(c.identity);
      }
    }
  }

  /** Resolves every endpoint the operation touched, once. */
  private resolveDirty(): void {
    const full = this.dirtyFull;
    const partial = this.dirtyPartial;
    this.dirtyFull = new Set();
    this.dirtyPartial = new Map();
    const cache = new Map<string, ComputedEndpoint>();
    for (const ep of full) if (this.endpoints.get(ep.id) === ep) this.recomputeEndpoint(ep, cache, full, partial);
    const pcache = new WeakMap<object, Map<number, ReadonlyMap<string, Resolved>>>();
    for (const [ep, ids] of partial) {
      if (full.has(ep) || this.endpoints.get(ep.id) !== ep) continue;
      for (const id of ids) this.recomputePartition(ep, id, pcache);
    }
  }

  private flush(): MapStateDiff[] {
    this.resolveDirty();
    const out: MapStateDiff[] = [];
    for (const [epId, log] of [...this.changes].sort((a, b) => a[0] - b[0])) {
      const ep = this.endpoints.get(epId);
      const adds: Array<readonly [PolicyKey, PolicyEntry]> = [];
      const deletes: PolicyKey[] = [];
      for (const [k, before] of log) {
        const after = ep?.view.get(k);
        if (after && before && sameEntry(before.entry, after[1])) continue;
        if (after) adds.push(after);
        else if (before) deletes.push(before.key);
      }
      if (adds.length > 0 || deletes.length > 0) out.push({ endpointId: epId, adds, deletes });
    }
    this.changes = new Map();
    return out;
  }

  private endpointInfo(ep: EpState): EndpointInfo {
    return podEndpointInfo(ep.rec);
  }
}

function podEndpointInfo(rec: PodRec): EndpointInfo {
  return {
    endpointId: rec.epId ?? 0,
    namespace: rec.pod.namespace,
    name: rec.pod.name,
    identity: rec.identity,
    podIPs: rec.pod.podIPs,
    labels: rec.labels,
    ...(rec.pod.nodeName !== undefined ? { nodeName: rec.pod.nodeName } : {}),
    isLocal: rec.epId !== undefined,
  };
}

function podPrefixes(pod: Pod): Prefix[] {
  return pod.podIPs.flatMap((ip) => hostPrefix(ip) ?? []);
}

// Private helpers.

const CLUSTER_RESERVED = ['host', 'remote-node', 'init', 'ingress', 'health', 'unmanaged', 'kube-apiserver'];

interface PodRec {
  readonly pod: Pod;
  /** undefined for a remote pod (no endpoint on this node). */
  readonly epId: number | undefined;
  readonly identity: number;
  readonly labels: LabelSet;
  readonly prefixes: readonly Prefix[];
}

interface ServiceRec {
  readonly svc: Service;
  readonly holds: readonly Prefix[];
}

interface CompiledEntry {
  readonly isDeny: boolean;
  /** Selector keys; null = any peer. */
  readonly sels: ReadonlyArray<string | null>;
  readonly ports?: readonly PortSpec[];
  readonly l7?: L7Rules;
  readonly authType: number;
}

interface CompiledDir {
  readonly defaultDeny: boolean;
  readonly entries: readonly CompiledEntry[];
}

interface CompiledRule {
  readonly subjectKey: string;
  readonly origin: PolicyRef;
  readonly ingress?: CompiledDir;
  readonly egress?: CompiledDir;
}

interface CompiledPolicy {
  readonly ref: PolicyRef;
  readonly rules: readonly CompiledRule[];
  readonly selKeys: readonly string[];
  readonly cidrs: readonly Prefix[];
}

interface NamedPort {
  readonly name: string;
  readonly protocol: number;
}

interface Filter {
  readonly selKey: string | null;
  readonly l4s: readonly L4Prefix[];
  readonly named: readonly NamedPort[];
  readonly isDeny: boolean;
  readonly l7?: L7Rules;
  readonly authType: number;
  readonly origin?: PolicyRef;
}

interface Contribution {
  readonly l4: L4Prefix;
  readonly isDeny: boolean;
  readonly l7?: L7Rules;
  readonly authType: number;
  readonly origin?: PolicyRef;
}

interface DirPolicy {
  readonly enforced: boolean;
  readonly defaultDeny: boolean;
  readonly defaultDenyBy: readonly PolicyRef[];
  readonly filters: readonly Filter[];
  readonly anyContribs: readonly Contribution[];
}

interface MergedL7 {
  readonly parser: L7Parser;
  readonly allowAll: boolean;
  readonly http?: readonly HttpRule[];
  readonly dns?: readonly DnsRule[];
  readonly kafka?: readonly KafkaRule[];
  /** Canonical text of the above, to compare and group. */
  readonly sig: string;
}

interface Resolved {
  readonly key: PolicyKey;
  readonly entry: PolicyEntry;
  /** [key, entry], allocated once and shared by every endpoint's flat map state. */
  readonly pair: readonly [PolicyKey, PolicyEntry];
  readonly l7?: MergedL7;
}

interface EpState {
  readonly id: number;
  rec: PodRec;
  dirs: Record<TrafficDirection, DirPolicy>;
  sels: Set<string>;
  /** Resolved entries by remote identity (0 = any); partition maps may be shared between endpoints. */
  partitions: ReadonlyMap<number, ReadonlyMap<string, Resolved>>;
  ownsPartitions: boolean;
  /** The map state handed out: a view over partitions. */
  readonly view: MapState;
  /** identity|ports of the last full resolution, and its result (shared with siblings). */
  sig?: string;
  computed?: ComputedEndpoint;
}

interface ComputedEndpoint {
  readonly dirs: Record<TrafficDirection, DirPolicy>;
  readonly sels: Set<string>;
  readonly usesNamedEgress: boolean;
  readonly partitions: ReadonlyMap<number, ReadonlyMap<string, Resolved>>;
}

/** Per endpoint: each changed key and its entry before the operation (undefined: it was absent). */
type ChangeLog = Map<number, Map<string, Resolved | undefined>>;

function newEpState(id: number, rec: PodRec): EpState {
  const empty: DirPolicy = { enforced: false, defaultDeny: false, defaultDenyBy: [], filters: [], anyContribs: [] };
  const ep: Omit<EpState, 'view'> = {
    id,
    rec,
    dirs: { ingress: empty, egress: empty },
    sels: new Set(),
    partitions: new Map(),
    ownsPartitions: true,
  };
  return Object.assign(ep, { view: new PartitionedMapState(ep) });
}

/** MapState over an endpoint's partitions; the identity is read back from the key text. */
class PartitionedMapState implements MapState {
  constructor(private readonly ep: { readonly partitions: ReadonlyMap<number, ReadonlyMap<string, Resolved>> }) {}
  get(key: string): readonly [PolicyKey, PolicyEntry] | undefined {
    const end = key.indexOf('|', 2);
    return this.ep.partitions.get(Number(key.slice(2, end)))?.get(key)?.pair;
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
  get size(): number {
    let n = 0;
    for (const p of this.ep.partitions.values()) n += p.size;
    return n;
  }
  *keys(): Iterable<string> {
    for (const p of this.ep.partitions.values()) yield* p.keys();
  }
  *values(): Iterable<readonly [PolicyKey, PolicyEntry]> {
    for (const p of this.ep.partitions.values()) for (const r of p.values()) yield r.pair;
  }
  *entries(): Iterable<[string, readonly [PolicyKey, PolicyEntry]]> {
    for (const p of this.ep.partitions.values()) for (const [k, r] of p) yield [k, r.pair];
  }
}

function cidrLabels(prefix: Prefix): LabelSet {
  return makeLabelSet([
    { source: SOURCE_CIDR, key: prefix.text, value: '' },
    { source: SOURCE_RESERVED, key: 'world', value: '' },
  ]);
}

function cidrMatcher(cidr: Prefix, except: readonly Prefix[], matchPods: boolean): (i: IdentityInfo) => boolean {
  const inside = (p: Prefix) => prefixContains(cidr, p) && !except.some((e) => prefixContains(e, p));
  return (i) => {
    if (i.prefix) return inside(i.prefix);
    if (
      cidr.len === 0 &&
      (i.id === IDENTITY_WORLD || i.id === (cidr.family === 4 ? IDENTITY_WORLD_IPV4 : IDENTITY_WORLD_IPV6))
    )
      return true;
    // Kubernetes ipBlock also matches pod IPs: a pod identity is selected when every pod IP
    // it has (of the block's family) lies inside the block and outside every except.
    if (matchPods && i.podPrefixes) {
      const fam = i.podPrefixes.filter((p) => p.family === cidr.family);
      return fam.length > 0 && fam.every(inside);
    }
    return false;
  };
}

/** L7 http/kafka rules apply to TCP only; DNS to TCP and UDP; other protocols of ANY are dropped. */
function portCarriesL7(p: PortSpec, l7: L7Rules | undefined): boolean {
  if (!l7) return true;
  if (l7.parser === 'dns') return p.protocol === PROTO_UDP || p.protocol === PROTO_TCP;
  return p.protocol === PROTO_TCP;
}

function reuseEqualPartitions(
  next: ReadonlyMap<number, ReadonlyMap<string, Resolved>>,
  prev: ReadonlyMap<number, ReadonlyMap<string, Resolved>>,
): Map<number, ReadonlyMap<string, Resolved>> {
  const out = new Map<number, ReadonlyMap<string, Resolved>>();
  for (const [id, part] of next) {
    const old = prev.get(id);
    out.set(id, old && samePartition(old, part) ? old : part);
  }
  return out;
}

function samePartition(a: ReadonlyMap<string, Resolved>, b: ReadonlyMap<string, Resolved>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, r] of a) {
    const o = b.get(k);
    if (!o || !sameResolved(r, o)) return false;
  }
  return true;
}

function resolved(key: PolicyKey, entry: PolicyEntry, l7?: MergedL7): Resolved {
  return { key, entry, pair: [key, entry], ...(l7 ? { l7 } : {}) };
}

function policyKey(identity: number, direction: TrafficDirection, l4: L4Prefix): PolicyKey {
  return { identity, direction, protocol: l4.protocol, port: l4.port, portPrefixLen: l4.portPrefixLen };
}

function mergeL7(covering: readonly Contribution[]): MergedL7 | undefined {
  const withL7 = covering.filter((c) => c.l7);
  if (withL7.length === 0) return undefined;
  // The most specific L7 rule names the parser; rules of another parser count as "allow all".
  const lead = withL7.reduce((a, b) => (l4Specificity(b.l4) > l4Specificity(a.l4) ? b : a));
  const parser = lead.l7!.parser;
  const allowAll = covering.some((c) => !c.l7 || c.l7.parser !== parser);
  const uniq = <T>(xs: readonly T[]): T[] => {
    const seen = new Map<string, T>();
    for (const x of xs) seen.set(JSON.stringify(x), x);
    return [...seen.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
  };
  const same = withL7.filter((c) => c.l7!.parser === parser).map((c) => c.l7!);
  const http = parser === 'http' ? uniq(same.flatMap((l) => l.http ?? [])) : undefined;
  const dns = parser === 'dns' ? uniq(same.flatMap((l) => l.dns ?? [])) : undefined;
  const kafka = parser === 'kafka' ? uniq(same.flatMap((l) => l.kafka ?? [])) : undefined;
  const body = { parser, allowAll, ...(http ? { http } : {}), ...(dns ? { dns } : {}), ...(kafka ? { kafka } : {}) };
  return { ...body, sig: JSON.stringify(body) };
}

function uniqRefs(refs: readonly PolicyRef[]): readonly PolicyRef[] {
  if (refs.length <= 1) return refs;
  const m = new Map<string, PolicyRef>();
  for (const r of refs) m.set(policyRefKey(r), r);
  return [...m.values()].sort(refCmp);
}

function refCmp(a: PolicyRef, b: PolicyRef): number {
  const x = policyRefKey(a);
  const y = policyRefKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function sameEntry(a: PolicyEntry, b: PolicyEntry): boolean {
  return (
    a.isDeny === b.isDeny &&
    a.proxyPort === b.proxyPort &&
    a.authType === b.authType &&
    a.derivedFrom.length === b.derivedFrom.length &&
    a.derivedFrom.every((r, i) => {
      const o = b.derivedFrom[i];
      return r === o || (r.name === o.name && r.namespace === o.namespace && r.kind === o.kind);
    })
  );
}

function sameResolved(a: Resolved, b: Resolved): boolean {
  return sameEntry(a.entry, b.entry) && (a.l7?.sig ?? '') === (b.l7?.sig ?? '');
}
