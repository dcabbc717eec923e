// The hand-written GetFlowsResponse encoder must give protobufjs's bytes for every flow.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type protobuf from 'protobufjs';
import { encodeFlowsResponse } from '../../src/hubble/api/flow-encoder.js';
import { protoType } from '../../src/hubble/api/proto-root.js';
import type { Flow, FlowsResponse } from '../../src/hubble/flow/flow.js';
import { sampleFlows } from './fixtures.js';

const TYPE = protoType('observer.GetFlowsResponse');
const reference = (r: FlowsResponse) =>
  Buffer.from(TYPE.encode(r as unknown as protobuf.Message).finish()).toString('hex');
const fast = (r: FlowsResponse) => Buffer.from(encodeFlowsResponse(r)).toString('hex');

describe('flow encoder', () => {
  for (const [i, flow] of sampleFlows().entries())
    it(`encodes sample flow ${i + 1} like protobufjs`, () => {
      const r = { flow, node_name: flow.node_name, time: flow.time };
      assert.equal(fast(r), reference(r));
    });

  const EDGE: [string, Flow][] = [
    ['non-ASCII strings', { Summary: 'grüße ✓', source: { pod_name: 'pöd', labels: ['k8s:ä=ö'] } }],
    [
      'a submessage longer than 127 bytes',
      { source: { labels: Array.from({ length: 20 }, (_, i) => `k8s:label-${i}=value`) } },
    ],
    [
      'a submessage longer than 16383 bytes',
      { l7: { type: 1, http: { url: `/${'x'.repeat(20000)}`, method: 'GET' } } },
    ],
    ['a large uint64 latency', { l7: { type: 2, latency_ns: 2 ** 52 + 12345 } }],
    ['a negative int32 (kafka error code)', { l7: { type: 2, kafka: { error_code: -1, topic: 't' } } }],
    [
      'defaults set explicitly',
      { verdict: 0, event_type: { type: 4, sub_type: 0 }, is_reply: { value: false }, reply: false },
    ],
    [
      'policies on every attribution field',
      {
        egress_allowed_by: [{ name: 'a', namespace: 'n', kind: 'CiliumNetworkPolicy', revision: 3, labels: ['x'] }],
        ingress_allowed_by: [{ name: 'b' }],
        egress_denied_by: [{ name: 'c' }],
        ingress_denied_by: [{ name: 'd', kind: 'NetworkPolicy' }],
        policy_log: ['p'],
      },
    ],
    [
      'every other modelled field',
      {
        uuid: 'u',
        emitter: { name: 'membrane', version: '0.1.0' },
        drop_reason: 133,
        auth_type: 1,
        ethernet: { source: 'aa', destination: 'bb' },
        IP: { source: 'a', destination: 'b', ipVersion: 1, encrypted: true, source_xlated: 'c' },
        l4: { SCTP: { source_port: 1, destination_port: 2 } },
        Type: 1,
        node_name: 'n',
        node_labels: ['z=1'],
        source_names: ['s'],
        destination_names: ['d1', 'd2'],
        source_service: { name: 's', namespace: 'n' },
        destination_service: { name: 'd' },
        traffic_direction: 2,
        policy_match_type: 3,
        trace_observation_point: 101,
        trace_reason: 2,
        drop_reason_desc: 181,
        interface: { index: 3, name: 'eth0' },
        proxy_port: 10001,
        trace_context: { parent: { trace_id: 'abc' } },
        ip_trace_id: { trace_id: 99, ip_option_type: 136 },
        l7: {
          type: 1,
          dns: {
            query: 'q.',
            ips: ['1.1.1.1'],
            ttl: 3,
            cnames: ['c.'],
            observation_source: 'proxy',
            rcode: 3,
            qtypes: ['A'],
            rrtypes: ['CNAME'],
          },
        },
      },
    ],
  ];
  for (const [name, flow] of EDGE)
    it(`encodes ${name} like protobufjs`, () => {
      const r = { flow, node_name: 'n', time: { seconds: 1, nanos: 2 } };
      assert.equal(fast(r), reference(r));
    });

  it('falls back to protobufjs for lost events and fields outside the model', () => {
    const lost = { lost_events: { source: 3, num_events_lost: 5 }, node_name: 'n' };
    assert.equal(fast(lost), reference(lost));
    const odd = { flow: { l4: { VRRP: { type: 1, vrid: 2 } } } as Flow };
    assert.equal(fast(odd), reference(odd));
  });

  it('agrees with protobufjs on random flows', () => {
    const str = fc.string({ maxLength: 40 });
    const u32 = fc.nat({ max: 0xffffffff });
    const ep = fc.record(
      {
        ID: u32,
        identity: u32,
        namespace: str,
        labels: fc.array(str, { maxLength: 5 }),
        pod_name: str,
        cluster_name: str,
      },
      { requiredKeys: [] },
    );
    const flow = fc.record(
      {
        time: fc.record({ seconds: fc.nat({ max: 2 ** 40 }), nanos: fc.nat({ max: 999_999_999 }) }),
        uuid: str,
        verdict: fc.nat({ max: 7 }),
        source: ep,
        destination: ep,
        node_name: str,
        Summary: str,
        l4: fc.oneof(
          fc.record({
            TCP: fc.record({
              source_port: fc.nat({ max: 65535 }),
              destination_port: fc.nat({ max: 65535 }),
              flags: fc.record({ SYN: fc.boolean(), ACK: fc.boolean() }),
            }),
          }),
          fc.record({
            UDP: fc.record({ source_port: fc.nat({ max: 65535 }), destination_port: fc.nat({ max: 65535 }) }),
          }),
        ),
        is_reply: fc.record({ value: fc.boolean() }),
        source_names: fc.array(str, { maxLength: 3 }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(flow, (f) => {
        const r = { flow: f as Flow, node_name: 'n' };
        return fast(r) === reference(r);
      }),
      { numRuns: 300 },
    );
  });
});
