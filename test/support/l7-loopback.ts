// A node proxy stand-in on loopback for L7 handler tests and benchmarks: a plain `net` listener
// that builds an L7ConnectionContext for each connection and connects upstream directly (no
// datapath redirect, no marks). Records go to an array; policies can change at any time.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { L7Record } from '../../src/hubble/flow/parser.js';
import type { PolicyRef } from '../../src/policy/map-state-types.js';
import type { L7Policy } from '../../src/policy/policy-engine.js';
import type { HttpRule, KafkaRule } from '../../src/policy/policy-rule.js';
import type { L7ConnectionContext, TcpL7Handler } from '../../src/proxy/l7-handler.js';

export interface LoopbackProxy {
  readonly port: number;
  readonly records: L7Record[];
  policies: readonly L7Policy[];
  /** Where new connections go upstream; may be set after start (a server that must know the proxy's port first). */
  upstreamPort: number;
  /** Upstream connections opened so far. */
  readonly upstreamConnects: number;
  close(): Promise<void>;
}

export async function startLoopbackProxy(
  handler: TcpL7Handler,
  upstreamPort: number,
  policies: readonly L7Policy[],
  opts: { keepRecords?: boolean; allowHalfOpen?: boolean } = {},
): Promise<LoopbackProxy> {
  const keep = opts.keepRecords ?? true;
  const sockets = new Set<Socket>();
  let connects = 0;
  const state: LoopbackProxy = {
    port: 0,
    records: [],
    policies,
    upstreamPort,
    get upstreamConnects() {
      return connects;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  // allowHalfOpen as the node proxy's listeners: a client that shuts down its sending side gets its answers.
  const server: Server = createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const ctx: L7ConnectionContext = {
      tuple: {
        srcIp: client.remoteAddress ?? '127.0.0.1',
        srcPort: client.remotePort ?? 0,
        dstIp: '127.0.0.1',
        dstPort: state.upstreamPort,
      },
      endpointId: 1,
      direction: 'ingress',
      srcIdentity: 1000,
      dstIdentity: 2000,
      policies: () => state.policies,
      connectUpstream: () =>
        new Promise<Socket>((resolve, reject) => {
          connects++;
          const up = connect(state.upstreamPort, '127.0.0.1');
          sockets.add(up);
          up.on('close', () => sockets.delete(up));
          up.once('connect', () => resolve(up));
          up.once('error', reject);
        }),
      log: (rec) => {
        if (keep) state.records.push(rec);
      },
    };
    handler.handle(client, ctx);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (state as { port: number }).port = (server.address() as { port: number }).port;
  return state;
}

const REF: PolicyRef = { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'l7' };

/** An L7 policy on port 80 ingress with these HTTP rules. */
export function httpPolicy(http: readonly HttpRule[], opts: { allowAll?: boolean; ref?: PolicyRef } = {}): L7Policy {
  return {
    endpointId: 1,
    direction: 'ingress',
    protocol: 6,
    port: 80,
    portPrefixLen: 16,
    proxyPort: 10001,
    parser: 'http',
    remoteIdentities: [0],
    allowAll: opts.allowAll ?? false,
    http,
    derivedFrom: [opts.ref ?? REF],
  };
}

/** An L7 policy on port 9092 ingress with these Kafka rules. */
export function kafkaPolicy(kafka: readonly KafkaRule[], opts: { allowAll?: boolean; ref?: PolicyRef } = {}): L7Policy {
  return {
    endpointId: 1,
    direction: 'ingress',
    protocol: 6,
    port: 9092,
    portPrefixLen: 16,
    proxyPort: 10003,
    parser: 'kafka',
    remoteIdentities: [0],
    allowAll: opts.allowAll ?? false,
    kafka,
    derivedFrom: [opts.ref ?? { kind: 'CiliumNetworkPolicy', namespace: 'default', name: 'kafka-order-processor' }],
  };
}
