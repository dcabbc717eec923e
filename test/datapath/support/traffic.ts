// Real traffic for the privileged datapath tests: an echo server (TCP and UDP on each given port)
// inside a pod netns, and bounded probes from another pod. A probe answers "did the bytes come back".
import type { ChildProcess } from 'node:child_process';
import type { PolicyEntry, PolicyKey, TrafficDirection } from '../../../src/policy/map-state-types.js';
import { until } from '../../support/until.js';
import type { Topology } from './topology.js';

const ECHO_SERVER = `
const net = require('node:net'), dgram = require('node:dgram');
let n = 0; const ports = process.argv.slice(1).map(Number);
for (const p of ports) {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).on('error', (e) => console.error('tcp', e.message)).listen(p, '0.0.0.0', ready);
  const u = dgram.createSocket('udp4'); u.on('error', (e) => console.error('udp', e.message));
  u.on('message', (m, r) => u.send(m, r.port, r.address)); u.bind(p, ready);
}
function ready() { if (++n === ports.length * 2) console.log('ready'); }
`;

export async function startEcho(t: Topology, netns: string, ports: readonly number[]): Promise<ChildProcess> {
  const c = t.spawnIn(netns, process.execPath, ['-e', ECHO_SERVER, ...ports.map(String)]);
  let out = '';
  c.stdout?.on('data', (d) => {
    out += d;
  });
  await until(() => out.includes('ready'), { timeoutMs: 5000, what: `echo server in ${netns}` });
  return c;
}

/** True when a TCP connection opened and the bytes were echoed back within ~1 s. */
export function tcpEchoes(t: Topology, fromNs: string, ip: string, port: number): boolean {
  const r = t.run(fromNs, 'socat', ['-T1', '-', `TCP:${ip}:${port},connect-timeout=1`], {
    input: 'hello\n',
    timeoutMs: 4000,
  });
  return r.out.includes('hello');
}

export function udpEchoes(t: Topology, fromNs: string, ip: string, port: number): boolean {
  const r = t.run(fromNs, 'socat', ['-T1', '-', `UDP:${ip}:${port}`], { input: 'hello\n', timeoutMs: 4000 });
  return r.out.includes('hello');
}

export function pings(t: Topology, fromNs: string, ip: string): boolean {
  return t.run(fromNs, 'ping', ['-c1', '-W1', ip], { timeoutMs: 4000 }).code === 0;
}

/**
 * For probes expected to succeed: up to three tries, so a busy shared host (1 s timeouts) cannot
 * fail an allowed flow. Probes expected to be dropped run once; slowness cannot make them pass.
 */
export function eventually<A extends unknown[]>(probe: (...args: A) => boolean, ...args: A): boolean {
  for (let i = 0; i < 3; i++) if (probe(...args)) return true;
  return false;
}

/** A long-lived TCP connection: send a line, wait for its echo. */
export class EchoConnection {
  #c: ChildProcess;
  #out = '';
  constructor(t: Topology, fromNs: string, ip: string, port: number) {
    this.#c = t.spawnIn(fromNs, 'socat', ['-', `TCP:${ip}:${port}`]);
    this.#c.stdout?.on('data', (d) => {
      this.#out += d;
    });
  }

  /** Sends `line`; true if it comes back within timeoutMs. */
  async roundTrip(line: string, timeoutMs = 1500): Promise<boolean> {
    this.#c.stdin?.write(`${line}\n`);
    try {
      await until(() => this.#out.includes(line), { timeoutMs, what: `echo of ${line}` });
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.#c.kill('SIGKILL');
  }
}

const ENTRY: PolicyEntry = { isDeny: false, proxyPort: 0, authType: 0, derivedFrom: [] };

export function allow(
  identity: number,
  direction: TrafficDirection,
  protocol = 0,
  port = 0,
  portPrefixLen = protocol === 0 || port === 0 ? 0 : 16,
): readonly [PolicyKey, PolicyEntry] {
  return [{ identity, direction, protocol, port, portPrefixLen }, ENTRY];
}

export function deny(
  identity: number,
  direction: TrafficDirection,
  protocol = 0,
  port = 0,
  portPrefixLen = protocol === 0 || port === 0 ? 0 : 16,
): readonly [PolicyKey, PolicyEntry] {
  return [
    { identity, direction, protocol, port, portPrefixLen },
    { ...ENTRY, isDeny: true },
  ];
}
