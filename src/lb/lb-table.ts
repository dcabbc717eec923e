// The load balancer's desired state on one node, and its changes as minimal map writes. Pure: the
// services are owned here (the agent feeds them from the store), pods are read from the policy
// engine through `pods` (no second copy), and every change comes out of takeDiff() as the entries
// to write and delete, in an order the datapath can apply without a window where a slot names a
// backend that is not there yet.
//
// Per service port there is one frontend per address: the ClusterIP, and for NodePort services the
// node's address. A frontend's backends are the ready pods its selector matches with the target
// port (EndpointSlice semantics); a terminating pod keeps its backend entry (its connections drain)
// but loses its slot (no new connection). internalTrafficPolicy Local limits a ClusterIP to this
// node's pods; externalTrafficPolicy Local does the same for a NodePort. IDs (backends, services)
// are stable for as long as the thing they name exists, and are seeded from the realized maps
// after a restart, so established connections never move.
import { DEFAULT_MAGLEV_TABLE_SIZE, maglevTable } from './maglev.js';
import type { ServiceSpec } from './service.js';
import { serviceKeyOf } from './service.js';

/** A pod as the load balancer sees it (the policy engine's Pod has these fields). */
export interface LbPod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly podIPs: readonly string[];
  readonly ports: ReadonlyArray<{ readonly name?: string; readonly containerPort: number; readonly protocol: number }>;
  readonly nodeName?: string;
  /** Being deleted: no new connections, existing ones drain. */
  readonly terminating?: boolean;
}

export interface LbFrontendKey {
  readonly address: string;
  readonly port: number;
  readonly protocol: number;
}

export const LbFlags = { nodePort: 0x01, affinity: 0x02 } as const;
export const LbAlgorithmCode = { random: 1, maglev: 2 } as const;

export interface LbServiceKey extends LbFrontendKey {
  /** 0: the master entry; 1..count: a backend slot. */
  readonly slot: number;
}

export interface LbServiceValue {
  readonly backendId: number;
  readonly count: number;
  readonly revNatIndex: number;
  readonly flags: number;
  readonly algorithm: number;
  readonly affinityTimeoutSeconds: number;
}

export interface LbBackend {
  readonly address: string;
  readonly port: number;
  readonly protocol: number;
  readonly isTerminating: boolean;
}

export interface LbDiff {
  readonly backends: { upserts: Array<[number, LbBackend]>; deletes: number[] };
  readonly revNat: { upserts: Array<[number, LbFrontendKey]>; deletes: number[] };
  /** Upserts: slots before masters (a master never counts a slot not written yet). */
  readonly services: { upserts: Array<[LbServiceKey, LbServiceValue]>; deletes: LbServiceKey[] };
  readonly maglev: { upserts: Array<[number, Uint32Array]>; deletes: number[] };
}

/** What the datapath's LB maps hold (read back for restarts, resync and `membrane bpf lb list`). */
export interface RealizedLb {
  readonly services: Array<[LbServiceKey, LbServiceValue]>;
  readonly backends: Array<[number, LbBackend]>;
  readonly revNat: Array<[number, { address: string; port: number }]>;
}

/** One frontend as `membrane service list` shows it. */
export interface LbFrontendView {
  readonly id: number;
  readonly frontend: LbFrontendKey;
  readonly type: 'ClusterIP' | 'NodePort';
  readonly service: { readonly namespace: string; readonly name: string; readonly port: string };
  readonly algorithm: 'random' | 'maglev';
  readonly affinityTimeoutSeconds: number;
  readonly trafficPolicy: 'Cluster' | 'Local';
  readonly backends: ReadonlyArray<{
    id: number;
    address: string;
    port: number;
    protocol: number;
    state: 'active' | 'terminating';
  }>;
}

export interface LbTableOptions {
  readonly node: string;
  /** The node's address: NodePort frontends. */
  readonly nodeIp: string;
  readonly pods: (namespace: string) => readonly LbPod[];
  readonly maglevTableSize?: number;
  /** IDs the realized maps hold (after a restart): kept for the same backends and frontends. */
  readonly seed?: { backends: ReadonlyArray<[number, LbBackend]>; frontends: ReadonlyArray<[number, LbFrontendKey]> };
}

export function emptyLbDiff(): LbDiff {
  return {
    backends: { upserts: [], deletes: [] },
    revNat: { upserts: [], deletes: [] },
    services: { upserts: [], deletes: [] },
    maglev: { upserts: [], deletes: [] },
  };
}

export function frontendName(f: LbFrontendKey): string {
  return `${f.address}:${f.port}/${protocolName(f.protocol)}`;
}

export function protocolName(p: number): string {
  return p === 6 ? 'TCP' : p === 17 ? 'UDP' : String(p);
}

export class LbTable {
  readonly maglevTableSize: number;
  readonly #o: LbTableOptions;
  readonly #services = new Map<string, ServiceSpec>();
  readonly #byNamespace = new Map<string, Set<string>>();
  /** Realized-by-this-table frontends, by frontend name. */
  readonly #frontends = new Map<string, FrontendState>();
  readonly #frontendsOfService = new Map<string, Set<string>>();
  readonly #backendIds = new IdTable(1);
  readonly #frontendIds = new IdTable(1);
  /** Backend name -> frontends using it (refcount) and its state. */
  readonly #backendUse = new Map<string, Set<string>>();
  readonly #backendState = new Map<string, LbBackend>();
  readonly #dirty = new Set<string>();
  /** Services holding each pod (namespace/name), to find what a pod change touches. */
  readonly #servicesOfPod = new Map<string, Set<string>>();

  constructor(o: LbTableOptions) {
    this.#o = o;
    this.maglevTableSize = o.maglevTableSize ?? DEFAULT_MAGLEV_TABLE_SIZE;
    for (const [id, b] of o.seed?.backends ?? []) this.#backendIds.seed(id, backendName(b));
    for (const [id, f] of o.seed?.frontends ?? []) this.#frontendIds.seed(id, frontendName(f));
  }

  upsertService(spec: ServiceSpec): void {
    const k = serviceKeyOf(spec);
    this.#services.set(k, spec);
    const ns = this.#byNamespace.get(spec.namespace) ?? new Set<string>();
    this.#byNamespace.set(spec.namespace, ns);
    ns.add(k);
    this.#dirty.add(k);
  }

  removeService(namespace: string, name: string): void {
    const k = `${namespace}/${name}`;
    if (!this.#services.delete(k)) return;
    this.#byNamespace.get(namespace)?.delete(k);
    this.#dirty.add(k);
  }

  service(namespace: string, name: string): ServiceSpec | undefined {
    return this.#services.get(`${namespace}/${name}`);
  }

  services(): ServiceSpec[] {
    return [...this.#services.values()];
  }

  /** A pod was added, changed or removed: the services that select it or held it are recomputed. */
  podChanged(namespace: string, name: string): void {
    const pk = `${namespace}/${name}`;
    for (const k of this.#servicesOfPod.get(pk) ?? []) this.#dirty.add(k);
    const pod = this.#o.pods(namespace).find((p) => p.name === name);
    if (!pod) return;
    for (const k of this.#byNamespace.get(namespace) ?? []) {
      const s = this.#services.get(k);
      if (s?.selector && selects(s.selector, pod.labels)) this.#dirty.add(k);
    }
  }

  /** Every service of a namespace (its pods came or went as a whole). */
  namespaceChanged(namespace: string): void {
    for (const k of this.#byNamespace.get(namespace) ?? []) this.#dirty.add(k);
  }

  /** Recomputes what changed since the last call and returns the writes that realize it. */
  takeDiff(): LbDiff {
    const d = emptyLbDiff();
    const touchedBackends = new Set<string>();
    const masters: Array<[LbServiceKey, LbServiceValue]> = [];
    // IDs freed here are reused only by a later diff: this one deletes their entries last.
    const released: string[] = [];
    for (const sk of this.#dirty) this.#recompute(sk, d, masters, touchedBackends, released);
    this.#dirty.clear();
    for (const fname of released) if (!this.#frontends.has(fname)) this.#frontendIds.release(fname);
    d.services.upserts.push(...masters);
    // Backends: new ones and state changes first in the batch order of the realizer; unused ones go.
    for (const name of touchedBackends) {
      const users = this.#backendUse.get(name);
      const id = this.#backendIds.get(name);
      if (id === undefined) continue;
      if (!users || users.size === 0) {
        this.#backendUse.delete(name);
        this.#backendState.delete(name);
        this.#backendIds.release(name);
        d.backends.deletes.push(id);
      }
    }
    return dropRewritten(d);
  }

  /** Everything the maps should hold (start and resync compare it with what they hold). */
  desired(): LbDiff {
    const d = emptyLbDiff();
    for (const [name, b] of this.#backendState) d.backends.upserts.push([this.#backendIds.get(name)!, b]);
    for (const f of this.#frontends.values()) {
      d.revNat.upserts.push([f.id, f.key]);
      f.active.forEach((bn, i) => {
        d.services.upserts.push([
          { ...f.key, slot: i + 1 },
          { ...slotValue(f), backendId: this.#backendIds.get(bn)! },
        ]);
      });
      d.services.upserts.push([{ ...f.key, slot: 0 }, masterValue(f)]);
      if (f.algorithm === 'maglev') d.maglev.upserts.push([f.id, this.#maglev(f)]);
    }
    return d;
  }

  frontends(): LbFrontendView[] {
    return [...this.#frontends.values()]
      .map((f) => ({
        id: f.id,
        frontend: f.key,
        type: f.type,
        service: { namespace: f.namespace, name: f.name, port: f.portName },
        algorithm: f.algorithm,
        affinityTimeoutSeconds: f.affinityTimeoutSeconds,
        trafficPolicy: f.trafficPolicy,
        backends: [...f.active, ...f.terminating].map((bn) => {
          const b = this.#backendState.get(bn)!;
          return {
            id: this.#backendIds.get(bn)!,
            address: b.address,
            port: b.port,
            protocol: b.protocol,
            state: b.isTerminating ? ('terminating' as const) : ('active' as const),
          };
        }),
      }))
      .sort((a, b) => a.id - b.id);
  }

  /**
   * The service a flow's destination belongs to (flows' destination_service): a frontend, or the
   * backend a frontend was translated to (the datapath reports translated addresses). O(1).
   */
  serviceOfAddress(address: string, port: number): { namespace: string; name: string } | undefined {
    for (const protocol of [6, 17]) {
      const f = this.#frontends.get(frontendName({ address, port, protocol }));
      if (f) return { namespace: f.namespace, name: f.name };
      const users = this.#backendUse.get(`${address}:${port}/${protocolName(protocol)}`);
      for (const fname of users ?? []) {
        const g = this.#frontends.get(fname);
        if (g) return { namespace: g.namespace, name: g.name };
      }
    }
    return undefined;
  }

  // ---- recompute ----

  #recompute(
    sk: string,
    d: LbDiff,
    masters: Array<[LbServiceKey, LbServiceValue]>,
    touched: Set<string>,
    released: string[],
  ): void {
    const spec = this.#services.get(sk);
    const next = spec ? this.#computeFrontends(spec) : [];
    const before = this.#frontendsOfService.get(sk) ?? new Set<string>();
    const after = new Set(next.map((f) => frontendName(f.key)));
    // Frontends that went away.
    for (const fname of before) {
      if (after.has(fname)) continue;
      const f = this.#frontends.get(fname);
      // Another service took this address and port over in the same diff: it is theirs now.
      if (!f || `${f.namespace}/${f.name}` !== sk) continue;
      for (let i = f.active.length; i >= 1; i--) d.services.deletes.push({ ...f.key, slot: i });
      d.services.deletes.push({ ...f.key, slot: 0 });
      d.revNat.deletes.push(f.id);
      if (f.algorithm === 'maglev') d.maglev.deletes.push(f.id);
      for (const bn of [...f.active, ...f.terminating]) this.#unuse(bn, fname, touched);
      this.#unholdPods(f, sk);
      this.#frontends.delete(fname);
      released.push(fname);
    }
    for (const n of next) {
      const fname = frontendName(n.key);
      const old = this.#frontends.get(fname);
      const id = old?.id ?? this.#frontendIds.allocate(fname);
      // Backends first: their entries exist before any slot names them.
      for (const [bn, b] of n.backends) {
        const prev = this.#backendState.get(bn);
        if (!prev || prev.isTerminating !== b.isTerminating) {
          const bid = this.#backendIds.get(bn) ?? this.#backendIds.allocate(bn);
          this.#backendState.set(bn, b);
          d.backends.upserts.push([bid, b]);
        }
        const users = this.#backendUse.get(bn) ?? new Set<string>();
        this.#backendUse.set(bn, users);
        users.add(fname);
      }
      const activeNames: string[] = [];
      const terminating: string[] = [];
      for (const [bn, b] of n.backends) (b.isTerminating ? terminating : activeNames).push(bn);
      const active = stableOrder(old?.active ?? [], activeNames);
      const f: FrontendState = { ...n, id, active, terminating };
      if (!old) d.revNat.upserts.push([id, f.key]);
      // Slots that changed, then slots beyond the new count.
      active.forEach((bn, i) => {
        if (old?.active[i] !== bn || (old && slotValue(old).flags !== slotValue(f).flags))
          d.services.upserts.push([
            { ...f.key, slot: i + 1 },
            { ...slotValue(f), backendId: this.#backendIds.get(bn)! },
          ]);
      });
      for (let i = old?.active.length ?? 0; i > active.length; i--) d.services.deletes.push({ ...f.key, slot: i });
      if (!old || !sameMaster(masterValue(old), masterValue(f))) masters.push([{ ...f.key, slot: 0 }, masterValue(f)]);
      const maglevChanged = f.algorithm === 'maglev' && (old?.algorithm !== 'maglev' || !sameList(old.active, active));
      if (maglevChanged) d.maglev.upserts.push([id, this.#maglev(f)]);
      if (old?.algorithm === 'maglev' && f.algorithm !== 'maglev') d.maglev.deletes.push(id);
      // Backends this frontend no longer uses.
      if (old) {
        const keep = new Set([...active, ...terminating]);
        for (const bn of [...old.active, ...old.terminating]) if (!keep.has(bn)) this.#unuse(bn, fname, touched);
        this.#unholdPods(old, sk);
      }
      this.#frontends.set(fname, f);
      this.#holdPods(f, sk);
    }
    if (after.size > 0) this.#frontendsOfService.set(sk, after);
    else this.#frontendsOfService.delete(sk);
  }

  #computeFrontends(spec: ServiceSpec): ComputedFrontend[] {
    if (!spec.selector) return [];
    const selector = spec.selector;
    const pods = this.#o.pods(spec.namespace).filter((p) => selects(selector, p.labels) && p.podIPs.length > 0);
    const out: ComputedFrontend[] = [];
    for (const port of spec.ports) {
      const all = new Map<string, LbBackend>();
      const local = new Map<string, LbBackend>();
      const podsOf: string[] = [];
      for (const p of pods) {
        const target =
          typeof port.targetPort === 'number'
            ? port.targetPort
            : p.ports.find((c) => c.name === port.targetPort && c.protocol === port.protocol)?.containerPort;
        if (target === undefined) continue;
        const b: LbBackend = {
          address: p.podIPs[0],
          port: target,
          protocol: port.protocol,
          isTerminating: p.terminating === true,
        };
        const bn = backendName(b);
        all.set(bn, b);
        if (p.nodeName === this.#o.node) local.set(bn, b);
        podsOf.push(`${p.namespace}/${p.name}`);
      }
      const base = {
        namespace: spec.namespace,
        name: spec.name,
        portName: port.name,
        algorithm: spec.algorithm,
        affinityTimeoutSeconds: spec.affinityTimeoutSeconds,
        pods: podsOf,
      };
      out.push({
        ...base,
        key: { address: spec.clusterIP, port: port.port, protocol: port.protocol },
        type: 'ClusterIP',
        trafficPolicy: spec.internalTrafficPolicy,
        backends: spec.internalTrafficPolicy === 'Local' ? local : all,
      });
      if (spec.type === 'NodePort' && port.nodePort && this.#o.nodeIp)
        out.push({
          ...base,
          key: { address: this.#o.nodeIp, port: port.nodePort, protocol: port.protocol },
          type: 'NodePort',
          trafficPolicy: spec.externalTrafficPolicy,
          backends: spec.externalTrafficPolicy === 'Local' ? local : all,
        });
    }
    return out;
  }

  #maglev(f: FrontendState): Uint32Array {
    const idx = maglevTable(f.active, this.maglevTableSize);
    const ids = f.active.map((bn) => this.#backendIds.get(bn)!);
    const out = new Uint32Array(idx.length);
    for (let i = 0; i < idx.length; i++) out[i] = ids[idx[i]];
    return out;
  }

  #unuse(bn: string, fname: string, touched: Set<string>): void {
    this.#backendUse.get(bn)?.delete(fname);
    touched.add(bn);
  }

  #holdPods(f: FrontendState, sk: string): void {
    for (const pk of f.pods) {
      const s = this.#servicesOfPod.get(pk) ?? new Set<string>();
      this.#servicesOfPod.set(pk, s);
      s.add(sk);
    }
  }

  #unholdPods(f: FrontendState, sk: string): void {
    for (const pk of f.pods) {
      const s = this.#servicesOfPod.get(pk);
      s?.delete(sk);
      if (s?.size === 0) this.#servicesOfPod.delete(pk);
    }
  }
}

/**
 * The writes that turn `realized` into `desired` (both whole states): entries that differ or are
 * missing are written, entries nothing wants are deleted. Maglev tables are compared by the caller.
 */
export function diffLb(realized: RealizedLb, desired: LbDiff): LbDiff {
  const d = emptyLbDiff();
  const have = new Map(realized.services.map(([k, v]) => [`${frontendName(k)}#${k.slot}`, v]));
  const want = new Set<string>();
  for (const [k, v] of desired.services.upserts) {
    const id = `${frontendName(k)}#${k.slot}`;
    want.add(id);
    const h = have.get(id);
    if (!h || h.backendId !== v.backendId || !sameMaster(h, v)) d.services.upserts.push([k, v]);
  }
  for (const [k] of realized.services) if (!want.has(`${frontendName(k)}#${k.slot}`)) d.services.deletes.push(k);
  const haveB = new Map(realized.backends);
  const wantB = new Set<number>();
  for (const [id, b] of desired.backends.upserts) {
    wantB.add(id);
    const h = haveB.get(id);
    if (
      !h ||
      h.address !== b.address ||
      h.port !== b.port ||
      h.protocol !== b.protocol ||
      h.isTerminating !== b.isTerminating
    )
      d.backends.upserts.push([id, b]);
  }
  for (const [id] of realized.backends) if (!wantB.has(id)) d.backends.deletes.push(id);
  const haveR = new Map(realized.revNat);
  const wantR = new Set<number>();
  for (const [id, f] of desired.revNat.upserts) {
    wantR.add(id);
    const h = haveR.get(id);
    if (!h || h.address !== f.address || h.port !== f.port) d.revNat.upserts.push([id, f]);
  }
  for (const [id] of realized.revNat) if (!wantR.has(id)) d.revNat.deletes.push(id);
  // Slots before masters, as takeDiff orders them.
  d.services.upserts.sort((a, b) => (a[0].slot === 0 ? 1 : 0) - (b[0].slot === 0 ? 1 : 0));
  d.maglev.upserts.push(...desired.maglev.upserts);
  return d;
}

// ---- private ----

interface ComputedFrontend {
  readonly key: LbFrontendKey;
  readonly type: 'ClusterIP' | 'NodePort';
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly algorithm: 'random' | 'maglev';
  readonly affinityTimeoutSeconds: number;
  readonly trafficPolicy: 'Cluster' | 'Local';
  readonly backends: ReadonlyMap<string, LbBackend>;
  readonly pods: readonly string[];
}

interface FrontendState extends ComputedFrontend {
  readonly id: number;
  /** Backend names in slot order (slot i + 1). */
  readonly active: readonly string[];
  readonly terminating: readonly string[];
}

function backendName(b: { address: string; port: number; protocol: number }): string {
  return `${b.address}:${b.port}/${protocolName(b.protocol)}`;
}

function masterValue(f: FrontendState): LbServiceValue {
  return {
    backendId: 0,
    count: f.active.length,
    revNatIndex: f.id,
    flags: (f.type === 'NodePort' ? LbFlags.nodePort : 0) | (f.affinityTimeoutSeconds > 0 ? LbFlags.affinity : 0),
    algorithm: LbAlgorithmCode[f.algorithm],
    affinityTimeoutSeconds: f.affinityTimeoutSeconds,
  };
}

function slotValue(f: FrontendState): LbServiceValue {
  return { backendId: 0, count: 0, revNatIndex: f.id, flags: 0, algorithm: 0, affinityTimeoutSeconds: 0 };
}

/** A key deleted by one frontend and written by another in the same diff is only written. */
function dropRewritten(d: LbDiff): LbDiff {
  const svcKey = (k: LbServiceKey) => `${frontendName(k)}#${k.slot}`;
  const written = new Set(d.services.upserts.map(([k]) => svcKey(k)));
  const revs = new Set(d.revNat.upserts.map(([id]) => id));
  const tables = new Set(d.maglev.upserts.map(([id]) => id));
  return {
    backends: d.backends,
    revNat: { upserts: d.revNat.upserts, deletes: d.revNat.deletes.filter((id) => !revs.has(id)) },
    services: { upserts: d.services.upserts, deletes: d.services.deletes.filter((k) => !written.has(svcKey(k))) },
    maglev: { upserts: d.maglev.upserts, deletes: d.maglev.deletes.filter((id) => !tables.has(id)) },
  };
}

function sameMaster(a: LbServiceValue, b: LbServiceValue): boolean {
  return (
    a.count === b.count &&
    a.revNatIndex === b.revNatIndex &&
    a.flags === b.flags &&
    a.algorithm === b.algorithm &&
    a.affinityTimeoutSeconds === b.affinityTimeoutSeconds
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The new slot order with the fewest slot writes: survivors keep their slot, a hole is filled by
 * the last survivor, newcomers are appended.
 */
function stableOrder(old: readonly string[], next: readonly string[]): string[] {
  if (old.length === 0) return [...next].sort();
  if (sameList(old, next)) return [...old];
  const want = new Set(next);
  const out = old.filter((x) => want.has(x));
  if (out.length < old.length) {
    const kept = [...old];
    for (let i = 0; i < kept.length; i++) {
      while (i < kept.length && !want.has(kept[i])) {
        const last = kept.pop()!;
        if (i < kept.length) kept[i] = last;
      }
    }
    out.length = 0;
    out.push(...kept);
  }
  const have = new Set(out);
  for (const x of [...next].sort()) if (!have.has(x)) out.push(x);
  return out;
}

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** Names to small integers, lowest free first; an ID is reused only after its name was released. */
class IdTable {
  readonly #byName = new Map<string, number>();
  readonly #used = new Set<number>();
  #next: number;
  readonly #free: number[] = [];

  constructor(first: number) {
    this.#next = first;
  }

  seed(id: number, name: string): void {
    this.#byName.set(name, id);
    this.#used.add(id);
    if (id >= this.#next) {
      for (let i = this.#next; i < id; i++) if (!this.#used.has(i)) this.#free.push(i);
      this.#next = id + 1;
    }
    const at = this.#free.indexOf(id);
    if (at >= 0) this.#free.splice(at, 1);
  }

  get(name: string): number | undefined {
    return this.#byName.get(name);
  }

  allocate(name: string): number {
    const have = this.#byName.get(name);
    if (have !== undefined) return have;
    const id = this.#free.length > 0 ? this.#free.pop()! : this.#next++;
    this.#byName.set(name, id);
    this.#used.add(id);
    return id;
  }

  release(name: string): void {
    const id = this.#byName.get(name);
    if (id === undefined) return;
    this.#byName.delete(name);
    this.#used.delete(id);
    this.#free.push(id);
  }
}
