// The HTTP/1.1 handler over loopback: real clients (curl, raw sockets) → the handler (through a
// stand-in of the node proxy, test/support/l7-loopback.ts) → a node:http server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createHttpHandler } from '../../../src/proxy/http/http-handler.js';
import { SecretValues } from '../../../src/proxy/http/http-rules.js';
import { httpPolicy, type LoopbackProxy, startLoopbackProxy } from '../../support/l7-loopback.js';
import { until } from '../../support/until.js';

const run = promisify(execFile);

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  bodyHash: string;
}

describe('HTTP/1.1 handler', () => {
  let server: Server;
  let serverPort: number;
  let proxy: LoopbackProxy;
  const seen: Seen[] = [];
  let rawConnections = 0;

  before(async () => {
    server = createServer((req, res) => {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        h.update(c);
      });
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          bodyBytes: n,
          bodyHash: h.digest('hex'),
        });
        const body = `${req.method} ${req.url} ${n}`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    server.on('connection', () => rawConnections++);
    server.on('upgrade', (req, sock: Socket, head: Buffer) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes: 0, bodyHash: '' });
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      if (head.length > 0) sock.write(head);
      sock.pipe(sock);
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    serverPort = (server.address() as { port: number }).port;
    proxy = await startLoopbackProxy(createHttpHandler({ headerTimeoutMs: 300 }), serverPort, [
      httpPolicy([
        { method: 'GET', path: '/api/v1/payments/.*' },
        { method: 'POST', path: '/api/v1/payments$' },
        { method: 'GET', path: '/ws', headers: ['Upgrade: websocket'] },
        { method: 'PUT', path: '/tagged', headerMatches: [{ name: 'X-Tag', value: 'blue', mismatch: 'REPLACE' }] },
      ]),
    ]);
  });
  after(async () => {
    await proxy.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const url = (path: string) => `http://127.0.0.1:${proxy.port}${path}`;

  it('forwards an allowed curl GET and answers a denied DELETE with 403 Access denied', async () => {
    seen.length = 0;
    const ok = await run('curl', ['-s', '-i', url('/api/v1/payments/42')]);
    assert.match(ok.stdout, /^HTTP\/1\.1 200 OK/);
    assert.match(ok.stdout, /GET \/api\/v1\/payments\/42 0$/);
    const no = await run('curl', ['-s', '-i', '-X', 'DELETE', url('/api/v1/payments/42')]);
    assert.match(no.stdout, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(no.stdout, /content-type: text\/plain\r\n/);
    assert.match(no.stdout, /content-length: 15\r\n/);
    assert.ok(no.stdout.endsWith('\r\n\r\nAccess denied\r\n'));
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      ['GET /api/v1/payments/42'],
    );
    const reqs = proxy.records.filter((r) => r.type === 'request').slice(-2);
    assert.deepEqual(
      reqs.map((r) => [r.http?.method, r.verdict, r.http?.code, r.policies?.[0]?.name]),
      [
        ['GET', 'forwarded', undefined, 'l7'],
        ['DELETE', 'denied', 403, 'l7'],
      ],
    );
    const res = proxy.records.filter((r) => r.type === 'response').at(-1);
    assert.equal(res?.http?.code, 200);
    assert.equal(res?.http?.url, `http://127.0.0.1:${proxy.port}/api/v1/payments/42`);
    assert.ok((res?.latencyNs ?? 0) > 0);
    assert.equal(res?.srcIdentity, 2000);
    // As Cilium's access log: the response record carries the request's headers.
    assert.ok(res?.http?.headers?.some((h) => h.key === 'user-agent' && h.value.startsWith('curl/')));
  });

  it('keeps pipelined responses in order with a denied request in the middle, and stays usable', async () => {
    seen.length = 0;
    const text = await exchange(
      proxy.port,
      'GET /api/v1/payments/1 HTTP/1.1\r\nHost: s\r\n\r\n' +
        'DELETE /api/v1/payments/2 HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\n\r\nxxxxx' +
        'GET /api/v1/payments/3 HTTP/1.1\r\nHost: s\r\n\r\n' +
        'POST /api/v1/payments HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n',
      (t) => count(t, 'HTTP/1.1 ') === 4,
    );
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['200', '403', '200', '200']);
    assert.ok(text.indexOf('payments/1 0') < text.indexOf('Access denied'));
    assert.ok(text.indexOf('Access denied') < text.indexOf('payments/3 0'));
    assert.match(text, /POST \/api\/v1\/payments 3$/);
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      ['GET /api/v1/payments/1', 'GET /api/v1/payments/3', 'POST /api/v1/payments'],
    );
  });

  it('moves a large body unchanged, with curl sending Expect: 100-continue', async () => {
    seen.length = 0;
    const body = Buffer.alloc(8 << 20, 7);
    for (let i = 0; i < body.length; i += 4096) body[i] = i & 0xff;
    const file = `/tmp/mbr-http-body-${process.pid}`;
    const { writeFileSync, rmSync } = await import('node:fs');
    writeFileSync(file, body);
    try {
      const r = await run('curl', ['-s', '-v', '--data-binary', `@${file}`, url('/api/v1/payments')]);
      assert.match(r.stderr, /Expect: 100-continue/);
      assert.equal(r.stdout, `POST /api/v1/payments ${body.length}`);
      const r2 = await run('curl', [
        '-s',
        '-H',
        'Transfer-Encoding: chunked',
        '--data-binary',
        `@${file}`,
        url('/api/v1/payments'),
      ]);
      assert.equal(r2.stdout, `POST /api/v1/payments ${body.length}`);
    } finally {
      rmSync(file, { force: true });
    }
    const want = createHash('sha256').update(body).digest('hex');
    assert.deepEqual(
      seen.map((s) => s.bodyHash),
      [want, want],
    );
  });

  it('carries a slow chunked body sent in pieces', async () => {
    const s = await open(proxy.port);
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.write('POST /api/v1/payments HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 5; i++) {
      s.write('4\r\n');
      await tick(20);
      s.write('abcd\r');
      await tick(20);
      s.write('\n');
    }
    s.write('0\r\n\r\n');
    await until(() => text.includes('POST /api/v1/payments 20'), { what: 'the slow body answered' });
    s.destroy();
  });

  it('switches to a byte pipe after an allowed WebSocket upgrade', async () => {
    const s = await open(proxy.port);
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.write(
      'GET /ws HTTP/1.1\r\nHost: s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    await until(() => text.includes('101 Switching Protocols'), { what: '101' });
    // After the switch, bytes that are not HTTP go through both ways untouched.
    s.write('\x81\x05hello DELETE / HTTP/1.1\r\n\r\n');
    await until(() => text.includes('\x81\x05hello DELETE / HTTP/1.1\r\n\r\n'), { what: 'the echo' });
    s.destroy();
  });

  it('takes Upgrade: h2c off a request, so HTTP/2 cannot go past the HTTP/1 rules', async () => {
    seen.length = 0;
    const text = await exchange(
      proxy.port,
      'GET /api/v1/payments/7 HTTP/1.1\r\nHost: s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n' +
        'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
      (t) => t.includes('payments/7 0'),
    );
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.equal(seen[0]?.headers.upgrade, undefined);
    assert.equal(seen[0]?.headers['http2-settings'], undefined);
  });

  it('answers a denied Expect: 100-continue upload with 403 and closes (its body may never come)', async () => {
    const text = await exchange(
      proxy.port,
      'POST /nope HTTP/1.1\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n',
      (t) => t.includes('Access denied'),
      true,
    );
    assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(text, /\r\nconnection: close\r\n/);
  });

  it('refuses an upgrade the rules do not allow', async () => {
    const text = await exchange(
      proxy.port,
      'GET /other HTTP/1.1\r\nHost: s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      (t) => t.includes('Access denied'),
    );
    assert.match(text, /^HTTP\/1\.1 403/);
  });

  it('applies a REPLACE header action to what the server sees', async () => {
    seen.length = 0;
    await run('curl', ['-s', '-X', 'PUT', '-H', 'X-Tag: red', url('/tagged')]);
    await run('curl', ['-s', '-X', 'PUT', url('/tagged')]);
    assert.deepEqual(
      seen.map((s) => s.headers['x-tag']),
      ['blue', 'blue'],
    );
  });

  it('compares a header with a Secret and keeps its value out of records', async () => {
    const secrets = new SecretValues();
    secrets.set([{ namespace: 'shop', name: 'token', data: { value: 's3cr3t' } }]);
    const p = await startLoopbackProxy(createHttpHandler({ secrets }), serverPort, [
      httpPolicy([{ headerMatches: [{ name: 'Authorization', secret: { namespace: 'shop', name: 'token' } }] }]),
    ]);
    try {
      const ok = await run('curl', ['-s', '-H', 'Authorization: s3cr3t', `http://127.0.0.1:${p.port}/x`]);
      assert.equal(ok.stdout, 'GET /x 0');
      const no = await run('curl', ['-s', '-H', 'Authorization: guess', `http://127.0.0.1:${p.port}/x`]);
      assert.equal(no.stdout, 'Access denied\r\n');
      const auth = p.records.flatMap((r) => r.http?.headers ?? []).filter((h) => h.key === 'authorization');
      assert.ok(auth.length >= 2 && auth.every((h) => h.value === '[redacted]'), JSON.stringify(auth));
      assert.ok(!JSON.stringify(p.records).includes('s3cr3t'));
    } finally {
      await p.close();
    }
  });

  const SMUGGLING: Array<[string, string]> = [
    [
      'CL.TE',
      'POST /api/v1/payments HTTP/1.1\r\nHost: s\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
    ],
    [
      'TE.TE obfuscated',
      'POST /api/v1/payments HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n0\r\n\r\n',
    ],
    ['CL.CL', 'POST /api/v1/payments HTTP/1.1\r\nHost: s\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n'],
    ['obs-fold', 'GET /api/v1/payments/1 HTTP/1.1\r\nHost: s\r\nX: a\r\n b\r\n\r\n'],
    ['bare LF', 'GET /api/v1/payments/1 HTTP/1.1\nHost: s\n\n'],
    ['garbage', '\x00\x01\x02\x03 hello\r\n\r\n'],
  ];
  for (const [name, bytes] of SMUGGLING)
    it(`answers ${name} with 400, forwards nothing and keeps serving`, async () => {
      const before = rawConnections;
      const upstreamBefore = proxy.upstreamConnects;
      const text = await exchange(proxy.port, bytes, (t) => t.includes('\r\n\r\nBad Request'), true);
      assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.equal(proxy.upstreamConnects, upstreamBefore);
      assert.equal(rawConnections, before);
      const ok = await run('curl', ['-s', url('/api/v1/payments/9')]);
      assert.equal(ok.stdout, 'GET /api/v1/payments/9 0');
    });

  it('answers a bad chunk after an allowed head with 400 and closes the server side', async () => {
    const text = await exchange(
      proxy.port,
      'POST /api/v1/payments HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      (t) => t.includes('Bad Request'),
      true,
    );
    assert.match(text, /^HTTP\/1\.1 400/);
  });

  it('answers an oversized head with 431', async () => {
    const text = await exchange(
      proxy.port,
      `GET /api/v1/payments/1 HTTP/1.1\r\nHost: s\r\nX: ${'a'.repeat(70_000)}\r\n\r\n`,
      (t) => t.includes('431'),
      true,
    );
    assert.match(text, /^HTTP\/1\.1 431 Request Header Fields Too Large/);
  });

  it('answers a head that does not complete in time with 408 and closes', async () => {
    const text = await exchange(
      proxy.port,
      'GET /api/v1/payments/1 HTTP/1.1\r\nHost: s\r\n',
      (t) => t.includes('408'),
      true,
    );
    assert.match(text, /^HTTP\/1\.1 408 Request Timeout/);
  });

  it('decides each request against the rules of its own time', async () => {
    const s = await open(proxy.port);
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.write('GET /api/v1/payments/1 HTTP/1.1\r\nHost: s\r\n\r\n');
    await until(() => count(text, 'HTTP/1.1 200') === 1, { what: 'first answer' });
    const saved = proxy.policies;
    proxy.policies = [httpPolicy([{ method: 'POST' }])];
    try {
      s.write('GET /api/v1/payments/1 HTTP/1.1\r\nHost: s\r\n\r\n');
      await until(() => text.includes('403 Forbidden'), { what: 'the second answer denied' });
    } finally {
      proxy.policies = saved;
      s.destroy();
    }
  });
});

function tick(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function count(s: string, needle: string): number {
  return s.split(needle).length - 1;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends bytes on a new connection and collects the answer until `done` (or the close, if `toClose`). */
async function exchange(port: number, bytes: string, done: (t: string) => boolean, toClose = false): Promise<string> {
  const s = await open(port);
  let text = '';
  let closed = false;
  s.on('data', (c: Buffer) => (text += c.toString('latin1')));
  s.on('close', () => (closed = true));
  s.on('error', () => {});
  s.write(Buffer.from(bytes, 'latin1'));
  await until(() => done(text) && (!toClose || closed), { what: 'the answer', timeoutMs: 5000 });
  s.destroy();
  return text;
}
