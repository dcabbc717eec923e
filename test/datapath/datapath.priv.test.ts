// The datapath on real packets: a node netns with pods a, b (Membrane endpoints) and w (an outside
// host, not an endpoint) behind veths; tcx programs on the host-side veths; traffic with socat, ping
// and a Node echo server. Each test states the full policy it needs (applied as a diff).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { removePinDir } from '../../src/datapath/bpffs.js';
import { Datapath } from '../../src/datapath/datapath.js';
import type { EndpointAttachment } from '../../src/datapath/endpoint-attach.js';
import { IpcacheFlags } from '../../src/datapath/maps/ipcache-map.js';
import { policyKeyId } from '../../src/datapath/maps/policy-map.js';
import { type DatapathEvent, DropReason, EventKind, TraceObservationPoint } from '../../src/monitor/event-types.js';
import { MatchType, type PolicyEntry, type PolicyKey } from '../../src/policy/map-state-types.js';
import { until } from '../support/until.js';
import { bpfUnavailable, requireBpf } from './support/require-bpf.js';
import { Topology } from './support/topology.js';
import { allow, deny, EchoConnection, eventually, pings, startEcho, tcpEchoes, udpEchoes } from './support/traffic.js';

const A = 1001;
const B = 1002;
const CIDR_ID = 16777217;
const TCP = 6;
const UDP = 17;
const ICMP = 1;
const EP_A = 11;
const EP_B = 12;

type Entry = readonly [PolicyKey, PolicyEntry];

/** Replaces an endpoint's whole policy with `entries`, as one diff. */
function setPolicy(dp: Datapath, endpointId: number, entries: readonly Entry[]): void {
  const want = new Set(entries.map(([k]) => policyKeyId(k)));
  const deletes = dp
    .policyEntries(endpointId)
    .map((e) => e.key)
    .filter((k) => !want.has(policyKeyId(k)));
  dp.applyPolicy({ endpointId, adds: entries, deletes });
}

describe('datapath on real traffic', { concurrency: false }, () => {
  let topo: Topology | undefined;
  let dp: Datapath | undefined;
  const events: DatapathEvent[] = [];
  const pinDir = '/sys/fs/bpf/membrane/dp-traffic';
  let ok = false;

  before(async () => {
    if (process.getuid?.() !== 0 || bpfUnavailable()) return;
    topo = Topology.create('tr', ['a', 'b', 'w']);
    removePinDir(pinDir);
    dp = Datapath.open({ pinDir });
    dp.onEvents((e) => events.push(...e));
    // With both MACs, as the agent attaches CNI endpoints: a <-> b takes local delivery.
    dp.attachEndpoint(topo.attachment('a', EP_A, A));
    dp.attachEndpoint(topo.attachment('b', EP_B, B));
    await startEcho(topo, topo.pod('b').netns, [8080, 8081, 8082, 8084, 5353, 5354]);
    await startEcho(topo, topo.pod('w').netns, [80]);
    ok = true;
  });

  after(() => {
    dp?.destroy();
    topo?.remove();
    removePinDir(pinDir);
  });

  const gate = (t: Parameters<typeof requireBpf>[0]) =>
    requireBpf(t, 'loads BPF programs and sends traffic between netns', ['socat', 'ping']) && ok;

  it('allows TCP by identity and port and drops other ports and identities', (t) => {
    if (!gate(t) || !dp || !topo) return;
    setPolicy(dp, EP_A, [allow(0, 'egress')]);
    setPolicy(dp, EP_B, [allow(A, 'ingress', TCP, 8080), allow(0, 'egress')]);
    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8080), true, 'a -> b:8080 allowed');
    assert.equal(tcpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 8081), false, 'a -> b:8081 dropped');
    assert.equal(tcpEchoes(topo, topo.pod('w').netns, '10.240.2.2', 8080), false, 'w -> b:8080 dropped');
  });

  it('lets replies through with no ingress allow on the client', (t) => {
    if (!gate(t) || !dp || !topo) return;
    setPolicy(dp, EP_A, [allow(B, 'egress', TCP, 8080)]); // nothing allowed into a
    setPolicy(dp, EP_B, [allow(A, 'ingress', TCP, 8080)]); // nothing allowed out of b
    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8080), true);
    assert.equal(tcpEchoes(topo, topo.pod('b').netns, '10.240.1.2', 8080), false, 'b cannot open to a');
  });

  it('enforces UDP ports and ICMP echo', (t) => {
    if (!gate(t) || !dp || !topo) return;
    setPolicy(dp, EP_A, [allow(0, 'egress')]);
    setPolicy(dp, EP_B, [allow(A, 'ingress', UDP, 5353)]);
    assert.equal(eventually(udpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 5353), true, 'udp 5353 allowed');
    assert.equal(udpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 5354), false, 'udp 5354 dropped');
    assert.equal(pings(topo, topo.pod('a').netns, '10.240.2.2'), false, 'icmp not allowed yet');
    setPolicy(dp, EP_B, [allow(A, 'ingress', UDP, 5353), allow(A, 'ingress', ICMP, 8)]);
    assert.equal(eventually(pings, topo, topo.pod('a').netns, '10.240.2.2'), true, 'icmp echo (type 8) allowed');
  });

  it('matches port ranges as port prefixes', (t) => {
    if (!gate(t) || !dp || !topo) return;
    setPolicy(dp, EP_A, [allow(0, 'egress')]);
    // 8080-8083 is one /14 port prefix.
    setPolicy(dp, EP_B, [allow(A, 'ingress', TCP, 8080, 14)]);
    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8082), true, '8082 in range');
    assert.equal(tcpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 8084), false, '8084 out of range');
  });

  it('lets a deny override an allow', (t) => {
    if (!gate(t) || !dp || !topo) return;
    setPolicy(dp, EP_A, [allow(0, 'egress')]);
    setPolicy(dp, EP_B, [allow(0, 'ingress'), deny(A, 'ingress', TCP, 8080)]);
    dp.drainEvents(); // spawnSync blocks the loop: take what earlier tests left first
    const from = events.length;
    assert.equal(tcpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 8080), false, 'denied port');
    assert.equal(
      eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8081),
      true,
      'other port still allowed',
    );
    dp.drainEvents();
    const drop = events.slice(from).find((e) => e.kind === EventKind.drop && e.dstPort === 8080);
    assert.ok(drop && drop.kind === EventKind.drop);
    assert.equal(drop.reason, DropReason.policyDeny);
  });

  it('gives an outside address its CIDR identity from the ipcache', (t) => {
    if (!gate(t) || !dp || !topo) return;
    dp.deleteIpcache('10.240.3.0/24');
    setPolicy(dp, EP_A, [allow(CIDR_ID, 'egress', TCP, 80)]);
    assert.equal(tcpEchoes(topo, topo.pod('a').netns, '10.240.3.2', 80), false, 'w is world without the CIDR');
    dp.upsertIpcache('10.240.3.0/24', CIDR_ID);
    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.3.2', 80), true, 'w has the CIDR identity');
  });

  it('keeps an established connection across a policy update that still allows it and cuts it on a deny', async (t) => {
    if (!gate(t) || !dp || !topo) return;
    setPolicy(dp, EP_A, [allow(0, 'egress')]);
    setPolicy(dp, EP_B, [allow(A, 'ingress', TCP, 8080)]);
    const conn = new EchoConnection(topo, topo.pod('a').netns, '10.240.2.2', 8080);
    try {
      assert.equal(await conn.roundTrip('one', 4000), true);
      // Replace the exact allow with a broader one: both policies allow the flow.
      setPolicy(dp, EP_B, [allow(A, 'ingress', TCP, 8080, 14)]);
      assert.equal(await conn.roundTrip('two', 4000), true, 'still flowing after an update that allows it');
      setPolicy(dp, EP_B, [allow(A, 'ingress', TCP, 8080, 14), deny(A, 'ingress', TCP, 8080)]);
      dp.drainEvents(); // spawnSync blocks the loop: take what earlier tests left first
      const from = events.length;
      assert.equal(await conn.roundTrip('three', 1000), false, 'cut after the deny');
      dp.drainEvents();
      assert.ok(
        events.slice(from).some((e) => e.kind === EventKind.drop && e.reason === DropReason.policyDeny),
        'the cut is reported as a policy-deny drop',
      );
    } finally {
      conn.close();
    }
  });

  it('reports events with identities, ports, match types and drop reasons', async (t) => {
    if (!gate(t) || !dp || !topo) return;
    setPolicy(dp, EP_A, [allow(0, 'egress')]);
    setPolicy(dp, EP_B, [allow(A, 'ingress', TCP, 8080)]);
    dp.drainEvents(); // spawnSync blocks the loop: take what earlier tests left first
    const from = events.length;
    tcpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 8080);
    tcpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 8081);
    const seen = () => events.slice(from);
    await until(() => seen().some((e) => e.kind === EventKind.drop), { timeoutMs: 5000, what: 'drop event' });
    const verdictOk = seen().find(
      (e) => e.kind === EventKind.policyVerdict && e.endpointId === EP_B && e.dstPort === 8080,
    );
    assert.ok(verdictOk && verdictOk.kind === EventKind.policyVerdict);
    assert.equal(verdictOk.verdict, 0);
    assert.equal(verdictOk.matchType, MatchType.l3l4);
    assert.equal(verdictOk.direction, 'ingress');
    assert.equal(verdictOk.srcIdentity, A);
    assert.equal(verdictOk.dstIdentity, B);
    assert.equal(verdictOk.srcIp, '10.240.1.2');
    const egress = seen().find((e) => e.kind === EventKind.policyVerdict && e.endpointId === EP_A);
    assert.ok(egress && egress.kind === EventKind.policyVerdict);
    assert.equal(egress.matchType, MatchType.all);
    assert.equal(egress.direction, 'egress');
    const trace = seen().find((e) => e.kind === EventKind.trace && e.endpointId === EP_B && e.dstPort === 8080);
    assert.ok(trace && trace.kind === EventKind.trace);
    assert.equal(trace.observationPoint, 0, 'to-endpoint');
    // b is an endpoint of this node: its to-endpoint trace is the flow's one report, none at a.
    const local = new Map(dp.ipcacheEntries().map((e) => [e.prefix.addr, e.flags]));
    assert.equal(local.get('10.240.1.2'), IpcacheFlags.localEndpoint);
    assert.equal(local.get('10.240.2.2'), IpcacheFlags.localEndpoint);
    assert.equal(
      seen().filter((e) => e.kind === EventKind.trace && e.endpointId === EP_A && !e.isReply).length,
      0,
      'no trace at a for a flow to b',
    );
    // w is outside: a's own hook reports the flow leaving to the stack.
    tcpEchoes(topo, topo.pod('a').netns, '10.240.3.2', 80);
    await until(
      () => seen().some((e) => e.kind === EventKind.trace && e.endpointId === EP_A && e.dstIp === '10.240.3.2'),
      { timeoutMs: 5000, what: 'to-stack trace' },
    );
    const toStack = seen().find((e) => e.kind === EventKind.trace && e.endpointId === EP_A && e.dstIp === '10.240.3.2');
    assert.equal(toStack?.kind === EventKind.trace ? toStack.observationPoint : -1, TraceObservationPoint.toStack);
    assert.deepEqual(
      events.filter((e) => e.kind === EventKind.drop && e.reason === DropReason.unsupportedL3Protocol),
      [],
      'no IPv6 reaches the datapath: the pods have it off',
    );
    const drop = seen().find((e) => e.kind === EventKind.drop);
    assert.ok(drop && drop.kind === EventKind.drop);
    assert.deepEqual(
      {
        reason: drop.reason,
        src: drop.srcIdentity,
        dst: drop.dstIdentity,
        port: drop.dstPort,
        proto: drop.protocol,
        syn: drop.tcpFlags & 0x02,
      },
      { reason: DropReason.policyDenied, src: A, dst: B, port: 8081, proto: TCP, syn: 2 },
    );
    assert.deepEqual(dp.lostEvents(), [{ source: 'datapath-ring', count: 0 }]);
    const m = dp.metrics();
    assert.ok(m.some((r) => r.reason === DropReason.policyDenied && r.direction === 'ingress' && r.packets > 0));
    assert.ok(m.some((r) => r.reason === 0 && r.packets > 0));
  });
});

describe('datapath without a user-space process', () => {
  it('keeps enforcing after the agent is killed and a restart finds the pinned state', async (t) => {
    if (!requireBpf(t, 'loads BPF programs and sends traffic between netns', ['socat'])) return;
    const topo = Topology.create('rs', ['a', 'b']);
    const pinDir = '/sys/fs/bpf/membrane/dp-restart';
    removePinDir(pinDir);
    let dp: Datapath | undefined;
    t.after(() => {
      dp?.destroy();
      removePinDir(pinDir);
      topo.remove();
    });
    await startEcho(topo, topo.pod('b').netns, [8080, 8081]);
    const eps: EndpointAttachment[] = [
      { endpointId: 1, netnsPath: topo.nodePath, ifname: 'mbr-hva', ipv4: '10.240.1.2', identity: A },
      { endpointId: 2, netnsPath: topo.nodePath, ifname: 'mbr-hvb', ipv4: '10.240.2.2', identity: B },
    ];
    const diffs = [
      { endpointId: 1, adds: [allow(0, 'egress')], deletes: [] },
      { endpointId: 2, adds: [allow(A, 'ingress', TCP, 8080)], deletes: [] },
    ];
    const child = spawn(
      process.execPath,
      [
        new URL('./support/agent-child.js', import.meta.url).pathname,
        pinDir,
        JSON.stringify(eps),
        JSON.stringify(diffs),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    try {
      await until(() => out.includes('ready'), { timeoutMs: 10000, what: 'agent child ready' });
    } finally {
      child.kill('SIGKILL');
    }
    await until(() => child.exitCode !== null || child.signalCode !== null, { what: 'agent child gone' });

    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8080), true, 'allowed with no agent');
    assert.equal(tcpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 8081), false, 'denied with no agent');

    dp = Datapath.open({ pinDir });
    assert.deepEqual(
      dp.endpoints().map((e) => [e.endpointId, e.identity, e.ipv4]),
      [
        [1, A, '10.240.1.2'],
        [2, B, '10.240.2.2'],
      ],
    );
    assert.deepEqual(
      dp.policyEntries(2).map((e) => e.key),
      [{ identity: A, direction: 'ingress', protocol: TCP, port: 8080, portPrefixLen: 16 }],
    );
    // Reconcile after the restart: open 8081 too.
    dp.applyPolicy({ endpointId: 2, adds: [allow(A, 'ingress', TCP, 8081)], deletes: [] });
    assert.equal(
      eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8081),
      true,
      'new policy after restart',
    );
    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8080), true);
  });
});

describe('datapath with legacy tc attach', () => {
  it('enforces the same policy through cls_bpf filters and removes them on detach', async (t) => {
    if (!requireBpf(t, 'loads BPF programs and sends traffic between netns', ['socat', 'tc'])) return;
    const topo = Topology.create('lg', ['a', 'b']);
    const pinDir = '/sys/fs/bpf/membrane/dp-legacy';
    removePinDir(pinDir);
    const dp = Datapath.open({ pinDir, attachMode: 'tc' });
    t.after(() => {
      dp.destroy();
      removePinDir(pinDir);
      topo.remove();
    });
    await startEcho(topo, topo.pod('b').netns, [8080, 8081]);
    // With MACs: local delivery (bpf_redirect_peer) from a cls_bpf ingress filter too.
    dp.attachEndpoint(topo.attachment('a', 1, A));
    dp.attachEndpoint(topo.attachment('b', 2, B));
    dp.applyPolicy({ endpointId: 1, adds: [allow(0, 'egress')], deletes: [] });
    dp.applyPolicy({ endpointId: 2, adds: [allow(A, 'ingress', TCP, 8080)], deletes: [] });
    assert.equal(dp.status().attachMode, 'tc');
    const routed = topo.forwardedDatagrams();
    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8080), true);
    assert.equal(tcpEchoes(topo, topo.pod('a').netns, '10.240.2.2', 8081), false);
    assert.equal(topo.forwardedDatagrams() - routed, 0, 'delivered by the filters, not routed by the node');
    const filters = () => topo.run(topo.node, 'tc', ['filter', 'show', 'dev', 'mbr-hvb', 'ingress']).out;
    assert.match(filters(), /mbr_from_pod/);
    dp.detachEndpoint(2);
    assert.equal(filters(), '');
    assert.equal(eventually(tcpEchoes, topo, topo.pod('a').netns, '10.240.2.2', 8081), true, 'no filter after detach');
  });
});
