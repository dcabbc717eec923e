import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDenyResponse, TOPIC_AUTHORIZATION_FAILED } from '../../../src/proxy/kafka/kafka-deny.js';
import { type KafkaRequest, parseKafkaRequest } from '../../../src/proxy/kafka/kafka-request.js';
import { responseErrorCode } from '../../../src/proxy/kafka/kafka-response.js';
import { KafkaWriter } from '../../../src/proxy/kafka/kafka-wire.js';
import { capturedExchanges, KAFKAJS_TOPIC_APIS, kafkajsExchange } from './kafka-fixtures.js';

const TOPIC_KEYS = new Set([0, 1, 2, 3, 8, 9]);

function parsed(frame: Buffer): KafkaRequest {
  const p = parseKafkaRequest(frame);
  assert.ok(p.ok, `parse failed: ${p.ok ? '' : `${p.reason}: ${p.detail}`}`);
  return p.request;
}

describe('Kafka request parsing on frames real clients sent', () => {
  const captured = capturedExchanges();

  it('holds what kcat and kafkajs send for every API a producer and a consumer group use', () => {
    const seen = new Set(captured.map((e) => `${e.client} ${e.apiKey}`));
    for (const client of ['kcat', 'kafkajs'])
      for (const key of [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18])
        assert.ok(seen.has(`${client} ${key}`), `${client} API key ${key} captured`);
  });

  for (const e of captured)
    it(`reads the header and topics of ${e.client}'s API ${e.apiKey} v${e.apiVersion}`, () => {
      const req = parsed(e.request);
      assert.equal(req.apiKey, e.apiKey);
      assert.equal(req.apiVersion, e.apiVersion);
      assert.equal(req.clientId, e.client === 'kcat' ? 'rdkafka' : 'capture');
      assert.equal(req.expectsResponse, true);
      if (!TOPIC_KEYS.has(e.apiKey)) assert.equal(req.topics, undefined);
      else if (e.apiKey !== 3 && e.apiKey !== 9) assert.ok(req.topics!.length > 0);
      for (const t of req.topics ?? []) assert.match(t.name, /^(orders\.(created|processed)|payment-events)$/);
      if (e.response) assert.equal(e.response.readInt32BE(4), req.correlationId, 'the broker answered this request');
    });

  it('reads the broker top-level error code of the group and ApiVersions responses', () => {
    for (const e of captured) {
      if (!e.response) continue;
      const code = responseErrorCode(parsed(e.request), e.response.subarray(0, 15));
      if ([10, 11, 12, 13, 14].includes(e.apiKey) || (e.apiKey === 18 && e.apiVersion === 0)) assert.equal(code, 0);
      // kcat asks ApiVersions v3 first; the broker answers UNSUPPORTED_VERSION and kcat falls back to v0.
      if (e.apiKey === 18 && e.apiVersion === 3) assert.equal(code, 35);
      if ([0, 2, 3, 8, 9].includes(e.apiKey)) assert.equal(code, undefined);
    }
  });

  it('names the topic of kcat produce and of kafkajs OffsetCommit with their partitions', () => {
    const produce = captured.find((e) => e.client === 'kcat' && e.apiKey === 0)!;
    assert.deepEqual(parsed(produce.request).topics, [{ name: 'orders.processed', partitions: [0] }]);
    const commit = captured.find((e) => e.client === 'kafkajs' && e.apiKey === 8)!;
    assert.deepEqual(parsed(commit.request).topics, [{ name: 'orders.processed', partitions: [0] }]);
  });
});

describe('Kafka requests and deny responses at every version kafkajs encodes', () => {
  for (const api of KAFKAJS_TOPIC_APIS)
    for (const v of api.versions)
      it(`parses ${api.api} v${v} and answers it with an error kafkajs reads as TOPIC_AUTHORIZATION_FAILED`, async () => {
        const { frame, response } = await kafkajsExchange(api.api, v, api.args, 4242);
        const req = parsed(frame);
        assert.equal(req.apiKey, api.apiKey);
        assert.equal(req.apiVersion, v);
        assert.equal(req.correlationId, 4242);
        assert.equal(req.clientId, 'unit-test');
        const names = api.apiKey === 0 ? ['orders.processed', 'payment-events'] : ['orders.created', 'payment-events'];
        assert.deepEqual(
          req.topics!.map((t) => t.name),
          names,
        );
        if (api.apiKey !== 3)
          assert.deepEqual(
            req.topics!.map((t) => t.partitions),
            api.apiKey === 0 ? [[0], [2]] : [[0], [1]],
          );
        const deny = buildDenyResponse(req)!;
        assert.equal(deny.readInt32BE(0), deny.length - 4);
        assert.equal(deny.readInt32BE(4), 4242);
        const data = await response.decode(deny.subarray(8));
        await assert.rejects(response.parse(data), { type: 'TOPIC_AUTHORIZATION_FAILED' });
      });
});

describe('Kafka flexible versions', () => {
  it('reads a flexible Metadata v12 request (header v2, compact strings, tagged fields)', () => {
    const w = new KafkaWriter().int16(3).int16(12).int32(9).string('flex', false).tags(true);
    w.arrayLength(2, true);
    for (const name of ['orders.created', 'payment-events']) w.int64(0n).int64(0n).string(name, true).tags(true);
    w.int8(0).int8(0).tags(true);
    const req = parsed(w.frame());
    assert.deepEqual(
      req.topics!.map((t) => t.name),
      ['orders.created', 'payment-events'],
    );
    assert.equal(req.isFlexible, true);
    const deny = buildDenyResponse(req)!;
    // correlation id, empty header tags, throttle, no brokers, null cluster id, controller -1, 2 topics
    assert.equal(deny.subarray(4, 20).toString('hex'), '0000000900' + '00000000' + '01' + '00' + 'ffffffff' + '03');
    assert.equal(deny.readInt16BE(20), TOPIC_AUTHORIZATION_FAILED);
  });

  it('reads a flexible Produce v9 request with acks=0 as one that expects no response', () => {
    const w = new KafkaWriter().int16(0).int16(9).int32(1).string('p', false).tags(true);
    w.string(null, true).int16(0).int32(1000).arrayLength(1, true).string('orders', true);
    w.arrayLength(1, true).int32(3).uvarint(3).int8(1).int8(2).tags(true).tags(true).tags(true);
    const req = parsed(w.frame());
    assert.deepEqual(req.topics, [{ name: 'orders', partitions: [3] }]);
    assert.equal(req.expectsResponse, false);
    assert.equal(buildDenyResponse(req), undefined);
  });
});

describe('Kafka requests at versions not read here', () => {
  it('still tells a Produce v13 with acks=0 (no response to wait for) from one with acks=1', () => {
    for (const acks of [0, 1]) {
      const w = new KafkaWriter().int16(0).int16(13).int32(5).string('p', false).tags(true);
      w.string(null, true).int16(acks).int32(1000).arrayLength(0, true).tags(true);
      const p = parseKafkaRequest(w.frame());
      assert.equal(p.ok, false);
      assert.equal(!p.ok && p.reason, 'unsupported-version');
      assert.equal(!p.ok && p.expectsResponse, acks !== 0);
      assert.deepEqual(!p.ok && p.header, { apiKey: 0, apiVersion: 13, correlationId: 5, clientId: 'p' });
    }
  });
});

describe('Kafka request parsing of bad bytes', () => {
  const produce = capturedExchanges().find((e) => e.client === 'kcat' && e.apiKey === 0)!.request;
  const CASES: readonly { name: string; frame: Buffer; reason: 'malformed' | 'unsupported-version' }[] = [
    { name: 'a produce frame cut in its topic list', frame: produce.subarray(0, 40), reason: 'malformed' },
    { name: 'a header cut in its client id', frame: produce.subarray(0, 15), reason: 'malformed' },
    {
      name: 'a topic array longer than the frame',
      frame: new KafkaWriter().int16(3).int16(1).int32(1).string('x', false).int32(1_000_000).frame(),
      reason: 'malformed',
    },
    {
      name: 'a negative API key',
      frame: new KafkaWriter().int16(-2).int16(0).int32(1).string('x', false).frame(),
      reason: 'malformed',
    },
    {
      name: 'Metadata v13 (a version not read here)',
      frame: new KafkaWriter().int16(3).int16(13).int32(1).string('x', false).frame(),
      reason: 'unsupported-version',
    },
    {
      name: 'OffsetFetch v8 (groups instead of one group id)',
      frame: new KafkaWriter().int16(9).int16(8).int32(1).string('x', false).frame(),
      reason: 'unsupported-version',
    },
  ];
  for (const c of CASES)
    it(`refuses ${c.name} as ${c.reason}`, () => {
      const p = parseKafkaRequest(c.frame);
      assert.equal(p.ok, false);
      assert.equal(!p.ok && p.reason, c.reason);
    });
});
