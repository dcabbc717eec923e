// Fuzzes what the Kafka handler reads from untrusted peers: request frames (header and topic
// lists) and the first bytes of broker responses. Parsing never throws: it returns a request or a
// malformed / unsupported-version verdict, and a deny response built from any parsed request is a
// well-formed frame.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { buildDenyResponse } from '../../src/proxy/kafka/kafka-deny.js';
import { parseKafkaRequest } from '../../src/proxy/kafka/kafka-request.js';
import { responseErrorCode } from '../../src/proxy/kafka/kafka-response.js';
import { capturedExchanges } from '../proxy/kafka/kafka-fixtures.js';
import { fuzzProperty } from '../support/fuzz.js';

const captured = capturedExchanges();
const requests = captured.map((e) => e.request);

/** A captured frame with one bit flipped and cut at some length, or random bytes. */
const hostileFrame = fc.oneof(
  fc.record({ i: fc.nat(requests.length - 1), cut: fc.nat(), flip: fc.nat(), bit: fc.nat(7) }).map((x) => {
    const f = Buffer.from(requests[x.i]!);
    const at = 4 + (x.flip % (f.length - 4));
    f[at] = f[at]! ^ (1 << x.bit);
    return f.subarray(0, 4 + (x.cut % (f.length - 3)));
  }),
  fc.uint8Array({ minLength: 4, maxLength: 300 }).map((a) => Buffer.from(a)),
);

describe('Kafka frame fuzzing', () => {
  it('parses any cut, bit-flipped or random request frame without throwing', () => {
    fuzzProperty(hostileFrame, (frame) => {
      const p = parseKafkaRequest(frame);
      if (!p.ok) {
        assert.ok(p.reason === 'malformed' || p.reason === 'unsupported-version');
        return;
      }
      const deny = buildDenyResponse(p.request);
      if (deny) {
        assert.equal(deny.readInt32BE(0), deny.length - 4);
        assert.equal(deny.readInt32BE(4), p.request.correlationId);
      }
    });
  });

  it('reads a response error code from any peek without throwing', () => {
    const req = parseKafkaRequest(requests[0]!);
    assert.ok(req.ok);
    fuzzProperty(
      fc.record({
        key: fc.integer({ min: 0, max: 20 }),
        v: fc.nat(15),
        peek: fc.uint8Array({ minLength: 8, maxLength: 15 }),
      }),
      (x) => {
        const code = responseErrorCode(
          { apiKey: x.key, apiVersion: x.v, correlationId: 1, clientId: null },
          Buffer.from(x.peek),
        );
        assert.ok(code === undefined || Number.isInteger(code));
      },
    );
  });
});
