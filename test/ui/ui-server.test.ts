// The UI server's API on flows given to ingest(): filters (observe's flags, compiled on the
// server), paging, export in hubble's jsonpb and CSV, details of a drop with its allowing rule,
// and the event stream (map with cards once, rows newest first).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { fromProtoJson } from '../../src/hubble/api/proto-json.js';
import { protoType } from '../../src/hubble/api/proto-root.js';
import type { FlowDetails, MapEvent, RowPage, RowsEvent } from '../../src/ui/ui-api-types.js';
import { UiServer } from '../../src/ui/ui-server.js';
import { until } from '../support/until.js';
import { l4Flow, pod } from './ui-fixtures.js';

const FRONTEND = pod('shop', 'frontend', 300);
const BACKEND = pod('shop', 'backend', 301);
const POSTGRES = pod('db', 'postgres', 302);

describe('the UI server', () => {
  const web = mkdtempSync(join(tmpdir(), 'mbr-ui-web-'));
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>Membrane UI</title>');
  const ui = new UiServer({ webRoot: web, mapMs: 50, rowsMs: 50 });
  let base = '';
  const get = async <T>(path: string): Promise<{ status: number; body: T }> => {
    const r = await fetch(`${base}${path}`);
    return { status: r.status, body: (await r.json()) as T };
  };

  before(async () => {
    base = await ui.listen(0);
    const now = Date.now();
    for (let i = 0; i < 10; i++) ui.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: now }));
    for (let i = 0; i < 3; i++) {
      const f = l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, verdict: 2, direction: 1, timeMs: now });
      f.ingress_denied_by = [{ name: 'db-default-deny', namespace: 'db', kind: 'NetworkPolicy' }];
      ui.ingest(f);
    }
  });
  after(async () => {
    await ui.close();
    rmSync(web, { recursive: true, force: true });
  });

  it('serves the app and refuses paths outside it', async () => {
    const r = await fetch(`${base}/`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /Membrane UI/);
    assert.equal((await fetch(`${base}/assets/missing.js`)).status, 404);
    assert.equal((await fetch(`${base}/..%2f..%2fetc%2fpasswd`)).status, 403);
  });

  it('filters the table with membrane observe flags, newest first', async () => {
    const r = await get<RowPage>('/api/flows?verdict=DROPPED&to-namespace=db');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.rows.map((x) => [x.seq, x.verdict, x.dropReason, x.policy]),
      [
        [13, 'DROPPED', 'POLICY_DENIED', 'db/db-default-deny (NetworkPolicy)'],
        [12, 'DROPPED', 'POLICY_DENIED', 'db/db-default-deny (NetworkPolicy)'],
        [11, 'DROPPED', 'POLICY_DENIED', 'db/db-default-deny (NetworkPolicy)'],
      ],
    );
    const page = await get<RowPage>('/api/flows?from-label=k8s:app=frontend&to-port=8080&before=5&limit=2');
    assert.deepEqual(
      page.body.rows.map((x) => x.seq),
      [4, 3],
    );
    const ns = await get<RowPage>('/api/flows?ns=db');
    assert.equal(ns.body.rows.length, 3);
  });

  it('refuses a filter it does not know, or a bad value, with the reason', async () => {
    assert.deepEqual(await get('/api/flows?verdikt=DROPPED'), {
      status: 400,
      body: { error: 'filter "verdikt": expected a membrane observe filter flag' },
    });
    const bad = await get<{ error: string }>('/api/flows?verdict=SIDEWAYS');
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /--verdict/);
    const time = await get<{ error: string }>('/api/flows?since=yesterday-ish');
    assert.equal(time.status, 400);
    assert.match(time.body.error, /since: expected a duration ago/);
  });

  it('exports the selection as hubble jsonpb lines and as CSV', async () => {
    const r = await fetch(`${base}/api/export?format=jsonpb&verdict=DROPPED`);
    assert.match(r.headers.get('content-disposition') ?? '', /attachment; filename="flows-.*\.json"/);
    const lines = (await r.text()).trim().split('\n');
    assert.equal(lines.length, 3);
    const response = fromProtoJson(protoType('observer.GetFlowsResponse'), JSON.parse(lines[0]!), 'line 1');
    assert.equal((response.flow as { verdict: number }).verdict, 2);
    const csv = (await (await fetch(`${base}/api/export?format=csv&to-port=8080`)).text()).trim().split('\n');
    assert.equal(csv.length, 11);
    assert.match(csv[0]!, /^time,node,source_namespace,source_pod/);
    assert.match(csv[1]!, /,shop,frontend-0,10\.0\.0\.1,40000,300,shop,backend-0,/);
  });

  it('details a drop with its policy and the smallest rule that would allow it', async () => {
    const r = await get<FlowDetails>('/api/flow?seq=11');
    assert.equal(r.body.row.policy, 'db/db-default-deny (NetworkPolicy)');
    assert.equal(r.body.allowRule?.direction, 'ingress');
    assert.deepEqual(parse(r.body.allowRule!.yaml), {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'allow-frontend-to-postgres-5432', namespace: 'db' },
      spec: {
        endpointSelector: { matchLabels: { app: 'postgres' } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { app: 'frontend', 'k8s:io.kubernetes.pod.namespace': 'shop' } }],
            toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }],
          },
        ],
      },
    });
    assert.equal((r.body.jsonpb.flow as { verdict: string }).verdict, 'DROPPED');
    assert.equal((await get('/api/flow?seq=999')).status, 404);
  });

  it('streams the map (cards once) and new rows over Server-Sent Events', async () => {
    const ac = new AbortController();
    const r = await fetch(`${base}/api/events?verdict=DROPPED`, { signal: ac.signal });
    const events: { event: string; data: unknown }[] = [];
    const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        buf += value;
        let at = buf.indexOf('\n\n');
        while (at >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? '';
          events.push({ event, data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') });
          at = buf.indexOf('\n\n');
        }
      }
    })();
    await until(() => events.filter((e) => e.event === 'map').length >= 2, { what: 'two maps' });
    const maps = events.filter((e) => e.event === 'map').map((e) => e.data as MapEvent);
    assert.deepEqual(maps[0]!.newCards.map((c) => c.id).sort(), ['db/postgres', 'shop/backend', 'shop/frontend']);
    assert.equal(maps[0]!.full, true);
    assert.equal(maps[0]!.edges.length, 2);
    assert.equal(maps[0]!.cards?.length, 3);
    // Nothing changed since: the next map says so and no more.
    assert.deepEqual(
      [maps[1]!.full, maps[1]!.newCards, maps[1]!.cards, maps[1]!.edges, maps[1]!.removedEdges],
      [false, [], undefined, [], []],
    );
    const initial = events.find((e) => e.event === 'rows')!.data as RowsEvent;
    assert.equal(initial.initial, true);
    assert.deepEqual(
      initial.rows.map((x) => x.seq),
      [13, 12, 11],
    );
    ui.ingest(l4Flow({ src: FRONTEND, dst: POSTGRES, dport: 5432, verdict: 2, direction: 1, timeMs: Date.now() }));
    ui.ingest(l4Flow({ src: FRONTEND, dst: BACKEND, timeMs: Date.now() }));
    await until(() => events.some((e) => e.event === 'rows' && !(e.data as RowsEvent).initial), { what: 'new rows' });
    const live = events.find((e) => e.event === 'rows' && !(e.data as RowsEvent).initial)!.data as RowsEvent;
    assert.deepEqual(
      live.rows.map((x) => [x.seq, x.verdict]),
      [[14, 'DROPPED']],
    );
    // Both edges grew by one (counts under 100 are shown exactly): both are sent again.
    await until(
      () =>
        events.some((e) => e.event === 'map' && (e.data as MapEvent).edges.length > 0 && !(e.data as MapEvent).full),
      {
        what: 'a map with the changed edge',
      },
    );
    const changed = events.find(
      (e) => e.event === 'map' && (e.data as MapEvent).edges.length > 0 && !(e.data as MapEvent).full,
    )!.data as MapEvent;
    assert.deepEqual(
      changed.edges.map((e) => [e.id, e.verdicts.dropped]),
      [
        ['shop/frontend|db/postgres|TCP|5432', 4],
        ['shop/frontend|shop/backend|TCP|8080', 0],
      ],
    );
    ac.abort();
    await pump;
  });
});
