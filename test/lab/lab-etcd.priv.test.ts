// The lab on a real 3-member etcd cluster with three nodes, on real traffic: policy by identity
// across nodes, identities the agents agree on, one member killed, every member killed and
// brought back, an identity freed after its last pod went, and a node whose lease expired
// leaving every other node's ipcache. One lab serves the suite (the cases run in order and build
// on each other); it is torn down in `after`, even on failure.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/api-client.js';
import type { AgentStatus, IdentityRecord } from '../../src/agent/api-types.js';
import type { IpcacheEntry } from '../../src/agent/subsystem-ports.js';
import { type EtcdMember, etcdMembers, memberPid, restartEtcdMember } from '../../src/lab/lab-etcd.js';
import { agentSocket, netnsPath, nodeDir, relaySocket } from '../../src/lab/lab-paths.js';
import type { LabState } from '../../src/lab/lab-state.js';
import { type Probe, runProbes } from '../../src/lab/probes.js';
import { labDown } from '../../src/lab/teardown.js';
import { containerIdFor, labUp, nodeConfList, podExecutor, UNDERLAY_PREFIX } from '../../src/lab/topology.js';
import type { ClusterNode } from '../../src/store/cluster-resources.js';
import { privilegeGap, requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { LAB_TOOLS, MEMBRANE, REPO } from './lab-fixture.js';

const WORLD = join(REPO, 'test/lab/worlds/three-nodes.yaml');
const TOOLS = [...LAB_TOOLS, 'etcd'];
/** Short leases and a quick identity GC, so expiry and collection happen within the test. */
const AGENT_ARGS = ['--node-lease-ttl', '4', '--identity-gc-interval', '1', '--identity-gc-grace', '2'];

const CLIENT_TO_WEB: Probe = { from: 'alpha/client', to: 'alpha/web', port: 8080, kind: 'http', path: '/' };
const OTHER_TO_WEB: Probe = { from: 'alpha/other', to: 'alpha/web', port: 8080, kind: 'http', path: '/' };

function webFrom(apps: string[]): Record<string, unknown> {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'web-ingress', namespace: 'alpha' },
    spec: {
      endpointSelector: { matchLabels: { app: 'web' } },
      ingress: [
        {
          fromEndpoints: [{ matchExpressions: [{ key: 'app', operator: 'In', values: apps }] }],
          toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }] }],
        },
      ],
    },
  };
}

describe('the lab on a 3-member etcd cluster', () => {
  const lab = `t${randomBytes(3).toString('hex')}`;
  let state: LabState | undefined;
  const env = () => ({ ...process.env, MEMBRANE_LAB: lab });
  const client = (node: string) => new AgentClient(agentSocket(lab, node), 5000);
  const membrane = (...args: string[]) => {
    const r = spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env: env(), timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const verdicts = async (probes: Probe[]) =>
    (await runProbes(state!, probes)).map((r) => `${r.outcome}${r.bytes > 0 ? ' with bytes' : ''}`);
  const liveNodes = ['n1', 'n2', 'n3'];
  const realizedEverywhere = async () => {
    const all = await Promise.all(liveNodes.map((n) => client(n).get<AgentStatus>('/v1/status')));
    return all.every((s) => s.realizedPolicyRevision === s.policyRevision);
  };
  const members = (): EtcdMember[] => etcdMembers(lab, UNDERLAY_PREFIX);
  const kill = async (m: EtcdMember) => {
    const pid = memberPid(m);
    process.kill(pid, 'SIGKILL');
    await until(() => !alive(pid), { timeoutMs: 5000, what: `${m.name} gone` });
  };
  const storeLine = (node: string) =>
    (membrane('status', '--node', node).out.match(/^KVStore: +(.*)$/m) ?? [])[1] ?? '';

  before(async () => {
    if (privilegeGap(TOOLS) !== undefined) return;
    state = await labUp({
      lab,
      worldFiles: [WORLD],
      nodes: 3,
      store: 'etcd',
      agentArgs: AGENT_ARGS,
      repoRoot: REPO,
    });
  });
  after(async () => {
    await labDown(lab);
  });

  it('runs every agent on etcd, agreeing on every identity, and lists the nodes', async (t) => {
    if (!requireRoot(t, 'runs a lab with etcd and the eBPF datapath', TOOLS)) return;
    assert.match(
      storeLine('n1'),
      /^Ok +etcd: 3\/3 connected, leader http:\/\/172\.30\.0\.[234]:2379 - 3\.4\.\d+, revision \d+/,
    );
    // The pods were created in parallel on three nodes: every node sees the same numbers.
    const lists = await Promise.all(liveNodes.map((n) => client(n).get<IdentityRecord[]>('/v1/identity')));
    assert.deepEqual(lists[1], lists[0]);
    assert.deepEqual(lists[2], lists[0]);
    const nodes = await client('n2').get<ClusterNode[]>('/v1/node');
    assert.deepEqual(nodes.map((n) => `${n.name} ${n.ipv4} ${n.podCIDR} ${n.health}`).sort(), [
      'n1 172.30.0.11 10.201.1.0/24 ok',
      'n2 172.30.0.12 10.201.2.0/24 ok',
      'n3 172.30.0.13 10.201.3.0/24 ok',
    ]);
    const table = membrane('node', 'list', '--node', 'n1').out;
    assert.match(table, /^Name +IPv4 Address +Endpoint CIDR +IPv6 Address +Endpoint CIDR +Source +Health$/m);
    assert.match(table, /^n1 +172\.30\.0\.11 +10\.201\.1\.0\/24 +<nil> +<nil> +local +ok$/m);
    assert.match(table, /^n3 +172\.30\.0\.13 +10\.201\.3\.0\/24 +<nil> +<nil> +kvstore +ok$/m);
  });

  it('allows and denies by identity across nodes, in bytes', async (t) => {
    if (!requireRoot(t, 'runs a lab with etcd and the eBPF datapath', TOOLS)) return;
    await client('n1').put('/v1/policy', { docs: [webFrom(['client'])], source: 'web.yaml' });
    await until(realizedEverywhere, { timeoutMs: 5000, what: 'policy realized on every node' });
    // client (n1) and other (n3) reach web (n2) only through identities learnt from etcd.
    assert.deepEqual(await verdicts([CLIENT_TO_WEB, OTHER_TO_WEB]), ['forwarded with bytes', 'dropped']);
  });

  it('changes nothing visible when one etcd member is killed', async (t) => {
    if (!requireRoot(t, 'runs a lab with etcd and the eBPF datapath', TOOLS)) return;
    const [first] = members();
    await kill(first);
    assert.deepEqual(await verdicts([CLIENT_TO_WEB, OTHER_TO_WEB]), ['forwarded with bytes', 'dropped']);
    await until(() => /^Ok +etcd: 2\/3 connected, leader/.test(storeLine('n2')), {
      timeoutMs: 10_000,
      intervalMs: 250,
      what: 'status with 2 of 3 members',
    });
    // Writes go on with two of three: a policy change reaches every node.
    await client('n2').put('/v1/policy', { docs: [webFrom(['client', 'spare'])], source: 'web.yaml' });
    await until(realizedEverywhere, { timeoutMs: 5000, what: 'policy realized with a member down' });
    restartEtcdMember(lab, first, UNDERLAY_PREFIX);
    await until(() => /^Ok +etcd: 3\/3 connected/.test(storeLine('n1')), {
      timeoutMs: 15_000,
      intervalMs: 250,
      what: 'the member back',
    });
  });

  it('keeps enforcing with every member down, and converges by diff when etcd is back', async (t) => {
    if (!requireRoot(t, 'runs a lab with etcd and the eBPF datapath', TOOLS)) return;
    const spareIp = state!.pods.find((p) => p.name === 'spare')!.ip;
    const before = await Promise.all(liveNodes.map((n) => client(n).get<IpcacheEntry[]>('/v1/bpf/ipcache')));
    const down = new Date();
    for (const m of members()) await kill(m);
    const line = await until(
      () => {
        const l = storeLine('n3');
        return l.startsWith('Failure') ? l : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 250, what: 'status saying unreachable' },
    );
    const since = /unreachable since (\S+Z)/.exec(line)?.[1];
    assert.ok(since && Date.parse(since) >= down.getTime() - 1000, line);
    assert.deepEqual(await verdicts([CLIENT_TO_WEB, OTHER_TO_WEB]), ['forwarded with bytes', 'dropped']);
    // A policy cannot be stored while etcd is away: it is refused, not half applied.
    await assert.rejects(client('n1').put('/v1/policy', { docs: [webFrom(['client', 'other'])], source: 'web.yaml' }), {
      code: 'MBR_STORE_UNREACHABLE',
    });
    // A local endpoint still goes: the CNI DEL of spare on n3 leaves n3's maps at once.
    const n3 = state!.nodes.find((n) => n.name === 'n3')!;
    await podExecutor({ lab, repoRoot: REPO }, n3).del(nodeConfList(lab, n3), {
      containerId: containerIdFor(lab, 'alpha', 'spare'),
      netns: netnsPath(state!.pods.find((p) => p.name === 'spare')!.netns),
      ifname: 'eth0',
      args: { K8S_POD_NAMESPACE: 'alpha', K8S_POD_NAME: 'spare' },
    });
    const n3Ipcache = await client('n3').get<IpcacheEntry[]>('/v1/bpf/ipcache');
    assert.ok(!n3Ipcache.some((e) => e.prefix === `${spareIp}/32`), 'spare left n3 while etcd was away');
    // The other nodes' maps did not move at all.
    for (const [i, n] of liveNodes.entries())
      if (n !== 'n3') assert.deepEqual(await client(n).get<IpcacheEntry[]>('/v1/bpf/ipcache'), before[i]);

    for (const m of members()) restartEtcdMember(lab, m, UNDERLAY_PREFIX);
    await until(() => /^Ok +etcd: 3\/3 connected/.test(storeLine('n1')), {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: 'etcd back',
    });
    // The deletion made during the outage reaches every node once the store has it.
    await until(
      async () => {
        const all = await Promise.all(liveNodes.map((n) => client(n).get<IpcacheEntry[]>('/v1/bpf/ipcache')));
        return all.every((l) => !l.some((e) => e.prefix === `${spareIp}/32`));
      },
      { timeoutMs: 10_000, intervalMs: 100, what: "spare's ipcache entry gone everywhere" },
    );
    // The policy refused during the outage, applied now, takes effect everywhere.
    await client('n1').put('/v1/policy', { docs: [webFrom(['client', 'other'])], source: 'web.yaml' });
    await until(realizedEverywhere, { timeoutMs: 5000, what: 'policy realized after the outage' });
    assert.deepEqual(await verdicts([CLIENT_TO_WEB, OTHER_TO_WEB]), ['forwarded with bytes', 'forwarded with bytes']);
  });

  it('frees the identity of a label set after its last pod went, on every node', async (t) => {
    if (!requireRoot(t, 'runs a lab with etcd and the eBPF datapath', TOOLS)) return;
    const isSpare = (i: IdentityRecord) => i.labels.includes('k8s:app=spare');
    await until(
      async () => {
        const lists = await Promise.all(liveNodes.map((n) => client(n).get<IdentityRecord[]>('/v1/identity')));
        return lists.every((l) => !l.some(isSpare));
      },
      { timeoutMs: 15_000, intervalMs: 250, what: 'the app=spare identity collected' },
    );
    const ids = await client('n1').get<IdentityRecord[]>('/v1/identity');
    assert.ok(
      ids.some((i) => i.labels.includes('k8s:app=other')),
      'identities still held stay',
    );
  });

  it("removes a node whose lease expired, and its pods' ipcache entries, from every other node", async (t) => {
    if (!requireRoot(t, 'runs a lab with etcd and the eBPF datapath', TOOLS)) return;
    const otherIp = state!.pods.find((p) => p.name === 'other')!.ip;
    // A follower of every node's flows through the relay, across the node's departure.
    const follow: ChildProcess = spawn(
      process.execPath,
      [MEMBRANE, 'observe', '--server', `unix://${relaySocket(lab)}`, '--follow', '-o', 'json', '--to-port', '8080'],
      { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.after(() => follow.kill('SIGKILL'));
    let streamed = '';
    follow.stdout?.on('data', (b: Buffer) => (streamed += b.toString()));
    await until(
      () => membrane('hubble', 'list', 'nodes', '--server', `unix://${relaySocket(lab)}`).out.includes('n3'),
      {
        timeoutMs: 10_000,
        intervalMs: 250,
        what: 'the relay knows n3',
      },
    );

    const pid = Number(readFileSync(join(nodeDir(lab, 'n3'), 'agent.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    liveNodes.splice(liveNodes.indexOf('n3'), 1);
    // Before its lease expires, the relay shows n3 unavailable.
    await until(
      () => /^n3 +Unavailable/m.test(membrane('hubble', 'list', 'nodes', '--server', `unix://${relaySocket(lab)}`).out),
      { timeoutMs: 4000, intervalMs: 100, what: 'n3 unavailable in the relay' },
    );
    await until(
      async () => {
        const all = await Promise.all(liveNodes.map((n) => client(n).get<IpcacheEntry[]>('/v1/bpf/ipcache')));
        return all.every((l) => !l.some((e) => e.prefix === `${otherIp}/32` || e.prefix === '172.30.0.13/32'));
      },
      { timeoutMs: 15_000, intervalMs: 100, what: "n3's pods and address gone from n1's and n2's ipcache" },
    );
    const nodes = await client('n1').get<ClusterNode[]>('/v1/node');
    assert.deepEqual(nodes.map((n) => n.name).sort(), ['n1', 'n2']);
    // The stream outlived n3: a new connection's flows still arrive.
    const seen = streamed.length;
    assert.deepEqual(await verdicts([CLIENT_TO_WEB]), ['forwarded with bytes']);
    await until(() => streamed.length > seen, { timeoutMs: 5000, what: 'flows after n3 left' });
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
