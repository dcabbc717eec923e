// Kafka access records from the proxy become L7 flows with Hubble's l7.kafka, found by
// `--protocol kafka` and `--type l7`, and encoded on the wire like protobufjs does.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type protobuf from 'protobufjs';
import { encodeFlowsResponse } from '../../src/hubble/api/flow-encoder.js';
import { protoType } from '../../src/hubble/api/proto-root.js';
import { compileFlowFilters } from '../../src/hubble/filters/flow-filter.js';
import { L7FlowType, Verdict } from '../../src/hubble/flow/flow.js';
import { type L7Record, parseL7Record } from '../../src/hubble/flow/parser.js';
import { context, httpRequest, T0 } from './fixtures.js';

const produceRequest: L7Record = {
  time: { seconds: T0.seconds + 1, nanos: 0 },
  type: 'request',
  endpointId: 102,
  direction: 'ingress',
  srcIp: '10.1.0.11',
  dstIp: '10.1.0.12',
  srcPort: 43210,
  dstPort: 9092,
  protocol: 6,
  srcIdentity: 5001,
  dstIdentity: 5002,
  verdict: 'denied',
  kafka: { apiKey: 0, apiVersion: 7, correlationId: 12, topic: 'payment-events', errorCode: 29 },
};
const produceResponse: L7Record = {
  ...produceRequest,
  type: 'response',
  srcIp: '10.1.0.12',
  dstIp: '10.1.0.11',
  srcPort: 9092,
  dstPort: 43210,
  srcIdentity: 5002,
  dstIdentity: 5001,
};

describe('Kafka L7 flows', () => {
  it('maps a denied produce request to l7.kafka with the API key name, a DROPPED verdict and a summary', () => {
    const f = parseL7Record(produceRequest, context());
    assert.equal(f.verdict, Verdict.DROPPED);
    assert.equal(f.l7?.type, L7FlowType.REQUEST);
    assert.deepEqual(f.l7?.kafka, {
      api_key: 'produce',
      api_version: 7,
      correlation_id: 12,
      topic: 'payment-events',
      error_code: 29,
    });
    assert.equal(f.Summary, "Kafka request produce correlation id 12 topic 'payment-events'");
  });

  it('summarises a response with its return code', () => {
    const f = parseL7Record(produceResponse, context());
    assert.equal(f.l7?.type, L7FlowType.RESPONSE);
    assert.equal(f.Summary, "Kafka response produce correlation id 12 topic 'payment-events' return code 29");
  });

  it('leaves topic and error code out for a Heartbeat that succeeded', () => {
    const f = parseL7Record(
      {
        ...produceResponse,
        verdict: 'forwarded',
        kafka: { apiKey: 12, apiVersion: 3, correlationId: 5, errorCode: 0 },
      },
      context(),
    );
    assert.deepEqual(f.l7?.kafka, { api_key: 'heartbeat', api_version: 3, correlation_id: 5 });
  });

  it('is selected by --protocol kafka and --type l7, and not by --protocol http', () => {
    const ctx = context();
    const kafka = parseL7Record(produceRequest, ctx);
    const http = parseL7Record(httpRequest, ctx);
    const byKafka = compileFlowFilters([{ protocol: ['kafka'] }], []);
    const byHttp = compileFlowFilters([{ protocol: ['http'] }], []);
    const byL7 = compileFlowFilters([{ event_type: [{ type: 129 }] }], []);
    assert.deepEqual([byKafka(kafka), byKafka(http)], [true, false]);
    assert.deepEqual([byHttp(kafka), byHttp(http)], [false, true]);
    assert.equal(byL7(kafka), true);
  });

  it('encodes l7.kafka on the wire like protobufjs', () => {
    const flow = parseL7Record(produceRequest, context());
    const r = { flow, node_name: flow.node_name, time: flow.time };
    const TYPE = protoType('observer.GetFlowsResponse');
    assert.equal(
      Buffer.from(encodeFlowsResponse(r)).toString('hex'),
      Buffer.from(TYPE.encode(r as unknown as protobuf.Message).finish()).toString('hex'),
    );
  });
});
