// Trace level "connections" (Cilium's medium monitor aggregation) under BPF_PROG_TEST_RUN: which
// packets of a TCP flow produce a trace event, at which observation point, and that the interval
// report comes back once a direction has been quiet for MBR_CT_REPORT_INTERVAL seconds.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { monotonicSeconds } from '../../src/datapath/ct-gc.js';
import type { Datapath } from '../../src/datapath/datapath.js';
import { type CtKey, decodeCtEntry, encodeCtEntry, encodeCtKey } from '../../src/datapath/maps/ct-map.js';
import { encodeIpcacheKey, encodeIpcacheValue, IpcacheFlags } from '../../src/datapath/maps/ipcache-map.js';
import { EventKind, type TraceEvent, TraceObservationPoint } from '../../src/monitor/event-types.js';
import { PEER_ID, PEER_IP, POD_ID, POD_IP } from './fixtures/prog-cases.js';
import { TCP_FLAGS, tcpPacket } from './support/packet.js';
import { EP, openTestDatapath, writeEndpoint } from './support/prog-setup.js';
import { requireBpf } from './support/require-bpf.js';
import { allow } from './support/traffic.js';

const { syn, ack, fin } = TCP_FLAGS;

function open(
  t: TestContext,
  peerLocal: boolean,
): { dp: Datapath; run: (p: 'from' | 'to', b: Buffer) => TraceEvent[] } {
  const { dp, events } = openTestDatapath(t, 'agg', { traceLevel: 'connections' });
  writeEndpoint(dp, 0, 1);
  dp.upsertIpcache(`${POD_IP}/32`, POD_ID);
  const flags = peerLocal ? IpcacheFlags.localEndpoint : 0;
  dp.map('mbr_ipcache').update(
    encodeIpcacheKey({ addr: PEER_IP, prefixLen: 32 }),
    encodeIpcacheValue(PEER_ID, undefined, 0, flags),
  );
  dp.applyPolicy({ endpointId: EP, adds: [allow(0, 'egress'), allow(0, 'ingress')], deletes: [] });
  const run = (p: 'from' | 'to', b: Buffer): TraceEvent[] => {
    dp.drainEvents();
    const from = events.length;
    const r = dp.testRun(p === 'from' ? 'mbr_from_pod' : 'mbr_to_pod', b);
    assert.equal(r.retval, -1, 'forwarded');
    dp.drainEvents();
    return events.slice(from).filter((e): e is TraceEvent => e.kind === EventKind.trace);
  };
  return { dp, run };
}

const out = (flags: number, sport = 40000) => tcpPacket({ src: POD_IP, dst: PEER_IP, sport, dport: 80, flags });
const back = (flags: number, dport = 40000) => tcpPacket({ src: PEER_IP, dst: POD_IP, sport: 80, dport, flags });
const inbound = (flags: number) => tcpPacket({ src: PEER_IP, dst: POD_IP, sport: 50000, dport: 8080, flags });
const points = (tr: readonly TraceEvent[]) => tr.map((e) => [e.observationPoint, e.ctState, e.isReply]);

describe('trace aggregation at level connections', () => {
  it('reports a flow to a remote outside the node as to-stack on open, new flags and close only', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { run } = open(t, false);
    const stack = TraceObservationPoint.toStack;
    const ep = TraceObservationPoint.toEndpoint;
    assert.deepEqual(points(run('from', out(syn))), [[stack, 1, false]], 'SYN opens the flow');
    assert.deepEqual(points(run('to', back(syn | ack))), [[ep, 3, true]], 'SYN-ACK: first reply');
    assert.deepEqual(points(run('from', out(ack))), [], 'ACK: not a SYN, FIN or RST');
    assert.deepEqual(points(run('from', out(ack | 0x08))), [], 'data: nothing new');
    assert.deepEqual(points(run('to', back(ack))), [], 'reply ACK: ACK already seen in replies');
    assert.deepEqual(points(run('from', out(fin | ack))), [[stack, 2, false]], 'FIN');
    assert.deepEqual(points(run('from', out(ack))), [], 'after FIN: nothing new');
  });

  it('reports again once a direction was quiet for the report interval', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { dp, run } = open(t, false);
    assert.equal(run('from', out(syn)).length, 1);
    assert.deepEqual(points(run('from', out(ack))), []);
    const key: CtKey = { saddr: POD_IP, daddr: PEER_IP, sport: 40000, dport: 80, protocol: 6, direction: 'egress' };
    const raw = dp.map('mbr_ct4').lookup(encodeCtKey(key));
    assert.ok(raw, 'the flow is tracked');
    const e = decodeCtEntry(raw);
    assert.ok(Math.abs(e.lastTxReport - monotonicSeconds()) <= 2, `last report ${e.lastTxReport} is now`);
    dp.map('mbr_ct4').update(encodeCtKey(key), encodeCtEntry({ ...e, lastTxReport: e.lastTxReport - 6 }, 'egress'));
    assert.deepEqual(points(run('from', out(ack))), [[TraceObservationPoint.toStack, 2, false]], 'interval passed');
    assert.deepEqual(points(run('from', out(ack))), [], 'and the interval starts again');
  });

  it('leaves a flow to a local endpoint to that endpoint: nothing at from-pod, to-endpoint at to-pod', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { run } = open(t, true);
    assert.deepEqual(points(run('from', out(syn, 41000))), [], 'egress to a local endpoint');
    assert.deepEqual(points(run('from', out(ack, 41000))), [], 'its next packets too');
    assert.deepEqual(points(run('to', inbound(syn))), [[TraceObservationPoint.toEndpoint, 1, false]], 'ingress');
    assert.deepEqual(points(run('to', inbound(ack))), []);
    assert.deepEqual(points(run('to', inbound(fin | ack))), [[TraceObservationPoint.toEndpoint, 2, false]], 'FIN');
  });
});
