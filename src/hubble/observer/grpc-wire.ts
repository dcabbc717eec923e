// A small gRPC server on node:http2, for the flow API. It exists for GetFlows throughput: grpc-js
// pays its per-message cost on every call.write(), while gRPC lets many length-prefixed messages
// share one DATA frame, so a stream that batches its frames goes ~3x faster (see
// /work/shared/reference/perf-notes.md). Any conforming gRPC client reads the result.
//
// Supported: unary and server-streaming calls, identity encoding, status in trailers (or
// trailers-only for errors before the first message), cancellation by the client.

import { chmodSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export class GrpcError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'GrpcError';
  }
}

/** The writable side of a call: framed messages go out in batches. */
export interface ServerCall {
  readonly request: Buffer;
  /** Set once the client cancels or the connection drops. */
  readonly cancelled: boolean;
  onCancel(fn: () => void): void;
  /** Queue one encoded message (copied at once); flushes by itself every `batch` messages. */
  send(message: Uint8Array): void;
  /** Send the response headers if not yet sent, write queued messages; resolves when the transport can take more. */
  flush(): Promise<void>;
}

export type Handler = (call: ServerCall) => Promise<void>;

export interface Listener {
  /** "host:port" for TCP (port 0 picks a free one) or "unix:///path" for a unix socket. */
  readonly address: string;
}

export class GrpcServer {
  private readonly handlers = new Map<string, Handler>();
  private readonly servers: http2.Http2Server[] = [];
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly unixPaths: string[] = [];
  readonly boundAddresses: string[] = [];

  constructor(private readonly batch = 256) {}

  handle(path: string, h: Handler): void {
    this.handlers.set(path, h);
  }

  async listen(address: string): Promise<string> {
    const server = http2.createServer({ settings: { initialWindowSize: 4 << 20 } });
    server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
      // A bigger connection window keeps a fast stream from stalling on window updates.
      s.on('connect', () => s.setLocalWindowSize(16 << 20));
    });
    server.on('stream', (stream, headers) => this.dispatch(stream, headers));
    this.servers.push(server);
    let bound: string;
    if (address.startsWith('unix://')) {
      const path = address.slice('unix://'.length);
      rmSync(path, { force: true });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
      chmodSync(path, 0o660);
      this.unixPaths.push(path);
      bound = address;
    } else {
      const colon = address.lastIndexOf(':');
      const host = address.slice(0, colon).replace(/^\[|\]$/g, '') || '127.0.0.1';
      const port = Number(address.slice(colon + 1));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      const a = server.address() as AddressInfo;
      bound = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    }
    this.boundAddresses.push(bound);
    return bound;
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const p of this.unixPaths) rmSync(p, { force: true });
  }

  private dispatch(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = String(headers[':path'] ?? '');
    const handler = this.handlers.get(path);
    stream.on('error', () => {});
    if (!String(headers['content-type'] ?? '').startsWith('application/grpc')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    if (handler === undefined) {
      trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
        trailersOnly(
          stream,
          body[0] === 1 ? GrpcStatus.UNIMPLEMENTED : GrpcStatus.INTERNAL,
          body[0] === 1 ? 'compressed requests are not supported' : 'expected exactly one gRPC message',
        );
        return;
      }
      void this.run(stream, handler, body.subarray(5));
    });
  }

  private async run(stream: http2.ServerHttp2Stream, handler: Handler, request: Buffer): Promise<void> {
    let responded = false;
    let cancelled = false;
    const cancelFns: (() => void)[] = [];
    const cancel = () => {
      if (cancelled) return;
      cancelled = true;
      for (const f of cancelFns) f();
    };
    stream.on('close', cancel);
    stream.on('aborted', cancel);
    // Frames accumulate in one buffer per batch: [0][u32 length][message] each.
    let batch = Buffer.allocUnsafe(64 << 10);
    let batchLen = 0;
    let pendingCount = 0;
    let drained: Promise<void> | undefined;
    const respond = () => {
      if (responded) return;
      responded = true;
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity' },
        { waitForTrailers: true },
      );
    };
    const writeOut = (): boolean => {
      if (pendingCount === 0 || cancelled) return true;
      respond();
      const out = batch.subarray(0, batchLen);
      batch = Buffer.allocUnsafe(Math.max(64 << 10, batchLen));
      batchLen = 0;
      pendingCount = 0;
      return stream.write(out);
    };
    const call: ServerCall = {
      request,
      get cancelled() {
        return cancelled;
      },
      onCancel: (fn) => cancelFns.push(fn),
      send: (message) => {
        const need = batchLen + 5 + message.length;
        if (need > batch.length) {
          const bigger = Buffer.allocUnsafe(Math.max(need, batch.length * 2));
          batch.copy(bigger, 0, 0, batchLen);
          batch = bigger;
        }
        batch[batchLen] = 0;
        batch.writeUInt32BE(message.length, batchLen + 1);
        batch.set(message, batchLen + 5);
        batchLen = need;
        pendingCount++;
        if (pendingCount >= this.batch) writeOut();
      },
      flush: async () => {
        // A follower that is waiting has its headers already: clients see the call as started.
        if (!cancelled) respond();
        if (writeOut() || cancelled) return;
        // Every flush waiting on a full stream shares one wait (one pair of listeners, however
        // many producers a relay merges).
        drained ??= new Promise<void>((resolve) => {
          const done = () => {
            stream.off('drain', done);
            stream.off('close', done);
            drained = undefined;
            resolve();
          };
          stream.on('drain', done);
          stream.on('close', done);
        });
        await drained;
      },
    };
    let status: number = GrpcStatus.OK;
    let message = '';
    try {
      await handler(call);
      writeOut();
    } catch (err) {
      status = err instanceof GrpcError ? err.status : GrpcStatus.UNKNOWN;
      message = (err as Error).message;
    }
    if (cancelled || stream.destroyed || stream.closed) return;
    if (!responded && status !== GrpcStatus.OK) {
      trailersOnly(stream, status, message);
      return;
    }
    respond();
    stream.once('wantTrailers', () => {
      const t: http2.OutgoingHttpHeaders = { 'grpc-status': String(status) };
      if (message !== '') t['grpc-message'] = percentEncode(message);
      stream.sendTrailers(t);
    });
    stream.end();
  }
}

function trailersOnly(stream: http2.ServerHttp2Stream, status: number, message: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc+proto',
      'grpc-status': String(status),
      'grpc-message': percentEncode(message),
    },
    { endStream: true },
  );
}

/** grpc-message encoding: bytes outside printable ASCII, and "%", become %XX (gRPC over HTTP/2 spec). */
export function percentEncode(message: string): string {
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
