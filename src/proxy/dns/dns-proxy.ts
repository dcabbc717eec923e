// The node's DNS proxy: UDP over the framework's TransparentUdp and TCP (2-byte length framing,
// RFC 1035 4.2.2) as a TcpL7Handler. For each query of a redirected endpoint:
//
//   decode (malformed: dropped, counted) ─► rules.dns of the redirect ─► refused: REFUSED
//   └► allowed: forwarded to the server the pod asked (originalDst), from a marked socket
//      ─► the answer's names and addresses go to the FqdnSink (the agent puts them into the
//         ipcache), and the answer is released to the pod when that is done, or after
//         responseMaxDelayMs (Cilium's tofqdns-proxy-response-max-delay, 100 ms; counted)
//
// Each query and answer is an L7 access record (a DNS flow). The answer's bytes go back as the
// server sent them; only REFUSED and SERVFAIL are made here.
import type { Socket } from 'node:net';
import type { FqdnSink } from '../../fqdn/fqdn-sink.js';
import type { L7Record } from '../../hubble/flow/parser.js';
import type { PolicyRef } from '../../policy/map-state-types.js';
import type { L7Policy } from '../../policy/policy-engine.js';
import { policyRefKey } from '../../policy/policy-rule.js';
import type { L7ConnectionContext, TcpL7Handler, TransparentUdp, UdpAddress } from '../l7-handler.js';
import {
  type DnsAnswer,
  type DnsQuery,
  decodeAnswer,
  decodeQuery,
  encodeStatusResponse,
  messageId,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
} from './dns-message.js';
import { decideDnsQuery } from './dns-policy.js';

/** Cilium's tofqdns-proxy-response-max-delay default. */
export const DEFAULT_RESPONSE_MAX_DELAY_MS = 100;
/** How long the proxy waits for the upstream server (Cilium's forward timeout). */
export const DEFAULT_FORWARD_TIMEOUT_MS = 10_000;
/** Idle upstream UDP sockets kept per source identity and server. */
const MAX_IDLE_UPSTREAM = 64;

/** What the proxy needs to know about one query's redirect (a subset of L7ConnectionContext). */
export interface DnsQueryContext {
  readonly endpointId: number;
  readonly srcIdentity: number;
  readonly dstIdentity: number;
  /** The redirect's L7 policies that apply to this server, current at each call. Empty = refuse. */
  policies(): readonly L7Policy[];
  log(rec: L7Record): void;
}

/** An upstream UDP socket, marked with the client's identity so the datapath lets it through once. */
export interface DnsUpstreamUdp {
  onMessage(cb: (data: Buffer, src: UdpAddress) => void): void;
  send(data: Buffer, to: UdpAddress): Promise<void>;
  close(): void;
}

/**
 * What the framework gives a UDP server for its proxy port (the shape of the node proxy's
 * L7DatagramContext): which endpoint, identities and rules a datagram is for, marked upstream
 * sockets, the access log.
 */
export interface DnsDatagramContext {
  /** undefined: the source is no local endpoint with a DNS redirect (the query is dropped). */
  resolve(src: UdpAddress, originalDst: UdpAddress): Omit<DnsQueryContext, 'log'> | undefined;
  /** A new upstream socket whose datagrams carry this source identity in their mark. */
  upstream(srcIdentity: number): DnsUpstreamUdp;
  log(rec: L7Record): void;
}

export interface DnsProxyOptions {
  readonly sink: FqdnSink;
  readonly responseMaxDelayMs?: number;
  readonly forwardTimeoutMs?: number;
  /** Wall clock in ms, for access records. */
  readonly now?: () => number;
}

export interface DnsProxyStats {
  queries: number;
  allowed: number;
  refused: number;
  /** Datagrams or frames that are no DNS query: dropped. */
  malformed: number;
  /** Queries from a source with no DNS redirect: dropped. */
  noContext: number;
  /** Upstream timeouts and socket errors: answered SERVFAIL. */
  upstreamErrors: number;
  /** Answers that are no DNS response: passed on, nothing learned. */
  malformedAnswers: number;
  /** Answers released before the ipcache held their IPs (response-max-delay passed). */
  responseDelayExceeded: number;
  sinkErrors: number;
}

export class DnsProxy implements TcpL7Handler {
  readonly parser = 'dns' as const;
  readonly stats: DnsProxyStats = {
    queries: 0,
    allowed: 0,
    refused: 0,
    malformed: 0,
    noContext: 0,
    upstreamErrors: 0,
    malformedAnswers: 0,
    responseDelayExceeded: 0,
    sinkErrors: 0,
  };
  readonly #opts: DnsProxyOptions;
  readonly #maxDelayMs: number;
  readonly #forwardTimeoutMs: number;
  readonly #now: () => number;
  readonly #open = new Set<{ close(): void }>();
  /** Idle upstream UDP sockets by source identity and server. */
  readonly #idle = new Map<string, Upstream[]>();
  #closed = false;

  constructor(opts: DnsProxyOptions) {
    this.#opts = opts;
    this.#maxDelayMs = opts.responseMaxDelayMs ?? DEFAULT_RESPONSE_MAX_DELAY_MS;
    this.#forwardTimeoutMs = opts.forwardTimeoutMs ?? DEFAULT_FORWARD_TIMEOUT_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** Serves the UDP queries arriving on a proxy port's transparent socket (a UdpL7Server). */
  start(udp: TransparentUdp, ctx: DnsDatagramContext): void {
    this.#open.add(udp);
    udp.onMessage((data, src, originalDst) => {
      void this.#onUdp(udp, ctx, data, src, originalDst).catch(() => {
        // A failure to send a reply leaves the client to retry; the proxy keeps serving.
        this.stats.upstreamErrors++;
      });
    });
  }

  /** A redirected TCP connection: queries framed with a 2-byte length, answered in any order. */
  handle(client: Socket, ctx: L7ConnectionContext): void {
    if (this.#closed) {
      client.destroy();
      return;
    }
    const handle = { close: () => client.destroy() };
    this.#open.add(handle);
    client.on('close', () => this.#open.delete(handle));
    client.on('error', () => client.destroy());
    const src = { ip: ctx.tuple.srcIp, port: ctx.tuple.srcPort };
    const dst = { ip: ctx.tuple.dstIp, port: ctx.tuple.dstPort };
    let upstream: Promise<Socket> | undefined;
    const pending = new Map<number, { q: DnsQuery; sentAt: bigint }>();
    const upstreamSocket = (): Promise<Socket> => {
      upstream ??= ctx.connectUpstream().then((s) => {
        s.on('error', () => client.destroy());
        s.on('close', () => client.end());
        readFrames(s, (frame) => {
          const id = messageId(frame);
          const p = id === undefined ? undefined : pending.get(id);
          if (!p) return;
          pending.delete(id!);
          this.#onAnswer(ctx, 6, src, dst, p.q, frame, p.sentAt).then(
            (out) => writeFrame(client, out),
            () => {
              // The framework's log failed: the connection goes, the proxy stays.
              this.stats.upstreamErrors++;
              client.destroy();
            },
          );
        });
        return s;
      });
      return upstream;
    };
    readFrames(
      client,
      (frame) => {
        const q = this.#query(frame);
        if (!q) return;
        if (!this.#decide(ctx, 6, src, dst, q)) {
          writeFrame(client, encodeStatusResponse(q, RCODE_REFUSED));
          return;
        }
        pending.set(q.id, { q, sentAt: process.hrtime.bigint() });
        upstreamSocket().then(
          (s) => writeFrame(s, frame),
          () => {
            this.stats.upstreamErrors++;
            pending.delete(q.id);
            writeFrame(client, encodeStatusResponse(q, RCODE_SERVFAIL));
          },
        );
      },
      () => {
        this.stats.malformed++;
        client.destroy();
      },
    );
    client.on(
      'close',
      () =>
        void upstream?.then(
          (s) => s.destroy(),
          () => {},
        ),
    );
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#open) s.close();
    this.#open.clear();
    for (const idle of this.#idle.values()) for (const u of idle) closeQuietly(u.sock);
    this.#idle.clear();
  }

  // ---- internals ----

  async #onUdp(
    sock: TransparentUdp,
    dctx: DnsDatagramContext,
    data: Buffer,
    src: UdpAddress,
    originalDst: UdpAddress,
  ): Promise<void> {
    const q = this.#query(data);
    if (!q) return;
    const flow = dctx.resolve(src, originalDst);
    if (!flow) {
      this.stats.noContext++;
      return;
    }
    const ctx: DnsQueryContext = {
      endpointId: flow.endpointId,
      srcIdentity: flow.srcIdentity,
      dstIdentity: flow.dstIdentity,
      policies: () => flow.policies(),
      log: (rec) => dctx.log(rec),
    };
    if (!this.#decide(ctx, 17, src, originalDst, q)) {
      await sock.send(encodeStatusResponse(q, RCODE_REFUSED), originalDst, src);
      return;
    }
    const sentAt = process.hrtime.bigint();
    let answer: Buffer;
    try {
      answer = await this.#forwardUdp(dctx, ctx.srcIdentity, originalDst, data, q.id);
    } catch {
      this.stats.upstreamErrors++;
      this.#log(ctx, 17, originalDst, src, 'error', q, undefined, sentAt);
      await sock.send(encodeStatusResponse(q, RCODE_SERVFAIL), originalDst, src);
      return;
    }
    const out = await this.#onAnswer(ctx, 17, src, originalDst, q, answer, sentAt);
    if (!this.#closed) await sock.send(out, originalDst, src);
  }

  #query(data: Buffer): DnsQuery | undefined {
    const q = decodeQuery(data);
    if (!q) this.stats.malformed++;
    else this.stats.queries++;
    return q;
  }

  /** Decides and logs the request record; true when the query may go upstream. */
  #decide(ctx: DnsQueryContext, protocol: number, src: UdpAddress, dst: UdpAddress, q: DnsQuery): boolean {
    const v = decideDnsQuery(
      ctx.policies(),
      q.questions.map((x) => x.name),
    );
    if (v.isAllowed) this.stats.allowed++;
    else this.stats.refused++;
    // A refused query is one record (the request, verdict denied), as Cilium's proxy logs it;
    // the REFUSED answer the pod gets is not logged again.
    this.#log(ctx, protocol, src, dst, v.isAllowed ? 'forwarded' : 'denied', q);
    return v.isAllowed;
  }

  /** Learns the answer (bounded wait for the ipcache), logs it, returns the bytes for the pod. */
  async #onAnswer(
    ctx: DnsQueryContext,
    protocol: number,
    client: UdpAddress,
    server: UdpAddress,
    q: DnsQuery,
    answer: Buffer,
    sentAt: bigint,
  ): Promise<Buffer> {
    const a = decodeAnswer(answer);
    if (!a) {
      this.stats.malformedAnswers++;
      this.#log(ctx, protocol, server, client, 'error', q, undefined, sentAt);
      return answer;
    }
    if (a.ips.length > 0) await this.#learn(ctx.endpointId, a);
    this.#log(
      ctx,
      protocol,
      server,
      client,
      'forwarded',
      q,
      {
        rcode: a.rcode,
        ips: a.ips,
        ttl: a.ttlSeconds,
        cnames: a.cnames,
        rrtypes: a.rrtypes,
      },
      sentAt,
    );
    return answer;
  }

  async #learn(endpointId: number, a: DnsAnswer): Promise<void> {
    const names = a.names.map((name) => ({ name, ips: a.ips, ttlSeconds: a.ttlSeconds }));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.#maxDelayMs);
    });
    try {
      const r = await Promise.race([this.#opts.sink.observe({ endpointId, names }).then(() => 'done' as const), late]);
      if (r === 'late') this.stats.responseDelayExceeded++;
    } catch {
      this.stats.sinkErrors++;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends the query from an upstream socket of this identity and server (one query in flight per
   * socket; idle ones are kept for the next query: opening and marking a socket per query costs
   * more than the query) and resolves with the reply that carries its ID.
   */
  #forwardUdp(
    dctx: DnsDatagramContext,
    srcIdentity: number,
    server: UdpAddress,
    data: Buffer,
    id: number,
  ): Promise<Buffer> {
    const key = `${srcIdentity}|${server.ip}|${server.port}`;
    let up = this.#idle.get(key)?.pop();
    if (!up) {
      const sock = dctx.upstream(srcIdentity);
      const fresh: Upstream = { sock, onAnswer: undefined };
      sock.onMessage((msg) => fresh.onAnswer?.(msg));
      up = fresh;
    }
    const u = up;
    return new Promise<Buffer>((resolve, reject) => {
      const handle = { close: () => finish(new Error('DNS proxy closed')) };
      this.#open.add(handle);
      const timer = setTimeout(() => finish(new Error('upstream timeout')), this.#forwardTimeoutMs);
      const finish = (err: Error | undefined, msg?: Buffer) => {
        if (u.onAnswer === undefined) return;
        u.onAnswer = undefined;
        clearTimeout(timer);
        this.#open.delete(handle);
        const idle = this.#idle.get(key) ?? [];
        if (!err && !this.#closed && idle.length < MAX_IDLE_UPSTREAM) {
          idle.push(u);
          this.#idle.set(key, idle);
        } else closeQuietly(u.sock);
        if (err) reject(err);
        else resolve(msg!);
      };
      // A reply with another ID (a late answer to an earlier query, a spoof) is not the answer.
      u.onAnswer = (msg) => {
        if (messageId(msg) === id) finish(undefined, msg);
      };
      u.sock.send(data, server).catch((err: Error) => finish(err));
    });
  }

  #log(
    ctx: DnsQueryContext,
    protocol: number,
    from: UdpAddress,
    to: UdpAddress,
    verdict: L7Record['verdict'],
    q: DnsQuery,
    response?: {
      rcode: number;
      ips: readonly string[];
      ttl: number;
      cnames: readonly string[];
      rrtypes: readonly string[];
    },
    sentAt?: bigint,
  ): void {
    const ms = this.#now();
    // The policies that decided (the flow's *_allowed_by / *_denied_by): those whose rules allowed
    // the query, or, for a refused one, every policy of the redirect (none allowed it).
    const all = ctx.policies();
    const v = decideDnsQuery(
      all,
      q.questions.map((x) => x.name),
    );
    const policies = v.isAllowed ? v.derivedFrom : uniqueRefs(all.flatMap((p) => p.derivedFrom));
    const isResponse = response !== undefined || sentAt !== undefined;
    const rec: L7Record = {
      time: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
      type: isResponse ? 'response' : 'request',
      endpointId: ctx.endpointId,
      direction: 'egress',
      srcIp: from.ip,
      dstIp: to.ip,
      srcPort: from.port,
      dstPort: to.port,
      protocol,
      srcIdentity: isResponse ? ctx.dstIdentity : ctx.srcIdentity,
      dstIdentity: isResponse ? ctx.srcIdentity : ctx.dstIdentity,
      verdict,
      ...(policies.length > 0 ? { policies } : {}),
      ...(sentAt !== undefined ? { latencyNs: Number(process.hrtime.bigint() - sentAt) } : {}),
      dns: {
        query: q.questions[0]?.name ?? '.',
        qtypes: q.questions.map((x) => x.type),
        ...(response
          ? {
              rcode: response.rcode,
              ips: response.ips,
              ttl: response.ttl,
              cnames: response.cnames,
              rrtypes: response.rrtypes,
            }
          : {}),
        observationSource: 'proxy',
      },
    };
    ctx.log(rec);
  }
}

/**
 * Calls onFrame for each 2-byte-length-prefixed message of a stream (at most 65,535 bytes by
 * construction); onBad, then nothing more, for a zero length.
 */
export function readFrames(s: Socket, onFrame: (frame: Buffer) => void, onBad?: () => void): void {
  let buf: Buffer = Buffer.alloc(0);
  s.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (len === 0) {
        onBad?.();
        buf = Buffer.alloc(0);
        return;
      }
      if (buf.length < 2 + len) break;
      const frame = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      onFrame(frame);
    }
  });
}

function uniqueRefs(refs: readonly PolicyRef[]): PolicyRef[] {
  const seen = new Map<string, PolicyRef>();
  for (const r of refs) seen.set(policyRefKey(r), r);
  return [...seen.values()];
}

/** An upstream socket and the handler of the query in flight on it (none when idle). */
interface Upstream {
  readonly sock: DnsUpstreamUdp;
  onAnswer: ((msg: Buffer) => void) | undefined;
}

function closeQuietly(s: { close(): void }): void {
  try {
    s.close();
  } catch {
    // closed already
  }
}

export function writeFrame(s: Socket, msg: Buffer): void {
  if (s.destroyed) return;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  s.write(Buffer.concat([len, msg]));
}
