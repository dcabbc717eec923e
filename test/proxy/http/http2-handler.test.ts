// HTTP/2 (h2c, prior knowledge) and gRPC through the HTTP handler over loopback: nghttp and
// curl, and @grpc/grpc-js client and server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { connect as connectH2, createServer, type Http2Server } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { createHttpHandler } from '../../../src/proxy/http/http-handler.js';
import { httpPolicy, type LoopbackProxy, startLoopbackProxy } from '../../support/l7-loopback.js';

const run = promisify(execFile);

function bodyFile(n: number): string {
  const f = join(tmpdir(), `mbr-h2-body-${process.pid}-${n}`);
  writeFileSync(f, Buffer.alloc(n, 0x78));
  return f;
}

describe('HTTP/2 handler', () => {
  let server: Http2Server;
  let proxy: LoopbackProxy;
  const seen: string[] = [];

  before(async () => {
    server = createServer();
    server.on('sessionError', () => {});
    server.on('stream', (stream, headers) => {
      seen.push(`${headers[':method']} ${headers[':path']} ${headers['x-tag'] ?? ''}`.trim());
      let n = 0;
      stream.on('data', (c: Buffer) => (n += c.length));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'text/plain' });
        stream.end(`${headers[':method']} ${headers[':path']} ${n}`);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    proxy = await startLoopbackProxy(createHttpHandler(), port, [
      httpPolicy([
        { method: 'GET', path: '/api/v1/payments/.*' },
        {
          method: 'POST',
          path: '/api/v1/payments$',
          headerMatches: [{ name: 'X-Tag', value: 'blue', mismatch: 'ADD' }],
        },
      ]),
    ]);
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const url = (p: string) => `http://127.0.0.1:${proxy.port}${p}`;

  it('decides each stream of one nghttp connection on its own', async () => {
    seen.length = 0;
    const r = await run('nghttp', ['-v', url('/api/v1/payments/1'), url('/admin'), url('/api/v1/payments/2')]);
    // One connection: one SETTINGS exchange, three streams.
    assert.equal(r.stdout.match(/send SETTINGS frame <length=\d+, flags=0x00/g)?.length, 1);
    const statuses = [...r.stdout.matchAll(/recv \(stream_id=(\d+)\) :status: (\d+)/g)].map((m) => `${m[1]}:${m[2]}`);
    assert.deepEqual(statuses.sort(), ['13:200', '15:403', '17:200']);
    assert.match(r.stdout, /Access denied/);
    assert.deepEqual(seen.sort(), ['GET /api/v1/payments/1', 'GET /api/v1/payments/2']);
    const reqs = proxy.records.filter((x) => x.type === 'request' && x.http?.protocol === 'HTTP/2').slice(-3);
    assert.deepEqual(reqs.map((x) => `${x.http?.url} ${x.verdict}`).sort(), [
      `http://127.0.0.1:${proxy.port}/admin denied`,
      `http://127.0.0.1:${proxy.port}/api/v1/payments/1 forwarded`,
      `http://127.0.0.1:${proxy.port}/api/v1/payments/2 forwarded`,
    ]);
    const res = proxy.records.filter((x) => x.type === 'response' && x.http?.protocol === 'HTTP/2');
    assert.ok(res.length >= 2 && res.every((x) => x.http?.code === 200 && (x.latencyNs ?? 0) > 0));
  });

  it('carries a request body and applies a header action (curl, prior knowledge)', async () => {
    seen.length = 0;
    const body = bodyFile(100_000);
    try {
      const r = await run('curl', [
        '-s',
        '--http2-prior-knowledge',
        '--data-binary',
        `@${body}`,
        url('/api/v1/payments'),
      ]);
      assert.equal(r.stdout, 'POST /api/v1/payments 100000');
      assert.deepEqual(seen, ['POST /api/v1/payments blue']);
      // A denied upload is answered at once and its stream reset (NO_ERROR): curl may call that an
      // error while still sending; what it received is the 403.
      const denied = await run('curl', [
        '-s',
        '-i',
        '--http2-prior-knowledge',
        '--data-binary',
        `@${body}`,
        url('/nope'),
      ]).catch((e: { stdout: string }) => e);
      assert.match(denied.stdout, /^HTTP\/2 403/);
      assert.ok(denied.stdout.endsWith('Access denied\r\n'));
      assert.deepEqual(seen, ['POST /api/v1/payments blue']);
    } finally {
      rmSync(body, { force: true });
    }
  });

  it('keeps a connection usable after denied uploads larger than its window (window given back)', async () => {
    const session = connectH2(url('/'));
    const post = (path: string, n: number) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': path });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end(Buffer.alloc(n, 0x61));
      });
    try {
      // 5 × 60 kB denied on one connection: well past the 64 kB connection window.
      const denied = await Promise.all([1, 2, 3, 4, 5].map(() => post('/nope', 60_000)));
      assert.deepEqual(
        denied.map((d) => d.status),
        [403, 403, 403, 403, 403],
      );
      const ok = await post('/api/v1/payments', 60_000);
      assert.deepEqual(ok, { status: 200, body: 'POST /api/v1/payments 60000' });
    } finally {
      session.close();
    }
  });

  it('answers a denied gRPC call with PERMISSION_DENIED and forwards an allowed one', async () => {
    const gsrv = new grpc.Server();
    const ident = (b: Buffer) => b;
    const def = (path: string) => ({
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: ident,
      requestDeserialize: ident,
      responseSerialize: ident,
      responseDeserialize: ident,
    });
    gsrv.addService({ Pay: def('/shop.Payments/Pay'), Refund: def('/shop.Payments/Refund') } as never, {
      Pay: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
      Refund: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
    });
    const gport = await new Promise<number>((res, rej) =>
      gsrv.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    const gproxy = await startLoopbackProxy(createHttpHandler(), gport, [
      httpPolicy([{ method: 'POST', path: '/shop\\.Payments/Pay' }]),
    ]);
    const client = new grpc.Client(`127.0.0.1:${gproxy.port}`, grpc.credentials.createInsecure());
    const call = (path: string) =>
      new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) =>
        client.makeUnaryRequest(path, ident, ident, Buffer.from('hi'), (err, res) =>
          resolve({ err: err as grpc.ServiceError | null, res }),
        ),
      );
    try {
      const ok = await call('/shop.Payments/Pay');
      assert.equal(ok.err, null);
      assert.equal(ok.res?.toString(), 'hi');
      const no = await call('/shop.Payments/Refund');
      assert.equal(no.err?.code, grpc.status.PERMISSION_DENIED);
      // The same connection still works.
      const again = await call('/shop.Payments/Pay');
      assert.equal(again.err, null);
      const verdicts = gproxy.records
        .filter((r) => r.type === 'request')
        .map((r) => `${r.http?.url.split('/').slice(3).join('/')} ${r.verdict}`);
      assert.deepEqual(verdicts, [
        'shop.Payments/Pay forwarded',
        'shop.Payments/Refund denied',
        'shop.Payments/Pay forwarded',
      ]);
    } finally {
      client.close();
      await gproxy.close();
      gsrv.forceShutdown();
    }
  });

  it('goes away on a broken header block and keeps serving others', async () => {
    const { connect } = await import('node:net');
    const s = connect(proxy.port, '127.0.0.1');
    let text = Buffer.alloc(0);
    let closed = false;
    s.on('data', (c: Buffer) => (text = Buffer.concat([text, c])));
    s.on('close', () => (closed = true));
    s.on('error', () => {});
    // Preface, empty SETTINGS, then HEADERS on stream 1 whose block indexes past every table.
    const hdr = Buffer.from([0, 0, 1, 1, 0x05, 0, 0, 0, 1, 0xff]);
    s.write(
      Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), hdr]),
    );
    const { until } = await import('../../support/until.js');
    await until(() => closed, { what: 'the connection closed' });
    // A GOAWAY frame (type 7) is somewhere in what came back.
    let sawGoAway = false;
    for (let i = 0; i + 9 <= text.length; ) {
      const len = text.readUIntBE(i, 3);
      if (text[i + 3] === 7) sawGoAway = true;
      i += 9 + len;
    }
    assert.ok(sawGoAway);
    const r = await run('curl', ['-s', '--http2-prior-knowledge', url('/api/v1/payments/3')]);
    assert.equal(r.stdout, 'GET /api/v1/payments/3 0');
  });
});
