// Probes: one connection attempt between lab peers with a real client (curl, dig, nc, kcat),
// classified by what arrived: "forwarded" when the server's bytes came back, "dropped" when nothing
// did within the timeout (a policy drop sends no RST) or the L7 proxy refused a Kafka request (its
// authorization error), "denied" when the node's L7 proxy answered an HTTP request with its `403`
// (Cilium's `Access denied`), "refused"/"error" otherwise.
import { execFile } from 'node:child_process';
import { ACCESS_DENIED_BODY } from '../proxy/http/http-handler.js';
import { labDir, netnsPath } from './lab-paths.js';
import type { LabState } from './lab-state.js';
import { podArgv } from './pod-process.js';

export type ProbeKind = 'http' | 'dns' | 'tcp' | 'kafka';
export type Outcome = 'forwarded' | 'dropped' | 'denied' | 'refused' | 'error';

export interface Probe {
  /** "NS/POD", "node:NAME" (the node itself, identity host) or "world" (the outside host). */
  readonly from: string;
  /**
   * "NS/POD", "world" (by IP) or "name:DNS-NAME" (the outside host by a name it answers for,
   * resolved in the pod: through the lab DNS, and the DNS proxy when a policy sends it there);
   * for dns, the DNS pod.
   */
  readonly to: string;
  readonly port: number;
  readonly kind: ProbeKind;
  /** http: method and path; dns: the name to resolve; kafka: the topic produced to. */
  readonly method?: string;
  readonly path?: string;
  readonly name?: string;
  readonly topic?: string;
}

export interface ProbeResult {
  readonly probe: Probe;
  readonly outcome: Outcome;
  /** Bytes of the server's answer that arrived. */
  readonly bytes: number;
  readonly detail: string;
  readonly srcIp: string;
  readonly dstIp: string;
}

export const PROBE_TIMEOUT_S = 2;
/** What a kafka probe produces (one message). */
const KAFKA_PROBE_MESSAGE = 'probe';

export function describeProbe(p: Probe): string {
  const what =
    p.kind === 'http'
      ? `${p.method ?? 'GET'} ${p.path ?? '/'}`
      : p.kind === 'dns'
        ? `dns ${p.name}`
        : p.kind === 'kafka'
          ? `kafka produce ${p.topic}`
          : 'tcp';
  return `${p.from} -> ${p.to}:${p.port} (${what})`;
}

export function peerIp(state: LabState, peer: string): string {
  if (peer === 'world' || peer.startsWith('name:')) return state.world.ip;
  if (peer.startsWith('node:')) {
    const n = state.nodes.find((x) => x.name === peer.slice(5));
    if (!n) throw new Error(`probe: no node ${peer.slice(5)} in lab ${state.lab}`);
    return n.ip;
  }
  const [ns, name] = peer.split('/');
  const p = state.pods.find((x) => x.namespace === ns && x.name === name);
  if (!p) throw new Error(`probe: no pod ${peer} in lab ${state.lab}`);
  return p.ip;
}

export async function runProbe(state: LabState, p: Probe): Promise<ProbeResult> {
  const srcIp = peerIp(state, p.from);
  const dstIp = peerIp(state, p.to);
  const argv = clientArgv(p, p.to.startsWith('name:') ? p.to.slice(5) : dstIp);
  const wrapped = podArgv(netnsPath(fromNetns(state, p.from)), `${labDir(state.lab)}/resolv.conf`, argv);
  const r = await run(wrapped, (PROBE_TIMEOUT_S + 3) * 1000);
  const base = { probe: p, srcIp, dstIp };
  if (p.kind === 'http') {
    if (r.code === 0) {
      const m = /\n(\d{3}) (\d+)$/.exec(r.stdout);
      const body = m ? r.stdout.slice(0, m.index) : '';
      if (m?.[1] === '403' && body === ACCESS_DENIED_BODY)
        return { ...base, outcome: 'denied', bytes: 0, detail: 'HTTP 403 Access denied (L7 policy)' };
      return { ...base, outcome: 'forwarded', bytes: Number(m?.[2] ?? 0), detail: `HTTP ${m?.[1] ?? '?'}` };
    }
    if (r.code === 28) return { ...base, outcome: 'dropped', bytes: 0, detail: `no answer in ${PROBE_TIMEOUT_S} s` };
    if (r.code === 7) return { ...base, outcome: 'refused', bytes: 0, detail: 'connection refused' };
    // The name did not resolve (the DNS proxy refused it): no connection was made.
    if (r.code === 6) return { ...base, outcome: 'dropped', bytes: 0, detail: 'name not resolved' };
    return { ...base, outcome: 'error', bytes: 0, detail: `curl exit ${r.code}: ${r.stderr.trim()}` };
  }
  if (p.kind === 'dns') {
    const answer = r.stdout.trim();
    if (r.code === 0 && answer !== '') return { ...base, outcome: 'forwarded', bytes: answer.length, detail: answer };
    if (r.code === 9) return { ...base, outcome: 'dropped', bytes: 0, detail: `no answer in ${PROBE_TIMEOUT_S} s` };
    return { ...base, outcome: 'error', bytes: 0, detail: `dig exit ${r.code}: ${(r.stderr || r.stdout).trim()}` };
  }
  if (p.kind === 'kafka') {
    // kcat exits 0 once the broker acknowledged the message.
    if (r.code === 0) return { ...base, outcome: 'forwarded', bytes: KAFKA_PROBE_MESSAGE.length, detail: 'produced' };
    if (/authorization failed/i.test(r.stderr))
      return { ...base, outcome: 'dropped', bytes: 0, detail: 'Kafka: Topic authorization failed' };
    if (/refused/i.test(r.stderr)) return { ...base, outcome: 'refused', bytes: 0, detail: 'connection refused' };
    return { ...base, outcome: 'dropped', bytes: 0, detail: `not delivered in ${PROBE_TIMEOUT_S} s` };
  }
  if (r.stdout.length > 0)
    return { ...base, outcome: 'forwarded', bytes: r.stdout.length, detail: r.stdout.split('\n')[0] };
  if (/refused/i.test(r.stderr)) return { ...base, outcome: 'refused', bytes: 0, detail: 'connection refused' };
  return { ...base, outcome: 'dropped', bytes: 0, detail: `no answer in ${PROBE_TIMEOUT_S} s` };
}

/** Runs probes with bounded parallelism, results in input order. */
export async function runProbes(state: LabState, probes: readonly Probe[], parallel = 8): Promise<ProbeResult[]> {
  const out: ProbeResult[] = new Array(probes.length);
  let next = 0;
  const worker = async () => {
    while (next < probes.length) {
      const i = next++;
      out[i] = await runProbe(state, probes[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, probes.length) }, worker));
  return out;
}

function fromNetns(state: LabState, peer: string): string {
  if (peer === 'world') return state.world.netns;
  if (peer.startsWith('node:')) return state.nodes.find((x) => x.name === peer.slice(5))!.netns;
  const [ns, name] = peer.split('/');
  return state.pods.find((x) => x.namespace === ns && x.name === name)!.netns;
}

function clientArgv(p: Probe, dstIp: string): string[] {
  const t = String(PROBE_TIMEOUT_S);
  switch (p.kind) {
    case 'http':
      return [
        'curl',
        '-s',
        '-w',
        '\n%{http_code} %{size_download}',
        '-m',
        t,
        '-X',
        p.method ?? 'GET',
        `http://${dstIp}:${p.port}${p.path ?? '/'}`,
      ];
    case 'dns':
      return ['dig', '+short', `+time=${t}`, '+tries=1', '-p', String(p.port), `@${dstIp}`, p.name ?? 'kubernetes'];
    case 'tcp':
      return ['sh', '-c', `echo ping | nc -w ${t} -q 1 ${dstIp} ${p.port}`];
    case 'kafka': {
      const ms = PROBE_TIMEOUT_S * 1000;
      const kcat = `kcat -b ${dstIp}:${p.port} -P -t ${p.topic ?? 'probe'} -m ${t} -X message.timeout.ms=${ms}`;
      return ['sh', '-c', `echo ${KAFKA_PROBE_MESSAGE} | ${kcat}`];
    }
  }
}

function run(argv: readonly string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? Number((err as { code: number }).code)
          : 124
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
