// `connectivity test`: a suite of probes between the lab's peers, built from what the lab runs
// (a client and a server on the same node and on another node, DNS, the outside host both ways,
// the node to its pods). Each check's expected outcome comes from the agents' policy trace when
// the policy engine is running (so the suite stays right under any applied policy), and is
// "forwarded" otherwise. The L7 checks run under a policy of their own (as Cilium's
// client-egress-l7-http test does): the client's egress to the other node's server is limited to
// `GET /`, so the GET goes through the node's proxy and a DELETE is answered 403.
import type { LabPod, LabState } from './lab-state.js';
import { describeProbe, type Outcome, type Probe, type ProbeResult, runProbes } from './probes.js';

export interface ConnectivityCheck {
  readonly name: string;
  readonly probe: Probe;
  /** An HTTP request the L7 check policy refuses: expected `denied` where L3/L4 allows it. */
  readonly l7Denied?: boolean;
}

/** The name of the L7 checks' policy, applied for their run and removed after. */
export const L7_CHECK_POLICY = 'membrane-connectivity-l7';

/**
 * The L7 checks and their policy: the suite's client to a server on another node (or the same),
 * GET / allowed by an HTTP rule, DELETE / refused. Undefined when the lab has no such pair.
 */
export function buildL7Suite(
  state: LabState,
): { policy: Record<string, unknown>; checks: ConnectivityCheck[] } | undefined {
  const client = state.pods.find((p) => p.ports.length === 0);
  const servers = state.pods.filter(
    (p) => p !== client && p.ports.some((x) => x.protocol.toUpperCase() === 'TCP' && x.containerPort !== 53),
  );
  const server = servers.find((s) => s.node !== client?.node) ?? servers[0];
  if (!client || !server) return undefined;
  const port = server.ports.find((x) => x.protocol.toUpperCase() === 'TCP' && x.containerPort !== 53)!.containerPort;
  const policy = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: L7_CHECK_POLICY, namespace: client.namespace },
    spec: {
      endpointSelector: { matchLabels: { ...client.labels } },
      egress: [
        {
          toEndpoints: [{ matchLabels: { ...server.labels, 'k8s:io.kubernetes.pod.namespace': server.namespace } }],
          toPorts: [
            { ports: [{ port: String(port), protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/' }] } },
          ],
        },
      ],
    },
  };
  const from = `${client.namespace}/${client.name}`;
  const to = `${server.namespace}/${server.name}`;
  return {
    policy,
    checks: [
      { name: 'pod-to-pod-l7-allowed', probe: { from, to, port, kind: 'http', path: '/' } },
      {
        name: 'pod-to-pod-l7-denied',
        probe: { from, to, port, kind: 'http', path: '/', method: 'DELETE' },
        l7Denied: true,
      },
    ],
  };
}

export interface TracedPolicy {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly direction: string;
  readonly effect: string;
}

export interface TraceDirection {
  readonly verdict: 'ALLOWED' | 'DENIED';
  readonly enforced: boolean;
  readonly reason: string;
  readonly policies: readonly TracedPolicy[];
}

/** The parts of the engine's trace result the lab shows. */
export interface TraceAnswer {
  readonly verdict: 'ALLOWED' | 'DENIED';
  readonly egress: TraceDirection;
  readonly ingress: TraceDirection;
  readonly policies: readonly TracedPolicy[];
}

/**
 * What decided, in a few words: for a denial the first denying side (egress of the source, then
 * ingress of the destination), its reason and its policies; for an allow the allowing policies.
 */
export function describeTrace(t: TraceAnswer | undefined): string {
  if (!t) return '-';
  const name = (p: TracedPolicy) => `${p.namespace ? `${p.namespace}/` : ''}${p.name}`;
  const list = (ps: readonly TracedPolicy[]) => {
    const names = [...new Set(ps.map(name))];
    return names.length <= 2 ? names.join(', ') : `${names.slice(0, 2).join(', ')} +${names.length - 2}`;
  };
  const auth =
    t.egress.reason === 'auth-required' ? t.egress : t.ingress.reason === 'auth-required' ? t.ingress : undefined;
  if (auth) return `${auth === t.egress ? 'egress' : 'ingress'} auth-required: ${list(auth.policies)}`;
  if (t.verdict === 'DENIED') {
    const [dir, side] = t.egress.verdict === 'DENIED' ? ['egress', t.egress] : ['ingress', t.ingress];
    return `${dir} ${side.reason}${side.policies.length > 0 ? `: ${list(side.policies)}` : ''}`;
  }
  const allows = t.policies.filter((p) => p.effect === 'allow');
  if (allows.length > 0) return `allowed by ${list(allows)}`;
  return t.egress.enforced || t.ingress.enforced ? 'allowed' : 'no policy';
}

export interface CheckResult {
  readonly check: ConnectivityCheck;
  readonly result: ProbeResult;
  readonly expected: Outcome;
  readonly passed: boolean;
  /** What decided, from the policy trace ('-' without the engine). */
  readonly policy: string;
}

export function buildSuite(state: LabState): ConnectivityCheck[] {
  const servers = state.pods.filter((p) =>
    p.ports.some((x) => x.protocol.toUpperCase() === 'TCP' && x.containerPort !== 53),
  );
  const clients = state.pods.filter((p) => p.ports.length === 0);
  const dns = state.pods.find((p) => p.ip === state.dnsIp);
  const checks: ConnectivityCheck[] = [];
  const id = (p: LabPod) => `${p.namespace}/${p.name}`;
  const httpTo = (from: string, to: LabPod): Probe => ({
    from,
    to: id(to),
    port: to.ports.find((x) => x.protocol.toUpperCase() === 'TCP')!.containerPort,
    kind: 'http',
    path: '/',
  });
  const client = clients[0] ?? state.pods[0];
  if (client) {
    const same = servers.find((s) => s.node === client.node && s !== client);
    const other = servers.find((s) => s.node !== client.node && s !== client);
    if (same) checks.push({ name: 'pod-to-pod-same-node', probe: httpTo(id(client), same) });
    if (other) checks.push({ name: 'pod-to-pod-other-node', probe: httpTo(id(client), other) });
    if (dns)
      checks.push({
        name: 'pod-to-dns',
        probe: {
          from: id(client),
          to: id(dns),
          port: 53,
          kind: 'dns',
          name: state.world.hosts[0] ?? `${client.name}.${client.namespace}`,
        },
      });
    if (state.world.hosts.length > 0)
      checks.push({
        name: 'pod-to-world',
        probe: { from: id(client), to: 'world', port: 80, kind: 'http', path: '/' },
      });
  }
  const server = servers[0];
  if (server) {
    checks.push({ name: 'host-to-pod', probe: httpTo(`node:${server.node}`, server) });
    checks.push({ name: 'world-to-pod', probe: httpTo('world', server) });
  }
  return checks;
}

export async function runSuite(
  state: LabState,
  checks: readonly ConnectivityCheck[],
  trace: (p: Probe) => Promise<TraceAnswer | undefined>,
): Promise<CheckResult[]> {
  const results = await runProbes(
    state,
    checks.map((c) => c.probe),
  );
  return Promise.all(
    checks.map(async (check, i) => {
      const t = await trace(check.probe).catch(() => undefined);
      const base: Outcome = expectedOutcome(t);
      const expected: Outcome = check.l7Denied && base === 'forwarded' ? 'denied' : base;
      return {
        check,
        result: results[i],
        expected,
        passed: results[i].outcome === expected,
        policy: describeTrace(t),
      };
    }),
  );
}

/**
 * What the datapath should do given the trace: mutual authentication never completes in the lab,
 * so an allow that requires it is a drop (DROP_AUTH_REQUIRED).
 */
export function expectedOutcome(t: TraceAnswer | undefined): Outcome {
  if (t === undefined) return 'forwarded';
  if (t.egress.reason === 'auth-required' || t.ingress.reason === 'auth-required') return 'dropped';
  return t.verdict === 'ALLOWED' ? 'forwarded' : 'dropped';
}

export function formatSuite(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const mark = r.passed ? '✅' : '❌';
    const by = r.policy === '-' ? '' : ` (${r.policy})`;
    lines.push(`[=] Test [${r.check.name}] ${describeProbe(r.check.probe)}`);
    lines.push(
      `  ${mark} ${r.result.outcome}${r.result.bytes ? ` (${r.result.bytes} bytes)` : ''}, expected ${r.expected}${by}: ${r.result.detail}`,
    );
  }
  const failed = results.filter((r) => !r.passed);
  lines.push('');
  if (failed.length === 0)
    lines.push(`✅ All ${results.length} tests (${results.length} actions) successful, 0 tests skipped.`);
  else {
    lines.push('📋 Test Report');
    for (const f of failed) lines.push(`❌ ${f.check.name}: ${f.result.outcome}, expected ${f.expected}`);
    lines.push(`❌ ${failed.length}/${results.length} tests failed (${failed.length}/${results.length} actions)`);
  }
  return `${lines.join('\n')}\n`;
}
