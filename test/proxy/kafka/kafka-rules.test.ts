import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicyFile } from '../../../src/policy/policy-parser.js';
import type { KafkaRule } from '../../../src/policy/policy-rule.js';
import type { KafkaRequest } from '../../../src/proxy/kafka/kafka-request.js';
import { decideKafkaRequest, matchKafkaRules } from '../../../src/proxy/kafka/kafka-rules.js';
import { kafkaPolicy } from '../../support/l7-loopback.js';

const PRODUCE = [0, 3, 18];
const CONSUME = [1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18];

function req(apiKey: number, topics?: string[], extra: Partial<KafkaRequest> = {}): KafkaRequest {
  return {
    apiKey,
    apiVersion: 7,
    correlationId: 1,
    clientId: 'order-processor',
    isFlexible: false,
    expectsResponse: true,
    ...(topics ? { topics: topics.map((name) => ({ name, partitions: [0] })) } : {}),
    ...extra,
  };
}

// The seed policy 10: consume orders.created, produce orders.processed.
const SEED: KafkaRule[] = [
  { apiKeys: CONSUME, topic: 'orders.created' },
  { apiKeys: PRODUCE, topic: 'orders.processed' },
];

const CASES: readonly { name: string; rules: KafkaRule[]; req: KafkaRequest; allowed: boolean; denied?: string[] }[] = [
  {
    name: 'a produce to the topic the produce role names',
    rules: SEED,
    req: req(0, ['orders.processed']),
    allowed: true,
  },
  {
    name: 'a produce to a topic only the consume role names',
    rules: SEED,
    req: req(0, ['orders.created']),
    allowed: false,
    denied: ['orders.created'],
  },
  {
    name: 'a produce to payment-events',
    rules: SEED,
    req: req(0, ['payment-events']),
    allowed: false,
    denied: ['payment-events'],
  },
  { name: 'a fetch of the consumed topic', rules: SEED, req: req(1, ['orders.created']), allowed: true },
  { name: 'a fetch of the produced topic', rules: SEED, req: req(1, ['orders.processed']), allowed: false },
  {
    name: 'a Metadata naming two topics allowed by two different rules',
    rules: SEED,
    req: req(3, ['orders.created', 'orders.processed']),
    allowed: true,
  },
  {
    name: 'a Metadata naming one denied topic among allowed ones',
    rules: SEED,
    req: req(3, ['orders.created', 'payment-events']),
    allowed: false,
    denied: ['payment-events'],
  },
  { name: 'a Metadata for every topic (no topic named)', rules: SEED, req: req(3, []), allowed: true },
  { name: 'a Heartbeat (no topics) under a consume role with a topic', rules: SEED, req: req(12), allowed: true },
  {
    name: 'a JoinGroup under a produce role only',
    rules: [{ apiKeys: PRODUCE, topic: 'orders' }],
    req: req(11),
    allowed: false,
    denied: [],
  },
  { name: 'ApiVersions under either role', rules: [{ apiKeys: PRODUCE, topic: 'x' }], req: req(18), allowed: true },
  { name: 'any request under a rule with no API keys', rules: [{ apiKeys: [] }], req: req(32), allowed: true },
  { name: 'an API key a rule names', rules: [{ apiKeys: [1] }], req: req(1, ['a', 'b']), allowed: true },
  { name: 'an API key no rule names', rules: [{ apiKeys: [1] }], req: req(0, ['a']), allowed: false, denied: ['a'] },
  { name: 'the apiVersion a rule names', rules: [{ apiKeys: [0], apiVersion: 7 }], req: req(0, ['a']), allowed: true },
  {
    name: 'another apiVersion than the rule names',
    rules: [{ apiKeys: [0], apiVersion: 3 }],
    req: req(0, ['a']),
    allowed: false,
  },
  {
    name: 'the clientID a rule names',
    rules: [{ apiKeys: [], clientID: 'order-processor' }],
    req: req(0, ['a']),
    allowed: true,
  },
  {
    name: 'another clientID',
    rules: [{ apiKeys: [], clientID: 'order-processor' }],
    req: req(0, ['a'], { clientId: 'rdkafka' }),
    allowed: false,
  },
  {
    name: 'a null clientID under a clientID rule',
    rules: [{ apiKeys: [], clientID: 'x' }],
    req: req(0, ['a'], { clientId: null }),
    allowed: false,
  },
  { name: 'anything under no rules', rules: [], req: req(18), allowed: false, denied: [] },
  {
    name: 'a topic that differs in case',
    rules: [{ apiKeys: [0], topic: 'Orders' }],
    req: req(0, ['orders']),
    allowed: false,
  },
];

describe('Kafka rule matching (Cilium semantics)', () => {
  for (const c of CASES)
    it(`${c.allowed ? 'allows' : 'denies'} ${c.name}`, () => {
      const v = matchKafkaRules(c.req, c.rules);
      assert.equal(v.allowed, c.allowed);
      if (!v.allowed && c.denied) assert.deepEqual(v.deniedTopics, c.denied);
    });

  const ref = (name: string) => ({ kind: 'CiliumNetworkPolicy' as const, namespace: 'default', name });
  const names = (d: { policies: readonly { name: string }[] }) => d.policies.map((p) => p.name);

  it('lets rules of different policies allow different topics of one request, naming both', () => {
    const d = decideKafkaRequest(req(3, ['orders.created', 'orders.processed']), [
      kafkaPolicy([SEED[0]!], { ref: ref('consume') }),
      kafkaPolicy([SEED[1]!], { ref: ref('produce') }),
    ]);
    assert.equal(d.allowed, true);
    assert.deepEqual(names(d), ['consume', 'produce']);
  });

  it('names the one policy that allows a request alone', () => {
    const d = decideKafkaRequest(req(0, ['orders.processed']), [
      kafkaPolicy([SEED[0]!], { ref: ref('consume') }),
      kafkaPolicy([SEED[1]!], { ref: ref('produce') }),
    ]);
    assert.deepEqual([d.allowed, names(d)], [true, ['produce']]);
  });

  it('names every policy of the redirect when it denies', () => {
    const d = decideKafkaRequest(req(0, ['payment-events']), [
      kafkaPolicy([SEED[0]!], { ref: ref('consume') }),
      kafkaPolicy([SEED[1]!], { ref: ref('produce') }),
    ]);
    assert.deepEqual([d.allowed, names(d)], [false, ['consume', 'produce']]);
  });

  it('allows everything when a policy allows the port without L7 rules, and nothing with no policy', () => {
    const d = decideKafkaRequest(req(0, ['payment-events']), [
      kafkaPolicy([], { ref: ref('rules') }),
      kafkaPolicy([], { allowAll: true, ref: ref('l4-only') }),
    ]);
    assert.deepEqual([d.allowed, names(d)], [true, ['l4-only']]);
    assert.deepEqual(decideKafkaRequest(req(18), []), { allowed: false, policies: [] });
  });

  it('reads the seed policy into the rules these cases use (roles expanded as Cilium does)', () => {
    const yaml = [
      'apiVersion: cilium.io/v2',
      'kind: CiliumNetworkPolicy',
      'metadata: {name: k, namespace: default}',
      'spec:',
      '  endpointSelector: {matchLabels: {app: kafka}}',
      '  ingress:',
      '  - toPorts:',
      '    - ports: [{port: "9092", protocol: TCP}]',
      '      rules:',
      '        kafka:',
      '        - {role: consume, topic: orders.created}',
      '        - {role: produce, topic: orders.processed}',
    ].join('\n');
    const file = parsePolicyFile(yaml, 'seed.yaml');
    const rules = JSON.stringify(file);
    for (const r of SEED) assert.ok(rules.includes(JSON.stringify(r)), `${JSON.stringify(r)} in the parsed policy`);
  });
});
