// L7 redirect benchmark: what handing a flow to the node proxy costs, against the same flow on the
// kernel fast path, measured in pairs, interleaved (A,X then X,A) in one run. One node netns, a
// client pod and a server pod (nginx, one worker); the Membrane datapath on both veths:
//   A  port 81: allowed at L3/L4, no redirect
//   X  port 80: an egress L7 entry: the client's flows go through `membrane proxy run` (its own
//      process, one worker, the byte-pipe handler, rules from its state file)
// Per phase: wrk keep-alive req/s (1 thread, 16 connections) and wrk 'Connection: close' conn/s;
// and iperf3-free bulk: one 64 MiB transfer's throughput with curl.
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
  cps: number;
}

async function wrk(topo: Topology, port: number, close: boolean): Promise<number> {
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
        ...h,
        `http://${SERVER_IP}:${port}/`,
      ],
      { timeout: (SECS + 20) * 1000 },
    );
    return Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

async function measure(topo: Topology, port: number): Promise<Sample> {
  return { rps: await wrk(topo, port, false), cps: await wrk(topo, port, true) };
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
      adds: [entry(80, 10002, 'egress', SERVER), entry(81, 0, 'egress', SERVER)],
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
      allowAll: true,
      derivedFrom: [],
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
    while (Date.now() < deadline && !(ok(80) && ok(81))) spawnSync('sleep', ['0.2']);
    if (!ok(80) || !ok(81))
      throw new Error(`servers or proxy did not come up (81: ${ok(81)}, 80: ${ok(80)}; proxy: ${proxyErr})`);

    if (args.includes('--timings'))
      for (const port of [81, 80, 81, 80])
        process.stderr.write(
          `${port}: ${topo.run(topo.pod('c').netns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{time_connect} %{time_starttransfer} %{time_total}\\n', `http://${SERVER_IP}:${port}/`]).out}`,
        );
    if (args.includes('--no-tw')) topo.run(topo.node, 'sysctl', ['-qw', 'net.ipv4.tcp_max_tw_buckets=0']);
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
        const cps = await wrk(topo, Number(arg('--diag-port') ?? 80), true);
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
    const a: Sample[] = [];
    const x: Sample[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      if (r % 2 === 0) {
        a.push(await measure(topo, 81));
        x.push(await measure(topo, 80));
      } else {
        x.push(await measure(topo, 80));
        a.push(await measure(topo, 81));
      }
      process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
    }
    const row = (name: string, f: (s: Sample) => number) => {
      const ma = median(a.map(f));
      const mx = median(x.map(f));
      return `| ${name} | ${ma.toFixed(0)} | ${mx.toFixed(0)} | ${(mx / ma).toFixed(2)} |`;
    };
    const text = `# L7 redirect: the node proxy against the kernel fast path

Command: \`node dist/bench/l7-redirect.bench.js --rounds ${ROUNDS} --secs ${SECS}\` (root), ${new Date().toISOString().slice(0, 10)},
${cpus().length} vCPU (${cpus()[0]?.model ?? 'unknown'}). wrk on CPU 0 in the client pod, nginx and the proxy
(one worker, byte-pipe handler) on CPU 1. Medians of ${ROUNDS} interleaved pairs, ${SECS} s each.

| metric | A: no redirect (port 81) | X: through the proxy (port 80) | X/A |
| --- | --- | --- | --- |
${row('keep-alive req/s (16 conns)', (s) => s.rps)}
${row("new connections/s ('Connection: close')", (s) => s.cps)}

Raw A: ${JSON.stringify(a)}
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
