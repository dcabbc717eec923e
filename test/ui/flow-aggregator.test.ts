import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlowAggregator, latencyBin, latencyBinMs, type MapSnapshot } from '../../src/ui/flow-aggregator.js';
import { mapDelta, newMapView, roughly } from '../../src/ui/map-delta.js';
import { HOST, httpFlow, l4Flow, pod, WORLD } from './ui-fixtures.js';

const T0 = 1_800_000_000_000;
const FRONTEND = pod('shop', 'frontend', 300, 'frontend-7d9f');
const FRONTEND_2 = pod('shop', 'frontend', 300, 'frontend-a1b2');
const BACKEND = pod('shop', 'backend', 301);
const POSTGRES = pod('db', 'postgres', 302);

const edge = (s: MapSnapshot, id: string) => s.edges.find((e) => e.id === id);

describe('the service map aggregator', () => {
  it('makes one card per workload (namespace and app), whatever the pod', () => {
    const a = new FlowAggregator();
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND_2, dst: BACKEND, timeMs: T0 }), T0);
    const s = a.snapshot(T0);
    assert.deepEqual(
      s.cards.map((c) => [c.id, c.kind, c.column]),
      [
        ['shop/backend', 'workload', 'namespace'],
        ['shop/frontend', 'workload', 'namespace'],
      ],
    );
    assert.equal(edge(s, 'shop/frontend|shop/backend|TCP|8080')?.flows, 2);
    assert.deepEqual(s.cards[1]!.match, {
      flag: 'label',
      value: 'k8s:app=frontend,k8s:io.kubernetes.pod.namespace=shop',
    });
  });

  it('gives world, FQDN names and the host their own cards, in the world columns', () => {
    const a = new FlowAggregator();
    a.ingest(l4Flow({ src: FRONTEND, dst: WORLD, dport: 443, dstNames: ['api.example.com'], timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: WORLD, dst: FRONTEND, timeMs: T0, direction: 1 }), T0);
    a.ingest(l4Flow({ src: HOST, dst: FRONTEND, timeMs: T0 }), T0);
    const s = a.snapshot(T0);
    const byId = new Map(s.cards.map((c) => [c.id, c]));
    assert.equal(byId.get('fqdn:api.example.com')?.column, 'to-world');
    assert.deepEqual(byId.get('fqdn:api.example.com')?.match, { flag: 'fqdn', value: 'api.example.com' });
    assert.equal(byId.get('world')?.column, 'from-world');
    assert.equal(byId.get('host')?.column, 'other');
    assert.deepEqual(byId.get('host')?.match, { flag: 'identity', value: 'host' });
  });

  it('keeps one edge per protocol and port, with counts by verdict', () => {
    const a = new FlowAggregator();
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, dport: 8080, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, dport: 9090, verdict: 2, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, dport: 53, udp: true, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, verdict: 2, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, verdict: 1, timeMs: T0 }), T0);
    const s = a.snapshot(T0);
    assert.deepEqual(
      s.edges.map((e) => [e.id, e.state, e.verdicts.forwarded, e.verdicts.dropped]),
      [
        ['shop/frontend|db/postgres|TCP|5432', 'mixed', 1, 1],
        ['shop/frontend|shop/backend|TCP|8080', 'forwarded', 1, 0],
        ['shop/frontend|shop/backend|TCP|9090', 'dropped', 0, 1],
        ['shop/frontend|shop/backend|UDP|53', 'forwarded', 1, 0],
      ],
    );
  });

  it('counts a connection forwarded by its source and dropped by its destination as dropped', () => {
    const a = new FlowAggregator();
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, direction: 2, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, direction: 1, verdict: 2, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, direction: 2, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, direction: 1, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: WORLD, dport: 443, direction: 2, timeMs: T0 }), T0);
    assert.deepEqual(
      a.snapshot(T0).edges.map((e) => [e.id, e.state, e.flows]),
      [
        ['shop/frontend|db/postgres|TCP|5432', 'dropped', 1],
        ['shop/frontend|shop/backend|TCP|8080', 'forwarded', 1],
        ['shop/frontend|world|TCP|443', 'forwarded', 1],
      ],
    );
  });

  it('does not draw replies as edges of their own', () => {
    const a = new FlowAggregator();
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: BACKEND, dst: FRONTEND, timeMs: T0, reply: true }), T0);
    assert.deepEqual(
      a.snapshot(T0).edges.map((e) => e.id),
      ['shop/frontend|shop/backend|TCP|8080'],
    );
  });

  it('puts HTTP rate, error rate and p50/p95 latency on the request edge', () => {
    const a = new FlowAggregator({ windowSeconds: 10 });
    for (let i = 0; i < 20; i++) {
      a.ingest(httpFlow(FRONTEND, BACKEND, T0), T0);
      a.ingest(httpFlow(FRONTEND, BACKEND, T0, { code: i < 2 ? 503 : 200, latencyMs: i < 19 ? 10 : 400 }), T0);
    }
    const e = edge(a.snapshot(T0), 'shop/frontend|shop/backend|TCP|8080');
    assert.ok(e?.http);
    assert.equal(e.http.requests, 20);
    assert.equal(e.http.requestsPerSecond, 2);
    assert.equal(e.http.errors, 2);
    assert.equal(e.http.errorRate, 0.1);
    assert.ok(Math.abs(e.http.p50Ms! - 10) / 10 < 0.1, `p50 ${e.http.p50Ms}`);
    assert.ok(Math.abs(e.http.p95Ms! - 10) / 10 < 0.1, `p95 ${e.http.p95Ms}`);
    assert.equal(e.flows, 20, 'responses count for errors and latency, not as flows');
  });

  it('forgets flows once they leave the sliding window, edges and cards with them', () => {
    const a = new FlowAggregator({ windowSeconds: 5 });
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, timeMs: T0 + 3000 }), T0 + 3000);
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, timeMs: T0 + 3000 }), T0 + 3000);
    assert.equal(a.snapshot(T0 + 4999).flowsInWindow, 3);
    const later = a.snapshot(T0 + 5000);
    assert.equal(later.flowsInWindow, 2);
    assert.deepEqual(
      later.edges.map((e) => [e.id, e.flows]),
      [['shop/frontend|db/postgres|TCP|5432', 2]],
    );
    assert.equal(a.card('shop/backend'), undefined);
    const empty = a.snapshot(T0 + 8000);
    assert.deepEqual([empty.edges.length, empty.cards.length, empty.flowsInWindow], [0, 0, 0]);
  });

  it('keeps counts right when a new edge takes the row of a forgotten one', () => {
    const a = new FlowAggregator({ windowSeconds: 2 });
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 + 1000 }), T0 + 1000);
    assert.equal(a.snapshot(T0 + 2000).flowsInWindow, 1);
    assert.equal(a.snapshot(T0 + 3000).edges.length, 0, 'frontend -> backend forgotten');
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, timeMs: T0 + 3000 }), T0 + 3000);
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, timeMs: T0 + 4000 }), T0 + 4000);
    assert.deepEqual(
      a.snapshot(T0 + 4000).edges.map((e) => [e.id, e.flows]),
      [['shop/frontend|db/postgres|TCP|5432', 2]],
    );
    assert.deepEqual(
      a.snapshot(T0 + 5000).edges.map((e) => [e.id, e.flows]),
      [['shop/frontend|db/postgres|TCP|5432', 1]],
    );
    assert.equal(a.snapshot(T0 + 6000).flowsInWindow, 0);
  });

  it('ignores flows older than the window and counts late ones at their own second', () => {
    const a = new FlowAggregator({ windowSeconds: 5 });
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0 + 10_000);
    assert.equal(a.snapshot(T0 + 10_000).flowsInWindow, 0);
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 + 7000 }), T0 + 10_000);
    assert.equal(a.snapshot(T0 + 11_999).flowsInWindow, 1);
    assert.equal(a.snapshot(T0 + 12_000).flowsInWindow, 0, 'second 7 leaves the window at 12');
  });

  it('shows only edges touching the selected namespaces, other namespaces in their own column', () => {
    const a = new FlowAggregator();
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, timeMs: T0 }), T0);
    a.ingest(l4Flow({ src: pod('ops', 'probe', 400), dst: pod('ops', 'target', 401), timeMs: T0 }), T0);
    const s = a.snapshot(T0, { namespaces: ['db'] });
    assert.deepEqual(
      s.edges.map((e) => e.id),
      ['shop/frontend|db/postgres|TCP|5432'],
    );
    assert.deepEqual(
      s.cards.map((c) => [c.id, c.column]),
      [
        ['db/postgres', 'namespace'],
        ['shop/frontend', 'other'],
      ],
    );
    assert.deepEqual(s.namespaces, ['db', 'ops', 'shop']);
  });

  it('bins latency within 10% from 1 µs to a minute', () => {
    for (const ms of [0.002, 0.05, 1, 7.5, 120, 3000, 60_000]) {
      const back = latencyBinMs(latencyBin(ms * 1e6));
      assert.ok(Math.abs(back - ms) / ms < 0.1, `${ms} ms -> ${back} ms`);
    }
  });
});

describe('the map sent to a browser', () => {
  it('rounds counts to two significant digits', () => {
    assert.deepEqual([0, 7, 99, 100, 1234, 1250, 98_765].map(roughly), [0, 7, 99, 100, 1200, 1300, 99_000]);
  });

  it('sends cards once, edges when they change enough to see, and removed edges by id', () => {
    const a = new FlowAggregator({ windowSeconds: 5 });
    const view = newMapView();
    for (let i = 0; i < 150; i++) a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0);
    const first = mapDelta(view, a.snapshot(T0));
    assert.equal(first.full, true);
    assert.deepEqual(
      first.newCards.map((c) => c.id),
      ['shop/backend', 'shop/frontend'],
    );
    a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0);
    const same = mapDelta(view, a.snapshot(T0));
    assert.deepEqual(
      [same.full, same.edges, same.cards, same.newCards],
      [false, [], undefined, []],
      '150 -> 151 rounds the same',
    );
    for (let i = 0; i < 10; i++) a.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: T0 }), T0);
    assert.deepEqual(
      mapDelta(view, a.snapshot(T0)).edges.map((e) => e.flows),
      [161],
    );
    a.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, verdict: 2, timeMs: T0 + 3000 }), T0 + 3000);
    const grown = mapDelta(view, a.snapshot(T0 + 3000));
    assert.deepEqual(
      [grown.newCards.map((c) => c.id), grown.cards?.length, grown.edges.map((e) => e.id)],
      [['db/postgres'], 3, ['shop/frontend|db/postgres|TCP|5432']],
    );
    const later = mapDelta(view, a.snapshot(T0 + 5000));
    assert.deepEqual(later.removedEdges, ['shop/frontend|shop/backend|TCP|8080']);
    assert.deepEqual(later.cards, [
      ['db/postgres', 'namespace'],
      ['shop/frontend', 'namespace'],
    ]);
  });
});
