// The relay against two in-process agents: merged time order, node status, one agent killed
// mid-stream and brought back, all through a grpc-js client.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { observerClient } from '../../src/hubble/api/grpc-clients.js';
import type { Flow, FlowsResponse } from '../../src/hubble/flow/flow.js';
import { FlowObserver } from '../../src/hubble/observer/flow-observer.js';
import { ObserverServer } from '../../src/hubble/observer/observer-server.js';
import { StaticPeers } from '../../src/hubble/observer/peer-source.js';
import { Relay } from '../../src/hubble/relay/relay.js';
import { until } from '../support/until.js';
import { context } from './fixtures.js';

const at = (ms: number, node: string, uuid: string): Flow => ({
  time: { seconds: 1_800_000_000 + Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
  uuid,
  node_name: node,
  verdict: 1,
  Summary: 'TCP Flags: SYN',
});

function unary<T>(client: ReturnType<typeof observerClient>, method: string): Promise<T> {
  return new Promise((resolve, reject) =>
    (client[method] as (r: object, cb: (e: Error | null, v: T) => void) => void)({}, (e, v) =>
      e ? reject(e) : resolve(v),
    ),
  );
}

describe('relay with two agents', () => {
  const obs1 = new FlowObserver({ parser: context('node-1'), capacity: 63 });
  const obs2 = new FlowObserver({ parser: context('node-2'), capacity: 63 });
  const peers = new StaticPeers();
  const agent1 = new ObserverServer({ observer: obs1, peers });
  let agent2 = new ObserverServer({ observer: obs2 });
  let addr2 = '';
  const relay = new Relay({ peerService: '', retryMs: 150, drainMs: 30, sortBufferSize: 100 });
  let client: ReturnType<typeof observerClient>;
  let relayAddr = '';

  before(async () => {
    obs1.ingestFlow(at(1000, 'node-1', 'a1'));
    obs2.ingestFlow(at(1500, 'node-2', 'b1'));
    obs1.ingestFlow(at(2000, 'node-1', 'a2'));
    obs2.ingestFlow(at(2500, 'node-2', 'b2'));
    const addr1 = await agent1.listen('127.0.0.1:0');
    addr2 = await agent2.listen('127.0.0.1:0');
    peers.set('node-1', addr1);
    peers.set('node-2', addr2);
    (relay as unknown as { opts: { peerService: string } }).opts.peerService = addr1;
    relay.start();
    const raddr = await relay.listen('127.0.0.1:0');
    relayAddr = raddr;
    client = observerClient(raddr);
    await until(
      () => {
        const s = relay.nodeStates();
        return s['node-1'] === 1 && s['node-2'] === 1;
      },
      { what: 'both nodes connected' },
    );
  });
  after(async () => {
    client?.close();
    await relay.close();
    await agent1.close();
    await agent2.close();
  });

  it('prints flows on stdout and node status on stderr with membrane observe -o json, as hubble', async () => {
    const bin = new URL('../../../bin/membrane', import.meta.url).pathname;
    const p = spawn(process.execPath, [bin, 'observe', '--server', relayAddr, '--last', '2', '-o', 'json']);
    // --last N through the relay is N per node, as in hubble.
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => p.on('close', resolve));
    assert.equal(code, 0, err);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.flow.uuid),
      ['a1', 'b1', 'a2', 'b2'],
    );
    assert.equal(JSON.parse(err.trim().split('\n')[0]!).node_status.state_change, 'NODE_CONNECTED');
  });

  it('merges the last N flows of every node in time order after a node status event', async () => {
    const got = await new Promise<FlowsResponse[]>((resolve, reject) => {
      const out: FlowsResponse[] = [];
      const call = client.GetFlows({ number: 2 }) as grpc.ClientReadableStream<FlowsResponse>;
      call.on('data', (d) => out.push(d));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
    assert.deepEqual(got[0]!.node_status, { state_change: 1, node_names: ['node-1', 'node-2'] });
    assert.deepEqual(
      got.slice(1).map((r) => r.flow?.uuid),
      ['a1', 'b1', 'a2', 'b2'],
    );
  });

  it('sums ServerStatus over the nodes and lists them', async () => {
    const s = await unary<Record<string, unknown>>(client, 'ServerStatus');
    assert.equal(s.num_flows, 4);
    assert.equal(s.max_flows, 126);
    assert.deepEqual(s.num_connected_nodes, { value: 2 });
    assert.deepEqual(s.num_unavailable_nodes, { value: 0 });
    const n = await unary<{ nodes: { name: string; state: number; num_flows: number }[] }>(client, 'GetNodes');
    assert.deepEqual(n.nodes.map((x) => [x.name, x.state, x.num_flows]).sort(), [
      ['node-1', 1, 2],
      ['node-2', 1, 2],
    ]);
  });

  it('keeps following when a node dies mid-stream and picks it up again when it returns', async () => {
    const got: FlowsResponse[] = [];
    const call = client.GetFlows({ follow: true }) as grpc.ClientReadableStream<FlowsResponse>;
    call.on('data', (d) => got.push(d));
    call.on('error', () => {});
    await until(() => got.some((r) => r.node_status?.state_change === 1), { what: 'connected status' });
    obs1.ingestFlow(at(3000, 'node-1', 'a3'));
    obs2.ingestFlow(at(3100, 'node-2', 'b3'));
    await until(() => got.filter((r) => r.flow).length === 2, { what: 'one new flow per node' });
    assert.deepEqual(
      got.filter((r) => r.flow).map((r) => r.flow!.uuid),
      ['a3', 'b3'],
    );

    await agent2.close();
    await until(() => got.some((r) => r.node_status?.state_change === 2), { what: 'node-2 unavailable' });
    assert.deepEqual(got.find((r) => r.node_status?.state_change === 2)!.node_status!.node_names, ['node-2']);
    obs1.ingestFlow(at(4000, 'node-1', 'a4'));
    await until(() => got.some((r) => r.flow?.uuid === 'a4'), { what: 'node-1 still streaming' });
    const down = await unary<Record<string, unknown>>(client, 'ServerStatus');
    assert.deepEqual(down.unavailable_nodes, ['node-2']);

    // node-2 recorded a flow while the relay could not reach it; it arrives after the reconnect.
    obs2.ingestFlow(at(4500, 'node-2', 'b4'));
    agent2 = new ObserverServer({ observer: obs2 });
    await agent2.listen(addr2);
    await until(() => got.some((r) => r.flow?.uuid === 'b4'), { timeoutMs: 8000, what: 'node-2 back' });
    const states = got.filter((r) => r.node_status).map((r) => r.node_status!.state_change);
    assert.deepEqual(states, [1, 2, 1]);
    obs2.ingestFlow(at(5000, 'node-2', 'b5'));
    await until(() => got.some((r) => r.flow?.uuid === 'b5'), { what: 'live flows from node-2' });
    assert.equal(got.filter((r) => r.flow?.uuid === 'b3').length, 1, 'no flow is sent twice');
    call.cancel();
  });
});

describe('relay with several peer services', () => {
  it('asks the next peer service when one goes, and drops a node the next one no longer announces', async () => {
    const peers = new StaticPeers();
    const agent1 = new ObserverServer({
      observer: new FlowObserver({ parser: context('node-1'), capacity: 7 }),
      peers,
    });
    const agent2 = new ObserverServer({
      observer: new FlowObserver({ parser: context('node-2'), capacity: 7 }),
      peers,
    });
    const addr1 = await agent1.listen('127.0.0.1:0');
    const addr2 = await agent2.listen('127.0.0.1:0');
    peers.set('node-1', addr1);
    peers.set('node-2', addr2);
    const relay = new Relay({ peerService: `${addr1},${addr2}`, retryMs: 150, drainMs: 30 });
    try {
      relay.start();
      await until(() => relay.nodeStates()['node-1'] === 1 && relay.nodeStates()['node-2'] === 1, {
        what: 'both nodes connected',
      });
      // node-1 goes, and with it the peer service the relay was asking.
      await agent1.close();
      peers.delete('node-1');
      await until(() => JSON.stringify(relay.nodeStates()) === JSON.stringify({ 'node-2': 1 }), {
        timeoutMs: 5000,
        what: 'node-1 dropped through the second peer service',
      });
    } finally {
      await relay.close();
      await agent2.close();
    }
  });
});
