import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flow } from '../../src/hubble/flow/flow.js';
import { parseL7Record } from '../../src/hubble/flow/parser.js';
import { HubbleMetrics } from '../../src/hubble/metrics/hubble-metrics.js';
import { FlowObserver } from '../../src/hubble/observer/flow-observer.js';
import { LostRecord } from '../../src/hubble/observer/flow-reader.js';
import { context, dropDefaultDeny, httpRequest, sampleFlows, T0 } from './fixtures.js';

function entries(o: FlowObserver): (Flow | LostRecord)[] {
  const out: (Flow | LostRecord)[] = [];
  for (let p = o.ring.oldest; p < o.ring.written; p++) out.push(o.ring.at(p)!);
  return out;
}

describe('flow observer', () => {
  it('parses events and L7 records into the ring and tells listeners', () => {
    const o = new FlowObserver({ parser: context(), capacity: 7 });
    const seen: Flow[] = [];
    o.onFlow((f) => seen.push(f));
    o.ingestEvent(dropDefaultDeny);
    o.ingestL7(httpRequest);
    assert.equal(o.seenFlows, 2);
    assert.equal(seen.length, 2);
    assert.equal((entries(o)[0] as Flow).drop_reason_desc, 133);
    assert.equal((entries(o)[1] as Flow).l7?.http?.method, 'POST');
  });

  it('names the policies an L7 record says decided in *_allowed_by / *_denied_by', () => {
    const ctx = context();
    const ref = { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'payments-l7' } as const;
    const allowed = parseL7Record({ ...httpRequest, policies: [ref] }, ctx);
    assert.deepEqual(allowed.ingress_allowed_by, [
      { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'payments-l7' },
    ]);
    const denied = parseL7Record({ ...httpRequest, verdict: 'denied', policies: [ref] }, ctx);
    assert.deepEqual(denied.ingress_denied_by, [
      { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'payments-l7' },
    ]);
    assert.equal(denied.ingress_allowed_by, undefined);
  });

  it('writes losses to the ring at most once a second per source, adding up the rest', () => {
    let now = T0.seconds * 1000;
    const o = new FlowObserver({ parser: context(), capacity: 15, nowMs: () => now });
    const counted: [number, number][] = [];
    o.onLost((s, n) => counted.push([s, n]));
    o.recordLost({ source: 'datapath-ring', count: 3 });
    o.recordLost({ source: 'datapath-ring', count: 4 });
    o.recordLost({ source: 'event-queue', count: 1 });
    now += 500;
    o.ingestFlow(sampleFlows()[0]!);
    now += 600;
    o.ingestFlow(sampleFlows()[1]!);
    o.recordLost({ source: 'event-queue', count: 0 });
    const lost = entries(o)
      .filter((e): e is LostRecord => e instanceof LostRecord)
      .map((e) => [e.source, e.count]);
    assert.deepEqual(lost, [
      [1, 3],
      [2, 1],
      [1, 4],
    ]);
    assert.deepEqual(counted, [
      [1, 3],
      [1, 4],
      [2, 1],
    ]);
  });

  it('feeds metrics through its listeners', async () => {
    const o = new FlowObserver({ parser: context(), capacity: 7 });
    const m = new HubbleMetrics(['drop']);
    o.onFlow((f) => m.processFlow(f));
    o.onLost((s, n) => m.processLost(s, n));
    o.ingestEvent(dropDefaultDeny);
    o.recordLost({ source: 'event-queue', count: 2 });
    const text = await m.registry.metrics();
    assert.match(text, /^hubble_drop_total\{reason="POLICY_DENIED",protocol="TCP"\} 1$/m);
    assert.match(text, /^hubble_lost_events_total\{source="OBSERVER_EVENTS_QUEUE"\} 2$/m);
  });
});
