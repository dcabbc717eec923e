// Fuzzes what the DNS proxy reads from the network: any bytes as a query and as an answer, and
// mutations of real queries and answers (CNAME chains, compression pointers, counts that lie).
// Decoding never throws and never hangs; what it returns is well-formed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { decodeAnswer, decodeQuery, encodeStatusResponse, RCODE_REFUSED } from '../../src/proxy/dns/dns-message.js';
import { fuzzProperty } from '../support/fuzz.js';

const SEEDS = [
  dnsPacket.encode({ type: 'query', id: 1, flags: 256, questions: [{ type: 'A', name: 'api.stripe.com' }] }),
  dnsPacket.encode({
    type: 'response',
    id: 2,
    flags: 0x8180,
    questions: [{ type: 'A', name: 'www.a.com' }],
    answers: [
      { type: 'CNAME', name: 'www.a.com', ttl: 60, data: 'edge.cdn.net' },
      { type: 'A', name: 'edge.cdn.net', ttl: 20, data: '1.2.3.4' },
      { type: 'AAAA', name: 'edge.cdn.net', ttl: 20, data: '::1' },
    ],
  }),
];

const mutated = fc
  .tuple(
    fc.constantFrom(...SEEDS),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    fc.option(fc.nat(), { nil: undefined }),
  )
  .map(([seed, flips, cut]) => {
    const b = Buffer.from(seed);
    for (const [at, v] of flips) b[at % b.length] = v;
    return cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
  });

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
  mutated,
);

describe('DNS message decoding (fuzz)', () => {
  it('never throws on any bytes, and what it decodes is well-formed', () => {
    fuzzProperty(bytes, (b) => {
      const q = decodeQuery(b);
      if (q) {
        assert.ok(q.questions.length > 0);
        for (const x of q.questions) assert.ok(x.name.endsWith('.'));
        // A REFUSED answer can always be built for what was decoded.
        assert.ok(encodeStatusResponse(q, RCODE_REFUSED).length >= 12);
      }
      const a = decodeAnswer(b);
      if (a) {
        assert.ok(Number.isFinite(a.ttlSeconds) && a.ttlSeconds >= 0);
        assert.ok(a.rcode >= 0 && a.rcode <= 15);
        assert.equal(a.names[0], a.query);
        assert.ok(a.names.length <= 1 + a.cnames.length);
      }
    });
  });
});
