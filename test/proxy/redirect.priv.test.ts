// The L7 redirect on real traffic in one node netns with two pods: a flow an L7 entry redirects
// reaches the node's proxy (sk_assign at the host-side veth), which sees the original destination
// and both identities, and pipes it on with its from-proxy mark; the server gets the bytes. With
// the proxy gone the flow fails closed (the server sees no connection, drop reason 178) while a
// port without L7 rules still works; a restarted proxy takes it again. Egress (client's proxy)
// and ingress (server's proxy, pod to pod on the node) both.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { removePinDir } from '../../src/datapath/bpffs.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { type DatapathEvent, EventKind } from '../../src/monitor/event-types.js';
import type { PolicyEntry, PolicyKey, TrafficDirection } from '../../src/policy/map-state-types.js';
import type { L7Policy } from '../../src/policy/policy-engine.js';
import type { L7ConnectionContext, TcpL7Handler, UdpL7Server } from '../../src/proxy/l7-handler.js';
import { L7Rules } from '../../src/proxy/l7-rules.js';
import { NodeProxy } from '../../src/proxy/node-proxy.js';
import { pipeHandler } from '../../src/proxy/pipe-handler.js';
import { ensureProxyRouting } from '../../src/proxy/proxy-routing.js';
import { connectMarked } from '../../src/proxy/proxy-sockets.js';
import { requireBpf } from '../datapath/support/require-bpf.js';
import { Topology } from '../datapath/support/topology.js';
import { until } from '../support/until.js';

const A_IP = '10.240.1.2';
const B_IP = '10.240.2.2';
const A_ID = 1001;
const B_ID = 1002;
const EGRESS_PROXY = 10002;
const INGRESS_PROXY = 10001;
const DNS_EGRESS_PROXY = 10006;

/** A server that greets each connection with the peer address it sees, then echoes; UDP 53 answers likewise. */
const SERVER = `
const net = require('node:net');
for (const p of process.argv.slice(1).map(Number))
  net.createServer((s) => { console.log('conn ' + p); s.on('error', () => {}); s.write('peer ' + s.remoteAddress + '\\n'); s.pipe(s); })
    .listen(p, '0.0.0.0', () => console.log('listening ' + p));
const u = require('node:dgram').createSocket('udp4');
u.on('message', (m, r) => u.send('answer to ' + r.address + ': ' + m, r.port, r.address));
u.bind(53, () => console.log('listening 53'));
net.createServer((s) => { s.on('error', () => {}); s.end('bye\\n'); }).listen(8084, '0.0.0.0', () => console.log('listening 8084'));
`;

function entry(identity: number, direction: TrafficDirection, port: number, proxyPort = 0, protocol = 6) {
  const key: PolicyKey = { identity, direction, protocol, port, portPrefixLen: 16 };
  const value: PolicyEntry = { isDeny: false, proxyPort, authType: 0, derivedFrom: [] };
  return [key, value] as const;
}

function l7(
  endpointId: number,
  direction: TrafficDirection,
  port: number,
  proxyPort: number,
  remote: number,
): L7Policy {
  return {
    endpointId,
    direction,
    protocol: 6,
    port,
    portPrefixLen: 16,
    proxyPort,
    parser: 'http',
    remoteIdentities: [remote],
    allowAll: true,
    derivedFrom: [],
  };
}

async function node(t: TestContext) {
  const topo = Topology.create('l7', ['a', 'b']);
  const pinDir = `/sys/fs/bpf/membrane/l7-${process.pid}`;
  removePinDir(pinDir);
  let dp: Datapath | undefined;
  const proxies: NodeProxy[] = [];
  t.after(async () => {
    for (const p of proxies) await p.close().catch(() => undefined);
    dp?.destroy();
    removePinDir(pinDir);
    topo.remove();
  });
  dp = Datapath.open({ pinDir });
  const events: DatapathEvent[] = [];
  dp.onEvents((e) => events.push(...e));
  dp.attachEndpoint(topo.attachment('a', 1, A_ID));
  dp.attachEndpoint(topo.attachment('b', 2, B_ID));
  dp.upsertIpcache(`${A_IP}/32`, A_ID);
  dp.upsertIpcache(`${B_IP}/32`, B_ID);
  // a: egress to b on 8080 through its egress proxy, 8081 plain, 8082 plain (b's ingress proxy).
  dp.applyPolicy({
    endpointId: 1,
    adds: [
      entry(B_ID, 'egress', 8080, EGRESS_PROXY),
      entry(B_ID, 'egress', 8081),
      entry(B_ID, 'egress', 8082),
      entry(B_ID, 'egress', 53, DNS_EGRESS_PROXY, 17),
      entry(B_ID, 'egress', 8083, EGRESS_PROXY),
      entry(B_ID, 'egress', 8084, EGRESS_PROXY),
    ],
    deletes: [],
  });
  dp.applyPolicy({
    endpointId: 2,
    adds: [
      entry(A_ID, 'ingress', 8080),
      entry(A_ID, 'ingress', 8081),
      entry(A_ID, 'ingress', 8082, INGRESS_PROXY),
      entry(A_ID, 'ingress', 53, 0, 17),
      entry(A_ID, 'ingress', 8083, INGRESS_PROXY),
      entry(A_ID, 'ingress', 8084),
    ],
    deletes: [],
  });
  await ensureProxyRouting(topo.nodePath);
  dp.attachProxyLookup(topo.nodePath);
  const server = topo.spawnIn(topo.pod('b').netns, process.execPath, ['-e', SERVER, '8080', '8081', '8082', '8083']);
  const out = collect(server);
  await until(() => (out.text.match(/listening/g) ?? []).length === 6, { timeoutMs: 5000, what: 'server in b' });

  const rules = new L7Rules();
  rules.apply({
    full: true,
    set: [
      { ...pick(l7(1, 'egress', 8080, EGRESS_PROXY, B_ID)), policies: [l7(1, 'egress', 8080, EGRESS_PROXY, B_ID)] },
      { ...pick(l7(2, 'ingress', 8082, INGRESS_PROXY, A_ID)), policies: [l7(2, 'ingress', 8082, INGRESS_PROXY, A_ID)] },
      { ...pick(dnsPolicy), policies: [dnsPolicy] },
      { ...pick(l7(1, 'egress', 8083, EGRESS_PROXY, B_ID)), policies: [l7(1, 'egress', 8083, EGRESS_PROXY, B_ID)] },
      { ...pick(l7(2, 'ingress', 8083, INGRESS_PROXY, A_ID)), policies: [l7(2, 'ingress', 8083, INGRESS_PROXY, A_ID)] },
      { ...pick(l7(1, 'egress', 8084, EGRESS_PROXY, B_ID)), policies: [l7(1, 'egress', 8084, EGRESS_PROXY, B_ID)] },
    ],
    deleted: [],
  });
  const seen: L7ConnectionContext[] = [];
  const pipe = pipeHandler('http');
  const recording: TcpL7Handler = {
    parser: 'http',
    handle(c, ctx) {
      seen.push(ctx);
      pipe.handle(c, ctx);
    },
  };
  const datagrams: string[] = [];
  // A stand-in DNS server: forwards each redirected datagram upstream (the node's address, the
  // client's identity in the mark) and answers the client from the address it asked.
  const forwarder: UdpL7Server = {
    parser: 'dns',
    start(udp, ctx) {
      udp.onMessage((data, src, dst) => {
        const flow = ctx.resolve(src, dst);
        datagrams.push(
          `${src.ip} -> ${dst.ip}:${dst.port} ep ${flow?.endpointId} ${flow?.srcIdentity}->${flow?.dstIdentity}`,
        );
        if (!flow || flow.policies().length === 0) return;
        const up = ctx.upstream(flow.srcIdentity);
        up.onMessage((reply) => {
          void udp.send(reply, dst, src);
          up.close();
        });
        void up.send(data, dst);
      });
    },
  };
  const startProxy = async () => {
    const p = await NodeProxy.start({
      netns: topo.nodePath,
      pinDir,
      rules,
      handlers: [recording],
      udpServers: [forwarder],
    });
    proxies.push(p);
    return p;
  };
  return { topo, dp: dp as Datapath, events, out, seen, datagrams, startProxy };
}

const dnsPolicy: L7Policy = { ...l7(1, 'egress', 53, DNS_EGRESS_PROXY, B_ID), protocol: 17, parser: 'dns' };

function pick(p: L7Policy) {
  return {
    endpointId: p.endpointId,
    direction: p.direction,
    protocol: p.protocol,
    port: p.port,
    portPrefixLen: p.portPrefixLen,
  };
}

function collect(c: ChildProcess): { text: string } {
  const o = { text: '' };
  c.stdout?.on('data', (d) => {
    o.text += d;
  });
  return o;
}

/** Connects from pod a's netns, sends a line, returns what came back (the greeting and the echo). */
async function exchange(topo: Topology, port: number, line = 'hello'): Promise<string> {
  let s: Socket;
  try {
    s = await connectMarked({ netns: topo.pod('a').netnsPath, dstIp: B_IP, dstPort: port, mark: 0, timeoutMs: 1500 });
  } catch {
    return '';
  }
  let got = '';
  s.on('data', (d) => {
    got += d;
  });
  s.on('error', () => undefined);
  s.write(`${line}\n`);
  await until(() => got.includes(line), { timeoutMs: 2000, what: `echo on ${port}` }).catch(() => undefined);
  s.destroy();
  return got;
}

describe('L7 redirect to the node proxy', () => {
  it('takes an egress L7 flow to the proxy, fails closed without it, and comes back with it', async (t) => {
    if (!requireBpf(t, 'loads BPF programs and proxies traffic between netns', ['nsenter', 'ip'])) return;
    const { topo, dp, events, out, seen, startProxy } = await node(t);
    const proxy = await startProxy();

    const got = await exchange(topo, 8080);
    assert.match(got, /hello/, 'the bytes went through the proxy and back');
    assert.equal(proxy.stats().connections, 1, 'the proxy took the connection');
    const ctx = seen[0];
    assert.deepEqual(
      { dstIp: ctx.tuple.dstIp, dstPort: ctx.tuple.dstPort, srcIp: ctx.tuple.srcIp },
      { dstIp: B_IP, dstPort: 8080, srcIp: A_IP },
      'getsockname gives the original destination',
    );
    assert.deepEqual(
      [ctx.endpointId, ctx.direction, ctx.srcIdentity, ctx.dstIdentity],
      [1, 'egress', A_ID, B_ID],
      'endpoint and identities from the datapath maps',
    );
    assert.doesNotMatch(got, new RegExp(`peer ${A_IP}\\n`), "on the node the upstream comes from the node's address");

    assert.match(await exchange(topo, 8081), /hello/, 'a port without L7 rules passes the kernel fast path');
    assert.equal(proxy.stats().connections, 1, 'and never reaches the proxy');

    await proxy.close();
    const conns = (out.text.match(/conn 8080/g) ?? []).length;
    assert.equal(await exchange(topo, 8080), '', 'no proxy: the L7 flow fails closed');
    assert.equal((out.text.match(/conn 8080/g) ?? []).length, conns, 'no connection reached the server');
    dp.drainEvents();
    assert.ok(
      events.some((e) => e.kind === EventKind.drop && e.dstPort === 8080 && 'reason' in e && e.reason === 178),
      'dropped with "Socket lookup failed" (178)',
    );
    assert.match(await exchange(topo, 8081), /hello/, 'non-L7 traffic is untouched while the proxy is down');

    const again = await startProxy();
    assert.match(await exchange(topo, 8080), /hello/, 'a restarted proxy takes the flow again');
    assert.equal(again.stats().connections, 1);
  });

  it("takes a pod-to-pod flow on the node to the server's ingress proxy", async (t) => {
    if (!requireBpf(t, 'loads BPF programs and proxies traffic between netns', ['nsenter', 'ip'])) return;
    const { topo, dp, events, seen, startProxy } = await node(t);
    const proxy = await startProxy();
    assert.match(await exchange(topo, 8082), /hello/);
    assert.equal(proxy.stats().connections, 1);
    const ctx = seen[0];
    assert.deepEqual(
      [ctx.endpointId, ctx.direction, ctx.srcIdentity, ctx.dstIdentity, ctx.tuple.dstIp, ctx.tuple.dstPort],
      [2, 'ingress', A_ID, B_ID, B_IP, 8082],
    );
    dp.drainEvents();
    assert.ok(
      !events.some((e) => e.kind === EventKind.drop && e.dstPort === 8082),
      "the upstream's mark skips a second ingress verdict and the reply path is clean",
    );
  });

  it('hands redirected UDP to the transparent socket with its original destination, and the answer back', async (t) => {
    if (!requireBpf(t, 'loads BPF programs and proxies traffic between netns', ['nsenter', 'ip', 'socat'])) return;
    const { topo, datagrams, startProxy } = await node(t);
    await startProxy();
    // Asynchronous: the proxy runs on this process's event loop.
    const client = topo.spawnIn(topo.pod('a').netns, 'socat', ['-T3', '-', `UDP:${B_IP}:53`]);
    const r = collect(client);
    client.stdin?.write('query\n');
    await until(() => /answer/.test(r.text), { timeoutMs: 5000, what: 'the answer' });
    assert.deepEqual(datagrams[0]?.split(' ').slice(1, 6), ['->', `${B_IP}:53`, 'ep', '1', `${A_ID}->${B_ID}`]);
    assert.match(r.text, /answer to \S+: query/, "the server's answer, sent back from the address the client asked");
    assert.doesNotMatch(
      r.text,
      new RegExp(`answer to ${A_IP}`),
      "upstream from the node's address (the mark says whose)",
    );
  });

  it("chains the client's egress handler into the server's ingress handler on one node", async (t) => {
    if (!requireBpf(t, 'loads BPF programs and proxies traffic between netns', ['nsenter', 'ip'])) return;
    const { topo, seen, startProxy } = await node(t);
    const proxy = await startProxy();
    assert.match(await exchange(topo, 8083), /hello/);
    assert.deepEqual(
      seen.map((c) => [c.endpointId, c.direction, c.srcIdentity, c.dstIdentity, c.tuple.dstPort]),
      [
        [1, 'egress', A_ID, B_ID, 8083],
        [2, 'ingress', A_ID, B_ID, 8083],
      ],
      "both endpoints' L7 rules see the connection",
    );
    assert.equal(proxy.stats().connections, 2);
  });

  it('takes a new connection on a tuple the proxy still holds in TIME_WAIT at once', async (t) => {
    if (!requireBpf(t, 'loads BPF programs and proxies traffic between netns', ['nsenter', 'ip', 'socat'])) return;
    const { topo, startProxy } = await node(t);
    const proxy = await startProxy();
    // The server closes first, so the proxy closes the client side first: its accepted socket
    // (B:8084 <- A:40123) stays in TIME_WAIT, and the client may reuse its port at once.
    const once = async () => {
      const c = topo.spawnIn(topo.pod('a').netns, 'socat', ['-T3', '-', `TCP:${B_IP}:8084,sourceport=40123,reuseaddr`]);
      const o = collect(c);
      const t0 = Date.now();
      await until(() => o.text.includes('bye'), { timeoutMs: 5000, what: 'bye' });
      await new Promise<void>((r) => (c.exitCode === null ? c.once('exit', () => r()) : r()));
      return Date.now() - t0;
    };
    await once();
    await until(
      () => topo.run(topo.node, 'ss', ['-tanH', 'state', 'time-wait', 'sport', '=', ':8084']).out.includes('40123'),
      {
        timeoutMs: 3000,
        what: "the proxy's TIME_WAIT",
      },
    );
    const again = await once();
    assert.ok(again < 800, `the second connection took ${again} ms (a dropped or refused SYN costs a 1 s retransmit)`);
    assert.equal(proxy.stats().connections, 2);
  });
});
