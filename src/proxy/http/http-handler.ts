// The HTTP handler behind the node proxy's seam (src/proxy/l7-handler.ts): HTTP/1.1 with
// keep-alive and pipelining, and HTTP/2 (h2c with prior knowledge, see http2-handler.ts).
//
// For HTTP/1.1 each request head is parsed strictly (http1-parser.ts), decided against the rules
// of its own time (http-rules.ts), then forwarded as the bytes that arrived, unless a header
// action edited it; its body follows as the same Buffers. A denied request is answered `403` with
// Cilium's body, in its place among the responses (responses go back in request order), and its
// body is read and dropped; the connection stays usable. Anything with ambiguous framing is
// answered `400` (`431` for oversized heads) and the connection closed before a byte of it goes
// upstream. An allowed `Upgrade` (WebSocket) or CONNECT turns the connection into a byte pipe once
// the server agrees (101, or 2xx for CONNECT).
import type { Socket } from 'node:net';
import type { L7Record } from '../../hubble/flow/parser.js';
import type { PolicyRef } from '../../policy/map-state-types.js';
import type { L7ConnectionContext, TcpL7Handler } from '../l7-handler.js';
import { endNow } from '../proxy-sockets.js';
import { decideHttp, type HeaderEdit, NO_SECRETS, type SecretSource } from './http-rules.js';
import {
  DEFAULT_MAX_HEAD_BYTES,
  Http1Reader,
  type HttpHeader,
  HttpParseError,
  type MessageSink,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from './http1-parser.js';
import { H2_PREFACE_LENGTH, handleHttp2, isHttp2Preface } from './http2-handler.js';

export interface HttpHandlerOptions {
  readonly secrets?: SecretSource;
  /** Largest request head; beyond it `431`. Default 65536. */
  readonly maxHeadBytes?: number;
  readonly maxHeaders?: number;
  /** A request head must be complete this long after its first byte, else `408`. Default 10 s. */
  readonly headerTimeoutMs?: number;
  /** A connection with no request outstanding and no traffic this long is closed. Default 300 s. */
  readonly idleTimeoutMs?: number;
  /** Wall clock for records (ms since the epoch). */
  readonly nowMs?: () => number;
}

/** The HTTP handler: the node proxy registers it for the 'http' parser. */
export function createHttpHandler(opts: HttpHandlerOptions = {}): TcpL7Handler {
  const cfg: Config = {
    secrets: opts.secrets ?? NO_SECRETS,
    maxHeadBytes: opts.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES,
    maxHeaders: opts.maxHeaders ?? 100,
    headerTimeoutMs: opts.headerTimeoutMs ?? 10_000,
    idleTimeoutMs: opts.idleTimeoutMs ?? 300_000,
    nowMs: opts.nowMs ?? Date.now,
  };
  return {
    parser: 'http',
    handle(client: Socket, ctx: L7ConnectionContext): void {
      client.setNoDelay(true);
      sniff(client, ctx, cfg);
    },
  };
}

/** Cilium's (Envoy's) reply to a request the policy denies. */
export const ACCESS_DENIED_BODY = 'Access denied\r\n';

export interface Config {
  readonly secrets: SecretSource;
  readonly maxHeadBytes: number;
  readonly maxHeaders: number;
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly nowMs: () => number;
}

/** One access record of this connection: a request (client → server) or a response. */
export function l7Record(
  ctx: L7ConnectionContext,
  isResponse: boolean,
  nowMs: number,
  verdict: L7Record['verdict'],
  http: NonNullable<L7Record['http']>,
  policies: readonly PolicyRef[],
  latencyNs?: number,
): L7Record {
  const t = ctx.tuple;
  const rec: { -readonly [K in keyof L7Record]: L7Record[K] } = {
    time: { seconds: Math.floor(nowMs / 1000), nanos: (nowMs % 1000) * 1e6 },
    type: isResponse ? 'response' : 'request',
    endpointId: ctx.endpointId,
    direction: ctx.direction,
    srcIp: isResponse ? t.dstIp : t.srcIp,
    dstIp: isResponse ? t.srcIp : t.dstIp,
    srcPort: isResponse ? t.dstPort : t.srcPort,
    dstPort: isResponse ? t.srcPort : t.dstPort,
    protocol: 6,
    srcIdentity: isResponse ? ctx.dstIdentity : ctx.srcIdentity,
    dstIdentity: isResponse ? ctx.srcIdentity : ctx.dstIdentity,
    verdict,
    policies,
    http,
  };
  if (latencyNs !== undefined) rec.latencyNs = latencyNs;
  return rec;
}

/** The record of a decided request: forwarded, or denied with the 403 the proxy answered. */
export function requestRecord(
  ctx: L7ConnectionContext,
  nowMs: number,
  decision: { readonly allowed: boolean; readonly policies: readonly PolicyRef[] },
  http: NonNullable<L7Record['http']>,
): L7Record {
  return decision.allowed
    ? l7Record(ctx, false, nowMs, 'forwarded', http, decision.policies)
    : l7Record(ctx, false, nowMs, 'denied', { code: 403, ...http }, decision.policies);
}

/** Header fields for a record: values of secret-matched fields replaced. */
export function recordHeaders(
  fields: readonly HttpHeader[],
  redact: ReadonlySet<string>,
): { key: string; value: string }[] {
  return fields.map((f) => ({ key: f.name, value: redact.has(f.name) ? '[redacted]' : f.value }));
}

// Private helpers.

const PREFACE_PROBE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Waits for enough bytes to tell HTTP/2 (prior knowledge) from HTTP/1.x, then hands over. */
function sniff(client: Socket, ctx: L7ConnectionContext, cfg: Config): void {
  let got: Buffer | undefined;
  const onData = (chunk: Buffer) => {
    got = got ? Buffer.concat([got, chunk]) : chunk;
    const n = Math.min(got.length, H2_PREFACE_LENGTH);
    if (got.subarray(0, n).equals(PREFACE_PROBE.subarray(0, n)) && got.length < H2_PREFACE_LENGTH) return;
    client.off('data', onData);
    client.off('end', onEnd);
    client.off('timeout', onTimeout);
    client.setTimeout(0);
    // The closures of this scope live as long as the socket: they must not keep the first chunk.
    const first = got;
    got = undefined;
    if (isHttp2Preface(first)) handleHttp2(client, ctx, cfg, first);
    else new Http1Connection(client, ctx, cfg).start(first);
  };
  const onEnd = () => client.destroy();
  const onTimeout = () => client.destroy();
  client.on('data', onData);
  client.on('end', onEnd);
  client.on('error', () => client.destroy());
  client.on('timeout', onTimeout);
  client.setTimeout(cfg.headerTimeoutMs);
}

interface Slot {
  /** 'upstream': the server answers; 'local': the proxy answers with `bytes`. */
  readonly kind: 'upstream' | 'local';
  readonly method: string;
  readonly url: string;
  /** performance.now() at the request head, ms. */
  readonly startMs: number;
  readonly policies: readonly PolicyRef[];
  /** The request's header fields as recorded (the response record carries them too, as Cilium's). */
  readonly headers?: readonly { key: string; value: string }[];
  readonly bytes?: Buffer;
  /** Close the connection once this slot's answer is out. */
  closeAfter: boolean;
  readonly upgrade: boolean;
}

enum Mode {
  Http,
  /** An upgrade request is out: client bytes wait for the server's answer. */
  AwaitUpgrade,
  Tunnel,
  /** No more requests are read (error, or the last request said close). */
  Draining,
}

class Http1Connection {
  private readonly reqReader: Http1Reader<RequestHead>;
  private resReader: Http1Reader<ResponseHead>;
  private readonly slots: Slot[] = [];
  private upstream: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private upstreamQueue: Buffer[] = [];
  private mode = Mode.Http;
  private held: Buffer[] = [];
  private headerTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Out-bound batching: contiguous slices of one Buffer are written as one. */
  private toClient = new Batch();
  private toServer = new Batch();
  /** The current request is being dropped (denied): its body is not forwarded. */
  private dropBody = false;
  /** The slot of a request whose head is still in the outgoing batch. */
  private unsentSlot: Slot | undefined;
  private readonly reqSink: MessageSink<RequestHead>;
  private readonly resSink: MessageSink<ResponseHead>;

  constructor(
    private readonly client: Socket,
    private readonly ctx: L7ConnectionContext,
    private readonly cfg: Config,
  ) {
    this.reqReader = new Http1Reader(
      (raw) => parseRequestHead(raw, { maxHeaders: cfg.maxHeaders }),
      true,
      cfg.maxHeadBytes,
    );
    this.resReader = new Http1Reader((raw) => parseResponseHead(raw, this.slots[0]?.method ?? 'GET'), false, 1 << 20);
    this.reqSink = {
      onHead: (h) => this.onRequestHead(h),
      onBody: (b) => {
        if (!this.dropBody) this.toServer.add(b);
      },
      onEnd: () => {
        this.dropBody = false;
        return this.mode === Mode.Http;
      },
    };
    this.resSink = {
      onHead: (h) => this.onResponseHead(h),
      onBody: (b) => this.toClient.add(b),
      onEnd: () => this.onResponseEnd(),
    };
  }

  start(first: Buffer): void {
    const c = this.client;
    c.on('data', (chunk: Buffer) => this.onClientData(chunk));
    c.on('end', () => this.onClientEnd());
    c.on('close', () => this.close());
    c.on('drain', () => this.upstream?.resume());
    c.setTimeout(this.cfg.idleTimeoutMs, () => {
      if (this.slots.length === 0 && this.mode !== Mode.Tunnel) this.close();
    });
    this.onClientData(first);
  }

  // ---- client → server ----

  private onClientData(chunk: Buffer): void {
    if (this.closed) return;
    if (this.mode === Mode.Tunnel) {
      this.sendUpstream(chunk);
      return;
    }
    if (this.mode === Mode.AwaitUpgrade) {
      this.held.push(chunk);
      return;
    }
    if (this.mode === Mode.Draining) return;
    try {
      const rest = this.reqReader.push(chunk, this.reqSink);
      if (rest !== undefined && rest.length > 0) {
        if (this.currentMode() === Mode.AwaitUpgrade) this.held.push(rest);
      }
    } catch (err) {
      this.onRequestError(err);
    }
    this.flushServer();
    this.flushLocal();
    this.flushClient();
    this.armHeaderTimer();
  }

  private onRequestHead(head: RequestHead): boolean {
    this.clearHeaderTimer();
    // An HTTP/2 upgrade would take the connection past the proxy's HTTP/1 rules: the request goes
    // on as plain HTTP/1.1 (the server answers it as such, as RFC 9113 lets it).
    const h = head.upgrade !== undefined && isH2cUpgrade(head.upgrade) ? withoutH2cUpgrade(head) : head;
    const startMs = performance.now();
    const path = originPath(h.target);
    const host = h.host ?? authorityOf(h.target);
    // An HTTP/1.0 request may name no host: the record names the original destination instead.
    const t = this.ctx.tuple;
    const url = `http://${host !== '' ? host : t.dstIp.includes(':') ? `[${t.dstIp}]:${t.dstPort}` : `${t.dstIp}:${t.dstPort}`}${path}`;
    const decision = decideHttp(
      this.ctx.policies(),
      { method: h.method, path, host, headers: h.headers },
      this.cfg.secrets,
    );
    const headers = decision.edits.length > 0 ? editFields(h.headers, decision.edits) : h.headers;
    const http = { method: h.method, url, protocol: h.version, headers: recordHeaders(headers, decision.redact) };
    this.ctx.log(requestRecord(this.ctx, this.cfg.nowMs(), decision, http));
    if (!decision.allowed) {
      // Without 100-continue the body follows and is dropped; with it the client may or may not
      // send the body, so the framing is unknowable: answer and close.
      const mustClose = !h.keepAlive || (h.expectContinue && h.body.kind !== 'none');
      this.slots.push({
        kind: 'local',
        method: h.method,
        url,
        startMs,
        policies: decision.policies,
        bytes: accessDenied(mustClose),
        closeAfter: mustClose,
        upgrade: false,
      });
      this.dropBody = true;
      if (mustClose) this.mode = Mode.Draining;
      return !mustClose;
    }
    const slot: Slot = {
      kind: 'upstream',
      method: h.method,
      url,
      startMs,
      policies: decision.policies,
      headers: http.headers,
      closeAfter: !h.keepAlive,
      upgrade: h.upgrade !== undefined,
    };
    this.slots.push(slot);
    this.unsentSlot = slot;
    this.toServer.add(decision.edits.length > 0 ? rewriteHead(h, headers) : h.raw);
    if (slot.upgrade) {
      this.mode = Mode.AwaitUpgrade;
      return h.body.kind !== 'none';
    }
    if (!h.keepAlive) {
      this.mode = Mode.Draining;
      return h.body.kind !== 'none';
    }
    return true;
  }

  private onRequestError(err: unknown): void {
    const status = err instanceof HttpParseError ? err.status : 400;
    const current = this.unsentSlot;
    if (current !== undefined) {
      // The broken request's head has not left yet: it never will.
      this.slots.splice(this.slots.indexOf(current), 1);
    } else if (this.reqReader.inBody && !this.dropBody) {
      // Part of a broken body went upstream and cannot be taken back: the server's side goes.
      this.upstream?.destroy();
      this.upstreamQueue = [];
    }
    this.unsentSlot = undefined;
    this.toServer.clear();
    this.mode = Mode.Draining;
    this.slots.push({
      kind: 'local',
      method: '',
      url: '',
      startMs: performance.now(),
      policies: [],
      bytes: errorResponse(status),
      closeAfter: true,
      upgrade: false,
    });
  }

  private onClientEnd(): void {
    if (this.mode === Mode.Tunnel) {
      this.upstream?.end();
      return;
    }
    // A half-closed client still gets the answers to what it sent.
    this.mode = Mode.Draining;
    if (this.slots.length === 0) this.close();
    else this.slots[this.slots.length - 1].closeAfter = true;
  }

  private armHeaderTimer(): void {
    if (this.reqReader.partialHeadBytes === 0 || this.mode !== Mode.Http) {
      this.clearHeaderTimer();
      return;
    }
    if (this.headerTimer !== undefined) return;
    this.headerTimer = setTimeout(() => {
      this.headerTimer = undefined;
      if (this.closed || this.reqReader.partialHeadBytes === 0) return;
      this.mode = Mode.Draining;
      this.slots.push({
        kind: 'local',
        method: '',
        url: '',
        startMs: performance.now(),
        policies: [],
        bytes: errorResponse(408),
        closeAfter: true,
        upgrade: false,
      });
      this.flushLocal();
      this.flushClient();
    }, this.cfg.headerTimeoutMs);
  }

  private clearHeaderTimer(): void {
    if (this.headerTimer !== undefined) {
      clearTimeout(this.headerTimer);
      this.headerTimer = undefined;
    }
  }

  private flushServer(): void {
    this.unsentSlot = undefined;
    const b = this.toServer.take();
    if (b !== undefined) this.sendUpstream(b);
  }

  private sendUpstream(b: Buffer): void {
    if (this.upstream !== undefined) {
      if (!this.upstream.write(b)) this.client.pause();
      return;
    }
    this.upstreamQueue.push(b);
    if (this.connecting === undefined) this.connect();
  }

  private connect(): void {
    this.connecting = this.ctx.connectUpstream();
    this.connecting.then(
      (up) => {
        if (this.closed) {
          up.destroy();
          return;
        }
        this.upstream = up;
        this.connecting = undefined;
        up.setNoDelay(true);
        up.on('data', (chunk: Buffer) => this.onServerData(chunk));
        up.on('end', () => this.onServerEnd());
        up.on('close', () => this.onServerClose(up));
        up.on('error', () => up.destroy());
        up.on('drain', () => this.client.resume());
        const q = this.upstreamQueue;
        this.upstreamQueue = [];
        if (q.length === 1) up.write(q[0]);
        else if (q.length > 1) up.write(Buffer.concat(q));
      },
      () => {
        this.connecting = undefined;
        this.upstreamQueue = [];
        this.failUpstreamSlots(503);
      },
    );
  }

  // ---- server → client ----

  private onServerData(chunk: Buffer): void {
    if (this.closed) return;
    if (this.mode === Mode.Tunnel) {
      if (!this.client.write(chunk)) this.upstream?.pause();
      return;
    }
    try {
      const rest = this.resReader.push(chunk, this.resSink);
      if (rest !== undefined && this.currentMode() === Mode.Tunnel && rest.length > 0) this.toClient.add(rest);
    } catch {
      // The server's framing is broken: nothing more can be matched to requests.
      this.flushClient();
      this.close();
      return;
    }
    this.flushLocal();
    this.flushClient();
  }

  private onResponseHead(h: ResponseHead): boolean {
    const slot = this.slots[0];
    if (slot === undefined || slot.kind !== 'upstream') throw new HttpParseError(502, 'response without a request');
    this.toClient.add(h.raw);
    this.lastInterim = h.isInterim;
    if (h.isInterim) return true;
    const latencyNs = Math.round((performance.now() - slot.startMs) * 1e6);
    const http = {
      code: h.status,
      method: slot.method,
      url: slot.url,
      protocol: h.version,
      headers: slot.headers ?? [],
    };
    this.ctx.log(l7Record(this.ctx, true, this.cfg.nowMs(), 'forwarded', http, slot.policies, latencyNs));
    if (slot.upgrade) {
      const ok = slot.method === 'CONNECT' ? h.status >= 200 && h.status < 300 : h.status === 101;
      if (ok) {
        this.slots.shift();
        this.mode = Mode.Tunnel;
        this.flushClient();
        const held = this.held;
        this.held = [];
        for (const b of held) this.sendUpstream(b);
        return false;
      }
      this.resumeAfterUpgradeRefused();
    }
    if (!h.keepAlive) slot.closeAfter = true;
    return true;
  }

  private onResponseEnd(): boolean {
    const slot = this.slots[0];
    if (slot === undefined) return true;
    if (!this.lastWasInterim()) {
      this.slots.shift();
      if (slot.closeAfter) {
        this.flushClient();
        this.endClient();
        return false;
      }
    }
    this.flushLocal();
    return true;
  }

  private lastInterim = false;
  /** The mode, read after calls that may change it. */
  private currentMode(): Mode {
    return this.mode;
  }
  private lastWasInterim(): boolean {
    return this.lastInterim;
  }

  private resumeAfterUpgradeRefused(): void {
    this.mode = Mode.Http;
    const held = this.held;
    this.held = [];
    // Resume reading what the client sent meanwhile, after this response is handled.
    if (held.length > 0) queueMicrotask(() => this.onClientData(Buffer.concat(held)));
  }

  private onServerEnd(): void {
    // A close-delimited body ends here.
    const slot = this.slots[0];
    if (this.mode === Mode.Tunnel) {
      this.client.end();
      return;
    }
    if (slot?.kind === 'upstream' && this.resReader.inBody) {
      this.slots.shift();
      this.flushClient();
      this.endClient();
    }
  }

  private onServerClose(up: Socket): void {
    if (this.upstream !== up) return;
    this.upstream = undefined;
    if (this.closed) return;
    if (this.mode === Mode.Tunnel) {
      this.client.end();
      return;
    }
    if (this.slots.some((s) => s.kind === 'upstream')) {
      this.failUpstreamSlots(502);
      return;
    }
    // Idle keep-alive connection closed by the server: the next request opens a new one.
    this.resReaderReset();
  }

  private resReaderReset(): void {
    this.resReader = new Http1Reader((raw) => parseResponseHead(raw, this.slots[0]?.method ?? 'GET'), false, 1 << 20);
  }

  /** The server went away with requests unanswered: answer them and close. */
  private failUpstreamSlots(status: number): void {
    const head = this.slots[0];
    if (head?.kind === 'upstream' && this.resReader.inBody) {
      this.close();
      return;
    }
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (s.kind === 'upstream')
        this.slots[i] = { ...s, kind: 'local', bytes: errorResponse(status), closeAfter: true };
    }
    this.mode = Mode.Draining;
    this.flushLocal();
    this.flushClient();
  }

  private flushClient(): void {
    const b = this.toClient.take();
    if (b !== undefined && !this.client.write(b)) this.upstream?.pause();
  }

  /** Writes the proxy's own answers that are next in line. */
  /**
   * Queues the proxy's own answers that are next in line (after whatever is already queued for the
   * client); all of it goes out in one write.
   */
  private flushLocal(): void {
    while (this.slots.length > 0 && this.slots[0].kind === 'local') {
      const s = this.slots.shift()!;
      this.toClient.add(s.bytes!);
      if (s.closeAfter) {
        this.flushClient();
        this.endClient();
        return;
      }
    }
  }

  private endClient(): void {
    this.mode = Mode.Draining;
    endNow(this.client);
    this.upstream?.end();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearHeaderTimer();
    this.client.destroy();
    this.upstream?.destroy();
  }
}

/** Collects slices to write; merges neighbours of the same Buffer so a chunk goes out whole. */
class Batch {
  private parts: Buffer[] = [];
  add(b: Buffer): void {
    if (b.length === 0) return;
    const last = this.parts[this.parts.length - 1];
    if (last !== undefined && last.buffer === b.buffer && last.byteOffset + last.length === b.byteOffset) {
      this.parts[this.parts.length - 1] = Buffer.from(b.buffer, last.byteOffset, last.length + b.length);
      return;
    }
    this.parts.push(b);
  }
  take(): Buffer | undefined {
    const p = this.parts;
    if (p.length === 0) return undefined;
    this.parts = [];
    return p.length === 1 ? p[0] : Buffer.concat(p);
  }
  clear(): void {
    this.parts = [];
  }
}

function accessDenied(close: boolean): Buffer {
  return Buffer.from(
    `HTTP/1.1 403 Forbidden\r\ncontent-length: ${ACCESS_DENIED_BODY.length}\r\ncontent-type: text/plain\r\n` +
      `date: ${new Date().toUTCString()}\r\n${close ? 'connection: close\r\n' : ''}\r\n${ACCESS_DENIED_BODY}`,
    'latin1',
  );
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

function errorResponse(status: number): Buffer {
  const reason = REASONS[status] ?? 'Bad Request';
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-length: ${reason.length}\r\ncontent-type: text/plain\r\n` +
      `connection: close\r\n\r\n${reason}`,
    'latin1',
  );
}

/** `:path` of a request target: origin form as is; absolute form without scheme and authority. */
function originPath(target: string): string {
  if (target.charCodeAt(0) === 47 /* / */) return target;
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*(.*)$/.exec(target);
  if (m) return m[1] === '' ? '/' : m[1];
  return target;
}

function authorityOf(target: string): string {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
  return m ? m[1] : '';
}

/** Framing fields are never edited: an edit there would desynchronise proxy and server. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'upgrade', 'host', 'te', 'trailer']);

function editFields(fields: readonly HttpHeader[], edits: readonly HeaderEdit[]): HttpHeader[] {
  let out = fields.slice();
  for (const e of edits) {
    if (FRAMING.has(e.name)) continue;
    if (e.op !== 'delete' && /[\0\r\n]/.test(e.value)) continue;
    if (e.op === 'add') out.push({ name: e.name, value: e.value });
    else if (e.op === 'delete') out = out.filter((f) => f.name !== e.name);
    else {
      const i = out.findIndex((f) => f.name === e.name);
      const rest = out.filter((f) => f.name !== e.name);
      rest.splice(i < 0 ? rest.length : i, 0, { name: e.name, value: e.value });
      out = rest;
    }
  }
  return out;
}

function isH2cUpgrade(upgrade: string): boolean {
  return upgrade.split(',').some((p) => p.trim().toLowerCase() === 'h2c');
}

function withoutH2cUpgrade(h: RequestHead): RequestHead {
  const headers: HttpHeader[] = [];
  for (const f of h.headers) {
    if (f.name === 'upgrade' || f.name === 'http2-settings') continue;
    if (f.name === 'connection') {
      const keep = f.value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && !['upgrade', 'http2-settings'].includes(t.toLowerCase()));
      if (keep.length > 0) headers.push({ name: f.name, value: keep.join(', ') });
      continue;
    }
    headers.push(f);
  }
  const { upgrade: _dropped, ...rest } = h;
  return { ...rest, headers, raw: rewriteHead(h, headers) };
}

function rewriteHead(h: RequestHead, fields: readonly HttpHeader[]): Buffer {
  let s = `${h.method} ${h.target} ${h.version}\r\n`;
  for (const f of fields) s += `${f.name}: ${f.value}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}
