// bench/store: the cluster store on a real 3-member etcd cluster (three etcd processes on
// loopback ports, data in a temporary directory), paired in one run against raw etcd3 calls on
// the same cluster:
//   1. identity allocations/s (Cilium's kvstore allocator: master + slave key by transaction,
//      4 agents at once, each with its watch-fed identity cache) vs raw etcd3 transactions of the
//      same shape (a create-only compare and two puts) from 4 clients, interleaved rounds;
//   2. convergence: a pod created on node A (its endpoint registered with agent A: identity
//      allocated, endpoint key written) until node B's agent has its ipcache entry and the policy
//      entry for its new identity realized (in B's datapath port), with 1k and 10k endpoints in
//      the store; both agents run in this process, their datapath ports in memory;
//   3. store events/s the agent absorbs (one endpoint key per write, 32 writers) vs a raw etcd3
//      watcher on the same prefix receiving the same writes;
//   4. the agent's heap after it loaded 1k and 10k endpoints.
//   npx tsc -p . && node --expose-gc dist/bench/store.bench.js [--quick]     (needs etcd)
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { Agent } from '../src/agent/agent.js';
import type { Endpoint, EndpointRegistration, SubsystemHealth } from '../src/agent/api-types.js';
import { IdentityCache } from '../src/agent/identity-cache.js';
import type { DatapathPort, IpcacheChange, IpcacheEntry, RealizedPolicyEntry } from '../src/agent/subsystem-ports.js';
import { makeLabelSet } from '../src/identity/labels.js';
import type { RealizedLb } from '../src/lb/lb-table.js';
import type { MapStateDiff } from '../src/policy/map-state-types.js';
import { PolicyEngine } from '../src/policy/policy-engine.js';
import type { Pod } from '../src/policy/world.js';
import {
  type ClusterEndpoint,
  type ClusterPolicy,
  decodeIdentity,
  ENDPOINTS_PREFIX,
  endpointKey,
  IDENTITY_IDS_PREFIX,
  namespaceKey,
  policyKey,
  STATE_PREFIX,
} from '../src/store/cluster-resources.js';
import type { Op } from '../src/store/cluster-store.js';
import { EtcdStore } from '../src/store/etcd-store.js';
import { APPS_PER_NS, makePod, policyDoc } from './policy-world.js';

const QUICK = process.argv.includes('--quick');
const AGENTS = 4;
const ALLOC_PER_AGENT = QUICK ? 50 : 100;
const ALLOC_ROUNDS = QUICK ? 3 : 7;
const SIZES = QUICK ? [1000] : [1000, 10_000];
const CONVERGENCE_ROUNDS = QUICK ? 15 : 200;
const EVENT_WRITES = QUICK ? 1000 : 3000;
const NAMESPACES = 50;
const POLICIES = 100;
const LOCAL_ON_B = 20;

interface Cluster {
  readonly endpoints: string[];
  stop(): Promise<void>;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'mbr-bench-store-'));
  const cluster = await startCluster(work);
  const lines: string[] = [];
  const log = (l: string) => {
    console.log(l);
    lines.push(l);
  };
  try {
    const alloc = await benchAllocation(cluster, log);
    const conv: Convergence[] = [];
    for (const size of SIZES) conv.push(await benchConvergence(cluster, work, size, size === SIZES.at(-1), log));
    writeResults(alloc, conv);
  } finally {
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

// ---- 1. allocation ----

interface AllocResult {
  readonly allocPerS: number[];
  readonly rawPerS: number[];
  readonly ratios: number[];
}

async function benchAllocation(cluster: Cluster, log: (l: string) => void): Promise<AllocResult> {
  const stores = await Promise.all(
    Array.from({ length: AGENTS }, () => EtcdStore.open({ endpoints: cluster.endpoints })),
  );
  const raws = Array.from({ length: AGENTS }, () => new Etcd3({ hosts: cluster.endpoints }));
  const caches: IdentityCache[] = [];
  const watches = [];
  for (const [k, s] of stores.entries()) {
    const lease = await s.grantLease(60);
    const c = new IdentityCache(s, `bench-a${k}`);
    c.setLease(lease);
    caches.push(c);
    const listed = await s.list(IDENTITY_IDS_PREFIX);
    for (const kv of listed.items) {
      const rec = decodeIdentity(kv);
      if (rec) c.upsertGlobal(rec);
    }
    watches.push(
      s.watch(IDENTITY_IDS_PREFIX, listed.revision, {
        onEvents: (evs) => {
          for (const e of evs) {
            const rec = e.type === 'put' ? decodeIdentity(e) : undefined;
            if (rec) c.upsertGlobal(rec);
            else c.removeGlobal(Number(e.key.slice(IDENTITY_IDS_PREFIX.length)));
          }
        },
      }),
    );
  }
  // Before timing: every agent allocating the same label sets at once gets the same ids.
  const shared = Array.from({ length: 40 }, (_, i) => labelSet([`k8s:app=shared-${i}`]));
  const answers = await Promise.all(caches.map((c) => Promise.all(shared.map((l) => c.hold(l)))));
  for (const a of answers.slice(1))
    if (a.join() !== answers[0].join()) throw new Error('agents racing for the same labels got different ids');
  if (new Set(answers[0]).size !== shared.length) throw new Error('two label sets got one id');
  log(`check: ${AGENTS} agents racing for ${shared.length} label sets agree on every id`);

  const allocPerS: number[] = [];
  const rawPerS: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < ALLOC_ROUNDS; r++) {
    const runAlloc = async () => {
      const t = performance.now();
      await Promise.all(
        caches.map(async (c, k) => {
          for (let i = 0; i < ALLOC_PER_AGENT; i++) await c.hold(labelSet([`k8s:app=r${r}-a${k}-${i}`]));
        }),
      );
      return (AGENTS * ALLOC_PER_AGENT) / ((performance.now() - t) / 1000);
    };
    const runRaw = async () => {
      const t = performance.now();
      await Promise.all(
        raws.map(async (c, k) => {
          for (let i = 0; i < ALLOC_PER_AGENT; i++) {
            const key = Buffer.from(`bench/raw/id/${r}-${k}-${i}`);
            await c.kv.txn({
              compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
              success: [
                { request_put: { key, value: Buffer.from('{"labels":["k8s:app=raw"]}') } },
                { request_put: { key: Buffer.from(`bench/raw/value/${r}-${k}-${i}/n`), value: Buffer.from('1') } },
              ],
            });
          }
        }),
      );
      return (AGENTS * ALLOC_PER_AGENT) / ((performance.now() - t) / 1000);
    };
    let a: number;
    let b: number;
    if (r % 2 === 0) {
      a = await runAlloc();
      b = await runRaw();
    } else {
      b = await runRaw();
      a = await runAlloc();
    }
    allocPerS.push(a);
    rawPerS.push(b);
    ratios.push(a / b);
  }
  // After timing: every label set has exactly one id, and no id two label sets.
  const masters = (await stores[0].list(IDENTITY_IDS_PREFIX)).items.map((kv) => decodeIdentity(kv)!);
  const byLabels = new Map<string, number>();
  for (const m of masters) {
    const key = m.labels.join();
    if (byLabels.has(key)) throw new Error(`label set ${key} has two ids`);
    byLabels.set(key, m.id);
  }
  const expected = shared.length + ALLOC_ROUNDS * AGENTS * ALLOC_PER_AGENT;
  if (masters.length !== expected) throw new Error(`expected ${expected} identities, got ${masters.length}`);
  log(`check: ${masters.length} identities, one per label set`);
  for (const w of watches) w.close();
  await Promise.all(stores.map((s) => s.close()));
  for (const c of raws) c.close();
  return { allocPerS, rawPerS, ratios };
}

// ---- 2-4. convergence, events, memory ----

interface Convergence {
  readonly size: number;
  readonly p50: number;
  readonly p99: number;
  readonly heapMiB: number;
  readonly events: EventsResult[];
}

interface EventsResult {
  /** Keys per write: 1 (etcd's write rate bounds it) or a batch (the agent's own rate shows). */
  readonly perWrite: number;
  readonly events: number;
  readonly agentPerS: number;
  readonly rawPerS: number;
  readonly agentLagMs: number;
}

/** A datapath port in memory that tells a waiter when what it waits for is realized. */
class WatchedDatapath implements DatapathPort {
  readonly ipcache = new Map<string, number>();
  readonly maps = new Map<number, Map<number, number>>();
  waiter: (() => void) | undefined;
  health(): SubsystemHealth {
    return { name: 'datapath', state: 'Ok', message: 'memory' };
  }
  async attachEndpoint(_ep: Endpoint): Promise<void> {}
  async detachEndpoint(_ep: Endpoint): Promise<void> {}
  async updateIpcache(c: IpcacheChange): Promise<void> {
    for (const p of c.deletes) this.ipcache.delete(p);
    for (const e of c.upserts) this.ipcache.set(e.prefix, e.identity);
    this.waiter?.();
  }
  async applyPolicies(ds: readonly MapStateDiff[]): Promise<void> {
    for (const d of ds) {
      // Per endpoint: remote identity → entries naming it.
      const m = this.maps.get(d.endpointId) ?? new Map<number, number>();
      for (const k of d.deletes) m.set(k.identity, (m.get(k.identity) ?? 1) - 1);
      for (const [k] of d.adds) m.set(k.identity, (m.get(k.identity) ?? 0) + 1);
      this.maps.set(d.endpointId, m);
    }
    this.waiter?.();
  }
  async dumpPolicy(_id: number): Promise<RealizedPolicyEntry[]> {
    return [];
  }
  async dumpIpcache(): Promise<IpcacheEntry[]> {
    return [];
  }
  async dumpCt(): Promise<unknown[]> {
    return [];
  }
  onEvent(): () => void {
    return () => undefined;
  }
  async enableServices(): Promise<string> {
    return 'memory';
  }
  async applyLb(): Promise<void> {}
  async dumpLb(): Promise<RealizedLb> {
    return { services: [], backends: [], revNat: [] };
  }
  async lbMaglevTable(): Promise<number[] | undefined> {
    return undefined;
  }
  lostEvents(): number {
    return 0;
  }
  async close(): Promise<void> {}
}

async function benchConvergence(
  cluster: Cluster,
  work: string,
  size: number,
  withEvents: boolean,
  log: (l: string) => void,
): Promise<Convergence> {
  const writer = await EtcdStore.open({ endpoints: cluster.endpoints });
  await writer.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: STATE_PREFIX }] });
  const nsNames = Array.from({ length: NAMESPACES }, (_, i) => `ns-${i}`);
  const nsLabels = (name: string) => ({ team: `team-${Number(name.slice(3)) % 7}` });
  // Identities for every label set of the world, then every endpoint, then the policies.
  const ids = new IdentityCache(writer, 'bench-pre');
  const labeller = new PolicyEngine({ allocator: ids });
  for (const name of nsNames) labeller.upsertNamespace({ name, labels: nsLabels(name) });
  const pods: Array<Pod & { node: string; id: number }> = [];
  for (let i = 0; i < size; i++) {
    const p = makePod(i, nsNames[i % NAMESPACES], `app-${Math.floor(i / NAMESPACES) % APPS_PER_NS}`);
    const isLocal = i < LOCAL_ON_B * NAMESPACES && i % NAMESPACES === 0;
    pods.push({ ...p, node: isLocal ? 'nb' : `n${i % 40}`, id: 1 + i });
  }
  const ops: Op[] = nsNames.map((name) => ({
    type: 'put',
    key: namespaceKey(name),
    value: JSON.stringify({ name, labels: nsLabels(name) }),
  }));
  const local: Endpoint[] = [];
  for (const p of pods) {
    const labels = labeller.podIdentityLabels(p);
    const identity = await ids.ensure(labels);
    const rec: ClusterEndpoint = {
      node: p.node,
      id: p.id,
      ipv4: p.podIPs[0],
      identity,
      namespace: p.namespace,
      podName: p.name,
      labels: p.labels,
      ports: p.ports,
    };
    ops.push({ type: 'put', key: endpointKey(p.node, p.id), value: JSON.stringify(rec) });
    if (p.node === 'nb')
      local.push(
        localEndpoint(
          p,
          identity,
          labels.labels.map((l) => `${l.source}:${l.key}=${l.value}`),
        ),
      );
  }
  for (let i = 0; i < POLICIES; i++) {
    const doc = policyDoc(i, nsNames);
    const meta = doc.metadata as { name: string; namespace: string };
    const cp: ClusterPolicy = {
      kind: String(doc.kind),
      namespace: meta.namespace,
      name: meta.name,
      source: 'bench',
      doc,
    };
    ops.push({ type: 'put', key: policyKey(cp), value: JSON.stringify(cp) });
  }
  // etcd takes at most 128 operations per transaction.
  for (let i = 0; i < ops.length; i += 100) await writer.txn({ compare: [], success: ops.slice(i, i + 100) });

  const dirB = join(work, `nb-${size}`);
  const dirA = join(work, `na-${size}`);
  mkdirSync(dirB, { recursive: true });
  mkdirSync(dirA, { recursive: true });
  writeFileSync(join(dirB, 'endpoints.json'), JSON.stringify({ nextId: size + 1, endpoints: local }));
  const storeB = await EtcdStore.open({ endpoints: cluster.endpoints });
  const storeA = await EtcdStore.open({ endpoints: cluster.endpoints });
  const dpB = new WatchedDatapath();
  const dpA = new WatchedDatapath();
  const common = { lab: 'bench', nodeLeaseTtlSeconds: 60 };
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const b = new Agent({
    ...common,
    node: 'nb',
    stateDir: dirB,
    podCIDR: '10.250.1.0/24',
    nodeIp: '127.0.0.2',
    store: storeB,
    datapath: dpB,
  });
  await b.start();
  gc();
  const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  const a = new Agent({
    ...common,
    node: 'na',
    stateDir: dirA,
    podCIDR: '10.250.2.0/24',
    nodeIp: '127.0.0.3',
    store: storeA,
    datapath: dpA,
  });
  await a.start();
  // B's endpoint of app-0 in ns-0 (pod 0): pol-0 lets app-1 of ns-0 reach it, so every new
  // app-1 pod's identity becomes an entry of its policy map.
  const target = local.find((e) => e.podName === 'pod-0')!.id;
  const ms: number[] = [];
  for (let k = 0; k < CONVERGENCE_ROUNDS; k++) {
    const ip = `10.250.2.${10 + k}`;
    const realized = () => {
      const id = dpB.ipcache.get(`${ip}/32`);
      return id !== undefined && (dpB.maps.get(target)?.get(id) ?? 0) > 0;
    };
    const seen = new Promise<number>((resolve) => {
      dpB.waiter = () => {
        if (realized()) resolve(performance.now());
      };
    });
    const t0 = performance.now();
    await a.registerEndpoint(registration(k, ip));
    ms.push((await seen) - t0);
    dpB.waiter = undefined;
  }
  const p50 = pct(ms, 0.5);
  const p99 = pct(ms, 0.99);
  log(
    `convergence at ${size} endpoints: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (n=${ms.length}); agent heap after loading: ${heapMiB.toFixed(1)} MiB`,
  );

  const events: EventsResult[] = [];
  if (withEvents)
    for (const perWrite of [1, 100]) events.push(await benchEvents(cluster, writer, b, pods, perWrite, log));

  await a.stop();
  await b.stop();
  await Promise.all([storeA.close(), storeB.close(), writer.close()]);
  return { size, p50, p99, heapMiB, events };
}

async function benchEvents(
  cluster: Cluster,
  writer: EtcdStore,
  agent: Agent,
  pods: ReadonlyArray<Pod & { node: string; id: number }>,
  perWrite: number,
  log: (l: string) => void,
): Promise<EventsResult> {
  const total = perWrite === 1 ? EVENT_WRITES : EVENT_WRITES * 10;
  const base = perWrite === 1 ? 100_000 : 200_000;
  const raw = new Etcd3({ hosts: cluster.endpoints });
  const start = await writer.currentRevision();
  const last = start + total / perWrite;
  let rawDone = 0;
  let rawSeen = 0;
  const watcher = await raw
    .watch()
    .prefix(ENDPOINTS_PREFIX)
    .startRevision(String(start + 1))
    .create();
  watcher.on('data', (res) => {
    rawSeen += res.events.length;
    if (rawSeen >= total && rawDone === 0) rawDone = performance.now();
  });
  const statsBefore = (await agent.status()).reconciler.storeEvents;
  // New endpoints of label sets the node knows: ipcache upserts, no identity allocation.
  const t0 = performance.now();
  let next = 0;
  const op = (i: number): Op => {
    const p = pods[i % pods.length];
    const rec: ClusterEndpoint = {
      node: 'nw',
      id: base + i,
      ipv4: `10.${perWrite === 1 ? 251 : 252}.${(i >> 8) & 255}.${i & 255}`,
      identity: 0,
      namespace: p.namespace,
      podName: `w-${base + i}`,
      labels: p.labels,
      ports: p.ports,
    };
    return { type: 'put', key: endpointKey('nw', base + i), value: JSON.stringify(rec) };
  };
  const writers = Array.from({ length: 32 }, async () => {
    while (next < total) {
      const first = next;
      next += perWrite;
      await writer.txn({ compare: [], success: Array.from({ length: perWrite }, (_, k) => op(first + k)) });
    }
  });
  await Promise.all(writers);
  const writeDone = performance.now();
  await agent.waitRealized(last);
  const agentDone = performance.now();
  const deadline = Date.now() + 30_000;
  while (rawDone === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await watcher.cancel();
  raw.close();
  const got = (await agent.status()).reconciler.storeEvents - statsBefore;
  if (got < total) throw new Error(`agent saw ${got} of ${total} events`);
  const agentPerS = total / ((agentDone - t0) / 1000);
  const rawPerS = total / ((rawDone - t0) / 1000);
  const lagMs = Math.max(0, Math.round(agentDone - rawDone));
  log(
    `events: ${total} keys, ${perWrite} per write, written in ${(writeDone - t0).toFixed(0)} ms; agent realized all at ${agentPerS.toFixed(0)}/s, raw watcher received all at ${rawPerS.toFixed(0)}/s, agent ${lagMs} ms behind`,
  );
  return { perWrite, events: total, agentPerS, rawPerS, agentLagMs: lagMs };
}

function registration(k: number, ip: string): EndpointRegistration {
  return {
    containerId: `bench-new-${k}`,
    ifname: 'eth0',
    netns: '',
    hostIfname: `mbr-n${k}`,
    hostIfindex: 0,
    hostMac: '',
    podMac: '',
    ipv4: ip,
    podName: `new-${k}`,
    namespace: 'ns-0',
    labels: { app: 'app-1', run: `r${k}` },
    ports: [{ name: 'http', containerPort: 8080, protocol: 6 }],
  };
}

function localEndpoint(p: Pod & { id: number }, identity: number, identityLabels: string[]): Endpoint {
  return {
    containerId: `bench-${p.id}`,
    ifname: 'eth0',
    netns: '',
    hostIfname: `mbr-b${p.id}`,
    hostIfindex: 0,
    hostMac: '',
    podMac: '',
    ipv4: p.podIPs[0],
    podName: p.name,
    namespace: p.namespace,
    labels: p.labels,
    ports: p.ports,
    id: p.id,
    identity,
    identityLabels,
    policyEnabledIngress: false,
    policyEnabledEgress: false,
    policyRevision: 0,
    state: 'ready',
    createdAt: new Date().toISOString(),
  };
}

function labelSet(labels: string[]) {
  return makeLabelSet(
    labels.map((l) => {
      const [source, rest] = [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)];
      const [key, value] = rest.split('=');
      return { source, key, value: value ?? '' };
    }),
  );
}

function pct(xs: number[], q: number): number {
  return [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

// ---- the cluster ----

async function startCluster(work: string): Promise<Cluster> {
  const ports = await Promise.all(Array.from({ length: 6 }, freePort));
  const members = [0, 1, 2].map((i) => ({
    name: `b${i}`,
    client: `http://127.0.0.1:${ports[2 * i]}`,
    peer: `http://127.0.0.1:${ports[2 * i + 1]}`,
  }));
  const initial = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const procs: ChildProcess[] = members.map((m) =>
    spawn(
      'etcd',
      [
        ...['--name', m.name, '--data-dir', join(work, m.name)],
        ...['--listen-client-urls', m.client, '--advertise-client-urls', m.client],
        ...['--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer],
        ...['--initial-cluster', initial, '--initial-cluster-token', `mbr-bench-${process.pid}`],
        ...['--heartbeat-interval', '100', '--election-timeout', '1000'],
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
          }),
      ),
    );
  };
  const endpoints = members.map((m) => m.client);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await EtcdStore.open({ endpoints, dialTimeoutMs: 1000 }).catch(() => undefined);
    const h = await s?.health();
    await s?.close();
    if (h?.state === 'Ok' && h.message.startsWith('etcd: 3/3')) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd cluster not healthy within 30 s: ${h?.message ?? 'no answer'}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { endpoints, stop };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

// ---- results ----

function writeResults(alloc: AllocResult, conv: Convergence[]): void {
  const med = (xs: number[]) => pct(xs, 0.5);
  const ratio = med(alloc.ratios);
  const spread = `p25 ${pct(alloc.ratios, 0.25).toFixed(2)}, p75 ${pct(alloc.ratios, 0.75).toFixed(2)}`;
  const ev = conv.flatMap((c) => c.events);
  const table = [
    '| measure | membrane | raw etcd3 | ratio |',
    '| --- | --- | --- | --- |',
    `| allocations/s (${AGENTS} agents, new label sets) | ${med(alloc.allocPerS).toFixed(0)} | ${med(alloc.rawPerS).toFixed(0)} txn/s | ${ratio.toFixed(2)} (${spread}, n=${alloc.ratios.length}; goal ≥ 0.5) |`,
    ...conv.map(
      (c) =>
        `| convergence at ${c.size} endpoints, pod on A → ipcache + policy realized on B | p50 ${c.p50.toFixed(2)} ms, p99 ${c.p99.toFixed(2)} ms | | goal p99 ≤ 100 ms at 10k |`,
    ),
    ...ev.map(
      (e) =>
        `| store events absorbed/s (${e.events} endpoint keys, ${e.perWrite} per write, 32 writers) | ${e.agentPerS.toFixed(0)} | ${e.rawPerS.toFixed(0)} (watcher) | ${(e.agentPerS / e.rawPerS).toFixed(2)}; agent done ${e.agentLagMs} ms after the watcher |`,
    ),
    ...conv.map((c) => `| agent heap after loading ${c.size} endpoints | ${c.heapMiB.toFixed(1)} MiB | | |`),
  ].join('\n');
  console.log(table);
  if (QUICK) {
    console.log('--quick: results not written');
    return;
  }
  const md = `# bench/store

Command: \`node --expose-gc dist/bench/store.bench.js\` (needs \`etcd\`; Debian's etcd-server)
Date: ${new Date().toISOString()}
Node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}; etcd 3.4, 3 members on loopback, in this machine

${table}

What was measured:
- Allocations: ${ALLOC_ROUNDS} interleaved rounds (the order alternates); in each, ${AGENTS} agents (each an
  EtcdStore client with an IdentityCache fed by its own watch of the master keys, as in the agent)
  each hold ${ALLOC_PER_AGENT} new label sets one after the other, all agents at once; the raw side is
  ${AGENTS} etcd3 clients each running ${ALLOC_PER_AGENT} transactions of the same shape (a create-only
  compare, two puts). Before timing, the ${AGENTS} agents race for the same 40 label sets and must
  agree on every id; after, every label set has exactly one id.
- Convergence: both agents run in this process against the cluster, their datapath ports in memory
  (no BPF maps: bench/agent.md has the map writes). The store holds the endpoints (on 40 other
  nodes and ${LOCAL_ON_B} on B), ${NAMESPACES} namespaces and ${POLICIES} policies (bench/policy-world.ts). Per round, a
  pod with a new label set is registered with agent A (identity allocated by transaction,
  endpoint key written under A's lease); the time runs until B's datapath port holds its
  ipcache entry and the entry for its identity in B's endpoint that a policy lets it reach
  (store watch → identity cache → policy engine → map diff). ${CONVERGENCE_ROUNDS} rounds per size.
- Events: new endpoint keys (label sets the agent knows: ipcache entries, no allocation) written
  by 32 concurrent writers while agent B runs with 10k endpoints loaded: ${EVENT_WRITES} keys one per
  transaction (etcd's write rate bounds both sides), then ${EVENT_WRITES * 10} keys 100 per transaction
  (a burst: the agent's own rate shows). Rates are from the first write until the agent realized
  the last revision, and until a raw etcd3 watcher on the same prefix received the last event.
- Heap: V8 heap used after agent B's start (list, engine loaded, maps written), minus before it,
  both after a full GC; B holds the whole cluster in its policy engine.
`;
  writeFileSync(new URL('../../bench/results/store.md', import.meta.url), md);
}

await main();
