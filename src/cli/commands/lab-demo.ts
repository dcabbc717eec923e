// `membrane lab demo`: the README's main command. Brings the lab up, applies the seed policies in
// stages (observe with none, the allow rules, the namespaces' default-deny policies, and the
// cluster-wide zero-trust baseline last), runs the
// same connections after each stage and prints what was forwarded and dropped (or denied at L7 by
// the node's proxy) and which policy decided. Before the allow rules an L7 stage applies the
// payment service's L7 policy on its own and shows the checkout's GET allowed and its DELETE
// answered 403, and the L7 flows that record both. Leaves the lab up for the user to explore.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentStatus, StoredPolicy } from '../../agent/api-types.js';
import { describeTrace, type TraceAnswer } from '../../lab/connectivity.js';
import { relaySocket } from '../../lab/lab-paths.js';
import { readLabState } from '../../lab/lab-state.js';
import { describeProbe, type Probe, type ProbeResult, runProbes } from '../../lab/probes.js';
import { demoWorldFile, repoRoot } from '../../lab/repo-root.js';
import { SEED_CASES } from '../../lab/seed-probes.js';
import { labUp } from '../../lab/topology.js';
import { resolveTargets } from '../agent-target.js';
import { CliError } from '../errors.js';
import { readManifestFile } from '../manifest-files.js';
import { renderTable } from '../table.js';
import { traceVia } from './connectivity.js';

const DEFAULT_DENY = new Set(['default-deny-ingress', 'default-deny']);

export interface DemoDoc {
  readonly file: string;
  readonly doc: Record<string, unknown>;
}

export async function runDemo(lab: string, policiesDir: string | undefined, out = process.stdout): Promise<void> {
  const say = (s = '') => out.write(`${s}\n`);
  const dir = policiesDir ?? seedDir();
  const docs = readSeedDocs(dir);
  const allows = docs.filter((d) => stageOf(d) === 'allow');
  const nsDenies = docs.filter((d) => stageOf(d) === 'namespace-deny');
  const baseline = docs.filter((d) => stageOf(d) === 'cluster-baseline');

  say(`== 1/6 lab up: lab "${lab}" from ${demoWorldFile()}`);
  const started = Date.now();
  const state = await labUp({
    lab,
    worldFiles: [demoWorldFile()],
    repoRoot: repoRoot(),
    log: (l) => say(`   ${l}`),
  });
  say(
    `   ${state.nodes.length} nodes, ${state.pods.length} pods, DNS at ${state.dnsIp}, outside host ${state.world.ip} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
  const targets = resolveTargets({ lab });
  const client = targets[0].client;
  const statuses = await Promise.all(targets.map((t) => t.client.get<AgentStatus>('/v1/status')));
  for (const s of statuses)
    for (const sub of s.subsystems)
      if (sub.state !== 'Ok') say(`   note: node ${s.node} ${sub.name}: ${sub.state}: ${sub.message}`);

  // Start from no policy, whatever an earlier run left.
  const current = await client.get<{ revision: number; policies: StoredPolicy[] }>('/v1/policy');
  if (current.policies.length > 0)
    await client.delete('/v1/policy', { docs: current.policies.map((p) => p.doc), source: 'demo reset' });
  await waitRealized(lab);

  const probes = dedupe(SEED_CASES.flatMap((c) => [...c.allowed, ...c.denied, ...(c.l7Denied ?? [])]));
  const trace = traceVia(readLabState(lab)!);
  const stages: Array<{ title: string; results: ProbeResult[]; traces: Array<TraceAnswer | undefined> }> = [];
  const runStage = async (title: string) => {
    const results = await runProbes(state, probes);
    const traces = await Promise.all(probes.map((p) => trace(p)));
    stages.push({ title, results, traces });
    say(formatStage(results, traces));
  };

  say('');
  say(`== 2/6 observe: no policy applied; ${probes.length} connections between the demo pods`);
  await runStage('observe');

  const l7Docs = allows.filter((d) => d.file === L7_STAGE_FILE);
  if (l7Docs.length > 0) {
    say(`== 3/6 L7: ${l7Docs.map((d) => describeDoc(d.doc)).join(', ')} on its own (${L7_STAGE_FILE})`);
    await applyDocs(lab, l7Docs);
    await l7Stage(lab, state, say);
  }

  say(`== 4/6 allow rules: ${allows.length} policies from ${dir}`);
  for (const d of allows) say(`   apply ${d.file}: ${describeDoc(d.doc)}`);
  await applyDocs(lab, allows);
  if (l7Docs.length > 0)
    say(
      '   note: rules of every policy selecting a port are OR-ed: where an L3/L4-only rule allows the same peer on an L7 port (08 next to 09), every request passes, as in Cilium',
    );
  await runStage('allow rules');
  await dnsAndKafkaSpotlight(lab, state, say);

  say(`== 5/6 namespace default-deny: ${nsDenies.map((d) => describeDoc(d.doc)).join(', ')}`);
  for (const d of nsDenies.filter((x) => hasOnlyEmptySections(x.doc)))
    say(`   note: ${describeDoc(d.doc)} has only empty rule lists, which in Cilium apply in no direction; use [{}]`);
  await applyDocs(lab, nsDenies);
  await runStage('ns deny');

  say(`== 6/6 cluster-wide zero-trust baseline, last: ${baseline.map((d) => describeDoc(d.doc)).join(', ')}`);
  await applyDocs(lab, baseline);
  await runStage('zero trust');

  say('== summary');
  say(
    renderTable(
      ['CONNECTION', ...stages.map((s) => s.title.toUpperCase())],
      probes.map((p, i) => [describeProbe(p), ...stages.map((s) => s.results[i].outcome.toUpperCase())]),
    ),
  );
  const last = stages[stages.length - 1].results;
  const forwarded = last.filter((r) => r.outcome === 'forwarded').length;
  say(`After the last stage: ${forwarded} forwarded, ${last.length - forwarded} not forwarded.`);
  say('');
  const l = lab === 'lab' ? '' : ` --lab ${lab}`;
  say(`The lab is still up. Try:`);
  say(`  bin/membrane lab status${l}`);
  say(`  bin/membrane endpoint list${l}`);
  say(`  bin/membrane policy get${l}`);
  say(`  bin/membrane lab exec${l} shop/frontend -- curl -s http://backend.shop:8080/api/v1/orders`);
  say(`  bin/membrane monitor${l} --type drop`);
  say(`  bin/membrane monitor${l} --type l7`);
  say(`  bin/membrane observe --server unix://${relaySocket(lab)} --verdict DROPPED`);
  say(`  bin/membrane connectivity test${l}`);
  say(`Take it down with: bin/membrane lab down${l}`);
}

/** The seed file the L7 stage applies on its own. */
const L7_STAGE_FILE = '09-cnp-payment-service-l7.yaml';

/**
 * The L7 stage: with payments/payment-service-l7 applied, the checkout's GET of a payment reaches
 * the service and its DELETE is answered `403` by the node's proxy; the L7 flows of both, as
 * `membrane observe` prints them from the relay.
 */
async function l7Stage(lab: string, state: Parameters<typeof runProbes>[0], say: (s?: string) => void): Promise<void> {
  const path = `/api/v1/payments/demo-${Date.now() % 100_000}`;
  const from = 'checkout/checkout-service';
  const to = 'payments/payment-service';
  const results = await runProbes(state, [
    { from, to, port: 8080, kind: 'http', path },
    { from, to, port: 8080, kind: 'http', path, method: 'DELETE' },
  ]);
  for (const r of results) say(`   ${describeProbe(r.probe)}: ${r.outcome.toUpperCase()} (${r.detail})`);
  const argv = [
    process.argv[1],
    'observe',
    '--server',
    `unix://${relaySocket(lab)}`,
    '--type',
    'l7',
    '--protocol',
    'http',
    '--http-path',
    path,
    '--print-policy-names',
    '--color',
    'never',
    '--last',
    '10',
  ];
  say(`   $ membrane ${argv.slice(1).join(' ')}`);
  // Flows reach the relay within moments: wait for the request and response of both.
  const deadline = Date.now() + 5000;
  let flows = '';
  for (;;) {
    try {
      flows = execFileSync(process.execPath, argv, {
        encoding: 'utf8',
        timeout: 10_000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch (err) {
      flows = String((err as { stdout?: string }).stdout ?? '');
    }
    if (flows.split('\n').filter((x) => x.includes(path)).length >= 3 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const line of flows.split('\n').filter((x) => x !== '')) say(`   ${line}`);
  say('');
}

/**
 * After the allow rules: the shop backend reaches api.stripe.com on 443 by name (the DNS proxy
 * puts the answer's addresses in the ipcache before the pod gets the answer) while api.github.com
 * is refused; order-processor produces to orders.processed and is refused payment-events (error 29
 * from the Kafka handler). Printed with the DNS and Kafka flows and the FQDN cache.
 */
async function dnsAndKafkaSpotlight(
  lab: string,
  state: Parameters<typeof runProbes>[0],
  say: (s?: string) => void,
): Promise<void> {
  say('   -- DNS, toFQDNs and Kafka at L7 (15-cnp-shop, 10-cnp-kafka-order-processor)');
  const results = await runProbes(state, [
    { from: 'shop/backend', to: 'name:api.stripe.com', port: 443, kind: 'http', path: '/' },
    { from: 'shop/backend', to: 'name:api.github.com', port: 443, kind: 'http', path: '/' },
    { from: 'default/order-processor', to: 'default/kafka', port: 9092, kind: 'kafka', topic: 'orders.processed' },
    { from: 'default/order-processor', to: 'default/kafka', port: 9092, kind: 'kafka', topic: 'payment-events' },
  ]);
  for (const r of results) say(`   ${describeProbe(r.probe)}: ${r.outcome.toUpperCase()} (${r.detail})`);
  const relay = `unix://${relaySocket(lab)}`;
  const show = (args: string[], want: (out: string) => boolean) => runShown(lab, args, want, say);
  await show(
    ['observe', '--server', relay, '--type', 'l7', '--protocol', 'dns', '--print-policy-names', '--last', '6'],
    (o) => o.includes('api.github.com'),
  );
  await show(
    ['observe', '--server', relay, '--type', 'l7', '--protocol', 'kafka', '--print-policy-names', '--last', '10'],
    (o) => o.includes('payment-events'),
  );
  await show(['fqdn', 'cache', 'list', '--lab', lab], (o) => o.includes('api.stripe.com'));
  say('');
}

/** Runs a membrane command for the demo, printing it and its output once `want` holds (5 s at most). */
async function runShown(
  _lab: string,
  args: string[],
  want: (out: string) => boolean,
  say: (s?: string) => void,
): Promise<void> {
  const argv = [process.argv[1], ...args, ...(args[0] === 'observe' ? ['--color', 'never'] : [])];
  say(`   $ membrane ${argv.slice(1).join(' ')}`);
  const deadline = Date.now() + 5000;
  let out = '';
  for (;;) {
    try {
      out = execFileSync(process.execPath, argv, {
        encoding: 'utf8',
        timeout: 10_000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch (err) {
      out = String((err as { stdout?: string }).stdout ?? '');
    }
    if (want(out) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const line of out.split('\n').filter((x) => x !== '')) say(`   ${line}`);
}

export function readSeedDocs(dir: string): DemoDoc[] {
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  return files.flatMap((file) => readManifestFile(join(dir, file)).documents.map((d) => ({ file, doc: d.value })));
}

/**
 * Which stage a seed document belongs to: cluster-wide policies selecting every endpoint are the
 * zero-trust baseline (their allows come with their default-deny), default-deny policies of a
 * namespace come after the allow rules, everything else is an allow rule.
 */
export function stageOf(d: DemoDoc): 'allow' | 'namespace-deny' | 'cluster-baseline' {
  const spec = (d.doc.spec ?? {}) as Record<string, unknown>;
  const selectsAll = JSON.stringify(spec.endpointSelector ?? null) === '{}';
  if (d.doc.kind === 'CiliumClusterwideNetworkPolicy' && selectsAll) return 'cluster-baseline';
  if (DEFAULT_DENY.has(String((d.doc.metadata as Record<string, unknown> | undefined)?.name))) return 'namespace-deny';
  return 'allow';
}

async function applyDocs(lab: string, docs: readonly DemoDoc[]): Promise<void> {
  const [t] = resolveTargets({ lab });
  const byFile = new Map<string, Record<string, unknown>[]>();
  for (const d of docs) byFile.set(d.file, [...(byFile.get(d.file) ?? []), d.doc]);
  for (const [file, list] of byFile) await t.client.put('/v1/policy', { docs: list, source: file });
  await waitRealized(lab);
}

/** Waits until every node's datapath enforces the latest policy revision (bounded: 5 s). */
async function waitRealized(lab: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const all = await Promise.all(resolveTargets({ lab }).map((t) => t.client.get<AgentStatus>('/v1/status')));
    if (all.every((s) => s.realizedPolicyRevision === s.policyRevision)) return;
    if (Date.now() > deadline) throw new CliError('MBR_DEMO_STUCK', 'policy not realized on every node within 5 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function formatStage(results: readonly ProbeResult[], traces: ReadonlyArray<TraceAnswer | undefined>): string {
  return renderTable(
    ['CONNECTION', 'VERDICT', 'BYTES', 'POLICY'],
    results.map((r, i) => [
      describeProbe(r.probe),
      r.outcome === 'denied' ? 'DENIED (L7 403)' : r.outcome.toUpperCase(),
      String(r.bytes),
      r.probe.from.startsWith('node:') ? 'host (allow-localhost)' : describePolicy(r, traces[i]),
    ]),
  );
}

/** The trace's answer; a request the Kafka handler refused was allowed at L3/L4 and denied at L7. */
function describePolicy(r: ProbeResult, t: TraceAnswer | undefined): string {
  const traced = describeTrace(t);
  if (r.probe.kind !== 'kafka' || !r.detail.startsWith('Kafka:') || t?.verdict === 'DENIED') return traced;
  return traced.startsWith('allowed by')
    ? traced.replace(/^allowed by/, 'L7 kafka denied by')
    : 'L7 kafka denied: topic authorization failed';
}

/** A Cilium policy whose ingress/egress sections are all empty lists (`ingress: []`) enforces nothing. */
function hasOnlyEmptySections(d: Record<string, unknown>): boolean {
  const spec = d.spec as Record<string, unknown> | undefined;
  if (!spec || d.kind === 'NetworkPolicy') return false;
  const sections = ['ingress', 'ingressDeny', 'egress', 'egressDeny'].map((k) => spec[k]).filter((v) => v != null);
  return sections.length > 0 && sections.every((v) => Array.isArray(v) && v.length === 0);
}

function describeDoc(d: Record<string, unknown>): string {
  const meta = (d.metadata ?? {}) as Record<string, unknown>;
  return `${String(d.kind)} ${meta.namespace ? `${String(meta.namespace)}/` : ''}${String(meta.name)}`;
}

function dedupe(probes: readonly Probe[]): Probe[] {
  const seen = new Set<string>();
  return probes.filter((p) => {
    const k = describeProbe(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function seedDir(): string {
  for (const d of [join(repoRoot(), 'lab/seed-policies'), join(repoRoot(), '../shared/fixtures/seed-policies')]) {
    try {
      readdirSync(d);
      return d;
    } catch {
      // try the next
    }
  }
  throw new CliError('MBR_DEMO_NO_POLICIES', 'no seed policies found: pass --policies DIR');
}
