// L7 redirect benchmark: what handing a flow to the node proxy costs, against the same flow on the
// kernel fast path and through haproxy, measured in rounds, the order rotated each round, in one
// run. One node netns, a client pod and a server pod (nginx, one worker); the Membrane datapath on
// both veths:
//   A  port 81: allowed at L3/L4, no redirect (direct to nginx)
//   H  port 82: allowed at L3/L4, Debian's haproxy 2.6 in the server pod (nbthread 1, mode http,
//      keep-alive both sides) in front of nginx:81
//   X  port 80: an egress L7 entry: the client's flows go through `membrane proxy run` (its own
//      process, one worker, rules from its state file), whose HTTP handler decides every request
//      against a path rule that allows it (GET /.*) and writes two access records
// Per phase: wrk keep-alive req/s with p50/p99 (1 thread, 16 connections) and wrk
// 'Connection: close' conn/s. nginx, haproxy and the proxy share CPU 1; wrk runs on CPU 0.
// Usage (root): node dist/bench/l7-redirect.bench.js [--rounds R] [--secs S] [--out bench/results/l7-redirect.md]
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removePinDir } from '../src/datapath/bpffs.js';
import { Datapath } from '../src/datapath/datapath.js';
import type { PolicyEntry, PolicyKey } from '../src/policy/map-state-types.js';
import type { L7Policy } from '../src/policy/policy-engine.js';
import { L7Rules, redirectsOf } from '../src/proxy/l7-rules.js';
import { Topology } from '../test/datapath/support/topology.js';

const execFileAsync = promisify(execFile);
const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};
const ROUNDS = Number(arg('--rounds') ?? 3);
const SECS = Number(arg('--secs') ?? 3);
const OUT = arg('--out');
const CLIENT = 1001;
const SERVER = 1002;
const SERVER_IP = '10.240.2.2';
const PIN = '/sys/fs/bpf/membrane/l7-bench';
const MEMBRANE = new URL('../../bin/membrane', import.meta.url).pathname;

function entry(port: number, proxyPort: number, direction: 'egress' | 'ingress', identity: number) {
  const k: PolicyKey = { identity, direction, protocol: 6, port, portPrefixLen: 16 };
  const v: PolicyEntry = { isDeny: false, proxyPort, authType: 0, derivedFrom: [] };
  return [k, v] as const;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  cps: number;
}

/** wrk's latency figure ("812.00us", "1.20ms", "2.00s") in ms. */
function ms(v: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v ?? '');
  if (!m) return Number.NaN;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

async function wrk(topo: Topology, port: number, close: boolean): Promise<{ rps: number; p50: number; p99: number }> {
  const h = close ? ['-H', 'Connection: close'] : [];
  try {
    const { stdout } = await execFileAsync(
      'nsenter',
      [
        `--net=/run/netns/${topo.pod('c').netns}`,
        'taskset',
        '-c',
        '0',
        'wrk',
        '-t1',
        '-c16',
        `-d${SECS}s`,
        '--latency',
        ...h,
        `http://${SERVER_IP}:${port}/`,
      ],
      { timeout: (SECS + 20) * 1000 },
    );
    return {
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN),
      p50: ms(/^\s+50%\s+(\S+)/m.exec(stdout)?.[1]),
      p99: ms(/^\s+99%\s+(\S+)/m.exec(stdout)?.[1]),
    };
  } catch {
    return { rps: Number.NaN, p50: Number.NaN, p99: Number.NaN };
  }
}

async function measure(topo: Topology, port: number): Promise<Sample> {
  const ka = await wrk(topo, port, false);
  return { ...ka, cps: (await wrk(topo, port, true)).rps };
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : Number.NaN;
};

async function main(): Promise<void> {
  const topo = Topology.create('l7b', ['c', 's']);
  removePinDir(PIN);
  const state = mkdtempSync(join(tmpdir(), 'mbr-l7-bench-'));
  let dp: Datapath | undefined;
  let proxy: ChildProcess | undefined;
  try {
    dp = Datapath.open({ pinDir: PIN, traceLevel: 'none' });
    dp.attachEndpoint(topo.attachment('c', 1, CLIENT));
    dp.attachEndpoint(topo.attachment('s', 2, SERVER));
    dp.upsertIpcache('10.240.1.2/32', CLIENT);
    dp.upsertIpcache(`${SERVER_IP}/32`, SERVER);
    dp.applyPolicy({
      endpointId: 1,
      adds: [entry(80, 10002, 'egress', SERVER), entry(81, 0, 'egress', SERVER), entry(82, 0, 'egress', SERVER)],
      deletes: [],
    });
    dp.applyPolicy({
      endpointId: 2,
      adds: [
        [
          { identity: 0, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 },
          { isDeny: false, proxyPort: 0, authType: 0, derivedFrom: [] },
        ],
      ],
      deletes: [],
    });

    const conf = join(state, 'nginx.conf');
    writeFileSync(
      conf,
      `daemon off; master_process off; worker_processes 1; user root; pid ${state}/nginx.pid;
error_log ${state}/nginx.log warn;
events { worker_connections 8192; multi_accept on; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 60s;
  server { listen ${SERVER_IP}:80 backlog=4096; listen ${SERVER_IP}:81 backlog=4096; location / { return 200 "ok\\n"; } } }
`,
    );
    topo.spawnIn(topo.pod('s').netns, 'taskset', ['-c', '1', 'nginx', '-c', conf, '-p', `${state}/`]);
    const hconf = join(state, 'haproxy.cfg');
    writeFileSync(
      hconf,
      `global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind ${SERVER_IP}:82
  default_backend b
backend b
  server s ${SERVER_IP}:81
`,
    );
    const haproxy = topo.spawnIn(topo.pod('s').netns, 'taskset', ['-c', '1', 'haproxy', '-f', hconf, '-db']);
    let haproxyErr = '';
    haproxy.stderr?.on('data', (d) => {
      haproxyErr += d;
    });
    if (!args.includes('--no-sk-lookup')) dp.attachProxyLookup(topo.nodePath);

    // The proxy process with its rules on disk (no agent): the client's egress to port 80.
    const policy: L7Policy = {
      endpointId: 1,
      direction: 'egress',
      protocol: 6,
      port: 80,
      portPrefixLen: 16,
      proxyPort: 10002,
      parser: 'http',
      remoteIdentities: [SERVER],
      allowAll: args.includes('--allow-all'),
      http: [{ method: 'GET', path: '/.*' }],
      derivedFrom: [{ kind: 'CiliumNetworkPolicy', namespace: 'default', name: 'bench' }],
    };
    const rules = new L7Rules();
    rules.apply({ full: true, set: redirectsOf([policy]), deleted: [] });
    mkdirSync(join(state, 'proxy'), { recursive: true });
    rules.save(join(state, 'proxy', 'l7-rules.json'));
    proxy = spawn(
      'nsenter',
      [
        `--net=${topo.nodePath}`,
        'taskset',
        '-c',
        '1',
        process.execPath,
        MEMBRANE,
        'proxy',
        'run',
        '--node',
        'bench',
        '--state-dir',
        join(state, 'proxy'),
        '--agent-socket',
        join(state, 'none.sock'),
        '--bpffs',
        PIN,
        '--workers',
        '1',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let proxyErr = '';
    proxy.stderr?.on('data', (d) => {
      proxyErr += d;
    });
    const deadline = Date.now() + 10_000;
    const ok = (port: number) =>
      topo.run(topo.pod('c').netns, 'curl', ['-s', '-m', '1', `http://${SERVER_IP}:${port}/`]).out.includes('ok');
    while (Date.now() < deadline && !(ok(80) && ok(81) && ok(82))) spawnSync('sleep', ['0.2']);
    if (!ok(80) || !ok(81) || !ok(82))
      throw new Error(
        `servers or proxy did not come up (81: ${ok(81)}, 82: ${ok(82)}, 80: ${ok(80)}; proxy: ${proxyErr}; haproxy: ${haproxyErr})`,
      );
    // The rule denies what it does not name: a DELETE is answered 403 by the proxy.
    const del = topo.run(topo.pod('c').netns, 'curl', ['-s', '-X', 'DELETE', `http://${SERVER_IP}:80/`]).out;
    if (!args.includes('--allow-all') && !del.startsWith('Access denied'))
      throw new Error(`the proxy did not apply the HTTP rule (DELETE answered ${JSON.stringify(del)})`);

    if (args.includes('--timings'))
      for (const port of [81, 80, 81, 80])
        process.stderr.write(
          `${port}: ${topo.run(topo.pod('c').netns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{time_connect} %{time_starttransfer} %{time_total}\\n', `http://${SERVER_IP}:${port}/`]).out}`,
        );
    if (args.includes('--no-tw')) topo.run(topo.node, 'sysctl', ['-qw', 'net.ipv4.tcp_max_tw_buckets=0']);
    // Lets the client's connect() reuse its own TIME_WAIT tuples (diagnosis of the churn drop).
    if (args.includes('--client-tw-reuse')) topo.run(topo.pod('c').netns, 'sysctl', ['-qw', 'net.ipv4.tcp_tw_reuse=1']);
    if (args.includes('--diag')) {
      const proxyTicks = () => {
        let sum = 0;
        for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
          try {
            const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
            if (Number(pid) === proxy?.pid || Number(f[1]) === proxy?.pid) sum += Number(f[11]) + Number(f[12]);
          } catch {
            // gone
          }
        }
        return sum;
      };
      for (let i = 0; i < Number(arg('--diag-runs') ?? 3); i++) {
        const t0 = proxyTicks();
        const last = i === Number(arg('--diag-runs') ?? 3) - 1;
        const dump =
          last && args.includes('--diag-tcpdump')
            ? execFileAsync(
                'nsenter',
                [`--net=${topo.nodePath}`, 'timeout', '1', 'tcpdump', '-nn', '-i', 'any', '-c', '120', 'tcp port 80'],
                { timeout: 5000 },
              ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }))
            : undefined;
        const cps = (await wrk(topo, Number(arg('--diag-port') ?? 80), true)).rps;
        if (dump) process.stderr.write(`${(await dump).stdout}\n`);
        process.stderr.write(`proxy cpu ${((proxyTicks() - t0) / 100 / SECS).toFixed(2)} cores\n`);
        const drops = dp.metrics().filter((m) => m.reason !== 0);
        const tw = topo.run(topo.node, 'ss', ['-tanH', 'state', 'time-wait']).out.split('\n').filter(Boolean).length;
        const syn = topo.run(topo.node, 'ss', ['-tanH', 'state', 'syn-recv']).out.split('\n').filter(Boolean).length;
        const states = new Map<string, number>();
        for (const l of topo.run(topo.node, 'ss', ['-tanH']).out.split('\n').filter(Boolean)) {
          const st = l.split(/\s+/)[0];
          states.set(st, (states.get(st) ?? 0) + 1);
        }
        process.stderr.write(`node sockets ${JSON.stringify(Object.fromEntries(states))}\n`);
        for (const pod of ['c', 's'] as const) {
          const ps = new Map<string, number>();
          for (const l of topo.run(topo.pod(pod).netns, 'ss', ['-tanH']).out.split('\n').filter(Boolean)) {
            const st = l.split(/\s+/)[0];
            ps.set(st, (ps.get(st) ?? 0) + 1);
          }
          process.stderr.write(
            `${pod === 'c' ? 'client' : 'server'} pod sockets ${JSON.stringify(Object.fromEntries(ps))}\n`,
          );
        }
        const cl = topo.run(topo.pod('c').netns, 'nstat', [
          '-a',
          'TcpExtTCPSynRetrans',
          'TcpRetransSegs',
          'TcpAttemptFails',
          'TcpExtTCPTimeouts',
        ]).out;
        const sv = topo.run(topo.pod('s').netns, 'nstat', [
          '-a',
          'TcpExtTCPSynRetrans',
          'TcpRetransSegs',
          'TcpExtTW',
          'TcpExtTWRecycled',
          'TcpExtPAWSEstabRejected',
          'TcpExtTCPTimeouts',
        ]).out;
        process.stderr.write(`client ${cl.replace(/\s+/g, ' ')}\nserver ${sv.replace(/\s+/g, ' ')}\n`);
        const nst = topo.run(topo.node, 'nstat', [
          '-az',
          'TcpExtListenOverflows',
          'TcpExtListenDrops',
          'TcpExtTCPReqQFullDrop',
          'TcpExtSyncookiesSent',
          'TcpAttemptFails',
          'TcpEstabResets',
          'TcpOutRsts',
        ]).out;
        process.stderr.write(`cps ${cps} tw ${tw} synrecv ${syn} drops ${JSON.stringify(drops)}\n${nst}\n`);
      }
    }
    const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const phases = [
      { name: 'A', port: 81, samples: [] as Sample[] },
      { name: 'H', port: 82, samples: [] as Sample[] },
      { name: 'X', port: 80, samples: [] as Sample[] },
    ];
    for (let r = 0; r < ROUNDS; r++) {
      // Rotate the order each round so no phase always runs first or last.
      for (let i = 0; i < phases.length; i++) {
        const ph = phases[(i + r) % phases.length];
        ph.samples.push(await measure(topo, ph.port));
      }
      process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
    }
    const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const [a, h, x] = phases.map((p) => p.samples);
    const med = (ss: Sample[], f: (s: Sample) => number) => median(ss.map(f));
    const row = (name: string, f: (s: Sample) => number, digits = 0) => {
      const [ma, mh, mx] = [a, h, x].map((ss) => med(ss, f));
      return `| ${name} | ${ma.toFixed(digits)} | ${mh.toFixed(digits)} | ${mx.toFixed(digits)} | ${(mx / ma).toFixed(2)} | ${(mx / mh).toFixed(2)} |`;
    };
    const text = `# L7 redirect: the HTTP handler through the datapath against direct and haproxy

Command: \`node dist/bench/l7-redirect.bench.js --rounds ${ROUNDS} --secs ${SECS}\` (root), ${new Date().toISOString().slice(0, 16)}Z,
${cpus().length} vCPU (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}. Load average ${load0} at the start,
${load1} at the end (the machine is shared). wrk (1 thread, 16 connections) on CPU 0 in the client pod;
nginx (1 worker), haproxy 2.6 (nbthread 1) and the proxy (one worker) on CPU 1. Medians of ${ROUNDS}
rounds, ${SECS} s per phase, the phase order rotated each round.

| metric | A: direct (port 81) | H: haproxy (port 82) | X: redirect + HTTP handler (port 80) | X/A | X/H |
| --- | --- | --- | --- | --- | --- |
${row('keep-alive req/s', (s) => s.rps)}
${row('keep-alive p50 (ms)', (s) => s.p50, 2)}
${row('keep-alive p99 (ms)', (s) => s.p99, 2)}
${row("new connections/s ('Connection: close')", (s) => s.cps)}

Raw A: ${JSON.stringify(a)}
Raw H: ${JSON.stringify(h)}
Raw X: ${JSON.stringify(x)}
`;
    process.stdout.write(text);
    if (OUT) writeFileSync(OUT, text);
  } finally {
    proxy?.kill('SIGTERM');
    dp?.destroy();
    removePinDir(PIN);
    topo.remove();
    rmSync(state, { recursive: true, force: true });
  }
}

await main();
