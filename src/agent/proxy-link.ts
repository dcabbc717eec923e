// The agent's side of its node proxy (src/proxy/): a unix socket next to the API socket. Every
// proxy worker that connects gets the full L7 rule set of this node's endpoints, then, after each
// realized store change, the diff per redirect (endpoint, direction, port) for the endpoints whose
// L7 policies changed. With them go the Secrets those rules name (headerMatches), the whole set each
// time it changes; no other Secret leaves the agent. Workers send access records (fed to the flow observer as L7 flows) and
// counters (for `membrane status`).
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { answerFqdnMessage } from '../fqdn/fqdn-sink-link.js';
import type { L7Record } from '../hubble/flow/parser.js';
import type { Secret } from '../policy/world.js';
import { type L7Redirect, type L7RulesUpdate, redirectKey, redirectsOf, rulesDiff } from '../proxy/l7-rules.js';
import type { ProxyStats } from '../proxy/node-proxy.js';
import { encodeLine, lineReader } from '../proxy/proxy-protocol.js';
import type { Agent } from './agent.js';

export interface ProxyLinkStatus {
  /** Proxy workers connected now. */
  readonly workers: number;
  /** Redirects (endpoint, direction, port) with L7 rules on this node. */
  readonly redirects: number;
  readonly connections: number;
  readonly activeConnections: number;
  readonly denials: number;
}

interface Worker {
  readonly socket: Socket;
  /** What this worker holds: redirect key -> JSON as sent. */
  readonly sent: Map<string, string>;
  /** The Secrets last sent, as JSON. */
  secrets: string;
  stats?: ProxyStats;
}

export class ProxyLink {
  #server: Server;
  #agent: Agent;
  #workers = new Set<Worker>();
  #off: () => void;

  private constructor(agent: Agent, server: Server, onRecord: (rec: L7Record) => void) {
    this.#agent = agent;
    this.#server = server;
    server.on('connection', (socket) => this.#accept(socket, onRecord));
    this.#off = agent.onRealized(() => this.#push());
  }

  static async serve(agent: Agent, socketPath: string, onRecord: (rec: L7Record) => void): Promise<ProxyLink> {
    rmSync(socketPath, { force: true });
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    chmodSync(socketPath, 0o600);
    return new ProxyLink(agent, server, onRecord);
  }

  status(): ProxyLinkStatus {
    const stats = [...this.#workers].flatMap((w) => (w.stats ? [w.stats] : []));
    const sum = (f: (s: ProxyStats) => number) => stats.reduce((n, s) => n + f(s), 0);
    const redirects = new Set<string>();
    for (const ep of this.#agent.endpoints())
      for (const r of redirectsOf(this.#agent.engine.l7Policies(ep.id))) redirects.add(redirectKey(r));
    return {
      workers: this.#workers.size,
      redirects: redirects.size,
      connections: sum((s) => s.connections),
      activeConnections: sum((s) => s.activeConnections),
      denials: sum((s) => s.denials),
    };
  }

  close(): void {
    this.#off();
    for (const w of this.#workers) w.socket.destroy();
    this.#server.close();
  }

  #accept(socket: Socket, onRecord: (rec: L7Record) => void): void {
    const w: Worker = { socket, sent: new Map(), secrets: '[]' };
    this.#workers.add(w);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.#workers.delete(w));
    socket.on(
      'data',
      lineReader(
        (m) => {
          if (m.t === 'record' && typeof m.r === 'object' && m.r !== null) onRecord(m.r as L7Record);
          else if (m.t === 'stats' && typeof m.s === 'object' && m.s !== null) w.stats = m.s as ProxyStats;
          else if (m.t === 'fqdn' && this.#agent.opts.fqdn)
            void answerFqdnMessage(this.#agent.opts.fqdn, m, (ack) => {
              if (!socket.destroyed) socket.write(encodeLine(ack));
            });
        },
        () => socket.destroy(),
      ),
    );
    const set = this.#agent.endpoints().flatMap((ep) => redirectsOf(this.#agent.engine.l7Policies(ep.id)));
    for (const r of set) w.sent.set(redirectKey(r), JSON.stringify(r));
    this.#sendSecrets(w, set);
    this.#send(w, { full: true, set, deleted: [] });
  }

  /** After a realized change: each worker gets what changed for it. */
  #push(): void {
    if (this.#workers.size === 0) return;
    const eps = this.#agent.endpoints().map((e) => e.id);
    const per = new Map(eps.map((id) => [id, redirectsOf(this.#agent.engine.l7Policies(id))] as const));
    const all = [...per.values()].flat();
    for (const w of this.#workers) {
      // Secrets first: a rule that names one finds its value when it arrives.
      this.#sendSecrets(w, all);
      const set: L7RulesUpdate['set'][number][] = [];
      const deleted: string[] = [];
      // Endpoints that went away: all their redirects go.
      const gone = new Set([...w.sent.keys()].map((k) => Number(k.split('/')[0])).filter((id) => !per.has(id)));
      for (const id of gone) {
        const u = rulesDiff(w.sent, id, []);
        if (u) deleted.push(...u.deleted);
      }
      for (const [id, redirects] of per) {
        const u = rulesDiff(w.sent, id, redirects);
        if (u) {
          set.push(...u.set);
          deleted.push(...u.deleted);
        }
      }
      if (set.length || deleted.length) this.#send(w, { full: false, set, deleted });
    }
  }

  #sendSecrets(w: Worker, redirects: readonly L7Redirect[]): void {
    const s = namedSecrets(redirects, this.#agent.secrets());
    const json = JSON.stringify(s);
    if (json === w.secrets || w.socket.destroyed) return;
    w.secrets = json;
    w.socket.write(encodeLine({ t: 'secrets', s }));
  }

  #send(w: Worker, u: L7RulesUpdate): void {
    if (!w.socket.destroyed) w.socket.write(encodeLine({ t: 'rules', u }));
  }
}

/** The Secrets some headerMatches of these redirects names. */
export function namedSecrets(redirects: readonly L7Redirect[], secrets: readonly Secret[]): Secret[] {
  const named = new Set<string>();
  for (const r of redirects)
    for (const p of r.policies)
      for (const rule of p.http ?? [])
        for (const m of rule.headerMatches ?? [])
          if (m.secret) named.add(`${m.secret.namespace ?? 'default'}/${m.secret.name}`);
  return secrets.filter((s) => named.has(`${s.namespace}/${s.name}`));
}
