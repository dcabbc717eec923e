// bench/policy: full compile time, one-change update time (p50/p99), peak heap, scaling with
// input size, incremental-vs-full ratio, and batch trace speed.
//   npx tsc -p . && node --expose-gc dist/bench/policy.bench.js [--quick]
//   (then `npx biome check --write bench/results/policy.md`: the linter formats markdown tables)
// Baseline = a full recompute (a fresh engine fed the changed input); candidate = the
// incremental update of a live engine. Both are checked to give the same map states first.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { stringify } from 'yaml';
import type { MapStateDiff } from '../src/policy/map-state-types.js';
import { PolicyEngine } from '../src/policy/policy-engine.js';
import { type ParsedPolicyFile, parsePolicyFile } from '../src/policy/policy-parser.js';
import type { Policy } from '../src/policy/policy-rule.js';
import { tracePolicy } from '../src/policy/policy-trace.js';
import type { Namespace, Pod } from '../src/policy/world.js';
import { APPS_PER_NS, makePod, np, policyDoc } from './policy-world.js';

const QUICK = process.argv.includes('--quick');

interface World {
  readonly namespaces: Namespace[];
  readonly pods: Pod[];
  readonly nsNames: string[];
}

function makeWorld(podCount: number, nsCount: number): World {
  const namespaces: Namespace[] = [];
  const nsNames: string[] = [];
  for (let i = 0; i < nsCount; i++) {
    nsNames.push(`ns-${i}`);
    namespaces.push({ name: `ns-${i}`, labels: { team: i % 5 === 0 ? 'monitoring' : `team-${i % 7}` } });
  }
  namespaces.push({ name: 'kube-system', labels: {} });
  const pods: Pod[] = [];
  for (let i = 0; i < podCount; i++)
    pods.push(makePod(i, nsNames[i % nsCount], `app-${Math.floor(i / nsCount) % APPS_PER_NS}`));
  pods.push({ ...makePod(podCount, 'kube-system', 'dns'), labels: { 'k8s-app': 'kube-dns' } });
  return { namespaces, pods, nsNames };
}

function makePolicies(n: number, nsNames: string[]): Policy[] {
  const docs: string[] = [];
  // One default-deny per namespace counts among the n.
  for (let i = 0; i < n; i++) {
    if (i < nsNames.length && i < n / 10)
      docs.push(
        stringify(np({ name: 'default-deny', namespace: nsNames[i] }, { podSelector: {}, policyTypes: ['Ingress'] })),
      );
    else docs.push(stringify(policyDoc(i, nsNames)));
  }
  return [...parsePolicyFile(docs.join('---\n'), 'bench.yaml').policies];
}

function onePolicy(i: number, nsNames: string[], variant: number): Policy {
  return parsePolicyFile(stringify(policyDoc(i, nsNames, variant)), 'one.yaml').policies[0];
}

function parsed(world: World, policies: Policy[]): ParsedPolicyFile {
  return { file: 'bench', namespaces: world.namespaces, pods: world.pods, policies, services: [] };
}

function heapMB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 1048576;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function timeMs(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Each endpoint's map state with identities written as their labels, for comparing engines. */
function canonical(engine: PolicyEngine): Map<string, string> {
  const out = new Map<string, string>();
  for (const ep of engine.endpointList()) {
    const rows: string[] = [];
    for (const [k, e] of engine.endpointMapState(ep.endpointId).values()) {
      const id = k.identity === 0 ? 'ANY' : engine.identityLabels(k.identity)?.key;
      rows.push(`${k.direction}|${id}|${k.protocol}/${k.port}/${k.portPrefixLen}|${JSON.stringify(e)}`);
    }
    out.set(`${ep.namespace}/${ep.name}`, rows.sort().join('\n'));
  }
  return out;
}

function sameCanonical(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

interface ChangeStats {
  readonly kind: string;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Process CPU time per change (all threads, GC included; excludes time waiting for a core). */
  readonly cpuP50: number;
  readonly cpuP99: number;
  readonly affected: number;
}

function measureChanges(engine: PolicyEngine, world: World, policyCount: number, rounds: number): ChangeStats[] {
  const out: ChangeStats[] = [];
  // prepare(r) builds the input outside the timed region (parsing is not the engine's work).
  const run = <T>(kind: string, prepare: (r: number) => T, f: (x: T) => MapStateDiff[]) => {
    const ts: number[] = [];
    const cpu: number[] = [];
    let affected = 0;
    // Warm-up rounds (JIT) are not recorded.
    for (let r = 0; r < 5; r++) f(prepare(rounds + r));
    for (let r = 0; r < rounds; r++) {
      const x = prepare(r);
      let diffs: MapStateDiff[] = [];
      const c0 = process.cpuUsage();
      ts.push(timeMs(() => (diffs = f(x))));
      const c1 = process.cpuUsage(c0);
      cpu.push((c1.user + c1.system) / 1000);
      affected += diffs.length;
    }
    out.push({
      kind,
      p50: pct(ts, 50),
      p99: pct(ts, 99),
      max: Math.max(...ts),
      cpuP50: pct(cpu, 50),
      cpuP99: pct(cpu, 99),
      affected: affected / rounds,
    });
  };
  const pick = (r: number) => world.nsNames.length + ((r * 7919) % Math.max(1, policyCount - world.nsNames.length));
  run(
    'policy edit (port)',
    (r) => onePolicy(pick(r), world.nsNames, 1 + (r % 2)),
    (p) => engine.upsertPolicy(p),
  );
  run(
    'policy add',
    (r) => onePolicy(1_000_000 + r, world.nsNames, 0),
    (p) => engine.upsertPolicy(p),
  );
  run(
    'policy remove',
    (r) => onePolicy(1_000_000 + r, world.nsNames, 0).ref,
    (ref) => engine.removePolicy(ref),
  );
  const base = world.pods.length;
  run(
    'pod add (existing identity)',
    (r) => makePod(base + 10 + r, world.nsNames[r % world.nsNames.length], 'app-1'),
    (p) => engine.upsertPod(p),
  );
  run(
    'pod remove',
    (r) => [world.nsNames[r % world.nsNames.length], `pod-${base + 10 + r}`] as const,
    ([ns, name]) => engine.removePod(ns, name),
  );
  run(
    'pod relabel (new identity)',
    (r) => {
      const p = world.pods[(r * 104729) % (world.pods.length - 1)];
      return { ...p, labels: { ...p.labels, canary: `c${r}` } };
    },
    (p) => engine.upsertPod(p),
  );
  return out;
}

const lines: string[] = [];
function say(s = ''): void {
  lines.push(s);
  console.log(s);
}

function main(): void {
  const podSizes = QUICK ? [1000] : [1000, 10000];
  const policySizes = QUICK ? [100, 1000] : [100, 1000, 10000];
  const rounds = QUICK ? 20 : 200;
  say('## Full compile and one-change updates');
  say();
  say(
    '| pods | policies | identities | map entries | compile ms | heap MB | change | p50 ms | p99 ms | max ms | cpu p50 ms | cpu p99 ms | endpoints changed | cpu us per endpoint changed |',
  );
  say('|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  const compile = new Map<string, number>();
  for (const pods of podSizes) {
    const world = makeWorld(pods, pods >= 10000 ? 100 : 50);
    for (const n of policySizes) {
      const policies = makePolicies(n, world.nsNames);
      const h0 = heapMB();
      let engine = new PolicyEngine();
      const ms = timeMs(() => {
        engine = new PolicyEngine();
        engine.applyFile(parsed(world, policies));
      });
      const heap = heapMB() - h0;
      compile.set(`${pods}/${n}`, ms);
      const ids = engine.identityList().length;
      let entries = 0;
      for (const ep of engine.endpointList()) entries += engine.endpointMapState(ep.endpointId).size;
      const stats = measureChanges(engine, world, n, rounds);
      for (const [i, s] of stats.entries()) {
        const head =
          i === 0
            ? `| ${pods} | ${n} | ${ids} | ${entries} | ${ms.toFixed(0)} | ${heap.toFixed(0)} |`
            : '| | | | | | |';
        say(
          `${head} ${s.kind} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${s.max.toFixed(2)} | ${s.cpuP50.toFixed(2)} | ${s.cpuP99.toFixed(2)} | ${s.affected.toFixed(1)} | ${((s.cpuP50 * 1000) / Math.max(1, s.affected)).toFixed(1)} |`,
        );
      }
    }
  }
  say();
  say('## Scaling (10x input -> time ratio of full compile)');
  say();
  for (const pods of podSizes)
    for (let i = 1; i < policySizes.length; i++) {
      const a = compile.get(`${pods}/${policySizes[i - 1]}`)!;
      const b = compile.get(`${pods}/${policySizes[i]}`)!;
      say(`- ${pods} pods, policies ${policySizes[i - 1]} -> ${policySizes[i]}: x${(b / a).toFixed(2)}`);
    }
  if (podSizes.length > 1)
    for (const n of policySizes) {
      const a = compile.get(`${podSizes[0]}/${n}`)!;
      const b = compile.get(`${podSizes[1]}/${n}`)!;
      say(`- ${n} policies, pods ${podSizes[0]} -> ${podSizes[1]}: x${(b / a).toFixed(2)}`);
    }
  say();
  incrementalVsFull(QUICK ? 1000 : 10000, QUICK ? 100 : 1000);
  say();
  traceBatch();
}

/** Candidate: incremental policy edit on a live engine. Baseline: full recompute with the edit. */
function incrementalVsFull(pods: number, n: number): void {
  const world = makeWorld(pods, pods >= 10000 ? 100 : 50);
  const policies = makePolicies(n, world.nsNames);
  const target = world.nsNames.length + 3;
  const edited = (v: number) => policies.map((p, i) => (i === target ? onePolicy(target, world.nsNames, v) : p));
  // Same answers first.
  const live = new PolicyEngine();
  live.applyFile(parsed(world, policies));
  live.upsertPolicy(onePolicy(target, world.nsNames, 1));
  const fresh = new PolicyEngine();
  fresh.applyFile(parsed(world, edited(1)));
  if (!sameCanonical(canonical(live), canonical(fresh))) throw new Error('incremental and full recompute disagree');
  const ratios: number[] = [];
  const fulls: number[] = [];
  const incs: number[] = [];
  const rounds = QUICK ? 5 : 9;
  for (let r = 0; r < rounds; r++) {
    const v = 2 + (r % 2);
    const input = parsed(world, edited(v));
    const full = timeMs(() => new PolicyEngine().applyFile(input));
    const edit = onePolicy(target, world.nsNames, v);
    const inc = timeMs(() => live.upsertPolicy(edit));
    fulls.push(full);
    incs.push(inc);
    ratios.push(full / inc);
  }
  say(
    `## Incremental vs full recompute (${pods} pods, ${n} policies, one policy edited; same map states checked first)`,
  );
  say();
  say(
    `policy-edit  incremental ${pct(incs, 50).toFixed(2)} ms  full ${pct(fulls, 50).toFixed(0)} ms  full/incremental ratio ${pct(ratios, 50).toFixed(0)} (min ${Math.min(...ratios).toFixed(0)}, max ${Math.max(...ratios).toFixed(0)})  n=${rounds}`,
  );
}

/** A loop of one-change updates at 10k pods / 1k policies, to run under --cpu-prof. */
function profile(): void {
  const world = makeWorld(10000, 100);
  const policies = makePolicies(1000, world.nsNames);
  const engine = new PolicyEngine();
  engine.applyFile(parsed(world, policies));
  for (const s of measureChanges(engine, world, 1000, 200)) console.log(s);
}

/** 10,000 trace queries over a 100-pod world, after load. */
function traceBatch(): void {
  const world = makeWorld(100, 10);
  const policies = makePolicies(100, world.nsNames);
  const engine = new PolicyEngine();
  engine.applyFile(parsed(world, policies));
  const pods = world.pods.map((p) => `${p.namespace}/${p.name}`);
  const queries = Array.from({ length: 10000 }, (_, i) => ({
    src: i % 10 === 0 ? '8.8.8.8' : pods[(i * 31) % pods.length],
    dst: pods[(i * 17 + 3) % pods.length],
    dport: i % 3 === 0 ? 'http' : 8080 + (i % 12),
    protocol: 'TCP',
  }));
  let allowed = 0;
  const ms = timeMs(() => {
    for (const q of queries) if (tracePolicy(engine, q).verdict === 'ALLOWED') allowed++;
  });
  say('## Batch trace');
  say();
  say(
    `10000 queries over a ${world.pods.length}-pod world: ${ms.toFixed(0)} ms (${((ms * 1000) / 10000).toFixed(1)} us/query, ${allowed} allowed)`,
  );
}

const loadAtStart = loadavg()[0];
if (process.argv.includes('--profile')) profile();
else main();
if (!QUICK && !process.argv.includes('--profile')) {
  const cpu = cpus()[0]?.model ?? 'unknown';
  const md = [
    '# bench/policy results',
    '',
    `Command: \`npx tsc -p . && node --expose-gc dist/bench/policy.bench.js\``,
    `Date: ${new Date().toISOString()}`,
    `Node: ${process.version}`,
    `CPU: ${cpu} (${cpus().length} cores, shared with other jobs)`,
    `Load average (1 min) at start / end: ${loadAtStart.toFixed(2)} / ${loadavg()[0].toFixed(2)}`,
    '',
    'Wall-clock p99 includes time spent waiting for a core when the machine is oversubscribed;',
    '"cpu" columns are process CPU time per change (all threads, GC included).',
    '',
    ...lines,
    '',
  ].join('\n');
  writeFileSync(new URL('../../bench/results/policy.md', import.meta.url), md);
}
