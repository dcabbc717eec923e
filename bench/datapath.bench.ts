// Datapath benchmark: the baseline method of the reference netbase harness with the real Membrane
// datapath. One topology (client pod -> node -> server pod, all netns, 10.240.x.y), configs measured
// in pairs against no filter (A), interleaved (A,X then X,A), N filler entries:
//   mbr-N      Membrane tcx programs on both host-side veths, N policy entries + N ipcache entries
//   nft-N      iptables-nft FORWARD policy DROP, N non-matching rules, then an ACCEPT
//   legacy-N   the same with iptables-legacy
// Per phase: iperf3 (1 stream), wrk keep-alive req/s, wrk 'Connection: close' conn/s. Also
// BPF_PROG_TEST_RUN ns per packet against the pass program, and the time to load N + N entries.
// Then CC_PAIRS short (1 s) interleaved A/X pairs of conn/s per mbr-N, each with the CPU time the
// whole machine spent per connection (/proc/stat), a steadier reading of cost than the rate.
// Usage (root): node dist/bench/datapath.bench.js [--quick] [--rounds R] [--secs S] [--cc-pairs P] [--ns 100,1000] [--kinds mbr,nft,legacy] [--trace connections|none|all] [--routing local|stack]
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { promisify } from 'node:util';
import { removePinDir } from '../src/datapath/bpffs.js';
import { Datapath } from '../src/datapath/datapath.js';
import { parseIpv4Prefix } from '../src/datapath/maps/ipcache-map.js';
import { nativeBpf } from '../src/datapath/native.js';
import type { PolicyEntry, PolicyKey } from '../src/policy/map-state-types.js';
import { PROG_CASES } from '../test/datapath/fixtures/prog-cases.js';
import { setUpCase } from '../test/datapath/support/prog-setup.js';
import { Topology } from '../test/datapath/support/topology.js';
import { allow, deny } from '../test/datapath/support/traffic.js';

const execFileAsync = promisify(execFile);
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 3));
const SECS = Number(argValue('--secs') ?? (QUICK ? 1 : 3));
const NS = (argValue('--ns')?.split(',').map(Number) ??
  (QUICK ? [100, 10000] : [100, 1000, 10000, 100000])) as number[];
const ALL_KINDS = ['mbr', 'nft', 'legacy'] as const;
const KINDS = (argValue('--kinds')?.split(',') ?? ALL_KINDS) as ReadonlyArray<(typeof ALL_KINDS)[number]>;
const CLIENT = 1001;
const SERVER = 1002;
const SERVER_IP = '10.240.2.2';
const PIN = '/sys/fs/bpf/membrane/dp-bench';
/** Extra short A/X pairs of new connections/s per mbr-N (the goal metric, the noisiest one). */
const CC_PAIRS = Number(argValue('--cc-pairs') ?? (QUICK ? 4 : 20));
/** Trace level of the datapath during the run: connections (the default), all or none. */
const TRACE = (argValue('--trace') ?? 'connections') as 'connections' | 'all' | 'none';
/** local (the default, as the agent attaches CNI endpoints): client <-> server packets skip the
 * node's IP stack; stack: the node routes every packet (the endpoints get no MACs). */
const ROUTING = (argValue('--routing') ?? 'local') as 'local' | 'stack';

type Kind = (typeof ALL_KINDS)[number];
interface Sample {
  gbps: number;
  rps: number;
  cps: number;
}

interface CcSample {
  cps: number;
  /** Busy CPU µs (user, system, irq, softirq; all CPUs) per connection. */
  cpuUs: number;
  /** Share of the run the hypervisor stole from this VM (all CPUs). */
  steal: number;
}

/** /proc/stat's aggregate line: [busy, steal, total] in clock ticks. */
function cpuTicks(): [number, number, number] {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq;
  return [busy, steal, busy + idle + iowait + steal];
}

function argValue(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function fmt(n: number, d = 2): string {
  return Number.isFinite(n) ? n.toFixed(d) : 'n/a';
}

function fillerPolicy(n: number): Array<readonly [PolicyKey, PolicyEntry]> {
  const out: Array<readonly [PolicyKey, PolicyEntry]> = [];
  for (let i = 0; i < n; i++) out.push(deny(20000 + i, 'ingress', 6, 9999));
  return out;
}

function fillerIpcache(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    prefix: parseIpv4Prefix(`10.${99 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`),
    identity: 20000 + i,
  }));
}

function iptablesRules(n: number): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < n; i++)
    lines.push(`-A FORWARD -s 10.${99 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 -p tcp -m tcp --dport 9999 -j DROP`);
  lines.push('-A FORWARD -s 10.240.0.0/16 -d 10.240.0.0/16 -j ACCEPT', 'COMMIT', '');
  return lines.join('\n');
}

class Bench {
  topo = Topology.create('bn', ['c', 's']);
  dp: Datapath;
  current = { kind: 'A' as Kind | 'A', n: 0 };
  mbrLoaded = -1;
  loadTimes: Array<[number, number]> = [];

  constructor() {
    for (const p of ['c', 's'])
      this.topo.run(this.topo.pod(p).netns, 'sysctl', [
        '-qw',
        'net.ipv4.ip_local_port_range=1024 65535',
        'net.ipv4.tcp_tw_reuse=1',
      ]);
    removePinDir(PIN);
    this.dp = Datapath.open({ pinDir: PIN, ipcacheMaxEntries: 262144, traceLevel: TRACE });
  }

  startServers(): void {
    const conf = `/tmp/mbr-dp-bench-nginx.conf`;
    writeFileSync(
      conf,
      `daemon off; master_process off; worker_processes 1; user root; pid /tmp/mbr-dp-bench-nginx.pid;
error_log /tmp/mbr-dp-bench-nginx.log warn;
events { worker_connections 8192; multi_accept on; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 60s;
  server { listen ${SERVER_IP}:80 backlog=4096; location / { return 200 "ok\\n"; } } }
`,
    );
    const s = this.topo.pod('s').netns;
    this.topo.spawnIn(s, 'taskset', ['-c', '1', 'nginx', '-c', conf, '-p', '/tmp/']);
    this.topo.spawnIn(s, 'taskset', ['-c', '1', 'iperf3', '-s', '-B', SERVER_IP]);
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !this.curlOk(80)) spawnSync('sleep', ['0.1']);
    if (!this.curlOk(80)) throw new Error('nginx did not come up in the server pod');
  }

  curlOk(port: number): boolean {
    const r = this.topo.run(this.topo.pod('c').netns, 'curl', [
      '-s',
      '--max-time',
      '1',
      `http://${SERVER_IP}:${port}/`,
    ]);
    return r.out === 'ok\n';
  }

  loadMbr(n: number): void {
    if (this.mbrLoaded === n) return;
    // The inputs are built first: the timing is the datapath's work, not the benchmark's.
    const ipc = fillerIpcache(n);
    const filler = fillerPolicy(n);
    // Replace the previous filler: delete what is not wanted any more. Working out the two diffs is
    // the agent's and the policy engine's job, so it is not timed either.
    const old = this.dp
      .ipcacheEntries()
      .filter((e) => e.identity >= 20000 + n)
      .map((e) => e.prefix);
    const real = [allow(CLIENT, 'ingress', 6, 80), allow(CLIENT, 'ingress', 6, 5201)];
    const current = this.dp.policyEntries(2).map((e) => e.key);
    const want = [...real, ...filler];
    const wantIds = new Set(want.map(([k]) => `${k.identity}/${k.direction}/${k.protocol}/${k.port}`));
    const deletes = current.filter((k) => !wantIds.has(`${k.identity}/${k.direction}/${k.protocol}/${k.port}`));
    const t0 = process.hrtime.bigint();
    this.dp.deleteIpcacheBatch(old);
    this.dp.upsertIpcacheBatch(ipc);
    this.dp.applyPolicy({ endpointId: 2, adds: want, deletes });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    this.loadTimes.push([n, ms]);
    this.mbrLoaded = n;
  }

  attachMbr(): void {
    this.dp.attachEndpoint(this.topo.attachment('c', 1, CLIENT, ROUTING === 'local'));
    this.dp.attachEndpoint(this.topo.attachment('s', 2, SERVER, ROUTING === 'local'));
  }

  detachMbr(): void {
    // Detach the links only; maps (and the filled policy) stay for the next mbr phase.
    const n = nativeBpf();
    for (const ep of [1, 2])
      for (const d of ['ingress', 'egress']) {
        const pin = `${PIN}/links/${ep}-${d}`;
        const fd = n.objGet(pin);
        n.linkDetach(fd);
        n.closeFd(fd);
        rmSync(pin, { force: true });
      }
  }

  apply(kind: Kind | 'A', n: number): void {
    // Tear down the current filter.
    if (this.current.kind === 'mbr') this.detachMbr();
    if (this.current.kind === 'nft') this.node('nft', ['delete', 'table', 'ip', 'filter']);
    if (this.current.kind === 'legacy') {
      this.node('iptables-legacy', ['-F', 'FORWARD']);
      this.node('iptables-legacy', ['-P', 'FORWARD', 'ACCEPT']);
    }
    if (kind === 'mbr') {
      this.loadMbr(n);
      this.attachMbr();
    } else if (kind === 'nft' || kind === 'legacy') {
      execFileSync('nsenter', [`--net=${this.topo.nodePath}`, `iptables-${kind}-restore`], { input: iptablesRules(n) });
    }
    this.current = { kind, n };
  }

  node(cmd: string, a: string[]): void {
    spawnSync('nsenter', [`--net=${this.topo.nodePath}`, cmd, ...a], { stdio: 'ignore' });
  }

  /** Async, so the event ring keeps being drained by this process while traffic runs. */
  async runIn(netns: string, cmd: string[], timeoutMs: number): Promise<string> {
    try {
      const r = await execFileAsync('nsenter', [`--net=/run/netns/${netns}`, ...cmd], {
        timeout: timeoutMs,
        maxBuffer: 16 << 20,
      });
      return r.stdout;
    } catch (err) {
      return (err as { stdout?: string }).stdout ?? '';
    }
  }

  async measure(): Promise<Sample> {
    const c = this.topo.pod('c').netns;
    const t = (SECS + 15) * 1000;
    const ip = {
      out: await this.runIn(c, ['taskset', '-c', '0', 'iperf3', '-c', SERVER_IP, '-t', String(SECS), '-J'], t),
    };
    let gbps = Number.NaN;
    try {
      gbps = JSON.parse(ip.out).end.sum_received.bits_per_second / 1e9;
    } catch {
      // iperf3 failed (e.g. a filter too slow to finish the handshake): recorded as n/a
    }
    const wrk = async (close: boolean) => {
      const h = close ? ['-H', 'Connection: close'] : [];
      const out = await this.runIn(
        c,
        ['taskset', '-c', '0', 'wrk', '-t1', '-c16', `-d${SECS}s`, ...h, `http://${SERVER_IP}/`],
        t,
      );
      const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
      return m ? Number(m[1]) : Number.NaN;
    };
    const rps = await wrk(false);
    return { gbps, rps, cps: await wrk(true) };
  }

  /** One 1 s wrk 'Connection: close' run with the machine's CPU time around it. */
  async ccSample(): Promise<CcSample> {
    const [b0, s0, t0] = cpuTicks();
    const out = await this.runIn(
      this.topo.pod('c').netns,
      ['taskset', '-c', '0', 'wrk', '-t1', '-c16', '-d1s', '-H', 'Connection: close', `http://${SERVER_IP}/`],
      16000,
    );
    const [b1, s1, t1] = cpuTicks();
    const cps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
    const tickUs = 1e6 / 100; // USER_HZ
    return { cps, cpuUs: ((b1 - b0) * tickUs) / cps, steal: (s1 - s0) / Math.max(1, t1 - t0) };
  }

  testRunNs(): Array<{ name: string; ns: number; passNs: number }> {
    // A fake endpoint on ifindex 1 (loopback of this netns; nothing is attached there) so the test
    // runs take the same map paths as the real endpoints.
    const cases = PROG_CASES.filter((c) =>
      [
        'forwards an egress SYN allowed by an L3-only rule and opens a flow',
        'forwards the reply of a tracked egress flow with no ingress policy',
        'drops an ingress SYN matching an identity deny even with an allow-all (181)',
      ].includes(c.name),
    );
    const out: Array<{ name: string; ns: number; passNs: number }> = [];
    for (const c of cases) {
      setUpCase(this.dp, c);
      // EP 9 = the fixture endpoint; its policy gets the same filler as the server endpoint.
      this.dp.applyPolicy({ endpointId: 9, adds: fillerPolicy(this.mbrLoaded), deletes: [] });
      this.dp.writeEndpointInfo({
        endpointId: 9,
        identity: 1001,
        ipv4: '10.0.1.2',
        flags: 0,
        policyRevision: 1,
        ifindex: 1,
      });
      const ns: number[] = [];
      const pass: number[] = [];
      for (let i = 0; i < 5; i++) {
        pass.push(this.dp.testRun('mbr_pass', c.packet, 200000).durationNs);
        ns.push(this.dp.testRun(c.program, c.packet, 200000).durationNs);
      }
      out.push({ name: c.name, ns: median(ns), passNs: median(pass) });
    }
    this.dp.removeEndpointInfo(9);
    this.dp.setTraceLevel(TRACE);
    return out;
  }

  async liveCost(): Promise<{ fromPodNs: number; toPodNs: number; runs: number }> {
    const n = nativeBpf();
    const read = () => [this.dp.programFd('mbr_from_pod'), this.dp.programFd('mbr_to_pod')].map((fd) => n.progInfo(fd));
    execFileSync('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
    try {
      const before = read();
      await this.runIn(
        this.topo.pod('c').netns,
        ['taskset', '-c', '0', 'wrk', '-t1', '-c16', `-d${SECS}s`, '-H', 'Connection: close', `http://${SERVER_IP}/`],
        (SECS + 15) * 1000,
      );
      const after = read();
      const ns = (i: 0 | 1) => {
        const a = after[i];
        const b = before[i];
        return a && b ? (a.runTimeNs - b.runTimeNs) / Math.max(1, a.runCount - b.runCount) : Number.NaN;
      };
      const runs = (after[0]?.runCount ?? 0) - (before[0]?.runCount ?? 0);
      return { fromPodNs: ns(0), toPodNs: ns(1), runs };
    } finally {
      execFileSync('sysctl', ['-qw', 'kernel.bpf_stats_enabled=0']);
    }
  }

  close(): void {
    try {
      if (this.current.kind !== 'A') this.apply('A', 0);
    } finally {
      this.dp.destroy();
      removePinDir(PIN);
      this.topo.remove();
      spawnSync('rm', [
        '-f',
        '/tmp/mbr-dp-bench-nginx.conf',
        '/tmp/mbr-dp-bench-nginx.log',
        '/tmp/mbr-dp-bench-nginx.pid',
      ]);
    }
  }
}

let eventsLine = '';

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the datapath benchmark needs root (netns, BPF, iptables)');
  const started = Date.now();
  const b = new Bench();
  const rows: Array<{ cfg: string; round: number; a: Sample; x: Sample }> = [];
  const testRuns: Array<{ n: number; name: string; ns: number; passNs: number }> = [];
  const liveCost: Array<{ n: number; fromPodNs: number; toPodNs: number; runs: number }> = [];
  const ccPairs: CcPair[] = [];
  let delivered = 0;
  b.dp.onEvents((e) => {
    delivered += e.length;
  });
  try {
    b.dp.applyPolicy({ endpointId: 1, adds: [allow(0, 'egress')], deletes: [] });
    b.dp.applyPolicy({ endpointId: 2, adds: [allow(0, 'egress')], deletes: [] });
    b.startServers();
    // Same answers first: with the datapath the allowed request gets "ok", a denied port gets nothing;
    // with no filter the denied port is refused by the server (answered), not dropped.
    const t0 = Date.now();
    const say = (what: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}\n`);
    for (const n of NS) {
      say(`mbr-${n}: load and check`);
      b.apply('mbr', n);
      if (!b.curlOk(80)) throw new Error(`mbr-${n}: allowed request failed`);
      const denied = b.topo.run(b.topo.pod('c').netns, 'curl', ['-s', '--max-time', '1', `http://${SERVER_IP}:81/`]);
      if (denied.code !== 28) throw new Error(`mbr-${n}: port 81 was not dropped (curl rc ${denied.code})`);
      say(`mbr-${n}: test runs`);
      for (const r of b.testRunNs()) testRuns.push({ n, ...r });
      say(`mbr-${n}: done`);
      b.apply('A', 0);
      if (!b.curlOk(80)) throw new Error('no filter: request failed');
    }
    // The test runs above fill the ring on purpose (millions of drops); count only traffic phases.
    const lostBefore = b.dp.lostEvents()[0]?.count ?? 0;
    b.dp.drainEvents();
    delivered = 0;
    const configs = KINDS.flatMap((k) => NS.map((n) => [k, n] as const));
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? configs : [...configs].reverse();
      for (const [i, [kind, n]] of order.entries()) {
        const aFirst = (i + round) % 2 === 0;
        let a: Sample | undefined;
        let x: Sample | undefined;
        for (const which of aFirst ? ['A', 'X'] : ['X', 'A']) {
          if (which === 'A') {
            b.apply('A', 0);
            a = await b.measure();
          } else {
            b.apply(kind, n);
            x = await b.measure();
          }
        }
        if (a && x) rows.push({ cfg: `${kind}-${n}`, round, a, x });
        say(`round ${round} ${kind}-${n}`);
        process.stderr.write(`round ${round} ${kind}-${n}: A ${JSON.stringify(a)} X ${JSON.stringify(x)}\n`);
      }
    }
    // The goal metric again, in many short pairs: conn/s and CPU per connection, A and X interleaved.
    if (KINDS.includes('mbr'))
      for (const n of NS) {
        for (let i = 0; i < CC_PAIRS; i++) {
          let a: CcSample | undefined;
          let x: CcSample | undefined;
          for (const which of i % 2 ? ['X', 'A'] : ['A', 'X']) {
            b.apply(which === 'A' ? 'A' : 'mbr', n);
            if (which === 'A') a = await b.ccSample();
            else x = await b.ccSample();
          }
          if (a && x) ccPairs.push({ n, a, x });
        }
        say(`mbr-${n}: ${CC_PAIRS} conn/s pairs`);
      }
    // Direct cost in live traffic (kernel.bpf_stats_enabled, restored after): ns per program run
    // under the 'Connection: close' load, where every connection takes the policy path.
    for (const n of NS) {
      b.apply('mbr', n);
      say(`mbr-${n}: bpf_stats`);
      liveCost.push({ n, ...(await b.liveCost()) });
    }
    b.apply('A', 0);
    const lost = (b.dp.lostEvents()[0]?.count ?? 0) - lostBefore;
    eventsLine = `Events during the traffic phases: ${delivered} delivered to the JS consumer, ${lost} lost (ring reservation failures).`;
  } finally {
    b.close();
  }
  const minutes = (Date.now() - started) / 60000;
  writeFileSync(
    new URL('../../bench/results/datapath.md', import.meta.url),
    report(rows, ccPairs, testRuns, liveCost, b.loadTimes, minutes),
  );
  process.stdout.write(report(rows, ccPairs, testRuns, liveCost, b.loadTimes, minutes));
}

interface CcPair {
  n: number;
  a: CcSample;
  x: CcSample;
}

function report(
  rows: Array<{ cfg: string; round: number; a: Sample; x: Sample }>,
  ccPairs: readonly CcPair[],
  testRuns: Array<{ n: number; name: string; ns: number; passNs: number }>,
  liveCost: Array<{ n: number; fromPodNs: number; toPodNs: number; runs: number }>,
  loadTimes: Array<[number, number]>,
  minutes: number,
): string {
  const cfgs = [...new Set(rows.map((r) => r.cfg))];
  const hasIptables = cfgs.some((c) => !c.startsWith('mbr-'));
  const ratio = (cfg: string, k: keyof Sample) => {
    const rs = rows
      .filter((r) => r.cfg === cfg)
      .map((r) => r.x[k] / r.a[k])
      .filter(Number.isFinite);
    if (rs.length === 0) return 'n/a';
    return `${fmt(median(rs))} (${fmt(Math.min(...rs))}–${fmt(Math.max(...rs))})`;
  };
  const med = (cfg: string, k: keyof Sample, side: 'a' | 'x') =>
    median(rows.filter((r) => r.cfg === cfg).map((r) => r[side][k]));
  const lines: string[] = [];
  lines.push('# Datapath benchmark', '');
  lines.push(`Command: \`node dist/bench/datapath.bench.js ${args.join(' ')}\` (as root, after \`npm run build\`)`);
  lines.push(
    `Date: ${new Date().toISOString()} · Node ${process.version} · CPU ${cpus()[0]?.model ?? '?'} × ${cpus().length} · ` +
      `rounds ${ROUNDS} · ${SECS} s per measurement · run took ${fmt(minutes, 1)} min`,
    '',
  );
  lines.push(
    'Method: one topology (client pod → node netns → server pod over veths), servers pinned to CPU1, client to CPU0.',
    'Each config X is measured paired with no filter (A) and interleaved (A,X then X,A); the ratio is X/A per pair,',
    'reported as the median over rounds with the range. `mbr-N`: Membrane tcx programs on both host-side veths',
    '(conntrack, ipcache, per-endpoint policy) with N policy entries in the server endpoint map plus N ipcache entries;',
    ROUTING === 'local'
      ? 'both endpoints have their MACs, as the agent attaches CNI endpoints, so client <-> server packets take local delivery (no node IP stack).'
      : '`--routing stack`: the endpoints have no MACs, so the node IP stack routes every packet as with no filter.',
    '`nft-N`/`legacy-N`: iptables FORWARD with N non-matching rules then ACCEPT (no conntrack rule), as in the baseline.',
    '',
  );
  lines.push('## Paired ratio to no filter (median, range)', '');
  lines.push('| config | iperf3 | keep-alive req/s | conn/s | X medians (Gbit/s, req/s, conn/s) | A medians |');
  lines.push('|---|---|---|---|---|---|');
  for (const c of cfgs)
    lines.push(
      `| ${c} | ${ratio(c, 'gbps')} | ${ratio(c, 'rps')} | ${ratio(c, 'cps')} | ${fmt(med(c, 'gbps', 'x'), 1)}, ${fmt(med(c, 'rps', 'x'), 0)}, ${fmt(med(c, 'cps', 'x'), 0)} | ${fmt(med(c, 'gbps', 'a'), 1)}, ${fmt(med(c, 'rps', 'a'), 0)}, ${fmt(med(c, 'cps', 'a'), 0)} |`,
    );
  lines.push(
    '',
    `## New connections/s in ${CC_PAIRS} short pairs per N (1 s each, A/X interleaved)`,
    '',
    'CPU per connection is the busy time of the whole machine (both CPUs: wrk, nginx, softirq, the programs and',
    'the process consuming the event ring) divided by the connections; steal is the share the hypervisor took.',
    '',
    '| config | conn/s ratio (median, range) | CPU µs/conn ratio (median, range) | X medians (conn/s, µs/conn) | A medians | steal (median) |',
    '|---|---|---|---|---|---|',
  );
  for (const n of [...new Set(ccPairs.map((p) => p.n))]) {
    const ps = ccPairs.filter((p) => p.n === n && Number.isFinite(p.a.cps) && Number.isFinite(p.x.cps));
    const spread = (xs: number[]) => `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
    lines.push(
      `| mbr-${n} | ${spread(ps.map((p) => p.x.cps / p.a.cps))} | ${spread(ps.map((p) => p.x.cpuUs / p.a.cpuUs))} | ` +
        `${fmt(median(ps.map((p) => p.x.cps)), 0)}, ${fmt(median(ps.map((p) => p.x.cpuUs)), 1)} | ` +
        `${fmt(median(ps.map((p) => p.a.cps)), 0)}, ${fmt(median(ps.map((p) => p.a.cpuUs)), 1)} | ` +
        `${fmt(100 * median(ps.flatMap((p) => [p.a.steal, p.x.steal])), 0)}% |`,
    );
  }
  lines.push('', '## Membrane vs iptables at the same N (conn/s, median X)', '');
  for (const n of hasIptables ? [...new Set(rows.map((r) => Number(r.cfg.split('-')[1])))] : []) {
    const m = med(`mbr-${n}`, 'cps', 'x');
    const nft = med(`nft-${n}`, 'cps', 'x');
    const leg = med(`legacy-${n}`, 'cps', 'x');
    lines.push(`- N=${n}: mbr/nft ${fmt(m / nft)}×, mbr/legacy ${fmt(m / leg)}×`);
  }
  lines.push('', '## BPF_PROG_TEST_RUN (ns per run, median of 5 × 200k runs, same run as the pass program)', '');
  lines.push('| N | packet | membrane ns | pass ns | membrane − pass |', '|---|---|---|---|---|');
  for (const t of testRuns) lines.push(`| ${t.n} | ${t.name} | ${t.ns} | ${t.passNs} | ${t.ns - t.passNs} |`);
  lines.push('', '## Live cost per program run (bpf_stats, wrk Connection: close; includes the stats overhead)', '');
  lines.push('| N | mbr_from_pod ns | mbr_to_pod ns | runs |', '|---|---|---|---|');
  for (const c of liveCost) lines.push(`| ${c.n} | ${fmt(c.fromPodNs, 0)} | ${fmt(c.toPodNs, 0)} | ${c.runs} |`);
  lines.push(
    '',
    '## Loading N policy entries + N ipcache entries (batch map writes, inputs and diffs built beforehand, the timing covers the datapath calls; each time the mbr-N config is set up, first load first; later loads also delete the previous filler)',
    '',
  );
  for (const [n, ms] of loadTimes) lines.push(`- N=${n}: ${fmt(ms, 0)} ms`);
  lines.push('', eventsLine, '');
  return lines.join('\n');
}

await main();
