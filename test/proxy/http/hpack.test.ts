import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeHeaders, HpackDecoder, HpackError } from '../../../src/proxy/http/hpack.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('HPACK', () => {
  it('decodes the RFC 7541 C.4 requests (Huffman, dynamic table) in sequence', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    assert.deepEqual(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ]);
    assert.deepEqual(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')), [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ]);
  });

  it('round-trips what it encodes without touching the table', () => {
    const fields: Array<[string, string]> = [
      [':method', 'GET'],
      [':path', '/shop.Payments/Pay'],
      ['content-type', 'application/grpc'],
      ['x-long', 'v'.repeat(300)],
    ];
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(encodeHeaders(fields)), fields);
    assert.deepEqual(d.decode(encodeHeaders(fields)), fields);
  });

  it('refuses bad indexes, truncation and bad Huffman padding', () => {
    for (const bad of ['ff', '80', '41', '4188', '418cf1e3c2e5f23a6ba0ab90f400', 'be'])
      assert.throws(() => new HpackDecoder().decode(hex(bad)), HpackError, bad);
  });
});
