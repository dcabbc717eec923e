// Local delivery: between two endpoints of the node whose MACs are known, mbr_from_pod enforces the
// sender's egress and the receiver's ingress, rewrites the MACs, decrements the TTL and redirects
// into the receiving pod (bpf_redirect_peer), so the node's IP stack never sees the packet. Checked
// under BPF_PROG_TEST_RUN (the frame handed on, the verdicts, conntrack) and on real traffic (the
// node's forwarding counter stays put, the ingress policy still holds, replies pass).
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { removePinDir } from '../../src/datapath/bpffs.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { EndpointFlags } from '../../src/datapath/maps/endpoint-map.js';
import { encodeIpcacheKey, encodeIpcacheValue, IpcacheFlags } from '../../src/datapath/maps/ipcache-map.js';
import { type DatapathEvent, DropReason, EventKind, TraceObservationPoint } from '../../src/monitor/event-types.js';
import { PEER_ID, PEER_IP, POD_IP } from './fixtures/prog-cases.js';
import { ipChecksumValid, TCP_FLAGS, tcpPacket, withIpChecksum } from './support/packet.js';
import { EP, openTestDatapath, writeEndpoint } from './support/prog-setup.js';
import { requireBpf } from './support/require-bpf.js';
import { Topology } from './support/topology.js';
import { allow, eventually, pings, startEcho, tcpEchoes } from './support/traffic.js';

const TCX_NEXT = -1;
const TCX_DROP = 2;
const TCX_REDIRECT = 7;
const PEER_EP = 10;
/** The receiver's host-side veth in the test runs: no such device is needed, the redirect is not carried out. */
const PEER_IFINDEX = 4242;
const PEER_POD_MAC = '02:00:0a:00:02:02';
const PEER_HOST_MAC = '02:00:0a:00:02:01';

function openWithPeer(t: TestContext, peerIngress: Parameters<Datapath['applyPolicy']>[0]['adds']) {
  const { dp, events } = openTestDatapath(t, 'local');
  writeEndpoint(dp, EndpointFlags.localDelivery, 1);
  dp.writeEndpointInfo({
    endpointId: PEER_EP,
    identity: PEER_ID,
    ipv4: PEER_IP,
    flags: EndpointFlags.localDelivery,
    policyRevision: 1,
    podMac: PEER_POD_MAC,
    hostMac: PEER_HOST_MAC,
    ifindex: PEER_IFINDEX,
  });
  dp.map('mbr_ipcache').update(
    encodeIpcacheKey({ addr: PEER_IP, prefixLen: 32 }),
    encodeIpcacheValue(PEER_ID, undefined, 0, IpcacheFlags.localEndpoint, PEER_IFINDEX),
  );
  dp.applyPolicy({ endpointId: EP, adds: [allow(0, 'egress')], deletes: [] });
  dp.applyPolicy({ endpointId: PEER_EP, adds: peerIngress, deletes: [] });
  const run = (packet: Buffer) => {
    dp.drainEvents();
    const from = events.length;
    const r = dp.testRun('mbr_from_pod', packet);
    dp.drainEvents();
    return { ...r, events: events.slice(from) };
  };
  return { dp, run };
}

const syn = (dport: number, ttl = 64) => {
  const p = tcpPacket({ src: POD_IP, dst: PEER_IP, sport: 40000, dport, flags: TCP_FLAGS.syn });
  p.writeUInt8(ttl, 14 + 8);
  return withIpChecksum(p);
};
const mac = (b: Buffer, at: number) =>
  [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
const summary = (es: readonly DatapathEvent[]) =>
  es.map((e) => [
    e.kind,
    e.endpointId,
    e.ifindex,
    e.kind === EventKind.trace ? e.observationPoint : e.kind === EventKind.drop ? e.reason : e.direction,
  ]);

describe('local delivery under BPF_PROG_TEST_RUN', () => {
  it('enforces both halves in mbr_from_pod and hands the frame to the receiving pod, rewritten', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { dp, run } = openWithPeer(t, [allow(1001, 'ingress', 6, 80)]);
    const r = run(syn(80));
    assert.equal(r.retval, TCX_REDIRECT, 'redirected, not handed to the stack');
    assert.equal(mac(r.data, 0), PEER_POD_MAC, 'destination: the receiving pod');
    assert.equal(mac(r.data, 6), PEER_HOST_MAC, "source: the receiver's host-side veth");
    assert.equal(r.data.readUInt8(14 + 8), 63, 'TTL decremented');
    assert.equal(ipChecksumValid(r.data), true, 'header checksum updated');
    assert.deepEqual(summary(r.events), [
      [EventKind.policyVerdict, EP, 1, 'egress'],
      [EventKind.policyVerdict, PEER_EP, PEER_IFINDEX, 'ingress'],
      [EventKind.trace, PEER_EP, PEER_IFINDEX, TraceObservationPoint.toEndpoint],
    ]);
    const ct = dp
      .ctEntries()
      .map(([k, e]) => [k.direction, e.sourceSecurityId, e.peerIfindex])
      .sort();
    assert.deepEqual(ct, [
      ['egress', PEER_ID, PEER_IFINDEX],
      ['ingress', 1001, 1],
    ]);
  });

  it("drops with the receiver's ingress verdict, reported for the receiver", (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { run } = openWithPeer(t, [allow(1001, 'ingress', 6, 80)]);
    const r = run(syn(81));
    assert.equal(r.retval, TCX_DROP);
    assert.deepEqual(summary(r.events), [
      [EventKind.policyVerdict, EP, 1, 'egress'],
      [EventKind.policyVerdict, PEER_EP, PEER_IFINDEX, 'ingress'],
      [EventKind.drop, PEER_EP, PEER_IFINDEX, DropReason.policyDenied],
    ]);
  });

  it("leaves a packet to the stack when its TTL runs out, and hands it to the receiver's proxy (fails closed without one)", (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const proxied = allow(1001, 'ingress', 6, 8080);
    const { dp, run } = openWithPeer(t, [
      allow(1001, 'ingress', 6, 80),
      [proxied[0], { ...proxied[1], proxyPort: 15001 }],
    ]);
    const expiring = run(syn(80, 1));
    assert.equal(expiring.retval, TCX_NEXT, 'TTL 1: the stack sends time-exceeded');
    assert.equal(expiring.data.readUInt8(14 + 8), 1, 'untouched');
    assert.equal(mac(expiring.data, 0), '02:00:00:00:00:02');
    const toProxy = run(syn(8080));
    assert.equal(toProxy.retval, TCX_DROP, "the receiver's proxy takes the flow here; none listens: fail closed");
    assert.deepEqual(
      summary(toProxy.events),
      [
        [EventKind.policyVerdict, EP, 1, 'egress'],
        [EventKind.policyVerdict, PEER_EP, PEER_IFINDEX, 'ingress'],
        [EventKind.drop, PEER_EP, PEER_IFINDEX, 178],
      ],
      'both halves decided, the ingress half drops with "Socket lookup failed"',
    );
    assert.deepEqual(
      dp
        .ctEntries()
        .filter(([k]) => k.dport === 8080)
        .map(([k]) => k.direction),
      ['egress'],
    );
  });
});

async function liveNode(t: TestContext, tag: string, localDelivery: boolean) {
  const topo = Topology.create(tag, ['a', 'b']);
  const pinDir = `/sys/fs/bpf/membrane/dp-${tag}-${process.pid}`;
  removePinDir(pinDir);
  let dp: Datapath | undefined;
  t.after(() => {
    dp?.destroy();
    removePinDir(pinDir);
    topo.remove();
  });
  dp = Datapath.open({ pinDir, localDelivery });
  const events: DatapathEvent[] = [];
  dp.onEvents((e) => events.push(...e));
  dp.attachEndpoint(topo.attachment('a', 1, 1001));
  dp.attachEndpoint(topo.attachment('b', 2, 1002));
  dp.applyPolicy({ endpointId: 1, adds: [allow(0, 'egress')], deletes: [] });
  dp.applyPolicy({ endpointId: 2, adds: [allow(1001, 'ingress', 6, 8080), allow(1001, 'ingress', 1, 8)], deletes: [] });
  await startEcho(topo, topo.pod('b').netns, [8080, 8081]);
  return { topo, dp, events };
}

describe('local delivery on real traffic', () => {
  it("skips the node's IP stack between two endpoints and keeps the receiver's ingress policy", async (t) => {
    if (!requireBpf(t, 'loads BPF programs and sends traffic between netns', ['socat', 'ping'])) return;
    const { topo, dp, events } = await liveNode(t, 'ld', true);
    const a = topo.pod('a').netns;
    const before = topo.forwardedDatagrams();
    assert.equal(eventually(tcpEchoes, topo, a, '10.240.2.2', 8080), true, 'a -> b:8080 allowed, replies pass');
    assert.equal(tcpEchoes(topo, a, '10.240.2.2', 8081), false, "b's ingress policy drops 8081");
    const ping = topo.run(a, 'ping', ['-c', '1', '-W', '2', '10.240.2.2']);
    assert.match(ping.out, /ttl=63/, 'the TTL is decremented once, as a routed hop');
    assert.equal(topo.forwardedDatagrams() - before, 0, "the node's stack routed none of it");
    dp.drainEvents();
    const hostB = dp.endpoints().find((e) => e.endpointId === 2)?.ifindex;
    const drop = events.find((e) => e.kind === EventKind.drop && e.dstPort === 8081);
    assert.equal(drop?.endpointId, 2, 'the drop is reported for the receiver');
    assert.equal(drop?.ifindex, hostB);
    assert.ok(
      events.some(
        (e) =>
          e.kind === EventKind.trace && e.endpointId === 2 && e.observationPoint === TraceObservationPoint.toEndpoint,
      ),
      'to-endpoint traces for b',
    );
  });

  it("routes through the node's stack with local delivery off, with the same verdicts", async (t) => {
    if (!requireBpf(t, 'loads BPF programs and sends traffic between netns', ['socat', 'ping'])) return;
    const { topo } = await liveNode(t, 'ls', false);
    const a = topo.pod('a').netns;
    const before = topo.forwardedDatagrams();
    assert.equal(eventually(tcpEchoes, topo, a, '10.240.2.2', 8080), true);
    assert.equal(tcpEchoes(topo, a, '10.240.2.2', 8081), false);
    assert.equal(pings(topo, a, '10.240.2.2'), true);
    assert.ok(topo.forwardedDatagrams() - before > 0, "the node's stack routed the packets");
  });
});
