// The Kafka handler of the node proxy (TcpL7Handler, parser 'kafka'). Per connection it reads the
// client's request frames, decides each against the redirect's L7 policies of that moment, and
// either writes the frame upstream as the same bytes or answers it itself (kafka-deny.ts). The
// broker's responses are relayed as they stream in: only each response's first bytes are read, to
// match its correlation id and record its error code. A response the proxy makes waits in the
// per-connection queue until every earlier request's response has been relayed, so the client sees
// its responses in request order.
//
// A frame that is not Kafka (a length below the smallest request or above maxFrameBytes, a body that
// does not follow the API's layout), a topic API at a version not read here, a denied request of an
// API with no deny response, or a broker response out of order closes the connection; each is
// counted in `stats`. Nothing here throws on bad bytes.
import type { Socket } from 'node:net';
import type { L7Record } from '../../hubble/flow/parser.js';
import type { PolicyRef } from '../../policy/map-state-types.js';
import type { L7ConnectionContext, TcpL7Handler } from '../l7-handler.js';
import { buildDenyResponse, TOPIC_AUTHORIZATION_FAILED } from './kafka-deny.js';
import { type KafkaRequest, type KafkaRequestHeader, MIN_REQUEST_FRAME, parseKafkaRequest } from './kafka-request.js';
import { responseErrorCode } from './kafka-response.js';
import { decideKafkaRequest } from './kafka-rules.js';

export interface KafkaHandlerOptions {
  /** Largest request frame accepted (the 4-byte length included). Kafka's socket.request.max.bytes is 100 MiB. */
  readonly maxFrameBytes?: number;
  /** Wall clock for records; defaults to Date.now with the process's high-resolution clock. */
  readonly now?: () => { seconds: number; nanos: number };
}

/** Counters of one handler, over every connection it served. */
export interface KafkaHandlerStats {
  connections: number;
  requests: number;
  forwarded: number;
  denied: number;
  /** Denied requests of an API with no deny response: the connection was closed. */
  deniedClosed: number;
  /** Request frames closed as not Kafka: bad length, over maxFrameBytes, or a body that does not parse. */
  malformedFrames: number;
  oversizedFrames: number;
  /** Connections that ended in the middle of a request frame. */
  truncatedFrames: number;
  /** Requests of a topic API at a version not read here (denied, connection closed). */
  unsupportedVersions: number;
  /** Broker responses that did not match the oldest request waiting for one. */
  responseMismatches: number;
  upstreamErrors: number;
  /** Times a connection's reads paused because 1024 of its requests waited for responses. */
  heldReads: number;
  /** Bytes the proxy copied: request frames split across reads, response headers split across reads. */
  bytesCopied: number;
  /** Bytes relayed each way. */
  requestBytes: number;
  responseBytes: number;
}

export const DEFAULT_MAX_KAFKA_FRAME_BYTES = 16 * 1024 * 1024;

export class KafkaHandler implements TcpL7Handler {
  readonly parser = 'kafka' as const;
  readonly stats: KafkaHandlerStats = {
    connections: 0,
    requests: 0,
    forwarded: 0,
    denied: 0,
    deniedClosed: 0,
    malformedFrames: 0,
    oversizedFrames: 0,
    truncatedFrames: 0,
    unsupportedVersions: 0,
    responseMismatches: 0,
    upstreamErrors: 0,
    heldReads: 0,
    bytesCopied: 0,
    requestBytes: 0,
    responseBytes: 0,
  };
  readonly maxFrameBytes: number;
  readonly now: () => { seconds: number; nanos: number };

  constructor(opts: KafkaHandlerOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_KAFKA_FRAME_BYTES;
    this.now = opts.now ?? wallClock;
  }

  handle(client: Socket, ctx: L7ConnectionContext): void {
    this.stats.connections++;
    new KafkaConnection(this, client, ctx).start();
  }
}

/** One entry per request still owed a response, in request order. */
type Pending =
  | {
      readonly kind: 'upstream';
      readonly req: KafkaRequest;
      readonly startNs: bigint;
      readonly topic: string;
      readonly policies: readonly PolicyRef[];
    }
  | { readonly kind: 'local'; readonly frame: Buffer }
  | { readonly kind: 'close' };

const NO_POLICIES: readonly PolicyRef[] = [];

/** Requests waiting for a response (relayed or made here) before the client's reads pause. */
const MAX_PENDING = 1024;

/** Response bytes read before relaying: length, correlation id, and where top-level error codes sit. */
const RESPONSE_PEEK = 4 + 4 + 1 + 4 + 2;

class KafkaConnection {
  private upstream: Socket | undefined;
  private closed = false;
  private readonly pending: Pending[] = [];
  // Request side: chunks not yet consumed, their total length.
  private chunks: Buffer[] = [];
  private buffered = 0;
  private stopReading = false;
  /** Reading paused because MAX_PENDING requests wait for responses. */
  private isHeld = false;
  // Response side: bytes left of the frame being relayed; a frame start split across reads.
  private resRemaining = 0;
  private resHead: Buffer | undefined;
  private resError: number | undefined;
  /** The frame being read is an answer to an acks=0 Produce: dropped, not relayed. */
  private isDiscarding = false;
  /** Correlation ids of acks=0 Produce requests relayed (the newest MAX_PENDING). */
  private readonly unansweredIds = new Set<number>();
  // What the current read produced, written when it is done (flushOut).
  private readonly toUpstream: Buffer[] = [];
  private readonly toClient: Buffer[] = [];

  constructor(
    private readonly h: KafkaHandler,
    private readonly client: Socket,
    private readonly ctx: L7ConnectionContext,
  ) {}

  start(): void {
    const c = this.client;
    // Kafka brokers and clients turn Nagle off; small responses must not wait for an ACK.
    c.setNoDelay(true);
    c.pause();
    c.on('error', () => this.close());
    c.on('end', () => this.onClientEnd());
    c.on('close', () => this.close());
    c.on('data', (d: Buffer) => this.onRequestData(d));
    this.ctx.connectUpstream().then(
      (up) => {
        if (this.closed) {
          up.destroy();
          return;
        }
        this.upstream = up;
        up.setNoDelay(true);
        up.on('data', (d: Buffer) => this.onResponseData(d));
        up.on('error', () => this.close());
        up.on('close', () => this.close());
        up.on('drain', () => {
          if (!this.stopReading && !this.isHeld) c.resume();
        });
        c.on('drain', () => up.resume());
        c.resume();
      },
      () => {
        this.h.stats.upstreamErrors++;
        this.close();
      },
    );
  }

  // ---- requests ----

  private onRequestData(d: Buffer): void {
    if (this.stopReading || this.closed) return;
    this.h.stats.requestBytes += d.length;
    this.chunks.push(d);
    this.buffered += d.length;
    this.processRequests();
  }

  /** Handles the complete frames buffered, unless MAX_PENDING requests already wait for responses. */
  private processRequests(): void {
    // The frames of one read go upstream in one writev, and the responses made here in one write.
    try {
      while (!this.stopReading && !this.closed && this.buffered >= 4) {
        if (this.pending.length >= MAX_PENDING) {
          // Backpressure on a client that pipelines faster than responses come back.
          this.isHeld = true;
          this.h.stats.heldReads++;
          this.client.pause();
          return;
        }
        const len = this.peekInt32();
        if (len + 4 < MIN_REQUEST_FRAME || len + 4 > this.h.maxFrameBytes) {
          if (len + 4 > this.h.maxFrameBytes) this.h.stats.oversizedFrames++;
          else this.h.stats.malformedFrames++;
          this.close();
          return;
        }
        if (this.buffered < len + 4) break;
        this.onRequestFrame(this.take(len + 4));
      }
    } finally {
      this.flushOut();
    }
  }

  /** The client sent its last byte: answer what it asked, then close (also when half-open). */
  private onClientEnd(): void {
    if (this.closed || this.stopReading) return;
    if (this.buffered > 0) this.h.stats.truncatedFrames++;
    this.closeAfterPending();
  }

  private onRequestFrame(frame: Buffer): void {
    const st = this.h.stats;
    st.requests++;
    const parsed = parseKafkaRequest(frame);
    if (!parsed.ok) {
      if (parsed.reason === 'unsupported-version' && parsed.header) {
        const policies = this.ctx.policies();
        const allowAll = policies.find((p) => p.allowAll);
        if (allowAll) {
          const expectsResponse = parsed.expectsResponse ?? true;
          const req = { ...parsed.header, topics: undefined, isFlexible: false, expectsResponse };
          this.forward(frame, req, '', allowAll.derivedFrom);
          return;
        }
        st.unsupportedVersions++;
        const refs = policies.flatMap((p) => p.derivedFrom);
        this.logRequest(parsed.header, '', 'denied', refs, TOPIC_AUTHORIZATION_FAILED);
      } else {
        st.malformedFrames++;
        if (parsed.header) this.logRequest(parsed.header, '', 'error', NO_POLICIES);
      }
      this.closeAfterPending();
      return;
    }
    const req = parsed.request;
    const topic = topicsText(req);
    const decision = decideKafkaRequest(req, this.ctx.policies());
    if (decision.allowed) {
      this.forward(frame, req, topic, decision.policies);
      return;
    }
    st.denied++;
    this.logRequest(req, topic, 'denied', decision.policies, TOPIC_AUTHORIZATION_FAILED);
    if (!req.expectsResponse) return; // acks=0: the client waits for nothing
    const deny = buildDenyResponse(req);
    if (deny === undefined) {
      st.deniedClosed++;
      this.closeAfterPending();
      return;
    }
    this.logResponse(req, topic, 'denied', decision.policies, TOPIC_AUTHORIZATION_FAILED, 0n);
    this.pending.push({ kind: 'local', frame: deny });
    this.flushLocal();
  }

  private forward(frame: Buffer, req: KafkaRequest, topic: string, policies: readonly PolicyRef[]): void {
    this.h.stats.forwarded++;
    this.logRequest(req, topic, 'forwarded', policies);
    if (req.expectsResponse)
      this.pending.push({ kind: 'upstream', req, startNs: process.hrtime.bigint(), topic, policies });
    else {
      this.unansweredIds.add(req.correlationId);
      if (this.unansweredIds.size > MAX_PENDING)
        this.unansweredIds.delete(this.unansweredIds.values().next().value as number);
    }
    this.toUpstream.push(frame);
  }

  /** Stops reading requests; the connection closes once every earlier response was relayed. */
  private closeAfterPending(): void {
    this.stopReading = true;
    this.client.pause();
    this.pending.push({ kind: 'close' });
    this.flushLocal();
  }

  private peekInt32(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readInt32BE(0);
    const b = Buffer.concat(this.chunks, 4);
    return b.readInt32BE(0);
  }

  /** The next n buffered bytes: a view when they sit in one read, a copy (counted) when split. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
      this.h.stats.bytesCopied += n;
    }
    this.buffered -= n;
    return out;
  }

  // ---- responses ----

  private onResponseData(chunk: Buffer): void {
    if (this.closed) return;
    this.h.stats.responseBytes += chunk.length;
    try {
      this.relayResponses(chunk);
    } finally {
      this.flushOut();
    }
  }

  private relayResponses(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.closed) {
      if (this.resRemaining > 0) {
        const n = Math.min(this.resRemaining, chunk.length - off);
        if (!this.isDiscarding) this.relay(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
        this.resRemaining -= n;
        off += n;
        if (this.resRemaining === 0) this.onResponseDone();
        continue;
      }
      const avail = chunk.length - off;
      if (this.resHead === undefined && avail >= 8) {
        const peek = chunk.subarray(off, off + Math.min(avail, RESPONSE_PEEK));
        if (!this.onResponseStart(peek)) return;
        continue; // resRemaining now covers the whole frame, header included
      }
      // A frame start split across reads: gather its first 8 bytes.
      const have = this.resHead?.length ?? 0;
      const k = Math.min(8 - have, avail);
      const part = chunk.subarray(off, off + k);
      this.resHead = this.resHead ? Buffer.concat([this.resHead, part]) : Buffer.from(part);
      this.h.stats.bytesCopied += k;
      off += k;
      if (this.resHead.length === 8) {
        const head = this.resHead;
        this.resHead = undefined;
        if (!this.onResponseStart(head)) return;
        if (!this.isDiscarding) this.relay(head);
        this.resRemaining -= 8;
        if (this.resRemaining === 0) this.onResponseDone();
      }
    }
  }

  /** Checks a response's correlation id against the oldest request owed one; false = closed. */
  private onResponseStart(peek: Buffer): boolean {
    const len = peek.readInt32BE(0);
    const corr = peek.readInt32BE(4);
    const head = this.pending[0];
    if (len < 4 || head?.kind !== 'upstream' || head.req.correlationId !== corr) {
      if (len >= 4 && this.unansweredIds.delete(corr)) {
        // An answer to an acks=0 Produce (librdkafka's mock broker sends one): the client expects
        // none, so it is not relayed.
        this.resRemaining = len + 4;
        this.isDiscarding = true;
        return true;
      }
      this.h.stats.responseMismatches++;
      this.close();
      return false;
    }
    this.resRemaining = len + 4;
    this.resError = responseErrorCode(head.req, peek);
    return true;
  }

  private onResponseDone(): void {
    if (this.isDiscarding) {
      this.isDiscarding = false;
      return;
    }
    const head = this.pending.shift();
    if (head?.kind === 'upstream')
      this.logResponse(
        head.req,
        head.topic,
        'forwarded',
        head.policies,
        this.resError,
        process.hrtime.bigint() - head.startNs,
      );
    this.flushLocal();
    if (this.isHeld && this.pending.length < MAX_PENDING / 2 && !this.closed) {
      this.isHeld = false;
      if (!this.upstream?.writableNeedDrain) this.client.resume();
      this.processRequests();
    }
  }

  private relay(b: Buffer): void {
    this.toClient.push(b);
  }

  /**
   * Writes what one read produced: a single buffer as one write, several as one writev (cork).
   * Corking a single write costs a wake-up more at one request in flight, so it is not done.
   */
  private flushOut(): void {
    if (this.toUpstream.length > 0 && this.upstream && !this.closed) {
      if (!writeAll(this.upstream, this.toUpstream)) this.client.pause();
    }
    if (this.toClient.length > 0 && !this.closed) {
      if (!writeAll(this.client, this.toClient)) this.upstream?.pause();
    }
    this.toUpstream.length = 0;
    this.toClient.length = 0;
  }

  /** Writes the responses the proxy made that are now first in line. */
  private flushLocal(): void {
    while (this.pending.length > 0 && !this.closed) {
      const head = this.pending[0]!;
      if (head.kind === 'upstream') return;
      this.pending.shift();
      if (head.kind === 'close') {
        this.flushOut();
        this.client.end();
        this.upstream?.destroy();
        this.closed = true;
        return;
      }
      this.relay(head.frame);
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.upstream?.destroy();
    this.chunks = [];
    this.buffered = 0;
  }

  // ---- records ----

  private logRequest(
    req: KafkaRequestHeader,
    topic: string,
    verdict: L7Record['verdict'],
    policies: readonly PolicyRef[],
    errorCode?: number,
  ): void {
    const t = this.ctx.tuple;
    this.ctx.log({
      time: this.h.now(),
      type: 'request',
      endpointId: this.ctx.endpointId,
      direction: this.ctx.direction,
      srcIp: t.srcIp,
      dstIp: t.dstIp,
      srcPort: t.srcPort,
      dstPort: t.dstPort,
      protocol: 6,
      srcIdentity: this.ctx.srcIdentity,
      dstIdentity: this.ctx.dstIdentity,
      verdict,
      policies,
      kafka: kafkaPart(req, topic, errorCode),
    });
  }

  private logResponse(
    req: KafkaRequestHeader,
    topic: string,
    verdict: L7Record['verdict'],
    policies: readonly PolicyRef[],
    errorCode: number | undefined,
    latencyNs: bigint,
  ): void {
    const t = this.ctx.tuple;
    this.ctx.log({
      time: this.h.now(),
      type: 'response',
      endpointId: this.ctx.endpointId,
      direction: this.ctx.direction,
      srcIp: t.dstIp,
      dstIp: t.srcIp,
      srcPort: t.dstPort,
      dstPort: t.srcPort,
      protocol: 6,
      srcIdentity: this.ctx.dstIdentity,
      dstIdentity: this.ctx.srcIdentity,
      verdict,
      policies,
      latencyNs: latencyNs > 0n ? Number(latencyNs) : undefined,
      kafka: kafkaPart(req, topic, errorCode),
    });
  }
}

function kafkaPart(req: KafkaRequestHeader, topic: string, errorCode: number | undefined): L7Record['kafka'] {
  return {
    apiKey: req.apiKey,
    apiVersion: req.apiVersion,
    correlationId: req.correlationId,
    topic: topic !== '' ? topic : undefined,
    errorCode,
  };
}

/** The request's topics as the record shows them: comma-separated, in request order. */
function topicsText(req: KafkaRequest): string {
  const ts = req.topics;
  if (ts === undefined || ts.length === 0) return '';
  if (ts.length === 1) return ts[0]!.name;
  return ts.map((t) => t.name).join(',');
}

/** Writes buffers in order, several in one writev; false when the socket asks to wait for 'drain'. */
function writeAll(sock: Socket, bufs: readonly Buffer[]): boolean {
  if (bufs.length === 1) return sock.write(bufs[0]!);
  sock.cork();
  let ok = true;
  for (const b of bufs) ok = sock.write(b);
  sock.uncork();
  return ok;
}

function wallClock(): { seconds: number; nanos: number } {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}
