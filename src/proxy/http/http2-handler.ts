// HTTP/2 behind the HTTP handler: h2c with prior knowledge (the client starts with the connection
// preface; TLS is out of scope), each stream decided on its own.
//
// The proxy works on frames. Frames move unchanged except request header blocks: those are
// decoded (the client's HPACK state is followed) and, for an allowed stream, re-encoded without any
// table (hpack.ts), so a denied stream's block, which never goes upstream, cannot leave the
// server's decoder out of step. DATA of allowed streams moves as the bytes that arrived. A denied
// stream is answered by the proxy: `:status 403` with Cilium's body, or for gRPC a trailers-only
// response with `grpc-status: 7` (PERMISSION_DENIED); whatever the client still sends on it is
// dropped and its flow-control window given back (connection and stream). Server frames move
// unchanged; their header blocks are decoded only to follow the server's HPACK state and log
// responses. gRPC `/package.Service/Method` is the `:path` like any other. Server push is not
// followed (clients behind the proxy are expected to disable it, as gRPC and curl do).
import type { Socket } from 'node:net';
import type { PolicyRef } from '../../policy/map-state-types.js';
import type { L7ConnectionContext } from '../l7-handler.js';
import { encodeHeaders, type HeaderField, HpackDecoder } from './hpack.js';
import { type Config, l7Record, recordHeaders, requestRecord } from './http-handler.js';
import { decideHttp } from './http-rules.js';
import type { HttpHeader } from './http1-parser.js';

/** The client connection preface (RFC 9113 3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const H2_PREFACE_LENGTH = H2_PREFACE.length;

export function isHttp2Preface(b: Buffer): boolean {
  return b.length >= H2_PREFACE_LENGTH && b.subarray(0, H2_PREFACE_LENGTH).equals(H2_PREFACE);
}

/** Takes over a connection whose first bytes (`first`) start with the preface. */
export function handleHttp2(client: Socket, ctx: L7ConnectionContext, cfg: Config, first: Buffer): void {
  new Http2Connection(client, ctx, cfg).start(first);
}

// Private helpers.

const T_DATA = 0;
const T_HEADERS = 1;
const T_PRIORITY = 2;
const T_RST_STREAM = 3;
const T_PUSH_PROMISE = 5;
const T_GOAWAY = 7;
const T_WINDOW_UPDATE = 8;
const T_CONTINUATION = 9;
const F_END_STREAM = 0x1;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;
/** Every peer accepts frames this large (SETTINGS_MAX_FRAME_SIZE is at least 16384). */
const MIN_MAX_FRAME = 16384;
/** Frames above this are refused (the proxy never advertises more). */
const MAX_FRAME = 1 << 24;

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  /** The whole frame, header included: slices of what arrived. */
  readonly raw: Buffer;
  readonly payload: Buffer;
}

interface StreamState {
  readonly method: string;
  readonly url: string;
  /** performance.now() at the request head, ms. */
  readonly startMs: number;
  readonly policies: readonly PolicyRef[];
  /** The request's header fields as recorded (the response record carries them too, as Cilium's). */
  readonly headers: readonly { key: string; value: string }[];
  /** The server's response head was logged. */
  answered: boolean;
}

/** Splits a byte stream into frames; frames may span reads. */
class FrameReader {
  private pending: Buffer | undefined;

  push(chunk: Buffer, onFrame: (f: Frame) => void): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let i = 0;
    while (buf.length - i >= 9) {
      const len = buf.readUIntBE(i, 3);
      if (len > MAX_FRAME) throw new Error('frame too large');
      if (buf.length - i < 9 + len) break;
      const raw = buf.subarray(i, i + 9 + len);
      onFrame({
        type: buf[i + 3],
        flags: buf[i + 4],
        stream: buf.readUInt32BE(i + 5) & 0x7fffffff,
        raw,
        payload: raw.subarray(9),
      });
      i += 9 + len;
    }
    if (i < buf.length) this.pending = buf.subarray(i);
  }
}

class Http2Connection {
  private upstream: Socket | undefined;
  private readonly toServerQueue: Buffer[] = [];
  private readonly fromClient = new FrameReader();
  private readonly fromServer = new FrameReader();
  private readonly clientHpack = new HpackDecoder();
  private readonly serverHpack = new HpackDecoder();
  /** Open allowed streams. A stream not here is over, denied or unknown: its frames are dropped. */
  private readonly streams = new Map<number, StreamState>();
  private lastClientStream = 0;
  /** Denied streams the client is still sending on. */
  private readonly deniedOpen = new Set<number>();
  /** A client header block in progress (HEADERS then CONTINUATION). */
  private clientBlock: { first: Frame; parts: Buffer[] } | undefined;
  /** A server header block in progress: the proxy's own frames wait until it ends. */
  private serverBlock: { stream: number; parts: Buffer[]; type: number } | undefined;
  private readonly heldInjections: Buffer[] = [];
  private serverEndsStream = false;
  /** The server's preface (its first SETTINGS) went to the client. */
  private serverStarted = false;
  private toServer: Buffer[] = [];
  private toClient: Buffer[] = [];
  private closed = false;

  constructor(
    private readonly client: Socket,
    private readonly ctx: L7ConnectionContext,
    private readonly cfg: Config,
  ) {}

  start(first: Buffer): void {
    this.client.on('data', (c: Buffer) => this.onClientData(c));
    this.client.on('end', () => this.upstream?.end());
    this.client.on('close', () => this.close());
    this.client.on('error', () => this.close());
    this.client.on('drain', () => this.upstream?.resume());
    this.client.setTimeout(this.cfg.idleTimeoutMs, () => this.close());
    this.ctx.connectUpstream().then(
      (up) => {
        if (this.closed) {
          up.destroy();
          return;
        }
        this.upstream = up;
        up.setNoDelay(true);
        up.on('data', (c: Buffer) => this.onServerData(c));
        up.on('end', () => this.client.end());
        up.on('close', () => this.close());
        up.on('error', () => this.close());
        up.on('drain', () => this.client.resume());
        if (this.toServerQueue.length > 0) up.write(Buffer.concat(this.toServerQueue.splice(0)));
      },
      () => this.close(),
    );
    this.toServer.push(first.subarray(0, H2_PREFACE_LENGTH));
    this.onClientData(first.subarray(H2_PREFACE_LENGTH));
  }

  // ---- client → server ----

  private onClientData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.fromClient.push(chunk, (f) => this.onClientFrame(f));
    } catch {
      this.goAway(0x1 /* PROTOCOL_ERROR */);
      return;
    }
    this.flush();
  }

  private onClientFrame(f: Frame): void {
    if (this.clientBlock !== undefined) {
      if (f.type !== T_CONTINUATION || f.stream !== this.clientBlock.first.stream)
        throw new Error('expected CONTINUATION');
      this.clientBlock.parts.push(f.payload);
      if (f.flags & F_END_HEADERS) this.endClientBlock();
      return;
    }
    switch (f.type) {
      case T_HEADERS: {
        const frag = headerFragment(f);
        this.clientBlock = { first: f, parts: [frag] };
        if (f.flags & F_END_HEADERS) this.endClientBlock();
        return;
      }
      case T_CONTINUATION:
        throw new Error('CONTINUATION without HEADERS');
      case T_DATA: {
        const s = this.streams.get(f.stream);
        if (s === undefined) {
          // Dropped: give the window back so the client is not starved (the stream's too, while
          // a denied request is still being sent: it was answered, the client may finish it).
          const n = f.payload.length;
          const denied = this.deniedOpen.has(f.stream);
          if (n > 0) this.inject(denied ? [windowUpdate(0, n), windowUpdate(f.stream, n)] : [windowUpdate(0, n)]);
          if (f.flags & F_END_STREAM) this.deniedOpen.delete(f.stream);
          return;
        }
        this.toServer.push(f.raw);
        return;
      }
      case T_PRIORITY:
      case T_RST_STREAM:
      case T_WINDOW_UPDATE: {
        if (f.stream !== 0 && !this.streams.has(f.stream)) {
          if (f.type === T_RST_STREAM) this.deniedOpen.delete(f.stream);
          return;
        }
        if (f.type === T_RST_STREAM) this.streams.delete(f.stream);
        this.toServer.push(f.raw);
        return;
      }
      default:
        // SETTINGS, PING, GOAWAY and unknown extension frames.
        this.toServer.push(f.raw);
    }
  }

  private endClientBlock(): void {
    const { first, parts } = this.clientBlock!;
    this.clientBlock = undefined;
    const block = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    const fields = this.clientHpack.decode(block);
    const endStream = (first.flags & F_END_STREAM) !== 0;
    const id = first.stream;
    const existing = this.streams.get(id);
    if (existing !== undefined) {
      // Trailers of a request.
      this.toServer.push(...headerFrames(id, fields, endStream));
      return;
    }
    // A new stream has a new, odd id; a block on a stream that is over (or was denied) is dropped
    // once decoded (the HPACK state must follow it all the same).
    if (id <= this.lastClientStream) {
      if (endStream) this.deniedOpen.delete(id);
      return;
    }
    if (id % 2 === 0) throw new Error('even stream id from the client');
    this.lastClientStream = id;
    this.openStream(id, fields, endStream);
  }

  private openStream(id: number, fields: readonly HeaderField[], endStream: boolean): void {
    let method = '';
    let path = '';
    let authority = '';
    let scheme = 'http';
    let contentType = '';
    const headers: HttpHeader[] = [];
    for (const [n, v] of fields) {
      if (n === ':method') method = v;
      else if (n === ':path') path = v;
      else if (n === ':authority') authority = v;
      else if (n === ':scheme') scheme = v;
      else if (n.charCodeAt(0) !== 58) {
        if (n === 'content-type') contentType = v;
        if (n === 'host' && authority === '') authority = v;
        headers.push({ name: n, value: v });
      }
    }
    const startMs = performance.now();
    const decision = decideHttp(this.ctx.policies(), { method, path, host: authority, headers }, this.cfg.secrets);
    const url = `${scheme}://${authority}${path}`;
    const http = { method, url, protocol: 'HTTP/2', headers: recordHeaders(headers, decision.redact) };
    this.ctx.log(requestRecord(this.ctx, this.cfg.nowMs(), decision, http));
    if (decision.allowed) {
      this.streams.set(id, {
        method,
        url,
        startMs,
        policies: decision.policies,
        headers: http.headers,
        answered: false,
      });
      const out = decision.edits.length > 0 ? editedFields(fields, decision.edits) : fields;
      this.toServer.push(...headerFrames(id, out, endStream));
      return;
    }
    // The answer ends the stream on the proxy's side; the client may go on sending its request
    // (dropped). No RST_STREAM: some clients (curl) drop a response whose stream is reset.
    this.inject(contentType.startsWith('application/grpc') ? grpcDenied(id) : httpDenied(id));
    if (!endStream) this.deniedOpen.add(id);
  }

  /**
   * The proxy's own frames to the client: never before the server's SETTINGS (a client expects
   * the server's preface first) and never inside a server header block.
   */
  private inject(frames: readonly Buffer[]): void {
    if (this.serverBlock !== undefined || !this.serverStarted) this.heldInjections.push(...frames);
    else this.toClient.push(...frames);
  }

  // ---- server → client ----

  private onServerData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.fromServer.push(chunk, (f) => this.onServerFrame(f));
    } catch {
      this.close();
      return;
    }
    this.flush();
  }

  private onServerFrame(f: Frame): void {
    this.toClient.push(f.raw);
    if (!this.serverStarted) {
      this.serverStarted = true;
      if (this.heldInjections.length > 0 && f.type !== T_HEADERS && f.type !== T_PUSH_PROMISE)
        this.toClient.push(...this.heldInjections.splice(0));
    }
    if (this.serverBlock !== undefined) {
      if (f.type !== T_CONTINUATION) throw new Error('expected CONTINUATION');
      this.serverBlock.parts.push(f.payload);
      if (f.flags & F_END_HEADERS) this.endServerBlock();
      return;
    }
    if (f.type === T_HEADERS || f.type === T_PUSH_PROMISE) {
      const frag = f.type === T_HEADERS ? headerFragment(f) : pushPromiseFragment(f);
      this.serverBlock = { stream: f.stream, parts: [frag], type: f.type };
      this.serverEndsStream = f.type === T_HEADERS && (f.flags & F_END_STREAM) !== 0;
      if (f.flags & F_END_HEADERS) this.endServerBlock();
    } else if (f.type === T_RST_STREAM || (f.type === T_DATA && f.flags & F_END_STREAM)) this.streams.delete(f.stream);
  }

  private endServerBlock(): void {
    const { stream, parts, type } = this.serverBlock!;
    this.serverBlock = undefined;
    const fields = this.serverHpack.decode(parts.length === 1 ? parts[0] : Buffer.concat(parts));
    if (this.heldInjections.length > 0) this.toClient.push(...this.heldInjections.splice(0));
    if (type !== T_HEADERS) return;
    const s = this.streams.get(stream);
    if (s === undefined) return;
    if (this.serverEndsStream) this.streams.delete(stream);
    if (s.answered) return;
    const status = Number(fields.find((x) => x[0] === ':status')?.[1] ?? 0);
    if (status >= 100 && status < 200) return;
    s.answered = true;
    const http = { code: status, method: s.method, url: s.url, protocol: 'HTTP/2', headers: s.headers };
    const latencyNs = Math.round((performance.now() - s.startMs) * 1e6);
    this.ctx.log(l7Record(this.ctx, true, this.cfg.nowMs(), 'forwarded', http, s.policies, latencyNs));
  }

  // ---- plumbing ----

  private flush(): void {
    if (this.toServer.length > 0) {
      const b = joinSlices(this.toServer);
      this.toServer = [];
      if (this.upstream === undefined) this.toServerQueue.push(b);
      else if (!this.upstream.write(b)) this.client.pause();
    }
    if (this.toClient.length > 0) {
      const b = joinSlices(this.toClient);
      this.toClient = [];
      if (!this.client.write(b)) this.upstream?.pause();
    }
  }

  private goAway(code: number): void {
    const p = Buffer.alloc(8);
    p.writeUInt32BE(0, 0);
    p.writeUInt32BE(code, 4);
    this.client.end(frame(T_GOAWAY, 0, 0, p));
    this.upstream?.destroy();
    this.closed = true;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.upstream?.destroy();
  }
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream & 0x7fffffff, 5);
  payload.copy(b, 9);
  return b;
}

/** The header block fragment of a HEADERS frame: padding and priority fields removed. */
function headerFragment(f: Frame): Buffer {
  let p = f.payload;
  let pad = 0;
  if (f.flags & F_PADDED) {
    if (p.length < 1) throw new Error('bad padding');
    pad = p[0];
    p = p.subarray(1);
  }
  if (f.flags & F_PRIORITY) {
    if (p.length < 5) throw new Error('bad priority');
    p = p.subarray(5);
  }
  if (pad > p.length) throw new Error('bad padding');
  return p.subarray(0, p.length - pad);
}

function pushPromiseFragment(f: Frame): Buffer {
  let p = f.payload;
  let pad = 0;
  if (f.flags & F_PADDED) {
    pad = p[0];
    p = p.subarray(1);
  }
  if (p.length < 4 || pad > p.length - 4) throw new Error('bad PUSH_PROMISE');
  return p.subarray(4, p.length - pad);
}

/** HEADERS (and CONTINUATION when needed) carrying `fields`, encoded without tables. */
function headerFrames(stream: number, fields: readonly HeaderField[], endStream: boolean): Buffer[] {
  const block = encodeHeaders(fields);
  const out: Buffer[] = [];
  const es = endStream ? F_END_STREAM : 0;
  if (block.length <= MIN_MAX_FRAME) {
    out.push(frame(T_HEADERS, es | F_END_HEADERS, stream, block));
    return out;
  }
  for (let i = 0; i < block.length; i += MIN_MAX_FRAME) {
    const last = i + MIN_MAX_FRAME >= block.length;
    const part = block.subarray(i, i + MIN_MAX_FRAME);
    if (i === 0) out.push(frame(T_HEADERS, es, stream, part));
    else out.push(frame(T_CONTINUATION, last ? F_END_HEADERS : 0, stream, part));
  }
  return out;
}

function windowUpdate(stream: number, n: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(n & 0x7fffffff, 0);
  return frame(T_WINDOW_UPDATE, 0, stream, p);
}

const DENIED_BODY = Buffer.from('Access denied\r\n', 'latin1');

function httpDenied(stream: number): Buffer[] {
  return [
    ...headerFrames(
      stream,
      [
        [':status', '403'],
        ['content-length', String(DENIED_BODY.length)],
        ['content-type', 'text/plain'],
        ['date', new Date().toUTCString()],
      ],
      false,
    ),
    frame(T_DATA, F_END_STREAM, stream, DENIED_BODY),
  ];
}

/** A trailers-only gRPC response: PERMISSION_DENIED. */
function grpcDenied(stream: number): Buffer[] {
  return headerFrames(
    stream,
    [
      [':status', '200'],
      ['content-type', 'application/grpc'],
      ['grpc-status', '7'],
      ['grpc-message', 'Access denied'],
    ],
    true,
  );
}

function editedFields(
  fields: readonly HeaderField[],
  edits: ReadonlyArray<{ op: string; name: string; value?: string }>,
): HeaderField[] {
  let out: HeaderField[] = fields.slice();
  for (const e of edits) {
    if (e.name.charCodeAt(0) === 58 || e.name === 'content-length' || e.name === 'te') continue;
    if (e.op !== 'delete' && /[\0\r\n]/.test(e.value ?? '')) continue;
    if (e.op === 'add') out.push([e.name, e.value ?? '']);
    else if (e.op === 'delete') out = out.filter((f) => f[0] !== e.name);
    else {
      const i = out.findIndex((f) => f[0] === e.name);
      const rest = out.filter((f) => f[0] !== e.name);
      rest.splice(i < 0 ? rest.length : i, 0, [e.name, e.value ?? '']);
      out = rest;
    }
  }
  return out;
}

/** One Buffer for a list of slices; neighbours in one Buffer stay one slice. */
function joinSlices(parts: readonly Buffer[]): Buffer {
  if (parts.length === 1) return parts[0];
  const merged: Buffer[] = [];
  for (const b of parts) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last.buffer === b.buffer && last.byteOffset + last.length === b.byteOffset)
      merged[merged.length - 1] = Buffer.from(b.buffer, last.byteOffset, last.length + b.length);
    else merged.push(b);
  }
  return merged.length === 1 ? merged[0] : Buffer.concat(merged);
}
