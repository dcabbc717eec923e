import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BodyTracker,
  Http1Reader,
  HttpParseError,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
} from '../../../src/proxy/http/http1-parser.js';

/** Feeds `text` (optionally split at every byte) and returns what the reader reported. */
function read(text: string | Buffer, opts: { split?: number; maxHead?: number } = {}) {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const reader = new Http1Reader<RequestHead>((raw) => parseRequestHead(raw), true, opts.maxHead);
  const events: string[] = [];
  const heads: RequestHead[] = [];
  let body = '';
  const sink = {
    onHead: (h: RequestHead) => {
      heads.push(h);
      events.push(`head ${h.method} ${h.target}`);
      return true;
    },
    onBody: (b: Buffer) => {
      body += b.toString('latin1');
    },
    onEnd: () => {
      events.push(`end ${JSON.stringify(body)}`);
      body = '';
      return true;
    },
  };
  const step = opts.split ?? bytes.length;
  for (let i = 0; i < bytes.length; i += step) reader.push(bytes.subarray(i, i + step), sink);
  return { events, heads, reader };
}

function status(text: string, split?: number): number {
  try {
    read(text, { split });
  } catch (e) {
    assert.ok(e instanceof HttpParseError, String(e));
    return e.status;
  }
  return 0;
}

describe('HTTP/1.1 request framing', () => {
  it('reads pipelined requests with length and chunked bodies, byte by byte too', () => {
    const text =
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
      'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
      'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n' +
      'GET /d HTTP/1.1\r\nHost: x\r\n\r\n';
    const want = [
      'head GET /a',
      'end ""',
      'head POST /b',
      'end "hello"',
      'head POST /c',
      'end "5;ext=1\\r\\nhello\\r\\n0\\r\\nX-Trailer: t\\r\\n\\r\\n"',
      'head GET /d',
      'end ""',
    ];
    assert.deepEqual(read(text).events, want);
    assert.deepEqual(read(text, { split: 1 }).events, want);
    assert.deepEqual(read(text, { split: 7 }).events, want);
  });

  it('hands on body bytes as slices of the pushed Buffer, not copies', () => {
    const buf = Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    const reader = new Http1Reader<RequestHead>((raw) => parseRequestHead(raw), true);
    let got: Buffer | undefined;
    reader.push(buf, { onHead: () => true, onBody: (b) => (got = b), onEnd: () => true });
    assert.equal(got?.buffer, buf.buffer);
  });

  it('reports keep-alive, Expect, Upgrade and Host', () => {
    const h = read('GET / HTTP/1.1\r\nHost: a.b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n').heads[0];
    assert.equal(h.upgrade, 'websocket');
    assert.equal(h.keepAlive, true);
    assert.equal(h.host, 'a.b');
    const h10 = read('GET / HTTP/1.0\r\n\r\n').heads[0];
    assert.equal(h10.keepAlive, false);
    const c = read(
      'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx',
    ).heads[0];
    assert.equal(c.expectContinue, true);
    assert.equal(c.keepAlive, false);
  });

  it('skips empty lines before a request line', () => {
    assert.deepEqual(read('\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n', { split: 1 }).events, ['head GET /', 'end ""']);
  });

  // Request smuggling and malformed heads: each is refused with its status, nothing reported.
  const REFUSED: Array<[string, string, number]> = [
    ['CL and TE', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['TE and CL', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n', 400],
    ['two equal Content-Lengths', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n', 400],
    [
      'two different Content-Lengths',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n',
      400,
    ],
    ['a Content-Length list', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n', 400],
    ['a signed Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n', 400],
    ['a hex Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x4\r\n\r\n', 400],
    ['a huge Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n', 400],
    ['TE not chunked last', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400],
    ['TE identity', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n', 400],
    [
      'TE chunked twice',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
      400,
    ],
    ['TE xchunked', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n', 400],
    ['TE chunked with a parameter', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;q=1\r\n\r\n', 400],
    ['TE with a vertical tab', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked\r\n\r\n', 400],
    ['TE with space before the colon', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n', 400],
    ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['TE folded onto the next line', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n', 400],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n', 400],
    ['bare LF line ends', 'GET / HTTP/1.1\nHost: x\n\n', 400],
    ['a bare LF inside the head', 'GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n', 400],
    ['a bare CR inside a value', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n', 400],
    ['NUL in a value', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n', 400],
    ['a control byte in a value', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n', 400],
    ['a space in a field name', 'GET / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n', 400],
    ['an empty field name', 'GET / HTTP/1.1\r\nHost: x\r\n: z\r\n\r\n', 400],
    ['no Host', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['a Host with userinfo', 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', 400],
    ['an invalid method', 'G(T / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['two spaces in the request line', 'GET  / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a raw space in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a non-ASCII target', 'GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a bad version', 'GET / HTTP/1.x\r\nHost: x\r\n\r\n', 400],
    ['HTTP/2.0 in a request line', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
    ['an unknown Expect', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n', 417],
    ['garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', 400],
  ];
  for (const [name, text, want] of REFUSED)
    it(`refuses ${name} with ${want}`, () => {
      assert.equal(status(text), want);
      assert.equal(status(text, 1), want);
    });

  const CHUNKED = 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
  const BAD_CHUNKS: Array<[string, string]> = [
    ['a chunk size overflowing 64 bits', 'ffffffffffffffff1\r\n'],
    ['a 16-digit chunk size', '1000000000000000\r\n'],
    ['a negative chunk size', '-1\r\n'],
    ['a chunk size with a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size with trailing space and no extension', '5 \r\nhello\r\n0\r\n\r\n'],
    ['a chunk size line ending in bare LF', '5\nhello\r\n0\r\n\r\n'],
    ['chunk data longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
    ['chunk data ending in bare LF', '5\r\nhello\n0\r\n\r\n'],
    ['an empty chunk size', '\r\nhello\r\n0\r\n\r\n'],
    ['an extension without a name', '5;\r\nhello\r\n0\r\n\r\n'],
    ['an extension with a bad value', '5;a=b c\r\nhello\r\n0\r\n\r\n'],
    ['an extension with a control byte', '5;a=\x01\r\nhello\r\n0\r\n\r\n'],
    ['an unterminated quoted extension', '5;a="b\r\nhello\r\n0\r\n\r\n'],
    ['a folded trailer', '0\r\nX: a\r\n b\r\n\r\n'],
    ['a trailer with a bare LF', '0\r\nX: a\n\r\n'],
    ['a trailer without a colon', '0\r\nX\r\n\r\n'],
  ];
  for (const [name, body] of BAD_CHUNKS)
    it(`refuses ${name}`, () => {
      assert.equal(status(CHUNKED + body), 400);
      assert.equal(status(CHUNKED + body, 1), 400);
    });

  it('accepts chunk extensions with quoted values and whitespace', () => {
    const r = read(`${CHUNKED}5 ; a = "x\\"y" ;b\r\nhello\r\n0\r\n\r\n`, { split: 1 });
    assert.deepEqual(r.events.length, 2);
  });

  it('answers an oversized head with 431, split or whole', () => {
    const big = `GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(2000)}\r\n\r\n`;
    for (const split of [undefined, 100])
      assert.throws(
        () => read(big, { split, maxHead: 1024 }),
        (e: unknown) => e instanceof HttpParseError && e.status === 431,
      );
  });

  it('answers more than 100 header fields with 431', () => {
    const many = `GET / HTTP/1.1\r\nHost: x\r\n${'X: y\r\n'.repeat(101)}\r\n`;
    assert.equal(status(many), 431);
  });

  it('tracks a chunked body split anywhere', () => {
    const body = '1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n';
    for (let cut = 1; cut < body.length; cut++) {
      const t = new BodyTracker({ kind: 'chunked' });
      const a = Buffer.from(body.slice(0, cut));
      const b = Buffer.from(`${body.slice(cut)}NEXT`);
      assert.equal(t.consume(a, 0), a.length);
      assert.equal(t.done, false);
      assert.equal(t.consume(b, 0), b.length - 4);
      assert.equal(t.done, true);
    }
  });
});

describe('HTTP/1.1 response framing', () => {
  const res = (text: string, method = 'GET') => parseResponseHead(Buffer.from(text, 'latin1'), method);
  it('finds the body framing of each kind of response', () => {
    assert.deepEqual(res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n').body, { kind: 'length', length: 5 });
    assert.deepEqual(res('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n').body, { kind: 'chunked' });
    assert.deepEqual(res('HTTP/1.1 200 OK\r\n\r\n').body, { kind: 'close' });
    assert.equal(res('HTTP/1.1 200 OK\r\n\r\n').keepAlive, false);
    assert.deepEqual(res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'HEAD').body, { kind: 'none' });
    assert.deepEqual(res('HTTP/1.1 204 No Content\r\n\r\n').body, { kind: 'none' });
    assert.deepEqual(res('HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n').body, { kind: 'none' });
    const interim = res('HTTP/1.1 100 Continue\r\n\r\n');
    assert.equal(interim.isInterim, true);
    assert.deepEqual(interim.body, { kind: 'none' });
    assert.equal(res('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n').isInterim, false);
    assert.deepEqual(res('HTTP/1.1 200 Connection established\r\n\r\n', 'CONNECT').body, { kind: 'none' });
  });
  it('refuses conflicting lengths and a broken status line', () => {
    assert.throws(() => res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n'), HttpParseError);
    assert.throws(() => res('HTTP/1.1 2000 OK\r\n\r\n'), HttpParseError);
  });
});
