// `membrane proxy run`: the node's L7 proxy process, in the node's network namespace, its own
// process (an agent restart does not cut proxied connections). The primary installs the policy
// routing and keeps one worker process per core running (each binds its own SO_REUSEPORT
// listeners, the kernel spreads connections; a worker exits when its primary goes). Each worker takes its rules from the
// agent's proxy socket, keeps the last set in the state directory (a restarted proxy enforces it
// before the agent is back) and sends the agent its access records and counters.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { type FqdnAckMessage, LinkedFqdnSink } from '../fqdn/fqdn-sink-link.js';
import type { L7Record } from '../hubble/flow/parser.js';
import type { Secret } from '../policy/world.js';
import { DnsProxy } from './dns/dns-proxy.js';
import { builtinTcpHandlers, builtinUdpServers } from './handlers.js';
import { SecretValues } from './http/http-rules.js';
import { L7Rules, type L7RulesUpdate } from './l7-rules.js';
import { NodeProxy, type ProxyStats } from './node-proxy.js';
import { encodeLine, lineReader } from './proxy-protocol.js';
import { ensureProxyRouting } from './proxy-routing.js';

export interface ProxyRunOptions {
  readonly stateDir: string;
  /** The agent's proxy socket (proxy.sock next to its API socket). */
  readonly agentSocket: string;
  /** The node's datapath pins. */
  readonly pinDir: string;
  /** Worker processes; default one per core. */
  readonly workers?: number;
}

/** Set in a worker's environment by the primary. */
const WORKER_ENV = 'MEMBRANE_PROXY_WORKER';
const STATS_INTERVAL_MS = 1000;
const RECONNECT_MS = 500;
/** Records kept while the agent is away; older ones are dropped first. */
const MAX_PENDING_RECORDS = 10_000;

export async function runProxy(o: ProxyRunOptions): Promise<void> {
  if (process.env[WORKER_ENV] === '1') {
    // A worker lives as long as its primary: the primary holds our stdin open.
    process.stdin.on('close', () => process.kill(process.pid, 'SIGTERM'));
    process.stdin.resume();
    await runWorker(o);
    process.exit(0);
  }
  const workers = o.workers ?? availableParallelism();
  await primarySetup(o);
  let stopping = false;
  const children = new Set<ChildProcess>();
  const fork = () => {
    const c = spawn(process.execPath, process.argv.slice(1), {
      env: { ...process.env, [WORKER_ENV]: '1' },
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    children.add(c);
    c.on('error', () => undefined);
    c.on('exit', (code, signal) => {
      children.delete(c);
      if (stopping) return;
      process.stderr.write(`membrane proxy: worker ${c.pid} exited (${signal ?? code}); starting another\n`);
      setTimeout(fork, 200).unref();
    });
  };
  for (let i = 0; i < workers; i++) fork();
  await untilSignal();
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
  rmSync(join(o.stateDir, 'proxy.pid'), { force: true });
}

async function primarySetup(o: ProxyRunOptions): Promise<void> {
  mkdirSync(o.stateDir, { recursive: true });
  await ensureProxyRouting();
  writeFileSync(join(o.stateDir, 'proxy.pid'), String(process.pid));
  process.stderr.write(`membrane proxy: pid ${process.pid}, rules from ${o.agentSocket}\n`);
}

async function runWorker(o: ProxyRunOptions): Promise<void> {
  const rulesFile = join(o.stateDir, 'l7-rules.json');
  const rules = L7Rules.load(rulesFile);
  // Secret values stay in memory: until the agent sends them, a rule that needs one fails closed.
  const secrets = new SecretValues();
  const link = new AgentConnection(
    o.agentSocket,
    (u) => {
      rules.apply(u);
      rules.save(rulesFile);
    },
    (s) => secrets.set(s),
  );
  // The DNS proxy: each answer's names and addresses go to the agent (the ipcache owner) over
  // the same connection; the answer is released on the agent's ack or after response-max-delay.
  const dns = new DnsProxy({ sink: link.fqdnSink });
  const proxy = await NodeProxy.start({
    pinDir: o.pinDir,
    rules,
    handlers: builtinTcpHandlers({ dns, secrets }),
    udpServers: builtinUdpServers(dns),
    log: (rec) => link.record(rec),
  });
  const timer = setInterval(() => link.stats(proxy.stats()), STATS_INTERVAL_MS);
  await untilSignal();
  clearInterval(timer);
  link.close();
  await proxy.close();
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
}

/** The worker's connection to the agent: reconnects while the agent is away. */
class AgentConnection {
  #path: string;
  #onRules: (u: L7RulesUpdate) => void;
  #onSecrets: (s: readonly Secret[]) => void;
  #socket: Socket | undefined;
  #pending: string[] = [];
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  /** The FqdnSink over this connection (fails at once while the agent is away). */
  readonly fqdnSink = new LinkedFqdnSink((m) => {
    const s = this.#socket;
    if (!s || s.connecting || s.destroyed) return false;
    s.write(encodeLine(m));
    return true;
  });

  constructor(path: string, onRules: (u: L7RulesUpdate) => void, onSecrets: (s: readonly Secret[]) => void) {
    this.#path = path;
    this.#onRules = onRules;
    this.#onSecrets = onSecrets;
    this.#connect();
  }

  record(r: L7Record): void {
    this.#write(encodeLine({ t: 'record', r }), true);
  }

  stats(s: ProxyStats): void {
    this.#write(encodeLine({ t: 'stats', pid: process.pid, s }), false);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#socket?.destroy();
  }

  #write(line: string, keep: boolean): void {
    const s = this.#socket;
    if (s && !s.connecting && !s.destroyed) s.write(line);
    else if (keep) {
      this.#pending.push(line);
      if (this.#pending.length > MAX_PENDING_RECORDS) this.#pending.shift();
    }
  }

  #connect(): void {
    if (this.#closed) return;
    const s = connect(this.#path);
    this.#socket = s;
    s.on('connect', () => {
      for (const line of this.#pending.splice(0)) s.write(line);
    });
    s.on(
      'data',
      lineReader(
        (m) => {
          if (m.t === 'rules' && typeof m.u === 'object' && m.u !== null) this.#onRules(m.u as L7RulesUpdate);
          else if (m.t === 'secrets' && Array.isArray(m.s)) this.#onSecrets(m.s.filter(isSecret));
          else if (m.t === 'fqdn-ack' && typeof m.id === 'number') this.fqdnSink.onAck(m as unknown as FqdnAckMessage);
        },
        () => s.destroy(),
      ),
    );
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.#socket === s) this.#socket = undefined;
      this.fqdnSink.disconnected();
      if (!this.#closed) this.#timer = setTimeout(() => this.#connect(), RECONNECT_MS);
    });
  }
}

function isSecret(v: unknown): v is Secret {
  const s = v as Secret;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s.namespace === 'string' &&
    typeof s.name === 'string' &&
    typeof s.data === 'object' &&
    s.data !== null &&
    Object.values(s.data).every((x) => typeof x === 'string')
  );
}
