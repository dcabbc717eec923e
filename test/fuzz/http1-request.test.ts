// Fuzzes the proxy's HTTP/1.1 request reader with what a client could send: any bytes, and valid
// requests with bytes flipped, inserted or cut, fed in random pieces. The reader either reports
// messages or throws HttpParseError (the proxy's 400/431); it never throws anything else, and
// every body byte it hands on lies inside the input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  Http1Reader,
  HttpParseError,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from '../../src/proxy/http/http1-parser.js';
import { fuzzProperty, returnsOrThrowsTyped } from '../support/fuzz.js';

const VALID = [
  'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n',
  'GET / HTTP/1.0\r\n\r\n',
];

const mutated = fc
  .tuple(
    fc.constantFrom(...VALID),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'insert', 'cut')), {
      maxLength: 6,
    }),
  )
  .map(([text, edits]) => {
    const b = [...Buffer.from(text.repeat(2), 'latin1')];
    for (const [at, byte, op] of edits) {
      const i = at % (b.length + 1);
      if (op === 'flip' && i < b.length) b[i] = byte;
      else if (op === 'insert') b.splice(i, 0, byte);
      else b.splice(i, 1);
    }
    return Buffer.from(b);
  });

const input = fc.tuple(
  fc.oneof(
    fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
    mutated,
  ),
  fc.nat(64),
);

describe('fuzz: HTTP/1.1 request reader', () => {
  it('reports messages or throws HttpParseError, for any bytes in any pieces', () => {
    fuzzProperty(input, ([bytes, step]) => {
      const reader = new Http1Reader<RequestHead>((raw) => parseRequestHead(raw), true, 1024);
      const sink = {
        onHead: (h: RequestHead) => {
          assert.ok(h.raw.length <= 1024);
          return true;
        },
        onBody: (b: Buffer) => assert.ok(b.length <= bytes.length),
        onEnd: () => true,
      };
      const piece = step + 1;
      returnsOrThrowsTyped(
        () => {
          for (let i = 0; i < bytes.length; i += piece) reader.push(bytes.subarray(i, i + piece), sink);
        },
        (e) => e instanceof HttpParseError,
      );
    });
  });

  it('reads server responses (any bytes, any pieces) or throws HttpParseError', () => {
    const responses = fc
      .tuple(
        fc.constantFrom(
          'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
          'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
          'HTTP/1.0 200 OK\r\n\r\nrest of the body',
        ),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      )
      .map(([text, flips]) => {
        const b = Buffer.from(text, 'latin1');
        for (const [at, byte] of flips) b[at % b.length] = byte;
        return b;
      });
    fuzzProperty(
      fc.tuple(
        fc.oneof(
          fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a)),
          responses,
        ),
        fc.nat(32),
      ),
      ([bytes, step]) => {
        const reader = new Http1Reader<ResponseHead>((raw) => parseResponseHead(raw, 'GET'), false, 1024);
        const sink = { onHead: () => true, onBody: () => {}, onEnd: () => true };
        returnsOrThrowsTyped(
          () => {
            for (let i = 0; i < bytes.length; i += step + 1) reader.push(bytes.subarray(i, i + step + 1), sink);
          },
          (e) => e instanceof HttpParseError,
        );
      },
    );
  });
});
