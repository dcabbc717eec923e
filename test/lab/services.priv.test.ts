// Services on real traffic in a two-node lab (test/lab/worlds/services.yaml): ClusterIP from pods on
// both nodes to every backend, named targetPort, UDP through the kube-dns ClusterIP, replies that
// carry the service address, no backend refused at once, NodePort from the world host with both
// traffic policies, socket LB from the node's own namespace, ClientIP affinity, Maglev, a terminating
// backend that takes no new connection while its open ones drain, backend policy enforced through the
// service with the flow naming it, and 10k services defined. One lab serves every test; it is torn
// down in `after` even when a test fails.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/api-client.js';
import {
  agentSocket,
  clusterDir,
  netnsPath,
  nodeDir,
  nodeNetns,
  podNetns,
  worldNetns,
} from '../../src/lab/lab-paths.js';
import type { LabState } from '../../src/lab/lab-state.js';
import { labDown } from '../../src/lab/teardown.js';
import { labUp } from '../../src/lab/topology.js';
import type { LbFrontendView } from '../../src/lb/lb-table.js';
import { type ClusterEndpoint, ENDPOINTS_PREFIX, serviceKey } from '../../src/store/cluster-resources.js';
import { EmbeddedStore } from '../../src/store/embedded-store.js';
import { privilegeGap, requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { LAB_TOOLS, MEMBRANE, REPO } from './lab-fixture.js';

const WORLD = join(REPO, 'test/lab/worlds/services.yaml');
const TOOLS = [...LAB_TOOLS, 'python3'];

describe('services in the lab', () => {
  const lab = `t${randomBytes(3).toString('hex')}`;
  const env = { ...process.env, MEMBRANE_LAB: lab };
  const tmp = mkdtempSync(join(tmpdir(), 'mbr-svc-'));
  let state: LabState | undefined;
  const membrane = (...args: string[]) => {
    const r = spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env, timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  /** Runs argv in a network namespace of the lab. */
  const inNs = (ns: string, argv: string[], timeoutMs = 30_000) => {
    const r = spawnSync('nsenter', [`--net=${netnsPath(ns)}`, ...argv], { encoding: 'utf8', timeout: timeoutMs });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const podNs = (pod: string, namespace = 'alpha') => podNetns(lab, namespace, pod);
  /** `count` HTTP GETs (new connections) from a netns; the pod names that answered, '' for a failure. */
  const hits = (ns: string, url: string, count: number): string[] => {
    const r = inNs(ns, [
      'sh',
      '-c',
      `for i in $(seq ${count}); do curl -s -m 2 -w ' %{remote_ip}' ${url} || echo fail; echo; done`,
    ]);
    return r.out
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (l.startsWith('{') ? (JSON.parse(l.slice(0, l.lastIndexOf('}') + 1)) as { pod: string }).pod : ''));
  };
  const agent = (node: string) => new AgentClient(agentSocket(lab, node), 30_000);
  const services = (node = 'n1') =>
    JSON.parse(membrane('service', 'list', '--node', node, '-o', 'json').out) as LbFrontendView[];

  before(async () => {
    if (privilegeGap(TOOLS) !== undefined) return;
    state = await labUp({ lab, worldFiles: [WORLD], repoRoot: REPO });
  });
  after(async () => {
    await labDown(lab);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lists every frontend with its backends, and status shows KubeProxyReplacement', (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const list = membrane('service', 'list', '--node', 'n1');
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /^ID +Frontend +Service Type +Backend$/m);
    assert.match(list.out, /10\.96\.0\.50:80\/TCP +ClusterIP +1 => 10\.201\.\d+\.\d+:8080\/TCP \(active\)/);
    assert.match(list.out, /172\.30\.0\.11:30080\/TCP +NodePort/);
    const byFrontend = new Map(services().map((f) => [`${f.frontend.address}:${f.frontend.port}`, f]));
    assert.equal(byFrontend.get('10.96.0.50:80')?.backends.length, 3);
    assert.equal(byFrontend.get('10.96.0.10:53')?.backends.length, 1, 'kube-dns: the DNS pod by its port name');
    // externalTrafficPolicy Local: only this node's backend on n1's NodePort.
    assert.equal(byFrontend.get('172.30.0.11:30081')?.backends.length, 1);
    assert.equal(byFrontend.get('10.96.0.55:80')?.backends.length, 0);
    assert.match(membrane('status', '--node', 'n1').out, /^KubeProxyReplacement: +True/m);
    const bpfLb = membrane('bpf', 'lb', 'list', '--pin-dir', join('/sys/fs/bpf/membrane', lab, 'n1'));
    assert.equal(bpfLb.code, 0, bpfLb.err);
    assert.match(bpfLb.out, /^10\.96\.0\.50:80\/TCP +0\.0\.0\.0:0 \(\d+\) \(0\) \[ClusterIP\]$/m);
  });

  it('reaches every backend through a ClusterIP from pods on both nodes, replies from the service address', (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    for (const client of ['client', 'client-2']) {
      const r = inNs(podNs(client), [
        'sh',
        '-c',
        `for i in $(seq 60); do curl -s -m 2 -o /dev/null -w '%{remote_ip}:%{remote_port} ' http://10.96.0.50/; done`,
      ]);
      // The client's socket talks to the service address: replies were translated back.
      assert.deepEqual(new Set(r.out.trim().split(' ')), new Set(['10.96.0.50:80']), `${client}: ${r.out}`);
      const got = hits(podNs(client), 'http://10.96.0.50/', 60);
      const counts = new Map<string, number>();
      for (const p of got) counts.set(p, (counts.get(p) ?? 0) + 1);
      assert.deepEqual([...counts.keys()].sort(), ['web-1', 'web-2', 'web-3'], `${client}: ${[...counts]}`);
      // Random selection over 60 connections: no backend starves (expected 20 each).
      for (const [p, n] of counts) assert.ok(n >= 6, `${client}: ${p} got ${n} of 60`);
    }
  });

  it('answers DNS over UDP through the kube-dns ClusterIP', (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const web2 = state!.pods.find((p) => p.name === 'web-2')!;
    for (const client of ['client', 'client-2']) {
      const r = inNs(podNs(client), ['dig', '+short', '+time=2', '+tries=1', '@10.96.0.10', 'web-2.alpha']);
      assert.equal(r.out.trim(), web2.ip, `${client}: ${r.out}${r.err}`);
    }
  });

  it('refuses a service with no backend at once: RST for TCP, ICMP port unreachable for UDP', (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const t0 = Date.now();
    const tcp = inNs(podNs('client'), ['curl', '-s', '-m', '5', 'http://10.96.0.55/']);
    assert.equal(tcp.code, 7, 'curl: connection refused');
    const udp = inNs(podNs('client'), ['dig', '+time=5', '+tries=1', '@10.96.0.55', 'x.alpha']);
    assert.match(udp.out, /connection refused/);
    assert.ok(Date.now() - t0 < 2000, `refused in ${Date.now() - t0} ms, not after a timeout`);
  });

  it('serves NodePort from the world host on every node with both traffic policies', (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const world = worldNetns(lab);
    for (const node of state!.nodes) {
      const cluster = new Set(hits(world, `http://${node.ip}:30080/`, 30));
      assert.deepEqual([...cluster].sort(), ['web-1', 'web-2', 'web-3'], `Cluster via ${node.name}`);
      const local = new Set(hits(world, `http://${node.ip}:30081/`, 12));
      const expected = node.name === 'n1' ? ['web-1'] : ['web-2', 'web-3'];
      assert.deepEqual([...local].sort(), expected, `Local via ${node.name}`);
    }
  });

  it("load-balances the node's own processes at the socket (connect, sendmsg/recvmsg, getpeername)", (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const node = nodeNetns(lab, 'n1');
    assert.deepEqual(new Set(hits(node, 'http://10.96.0.50/', 40)), new Set(['web-1', 'web-2', 'web-3']));
    const peer = inNs(node, [
      'python3',
      '-c',
      "import socket; s=socket.create_connection(('10.96.0.50',80),2); print(s.getpeername()[0])",
    ]);
    assert.equal(peer.out.trim(), '10.96.0.50', peer.err);
    const web2 = state!.pods.find((p) => p.name === 'web-2')!;
    const dns = inNs(node, ['dig', '+short', '+time=2', '+tries=1', '@10.96.0.10', 'web-2.alpha']);
    assert.equal(dns.out.trim(), web2.ip, dns.err);
    assert.equal(inNs(node, ['curl', '-s', '-m', '5', 'http://10.96.0.55/']).code, 7);
  });

  it('keeps a client on one backend with sessionAffinity ClientIP; Maglev spreads and has its table', (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    for (const client of ['client', 'client-2']) {
      const sticky = new Set(hits(podNs(client), 'http://10.96.0.52/', 20));
      assert.equal(sticky.size, 1, `${client}: ${[...sticky]}`);
      assert.ok(!sticky.has(''));
    }
    const maglev = new Set(hits(podNs('client'), 'http://10.96.0.51/', 40));
    assert.deepEqual([...maglev].sort(), ['web-1', 'web-2', 'web-3']);
    const f = services().find((x) => x.frontend.address === '10.96.0.51')!;
    assert.equal(f.algorithm, 'maglev');
    const table = membrane(
      'bpf',
      'lb',
      'maglev',
      'list',
      String(f.id),
      '--pin-dir',
      join('/sys/fs/bpf/membrane', lab, 'n1'),
      '-o',
      'json',
    );
    const parsed = JSON.parse(table.out) as { size: number; table: number[] };
    assert.equal(parsed.size, 16381);
    assert.deepEqual(new Set(parsed.table), new Set(f.backends.map((b) => b.id)));
  });

  it('gives a terminating backend no new connection while its open ones drain', async (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    // Eight keep-alive connections through the service; each round reports every one's backend.
    const script = join(tmp, 'keepalive.py');
    writeFileSync(
      script,
      [
        'import http.client, json, sys',
        "conns = [http.client.HTTPConnection('10.96.0.50', 80, timeout=3) for _ in range(8)]",
        'import time',
        '# A round every 0.3 s keeps the connections busy (the server closes idle ones after 5 s).',
        'for _ in range(100):',
        '  out = []',
        '  for c in conns:',
        "    c.request('GET', '/'); out.append(json.loads(c.getresponse().read())['pod'])",
        "  print(' '.join(out), flush=True)",
        '  time.sleep(0.3)',
      ].join('\n'),
    );
    const child: ChildProcessWithoutNullStreams = spawn('nsenter', [
      `--net=${netnsPath(podNs('client'))}`,
      'python3',
      script,
    ]);
    t.after(() => child.kill());
    let out = '';
    child.stdout.on('data', (d) => {
      out += String(d);
    });
    const first = await until(() => (out.includes('\n') ? out.split('\n')[0] : undefined), {
      timeoutMs: 10_000,
      what: 'the first round of keep-alive requests',
    });
    const victim = first.split(' ').find((p) => p !== 'web-1') ?? 'web-2';
    // The pod is terminating: its stored endpoint says so (as an EndpointSlice condition would).
    const store = EmbeddedStore.open(clusterDir(lab));
    const listed = await store.list(ENDPOINTS_PREFIX);
    const kv = listed.items.find((x) => (JSON.parse(x.value) as ClusterEndpoint).podName === victim)!;
    t.after(async () => {
      await store.put(kv.key, kv.value);
      await store.close();
    });
    await store.put(kv.key, JSON.stringify({ ...(JSON.parse(kv.value) as ClusterEndpoint), terminating: true }));
    for (const node of ['n1', 'n2'])
      await until(
        async () =>
          (await agent(node).get<LbFrontendView[]>('/v1/service'))
            .find((f) => f.frontend.address === '10.96.0.50')
            ?.backends.some((b) => b.state === 'terminating'),
        { timeoutMs: 5000, intervalMs: 50, what: `${victim} terminating in ${node}'s service list` },
      );
    const seen = out.split('\n').length;
    const later = await until(
      () => {
        const lines = out.split('\n').filter((l) => l !== '');
        return lines.length > seen + 1 ? lines[lines.length - 1] : undefined;
      },
      { timeoutMs: 10_000, what: 'a round after the backend became terminating' },
    );
    assert.equal(later, first, 'open connections stay on their backends, the terminating one included');
    const fresh = new Set(hits(podNs('client'), 'http://10.96.0.50/', 30));
    assert.ok(!fresh.has(victim), `new connections avoid ${victim}: ${[...fresh]}`);
    assert.ok(!fresh.has(''));
  });

  it("enforces the backend's policy through the service and names the service in the flow", async (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const policy = join(tmp, 'web-deny.yaml');
    writeFileSync(
      policy,
      JSON.stringify({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'web-only-from-other', namespace: 'alpha' },
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ podSelector: { matchLabels: { app: 'other' } } }] }],
        },
      }),
    );
    const applied = membrane('apply', '-f', policy);
    assert.equal(applied.code, 0, applied.err);
    t.after(() => membrane('delete', '-f', policy));
    const got = hits(podNs('client'), 'http://10.96.0.50/', 4);
    assert.deepEqual(got, ['', '', '', ''], 'every connection through the service is dropped at the backend');
    // The drop is seen on the chosen backend's node (web-1 on n1, web-2/3 on n2), the service named.
    const flows = await until(
      () => {
        const lines = ['n1', 'n2'].flatMap((node) =>
          membrane(
            'observe',
            '--server',
            `unix://${join(nodeDir(lab, node), 'hubble.sock')}`,
            '--last',
            '500',
            '--to-service',
            'alpha/web',
            '--verdict',
            'DROPPED',
            '-o',
            'json',
          )
            .out.split('\n')
            .filter((l) => l !== ''),
        );
        return lines.length > 0 ? lines : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 250, what: 'a DROPPED flow to service alpha/web on a backend node' },
    );
    const f = (JSON.parse(flows[0]) as { flow: { destination_service?: unknown; IP?: { destination: string } } }).flow;
    assert.deepEqual(f.destination_service, { name: 'web', namespace: 'alpha' });
    assert.match(f.IP?.destination ?? '', /^10\.201\./, 'the flow carries the translated (backend) address');
  });

  it('holds 10k services, each realized, and still serves a ClusterIP among them', async (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const store = EmbeddedStore.open(clusterDir(lab));
    const puts = Array.from({ length: 10_000 }, (_, i) => {
      const name = `bulk-${i}`;
      const doc = {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: 'alpha' },
        spec: {
          clusterIP: `10.97.${i >> 8}.${i & 255}`,
          selector: { app: 'web' },
          ports: [{ port: 80, targetPort: 8080 }],
        },
      };
      return {
        type: 'put' as const,
        key: serviceKey({ namespace: 'alpha', name }),
        value: JSON.stringify({ namespace: 'alpha', name, source: 'bulk', doc }),
      };
    });
    await store.txn({ compare: [], success: puts });
    t.after(async () => {
      await store.txn({ compare: [], success: puts.map((p) => ({ type: 'delete' as const, key: p.key })) });
      await store.close();
    });
    for (const node of ['n1', 'n2'])
      await until(async () => (await agent(node).get<LbFrontendView[]>('/v1/service')).length >= 10_010, {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: `10k frontends on ${node}`,
      });
    const last = hits(podNs('client'), 'http://10.97.39.15/', 6);
    assert.ok(
      last.every((p) => p.startsWith('web-')),
      `${last}`,
    );
  });
});
