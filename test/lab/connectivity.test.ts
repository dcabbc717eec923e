import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeTrace, expectedOutcome, type TraceAnswer, type TraceDirection } from '../../src/lab/connectivity.js';
import { checkLabName } from '../../src/lab/lab-paths.js';
import { nodePlan } from '../../src/lab/topology.js';

const side = (verdict: 'ALLOWED' | 'DENIED', reason: string, names: string[], effect = 'allow'): TraceDirection => ({
  verdict,
  enforced: names.length > 0,
  reason,
  policies: names.map((n) => {
    const [namespace, name] = n.includes('/') ? n.split('/') : ['', n];
    return { kind: 'CiliumNetworkPolicy', namespace, name, direction: 'ingress', effect };
  }),
});

const trace = (egress: TraceDirection, ingress: TraceDirection): TraceAnswer => ({
  verdict: egress.verdict === 'DENIED' || ingress.verdict === 'DENIED' ? 'DENIED' : 'ALLOWED',
  egress,
  ingress,
  policies: [...egress.policies, ...ingress.policies],
});

const CASES: ReadonlyArray<{ name: string; t: TraceAnswer | undefined; text: string; outcome: string }> = [
  { name: 'no engine', t: undefined, text: '-', outcome: 'forwarded' },
  {
    name: 'no policy anywhere',
    t: trace(side('ALLOWED', 'allowed', []), side('ALLOWED', 'allowed', [])),
    text: 'no policy',
    outcome: 'forwarded',
  },
  {
    name: 'an allow',
    t: trace(side('ALLOWED', 'allowed', []), side('ALLOWED', 'allowed', ['shop/web'])),
    text: 'allowed by shop/web',
    outcome: 'forwarded',
  },
  {
    name: 'a default-deny at egress with three policies',
    t: trace(side('DENIED', 'default-deny', ['a', 'b', 'c'], 'deny'), side('ALLOWED', 'allowed', [])),
    text: 'egress default-deny: a, b +1',
    outcome: 'dropped',
  },
  {
    name: 'an allow that needs authentication',
    t: trace(side('ALLOWED', 'allowed', []), side('ALLOWED', 'auth-required', ['default/require-auth'])),
    text: 'ingress auth-required: default/require-auth',
    outcome: 'dropped',
  },
];

describe('connectivity verdicts from the policy trace', () => {
  for (const c of CASES) {
    it(`describes ${c.name} and expects ${c.outcome}`, () => {
      assert.equal(describeTrace(c.t), c.text);
      assert.equal(expectedOutcome(c.t), c.outcome);
    });
  }
});

describe('lab naming and addressing', () => {
  it('plans nodes with underlay addresses and one /24 of pods each', () => {
    assert.deepEqual(nodePlan(2), [
      { name: 'n1', ip: '172.30.0.11', podCIDR: '10.201.1.0/24' },
      { name: 'n2', ip: '172.30.0.12', podCIDR: '10.201.2.0/24' },
    ]);
  });

  for (const [name, ok] of [
    ['lab', true],
    ['t1a2b3c', true],
    ['Lab', false],
    ['my-lab', false],
    ['averyverylonglab', false],
  ] as const) {
    it(`${ok ? 'accepts' : 'rejects'} the lab name "${name}"`, () => {
      assert.equal(checkLabName(name) === undefined, ok);
    });
  }
});
