// Round trips through a grpc-js client built from proto/ against the node's Observer server.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { observerClient, peerClient } from '../../src/hubble/api/grpc-clients.js';
import { toProtoJson } from '../../src/hubble/api/proto-json.js';
import { protoType } from '../../src/hubble/api/proto-root.js';
import type { Flow, FlowsResponse } from '../../src/hubble/flow/flow.js';
import { FlowObserver } from '../../src/hubble/observer/flow-observer.js';
import { ObserverServer } from '../../src/hubble/observer/observer-server.js';
import { StaticPeers } from '../../src/hubble/observer/peer-source.js';
import { until } from '../support/until.js';
import { context, sampleFlows, T0 } from './fixtures.js';

type Client = ReturnType<typeof observerClient>;
const FLOW = protoType('flow.Flow');
const json = (f: Flow | undefined) => toProtoJson(FLOW, f ?? {});

function unary<T>(client: Client, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) =>
    (client[method] as (r: object, cb: (e: Error | null, v: T) => void) => void)(req, (e, v) =>
      e ? reject(e) : resolve(v),
    ),
  );
}

function streamAll(client: Client, req: object): Promise<FlowsResponse[]> {
  return new Promise((resolve, reject) => {
    const out: FlowsResponse[] = [];
    const call = client.GetFlows(req) as grpc.ClientReadableStream<FlowsResponse>;
    call.on('data', (d) => out.push(d));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}

describe('Observer gRPC server with a grpc-js client', () => {
  const flows = sampleFlows();
  const observer = new FlowObserver({ parser: context(), capacity: 15, nowMs: () => T0.seconds * 1000 + 30_000 });
  const peers = new StaticPeers([{ name: 'node-1', address: '127.0.0.1:1' }]);
  const server = new ObserverServer({ observer, peers });
  const dir = mkdtempSync(join(tmpdir(), 'mbr-hb-'));
  let client: Client;
  let unixClient: Client;

  before(async () => {
    for (const f of flows) observer.ingestFlow(f);
    const addr = await server.listen('127.0.0.1:0');
    await server.listen(`unix://${join(dir, 'hubble.sock')}`);
    client = observerClient(addr);
    unixClient = observerClient(`unix://${join(dir, 'hubble.sock')}`);
  });
  after(async () => {
    client?.close();
    unixClient?.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers ServerStatus with ring numbers and version', async () => {
    const s = await unary<Record<string, unknown>>(client, 'ServerStatus', {});
    assert.equal(s.num_flows, 11);
    assert.equal(s.max_flows, 15);
    assert.equal(s.seen_flows, 11);
    assert.equal(s.uptime_ns, 0);
    assert.match(String(s.version), /^membrane /);
    assert.equal(s.flows_rate, 11 / 60);
  });

  it('serves the same answers on the unix socket', async () => {
    const s = await unary<Record<string, unknown>>(unixClient, 'ServerStatus', {});
    assert.equal(s.num_flows, 11);
  });

  it('streams the last N flows in order, unchanged by the round trip', async () => {
    const got = await streamAll(client, { number: 3 });
    assert.deepEqual(
      got.map((r) => json(r.flow)),
      flows.slice(8).map(json),
    );
    assert.deepEqual(got[0]!.node_name, 'node-1');
    assert.deepEqual(got[0]!.time, flows[8]!.time);
  });

  it('streams the first N flows', async () => {
    const got = await streamAll(client, { number: 2, first: true });
    assert.deepEqual(
      got.map((r) => r.flow?.uuid),
      [flows[0]!.uuid, flows[1]!.uuid],
    );
  });

  it('counts the last N among matching flows only', async () => {
    const got = await streamAll(client, { number: 1, whitelist: [{ verdict: [2] }] });
    assert.deepEqual(
      got.map((r) => r.flow?.uuid),
      [flows[4]!.uuid],
    );
  });

  it('applies allowlist minus denylist', async () => {
    const got = await streamAll(client, {
      whitelist: [{ source_pod: ['shop/'] }],
      blacklist: [{ verdict: [1] }],
    });
    assert.deepEqual(
      got.map((r) => r.flow?.uuid),
      [flows[3]!.uuid, flows[4]!.uuid],
    );
  });

  it('returns the flows between since and until', async () => {
    const got = await streamAll(client, {
      since: { seconds: T0.seconds, nanos: 3_000_000 },
      until: { seconds: T0.seconds, nanos: 5_000_000 },
    });
    assert.deepEqual(
      got.map((r) => r.flow?.uuid),
      [flows[2]!.uuid, flows[3]!.uuid, flows[4]!.uuid],
    );
  });

  it('returns only the fields of a field mask', async () => {
    const got = await streamAll(client, { number: 1, field_mask: { paths: ['verdict', 'destination.pod_name'] } });
    assert.deepEqual(got[0]!.flow, { verdict: 1, destination: { pod_name: 'frontend-7d9f' } });
  });

  it('filters by a CEL expression sent in FlowFilter.experimental', async () => {
    const got = await streamAll(client, {
      whitelist: [
        { experimental: { cel_expression: ["_flow.verdict == Verdict.DROPPED && _flow.source.namespace == 'shop'"] } },
      ],
    });
    assert.deepEqual(
      got.map((r) => r.flow?.uuid),
      [flows[3]!.uuid, flows[4]!.uuid],
    );
  });

  it('reads a CEL filter encoded the way hubble encodes it (experimental = 999, cel_expression = 1)', () => {
    // GetFlowsRequest.whitelist (6) -> FlowFilter.experimental (999) -> cel_expression (1), by hand.
    const expr = Buffer.from('true');
    const experimental = Buffer.concat([Buffer.from([0x0a, expr.length]), expr]);
    const filter = Buffer.concat([Buffer.from([0xba, 0x3e, experimental.length]), experimental]);
    const request = Buffer.concat([Buffer.from([0x32, filter.length]), filter]);
    const decoded = protoType('observer.GetFlowsRequest').decode(request).toJSON();
    assert.deepEqual(decoded.whitelist, [{ experimental: { cel_expression: ['true'] } }]);
  });

  it('rejects a CEL expression that does not compile with INVALID_ARGUMENT', async () => {
    await assert.rejects(
      streamAll(client, { whitelist: [{ experimental: { cel_expression: ['_flow.verdict =='] } }] }),
      {
        code: 3,
        details: /^whitelist\[0\]\.experimental\.cel_expression\[0\]: expected a CEL expression/,
      },
    );
  });

  it('rejects an invalid filter with INVALID_ARGUMENT and the field path', async () => {
    await assert.rejects(streamAll(client, { whitelist: [{ source_ip: ['nope'] }] }), {
      code: 3,
      details: 'whitelist[0].source_ip[0]: expected an IP address or a CIDR, got "nope"',
    });
  });

  it('rejects first together with follow', async () => {
    await assert.rejects(streamAll(client, { first: true, follow: true }), {
      code: 3,
      details: 'first is incompatible with follow',
    });
  });

  it('follows new flows and datapath losses, and stops when the client cancels', async () => {
    const got: FlowsResponse[] = [];
    const call = client.GetFlows({ number: 1, follow: true }) as grpc.ClientReadableStream<FlowsResponse>;
    const ended = new Promise<unknown>((resolve) => call.on('error', resolve));
    call.on('data', (d) => got.push(d));
    await until(() => got.length === 1, { what: 'the last flow' });
    const extra = { ...flows[0]!, uuid: 'followed-1' };
    observer.ingestFlow(extra);
    observer.recordLost({ source: 'datapath-ring', count: 4 });
    observer.recordLost({ source: 'event-queue', count: 2 });
    await until(() => got.length === 4, { what: 'the followed flow and two lost events' });
    assert.equal(got[1]!.flow?.uuid, 'followed-1');
    assert.deepEqual(got[2]!.lost_events, { source: 1, num_events_lost: 4 });
    assert.deepEqual(got[3]!.lost_events, { source: 2, num_events_lost: 2 });
    call.cancel();
    const err = (await ended) as { code: number };
    assert.equal(err.code, 1);
  });

  it('lists the node and the namespaces seen', async () => {
    const nodes = await unary<{ nodes: Record<string, unknown>[] }>(client, 'GetNodes', {});
    assert.equal(nodes.nodes.length, 1);
    assert.equal(nodes.nodes[0]!.name, 'node-1');
    assert.equal(nodes.nodes[0]!.state, 1);
    const ns = await unary<{ namespaces: { namespace: string }[] }>(client, 'GetNamespaces', {});
    assert.deepEqual(
      ns.namespaces.map((n) => n.namespace),
      ['db', 'shop'],
    );
  });

  it('streams peer changes from the Peer service', async () => {
    const pc = peerClient(server.listenAddresses()[0]!);
    const got: Record<string, unknown>[] = [];
    const call = pc.Notify({}) as grpc.ClientReadableStream<Record<string, unknown>>;
    call.on('data', (d) => got.push(d));
    call.on('error', () => {});
    await until(() => got.length === 1, { what: 'the existing peer' });
    peers.set('node-2', '127.0.0.1:2');
    peers.delete('node-1');
    await until(() => got.length === 3, { what: 'two changes' });
    assert.deepEqual(got, [
      { name: 'node-1', address: '127.0.0.1:1', type: 1 },
      { name: 'node-2', address: '127.0.0.1:2', type: 1 },
      { name: 'node-1', address: '127.0.0.1:1', type: 2 },
    ]);
    call.cancel();
    pc.close();
  });
});
