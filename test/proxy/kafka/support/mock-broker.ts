// The lab's broker program (librdkafka's mock cluster) on 127.0.0.1 for the Kafka handler's tests
// and bench/kafka.bench.ts. With `advertisePort` the broker names that port (the loopback
// proxy's, test/support/l7-loopback.ts) in Metadata, so clients that follow Metadata stay on the
// proxy, as the datapath's redirect keeps them in the lab.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

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

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
