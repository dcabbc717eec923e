// `membrane connectivity test`: probes between the lab's pods, the node and the outside host,
// each checked against what policy says (cilium connectivity test's role).
import type { Command } from 'commander';
import {
  buildL7Suite,
  buildSuite,
  type CheckResult,
  formatSuite,
  runSuite,
  type TraceAnswer,
} from '../../lab/connectivity.js';
import type { LabState } from '../../lab/lab-state.js';
import { readLabState } from '../../lab/lab-state.js';
import { type Probe, peerIp } from '../../lab/probes.js';
import { resolveTargets, wantsJson } from '../agent-target.js';
import { CliError } from '../errors.js';
import { labName } from './lab.js';

export function registerConnectivity(program: Command): void {
  const group = program.command('connectivity').description('Check connectivity in the lab');
  group
    .command('test')
    .description('Run probes between lab pods and print each check and a pass/fail summary')
    .option('--lab <name>', 'lab name (default $MEMBRANE_LAB or "lab")')
    .option('--test <name...>', 'only these checks')
    .option('-o, --output <format>', 'output format: table or json')
    .action(async (o) => {
      const lab = labName(o);
      const state = readLabState(lab);
      if (!state) throw new CliError('MBR_LAB_DOWN', `lab ${lab} is not up: run "membrane lab up"`);
      let checks = buildSuite(state);
      if (o.test) checks = checks.filter((c) => (o.test as string[]).includes(c.name));
      const trace = traceVia(state);
      const results = await runSuite(state, checks, trace);
      results.push(...(await runL7Checks(state, o.test as string[] | undefined, trace)));
      if (wantsJson(o)) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else process.stdout.write(formatSuite(results));
      if (results.some((r) => !r.passed)) process.exitCode = 1;
    });
}

/** The L7 checks, under their own policy: applied on every node first, removed after even on failure. */
async function runL7Checks(
  state: LabState,
  only: readonly string[] | undefined,
  trace: (p: Probe) => Promise<TraceAnswer | undefined>,
): Promise<CheckResult[]> {
  const suite = buildL7Suite(state);
  if (!suite) return [];
  const checks = suite.checks.filter((c) => !only || only.includes(c.name));
  if (checks.length === 0) return [];
  const targets = resolveTargets({ lab: state.lab });
  const waitAll = (revision: number) =>
    Promise.all(targets.map((t) => t.client.get(`/v1/policy/wait?revision=${revision}&timeoutMs=10000`)));
  const body = { docs: [suite.policy], source: 'connectivity test' };
  const set = await targets[0].client.put<{ revision: number }>('/v1/policy', body);
  try {
    await waitAll(set.revision);
    return await runSuite(state, checks, trace);
  } finally {
    const del = await targets[0].client.delete<{ revision: number }>('/v1/policy', body);
    await waitAll(del.revision);
  }
}

/**
 * Asks for the policy verdict of a probe where each side is enforced: the egress half from the
 * agent of the source pod's node, the ingress half from the agent of the destination pod's node
 * (an agent holds map state for its own pods only).
 */
export function traceVia(state: LabState): (p: Probe) => Promise<TraceAnswer | undefined> {
  const targets = resolveTargets({ lab: state.lab });
  const byNode = new Map(targets.map((t) => [t.node, t.client]));
  const nodeOf = (x: string) => {
    const slash = x.indexOf('/');
    if (slash < 0) return undefined;
    return state.pods.find((q) => q.namespace === x.slice(0, slash) && q.name === x.slice(slash + 1))?.node;
  };
  const clientFor = (x: string) => byNode.get(nodeOf(x) ?? '') ?? targets[0]!.client;
  // The engine names pods NS/POD and everything else by IP.
  const peer = (x: string) => (x.includes('/') ? x : peerIp(state, x));
  return async (p) => {
    // The engine does not know the nodes' addresses; the node reaching its own pods is always
    // allowed (allow-localhost), so there is nothing to trace.
    if (p.from.startsWith('node:')) return undefined;
    const q = new URLSearchParams({
      src: peer(p.from),
      dst: peer(p.to),
      dport: String(p.port),
      protocol: p.kind === 'dns' ? 'UDP' : 'TCP',
    });
    try {
      const src = clientFor(p.from);
      const dst = clientFor(p.to);
      const out = await src.get<TraceAnswer>(`/v1/policy/trace?${q}`);
      if (dst === src) return out;
      const inn = await dst.get<TraceAnswer>(`/v1/policy/trace?${q}`);
      const egress = out.egress;
      const ingress = inn.ingress;
      const verdict = egress.verdict === 'ALLOWED' && ingress.verdict === 'ALLOWED' ? 'ALLOWED' : 'DENIED';
      return { verdict, egress, ingress, policies: [...egress.policies, ...ingress.policies] };
    } catch {
      return undefined;
    }
  };
}
