// Services benchmark: a ClusterIP through Membrane's eBPF load balancer vs kube-proxy's iptables
// mode vs the backend's address directly, with 1, 100, 1k and 10k services defined; plus the
// control plane: 10k services loaded, and one service changed among 10k, until the maps hold it.
//
// Topology (test/datapath/support/topology.ts): client pod -> node netns -> server pod, all netns
// the bench creates. nginx in the server pod (CPU1) listens on :80 and :81 (each service has two
// backends, so the random choice and kube-proxy's `statistic` rule both run); wrk in the client pod
// (CPU0), 1 thread, 16 connections, keep-alive (req/s) and `Connection: close` (new conn/s).
//   mbr      Membrane's programs on both host-side veths (endpoints as the agent attaches them, with
//            local delivery; policy enforcement off: this measures the load balancer), wrk to the
//            ClusterIP 10.96.0.1: service translation in mbr_from_pod.
//   direct   the same datapath, wrk to the backend's address: what the translation costs.
//   kp       no Membrane programs (kube-proxy's world: the node routes), iptables-nft nat rules of
//            kube-proxy's shape (PREROUTING -> KUBE-SERVICES, one `-d VIP -p tcp --dport` rule per
//            service -> KUBE-SVC-* with `statistic --mode random` -> KUBE-SEP-* DNAT), wrk to
//            10.98.x.y, the service in the middle of KUBE-SERVICES (kube-proxy's order is a hash).
// Per N the three modes are measured in interleaved rounds (mbr, kp, direct, then reversed), and
// ratios are paired per round.
//   node dist/bench/services.bench.js [--quick] [--rounds R] [--secs S] [--ns 1,100,1000,10000]
import { execFile, execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { promisify } from 'node:util';
import { removePinDir } from '../src/datapath/bpffs.js';
import { Datapath } from '../src/datapath/datapath.js';
import { nativeBpf } from '../src/datapath/native.js';
import { type LbPod, LbTable } from '../src/lb/lb-table.js';
import { parseServiceObject, type ServiceSpec } from '../src/lb/service.js';
import { Topology } from '../test/datapath/support/topology.js';

const execFileAsync = promisify(execFile);
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 2));
const SECS = Number(argValue('--secs') ?? (QUICK ? 1 : 2));
const NS = (argValue('--ns')?.split(',').map(Number) ?? [1, 100, 1000, 10000]) as number[];
const PIN = '/sys/fs/bpf/membrane/svc-bench';
const SERVER_IP = '10.240.2.2';
const MBR_VIP = '10.96.0.1';
const MAGLEV_M = 16381;
const NGINX_CONF = '/tmp/mbr-svc-bench-nginx.conf';

type Mode = 'mbr' | 'kp' | 'direct';
interface Sample {
  rps: number;
  cps: number;
}

class Bench {
  readonly topo = Topology.create('sv', ['c', 's']);
  readonly dp: Datapath;
  readonly table: LbTable;
  attached = false;
  services = 0;

  constructor() {
    for (const p of ['c', 's'])
      this.topo.run(this.topo.pod(p).netns, 'sysctl', [
        '-qw',
        'net.ipv4.ip_local_port_range=1024 65535',
        'net.ipv4.tcp_tw_reuse=1',
      ]);
    removePinDir(PIN);
    this.dp = Datapath.open({ pinDir: PIN, traceLevel: 'connections' });
    this.dp.lb.setConfig({ netnsCookie: 0, nodeAddr: '', maglevSize: MAGLEV_M });
    const server: LbPod = {
      namespace: 'bench',
      name: 'server',
      labels: { app: 'server' },
      podIPs: [SERVER_IP],
      ports: [
        { name: 'a', containerPort: 80, protocol: 6 },
        { name: 'b', containerPort: 81, protocol: 6 },
      ],
      nodeName: 'bench',
    };
    // Two backends per service: the pod's ports 80 and 81 (a second server pod's worth of slots).
    const second: LbPod = { ...server, name: 'server-b', ports: [{ name: 'a', containerPort: 81, protocol: 6 }] };
    this.table = new LbTable({ node: 'bench', nodeIp: '', pods: () => [server, second], maglevTableSize: MAGLEV_M });
    this.attach();
  }

  startServer(): void {
    writeFileSync(
      NGINX_CONF,
      `daemon off; master_process off; worker_processes 1; user root; pid /tmp/mbr-svc-bench-nginx.pid;
error_log /tmp/mbr-svc-bench-nginx.log warn;
events { worker_connections 8192; multi_accept on; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 60s;
  server { listen ${SERVER_IP}:80 backlog=4096; listen ${SERVER_IP}:81 backlog=4096; location / { return 200 "ok\\n"; } } }
`,
    );
    this.topo.spawnIn(this.topo.pod('s').netns, 'taskset', ['-c', '1', 'nginx', '-c', NGINX_CONF, '-p', '/tmp/']);
  }

  attach(): void {
    if (this.attached) return;
    for (const [name, id] of [
      ['c', 1],
      ['s', 2],
    ] as const)
      this.dp.attachEndpoint({
        ...this.topo.attachment(name, id, 1000 + id),
        enforceIngress: false,
        enforceEgress: false,
      });
    this.attached = true;
  }

  detach(): void {
    if (!this.attached) return;
    const n = nativeBpf();
    for (const ep of [1, 2])
      for (const d of ['ingress', 'egress']) {
        const pin = `${PIN}/links/${ep}-${d}`;
        const fd = n.objGet(pin);
        n.linkDetach(fd);
        n.closeFd(fd);
        rmSync(pin, { force: true });
      }
    this.attached = false;
  }

  /** Services 0..n-1 defined (service 0 is the measured one): the maps written by diff. Returns ms. */
  setServices(n: number): { computeMs: number; writeMs: number } {
    const t0 = performance.now();
    for (let i = this.services; i < n; i++) this.table.upsertService(service(i));
    for (let i = n; i < this.services; i++) this.table.removeService('bench', `svc-${i}`);
    const diff = this.table.takeDiff();
    const t1 = performance.now();
    this.dp.lb.apply(diff, MAGLEV_M);
    const t2 = performance.now();
    this.services = n;
    return { computeMs: t1 - t0, writeMs: t2 - t1 };
  }

  /** One service edited among the defined ones (its session affinity toggled): compute + write ms. */
  changeOne(i: number, affinity: boolean): number {
    const t0 = performance.now();
    this.table.upsertService(service(i, affinity));
    this.dp.lb.apply(this.table.takeDiff(), MAGLEV_M);
    return performance.now() - t0;
  }

  /** kube-proxy's rules for n services, the measured one in the middle of KUBE-SERVICES. */
  setKubeProxy(n: number): number {
    const t0 = performance.now();
    execFileSync('nsenter', [`--net=${this.topo.nodePath}`, 'iptables-nft-restore'], { input: kubeProxyRules(n) });
    return performance.now() - t0;
  }

  async measure(mode: Mode): Promise<Sample> {
    if (mode === 'kp') {
      this.detach();
      // Fair to iptables: TIME_WAIT conntrack entries of earlier rounds would meet reused client
      // ports (wrk opens thousands of connections a second) and stall SYNs; short-lived here.
      this.topo.run(this.topo.node, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1']);
    } else this.attach();
    const url = mode === 'mbr' ? `http://${MBR_VIP}/` : mode === 'kp' ? `http://${kpVip(0)}/` : `http://${SERVER_IP}/`;
    const c = this.topo.pod('c').netns;
    const wrk = async (close: boolean) => {
      const h = close ? ['-H', 'Connection: close'] : [];
      const out = await runIn(
        c,
        ['taskset', '-c', '0', 'wrk', '-t1', '-c16', `-d${SECS}s`, ...h, url],
        (SECS + 15) * 1000,
      );
      const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
      const errors = /Non-2xx|Socket errors: connect (\d+)/.exec(out);
      if (!m) return Number.NaN;
      if (errors && /connect [1-9]/.test(errors[0])) return Number.NaN;
      return Number(m[1]);
    };
    return { rps: await wrk(false), cps: await wrk(true) };
  }

  /** The same answer from every mode before timing: nginx's body through each path. */
  async check(mode: Mode): Promise<void> {
    if (mode === 'kp') this.detach();
    else this.attach();
    const url = mode === 'mbr' ? `http://${MBR_VIP}/` : mode === 'kp' ? `http://${kpVip(0)}/` : `http://${SERVER_IP}/`;
    for (let i = 0; i < 50; i++) {
      const out = await runIn(this.topo.pod('c').netns, ['curl', '-s', '-m', '1', url], 3000);
      if (out === 'ok\n') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${mode}: ${url} does not answer from the client pod`);
  }

  remove(): void {
    try {
      this.dp.destroy();
    } finally {
      this.topo.remove();
      for (const f of [NGINX_CONF, '/tmp/mbr-svc-bench-nginx.log', '/tmp/mbr-svc-bench-nginx.pid'])
        rmSync(f, { force: true });
    }
  }
}

function service(i: number, affinity = false): ServiceSpec {
  return parseServiceObject(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${i}`, namespace: 'bench' },
      spec: {
        clusterIP: i === 0 ? MBR_VIP : `10.97.${i >> 8}.${i & 255}`,
        selector: { app: 'server' },
        ports: [{ port: 80, targetPort: 'a' }],
        ...(affinity ? { sessionAffinity: 'ClientIP' } : {}),
      },
    },
    'bench',
  );
}

function kpVip(i: number): string {
  return `10.98.${(i + 1) >> 8}.${(i + 1) & 255}`;
}

function kubeProxyRules(n: number): string {
  const lines = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
  ];
  const order = Array.from({ length: n }, (_, i) => i);
  // The measured service (0) sits in the middle of the chain.
  order.splice(0, 1);
  order.splice(Math.floor(n / 2), 0, 0);
  for (const i of order) lines.push(`:KUBE-SVC-${i} - [0:0]`, `:KUBE-SEP-${i}A - [0:0]`, `:KUBE-SEP-${i}B - [0:0]`);
  lines.push(
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
  );
  for (const i of order)
    lines.push(
      `-A KUBE-SERVICES -d ${kpVip(i)}/32 -p tcp -m comment --comment "bench/svc-${i}:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-${i}`,
    );
  for (const i of order)
    lines.push(
      `-A KUBE-SVC-${i} -m comment --comment "bench/svc-${i}:http -> ${SERVER_IP}:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-${i}A`,
      `-A KUBE-SVC-${i} -m comment --comment "bench/svc-${i}:http -> ${SERVER_IP}:81" -j KUBE-SEP-${i}B`,
      `-A KUBE-SEP-${i}A -s ${SERVER_IP}/32 -m comment --comment "bench/svc-${i}:http" -j KUBE-MARK-MASQ`,
      `-A KUBE-SEP-${i}A -p tcp -m comment --comment "bench/svc-${i}:http" -m tcp -j DNAT --to-destination ${SERVER_IP}:80`,
      `-A KUBE-SEP-${i}B -s ${SERVER_IP}/32 -m comment --comment "bench/svc-${i}:http" -j KUBE-MARK-MASQ`,
      `-A KUBE-SEP-${i}B -p tcp -m comment --comment "bench/svc-${i}:http" -m tcp -j DNAT --to-destination ${SERVER_IP}:81`,
    );
  lines.push('COMMIT', '');
  return lines.join('\n');
}

async function runIn(netns: string, cmd: string[], timeoutMs: number): Promise<string> {
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

function argValue(flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

function range(xs: readonly number[]): string {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length === 0 ? 'n/a' : `${fmt(Math.min(...s))}–${fmt(Math.max(...s))}`;
}

async function main(): Promise<void> {
  const started = Date.now();
  const say = (l: string) => process.stderr.write(`${l}\n`);
  const b = new Bench();
  // Interrupted: remove the netns, pins and nginx before exiting.
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      b.remove();
      process.exit(130);
    });
  const rows: string[] = [];
  const loads: string[] = [];
  try {
    b.startServer();
    for (const n of NS) {
      const load = b.setServices(n);
      const kpMs = b.setKubeProxy(n);
      loads.push(
        `| ${n} | ${fmt(load.computeMs, 1)} | ${fmt(load.writeMs, 1)} | ${fmt(kpMs, 0)} (iptables-nft-restore of the whole table) |`,
      );
      for (const m of ['mbr', 'kp', 'direct'] as const) await b.check(m);
      const samples: Record<Mode, Sample[]> = { mbr: [], kp: [], direct: [] };
      for (let r = 0; r < ROUNDS; r++) {
        const order: Mode[] = r % 2 === 0 ? ['mbr', 'kp', 'direct'] : ['direct', 'kp', 'mbr'];
        for (const m of order) samples[m].push(await b.measure(m));
        say(`N=${n} round ${r + 1}: ${order.map((m) => `${m} ${JSON.stringify(samples[m].at(-1))}`).join(', ')}`);
      }
      const ratio = (a: Mode, z: Mode, k: keyof Sample) => samples[a].map((s, i) => s[k] / samples[z][i][k]);
      const med = (m: Mode, k: keyof Sample) => fmt(median(samples[m].map((s) => s[k])), 0);
      rows.push(
        `| ${n} | ${med('mbr', 'cps')} | ${med('kp', 'cps')} | ${med('direct', 'cps')} | ${fmt(median(ratio('mbr', 'direct', 'cps')))} (${range(ratio('mbr', 'direct', 'cps'))}) | ${fmt(median(ratio('mbr', 'kp', 'cps')))} (${range(ratio('mbr', 'kp', 'cps'))}) | ${med('mbr', 'rps')} | ${med('kp', 'rps')} | ${med('direct', 'rps')} | ${fmt(median(ratio('mbr', 'direct', 'rps')))} | ${fmt(median(ratio('mbr', 'kp', 'rps')))} |`,
      );
    }
    // The control plane at 10k: one service changed, then 10k loaded from nothing.
    b.setServices(Math.max(...NS));
    const changes: number[] = [];
    for (let i = 0; i < 21; i++) changes.push(b.changeOne(5000 % Math.max(...NS), i % 2 === 0));
    b.setServices(0);
    const fresh = b.setServices(10_000);
    const report = [
      '# Services benchmark',
      '',
      `Command: \`node dist/bench/services.bench.js ${args.join(' ')}\` (as root, after \`npm run build\`)`,
      `Date: ${new Date().toISOString()} · Node ${process.version} · CPU ${cpus()[0]?.model ?? '?'} × ${cpus().length} · rounds ${ROUNDS} · ${SECS} s per measurement · run took ${((Date.now() - started) / 1000).toFixed(0)} s`,
      '',
      'Method: client pod → node netns → server pod (nginx on :80 and :81, CPU1), wrk -t1 -c16 in the client (CPU0).',
      'Every service has two backends (the server on :80 and :81). `mbr`: Membrane on both veths, wrk to the ClusterIP',
      '(translated in mbr_from_pod, local delivery). `direct`: the same datapath, wrk to the backend address. `kp`: no',
      "Membrane programs, iptables-nft nat rules of kube-proxy's shape (KUBE-SERVICES → KUBE-SVC-* with statistic",
      'random → KUBE-SEP-* DNAT) for every service, the measured one in the middle of KUBE-SERVICES. Modes measured in',
      'interleaved rounds (mbr, kp, direct, then reversed); ratios are paired per round (median, range). Policy',
      'enforcement is off on both endpoints: this measures service translation, not policy.',
      '',
      '## ClusterIP with N services defined',
      '',
      '| N | mbr conn/s | kp conn/s | direct conn/s | mbr/direct conn/s | mbr/kp conn/s | mbr req/s | kp req/s | direct req/s | mbr/direct req/s | mbr/kp req/s |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      '## Control plane',
      '',
      'Loading N services (from the previous N): LbTable diff computed (TS) and written to the maps (batch syscalls);',
      "kube-proxy's equivalent is one iptables-nft-restore of the table.",
      '',
      '| N | compute ms | map write ms | kube-proxy rules ms |',
      '|---|---|---|---|',
      ...loads,
      '',
      `10k services loaded from none: ${fmt(fresh.computeMs + fresh.writeMs, 1)} ms (compute ${fmt(fresh.computeMs, 1)}, write ${fmt(fresh.writeMs, 1)}).`,
      `One service changed among 10k (session affinity toggled), compute + map write until the maps hold it: median ${fmt(median(changes), 3)} ms (${range(changes)}, n=${changes.length}).`,
      '',
    ].join('\n');
    writeFileSync(new URL('../../bench/results/services.md', import.meta.url), report);
    process.stdout.write(report);
  } finally {
    b.remove();
  }
}

await main();
