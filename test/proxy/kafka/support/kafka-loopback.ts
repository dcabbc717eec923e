// The Kafka handler reached directly on loopback: the lab's broker program (librdkafka's mock
// cluster) on 127.0.0.1, and a plain net listener that hands each connection to the handler with an
// L7ConnectionContext whose upstream is the broker. The broker advertises the listener's address
// in Metadata, so clients that follow Metadata stay on the proxy, as the datapath's redirect keeps
// them in the lab. Used by the handler tests and bench/kafka.bench.ts.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { L7Record } from '../../../../src/hubble/flow/parser.js';
import type { L7Policy } from '../../../../src/policy/policy-engine.js';
import type { L7ConnectionContext, TcpL7Handler } from '../../../../src/proxy/l7-handler.js';

export const MOCK_BROKER = new URL('../../../../../lab/kafka/build/mock-broker', import.meta.url).pathname;

/** Why the broker or kcat cannot run here (not built, librdkafka-dev or kcat missing), or undefined. */
export function kafkaToolsGap(): string | undefined {
  if (!existsSync(MOCK_BROKER)) return `needs ${MOCK_BROKER} (node scripts/build-native.mjs; apt librdkafka-dev)`;
  try {
    execFileSync('sh', ['-c', 'command -v kcat'], { stdio: 'ignore' });
  } catch {
    return 'needs kcat on PATH (apt kcat)';
  }
  return undefined;
}

export interface MockBroker {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts the broker on 127.0.0.1 (a port the kernel picks) with the topics created. */
export async function startMockBroker(topics: readonly string[], advertisePort?: number): Promise<MockBroker> {
  const args = ['--listen', '127.0.0.1:0', ...topics.flatMap((t) => ['--topic', t])];
  if (advertisePort !== undefined) args.push('--advertise', `127.0.0.1:${advertisePort}`);
  const child = spawn(MOCK_BROKER, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = () => stopChild(child);
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('mock-broker did not report its address within 5 s')), 5000);
      child.once('exit', (code) => reject(new Error(`mock-broker exited ${code}`)));
      child.once('error', reject);
      createInterface({ input: child.stdout! }).once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
    const m = /^listening 127\.0\.0\.1:(\d+) /.exec(line);
    if (!m) throw new Error(`mock-broker printed ${JSON.stringify(line)}`);
    return { port: Number(m[1]), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface LoopbackProxy {
  readonly port: number;
  readonly records: L7Record[];
  /** Where connections go upstream (the broker's port). */
  upstreamPort: number;
  close(): Promise<void>;
}

/** A listener handing each connection to `handler`, with the policies `policies()` returns at each request. */
export async function startLoopbackProxy(
  handler: TcpL7Handler,
  policies: () => readonly L7Policy[],
): Promise<LoopbackProxy> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const proxy: LoopbackProxy = {
    port: 0,
    records: [],
    upstreamPort: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  // Half-open kept, as the node proxy's listeners do: a client that shuts down its sending side
  // still gets its answers.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    const ctx: L7ConnectionContext = {
      tuple: {
        srcIp: client.remoteAddress!,
        srcPort: client.remotePort!,
        dstIp: client.localAddress!,
        dstPort: client.localPort!,
      },
      endpointId: 7,
      direction: 'ingress',
      srcIdentity: 5001,
      dstIdentity: 5002,
      policies,
      connectUpstream: () =>
        new Promise((resolve, reject) => {
          const up = net.connect(proxy.upstreamPort, '127.0.0.1');
          track(up);
          up.once('connect', () => resolve(up));
          up.once('error', reject);
        }),
      log: (rec) => proxy.records.push(rec),
    };
    handler.handle(client, ctx);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (proxy as { port: number }).port = (server.address() as net.AddressInfo).port;
  return proxy;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
