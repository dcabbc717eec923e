// mbr_from_net (the underlay's tc ingress) under BPF_PROG_TEST_RUN: it looks only at packets for
// an endpoint of this node, commits and redirects only flows the endpoint's ingress L7 entry sends
// to the proxy (failing closed when no proxy socket takes them), and leaves everything else to
// mbr_to_pod untouched: no event, no conntrack entry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeIpcacheKey, encodeIpcacheValue, IpcacheFlags } from '../../src/datapath/maps/ipcache-map.js';
import { DropReason, EventKind } from '../../src/monitor/event-types.js';
import { PEER_ID, PEER_IP, POD_ID, POD_IP } from '../datapath/fixtures/prog-cases.js';
import { TCP_FLAGS, tcpPacket } from '../datapath/support/packet.js';
import { EP, openTestDatapath, writeEndpoint } from '../datapath/support/prog-setup.js';
import { requireBpf } from '../datapath/support/require-bpf.js';
import { allow } from '../datapath/support/traffic.js';

const TCX_NEXT = -1;
const TCX_DROP = 2;

describe('mbr_from_net', () => {
  it('redirects only flows of a local endpoint with an ingress L7 entry, and fails closed without a proxy', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { dp, events } = openTestDatapath(t, 'fromnet');
    writeEndpoint(dp, 0, 1);
    // The endpoint's /32 as the agent writes it: local, on the fixture's ifindex 1.
    dp.map('mbr_ipcache').update(
      encodeIpcacheKey({ addr: POD_IP, prefixLen: 32 }),
      encodeIpcacheValue(POD_ID, undefined, 0, IpcacheFlags.localEndpoint, 1),
    );
    dp.upsertIpcache(`${PEER_IP}/32`, PEER_ID);
    const l7 = allow(PEER_ID, 'ingress', 6, 9090);
    dp.applyPolicy({
      endpointId: EP,
      adds: [allow(PEER_ID, 'ingress', 6, 8080), [l7[0], { ...l7[1], proxyPort: 10001 }]],
      deletes: [],
    });
    const run = (dst: string, dport: number) => {
      dp.drainEvents();
      const from = events.length;
      const r = dp.testRun('mbr_from_net', tcpPacket({ src: PEER_IP, dst, sport: 41000, dport, flags: TCP_FLAGS.syn }));
      dp.drainEvents();
      return { retval: r.retval, events: events.slice(from) };
    };

    const plain = run(POD_IP, 8080);
    assert.deepEqual([plain.retval, plain.events.length], [TCX_NEXT, 0], 'no L7 entry: left to mbr_to_pod');
    const elsewhere = run('10.9.9.9', 9090);
    assert.deepEqual([elsewhere.retval, elsewhere.events.length], [TCX_NEXT, 0], 'not an endpoint here');
    assert.deepEqual(
      dp.ctEntries().map(([k]) => k.dport),
      [],
      'nothing committed for what goes on',
    );

    const proxied = run(POD_IP, 9090);
    assert.equal(proxied.retval, TCX_DROP, 'no proxy socket where the test runs: fail closed');
    const verdict = proxied.events.find((e) => e.kind === EventKind.policyVerdict);
    assert.equal(
      verdict && 'verdict' in verdict ? verdict.verdict : undefined,
      10001,
      'the verdict names the proxy port',
    );
    const drop = proxied.events.find((e) => e.kind === EventKind.drop);
    assert.deepEqual(
      [drop?.endpointId, drop && 'reason' in drop ? drop.reason : 0],
      [EP, DropReason.proxyLookupFailed],
    );
  });
});
