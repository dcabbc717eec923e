// The agent keeps its node's L7 proxy (`membrane proxy run`) running: it adopts a proxy that is
// already up (its pid file), starts one when none is, and starts another when it dies. The proxy
// runs detached in its own session, so stopping or restarting the agent never cuts proxied
// connections. While no proxy runs, the datapath finds no proxy socket for L7-redirected flows and
// drops them (fail closed); other traffic is untouched.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The agent's proxy socket, next to its API socket. */
export function proxySocket(agentSocket: string): string {
  return join(dirname(agentSocket), 'proxy.sock');
}

export interface ProxySupervisorOptions {
  readonly lab: string;
  readonly node: string;
  /** The proxy's state directory (pid file, last rule set, log). */
  readonly stateDir: string;
  readonly agentSocket: string;
  readonly pinDir: string;
  /** The membrane executable. */
  readonly bin: string;
  readonly checkIntervalMs?: number;
}

export interface ProxyProcessStatus {
  readonly pid: number;
  readonly running: boolean;
  /** Starts after the first (the proxy died and was started again). */
  readonly restarts: number;
}

export class ProxySupervisor {
  #o: ProxySupervisorOptions;
  #timer: NodeJS.Timeout;
  #restarts = 0;
  #started = 0;
  #pid = 0;

  constructor(o: ProxySupervisorOptions) {
    this.#o = o;
    mkdirSync(o.stateDir, { recursive: true });
    this.#check();
    this.#timer = setInterval(() => this.#check(), o.checkIntervalMs ?? 1000).unref();
  }

  status(): ProxyProcessStatus {
    return { pid: this.#pid, running: this.#pid > 0 && isAlive(this.#pid), restarts: this.#restarts };
  }

  /** Stops supervising; the proxy keeps running (a restarted agent adopts it). */
  stop(): void {
    clearInterval(this.#timer);
  }

  #check(): void {
    const pid = readPid(join(this.#o.stateDir, 'proxy.pid'));
    if (pid && isAlive(pid)) {
      this.#pid = pid;
      return;
    }
    if (this.#pid && isAlive(this.#pid)) return; // started, pid file not written yet
    if (this.#started > 0) this.#restarts++;
    this.#started++;
    const log = openSync(join(this.#o.stateDir, 'proxy.log'), 'a');
    try {
      const child = spawn(
        process.execPath,
        [
          this.#o.bin,
          'proxy',
          'run',
          '--lab',
          this.#o.lab,
          '--node',
          this.#o.node,
          '--state-dir',
          this.#o.stateDir,
          '--agent-socket',
          this.#o.agentSocket,
          '--bpffs',
          this.#o.pinDir,
        ],
        { detached: true, stdio: ['ignore', log, log] },
      );
      child.on('error', () => undefined);
      child.unref();
      this.#pid = child.pid ?? 0;
    } finally {
      closeSync(log);
    }
  }
}

function readPid(file: string): number {
  if (!existsSync(file)) return 0;
  const n = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is not running: it only waits for its parent to reap it.
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

/** The device that holds `ip` in this network namespace (the node's underlay), or undefined. */
export function deviceWithAddress(ip: string): string | undefined {
  if (!ip) return undefined;
  try {
    const out = execFileSync('ip', ['-j', '-4', 'addr', 'show'], { encoding: 'utf8', timeout: 5000 });
    const links = JSON.parse(out) as Array<{ ifname: string; addr_info?: Array<{ local: string }> }>;
    return links.find((l) => l.addr_info?.some((a) => a.local === ip))?.ifname;
  } catch {
    return undefined;
  }
}
