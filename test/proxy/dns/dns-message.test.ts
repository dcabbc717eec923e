import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import type { L7Policy } from '../../../src/policy/policy-engine.js';
import { decodeAnswer, decodeQuery, encodeStatusResponse, RCODE_REFUSED } from '../../../src/proxy/dns/dns-message.js';
import { decideDnsQuery } from '../../../src/proxy/dns/dns-policy.js';

function query(name: string, type: dnsPacket.RecordType = 'A', id = 7): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
}

describe('decodeQuery', () => {
  it('reads ID, flags and normalised questions', () => {
    assert.deepEqual(decodeQuery(query('API.Stripe.com', 'AAAA', 42)), {
      id: 42,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ name: 'api.stripe.com.', type: 'AAAA', class: 'IN' }],
    });
  });
  it('refuses what is no query with a question', () => {
    assert.equal(decodeQuery(Buffer.alloc(0)), undefined);
    assert.equal(decodeQuery(Buffer.alloc(11)), undefined);
    assert.equal(decodeQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [] })), undefined);
    assert.equal(
      decodeQuery(dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a.com' }] })),
      undefined,
    );
  });
});

describe('decodeAnswer', () => {
  it('follows the CNAME chain and keeps the lowest TTL', () => {
    const buf = dnsPacket.encode({
      type: 'response',
      id: 9,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [{ type: 'A', name: 'www.a.com' }],
      answers: [
        { type: 'CNAME', name: 'www.a.com', ttl: 300, data: 'a.cdn.net' },
        { type: 'CNAME', name: 'a.cdn.net', ttl: 60, data: 'edge.cdn.net' },
        { type: 'A', name: 'edge.cdn.net', ttl: 20, data: '1.2.3.4' },
        { type: 'A', name: 'edge.cdn.net', ttl: 30, data: '1.2.3.5' },
        { type: 'A', name: 'unrelated.com', ttl: 1, data: '9.9.9.9' },
      ],
    });
    const a = decodeAnswer(buf)!;
    assert.equal(a.rcode, 0);
    assert.equal(a.query, 'www.a.com.');
    assert.deepEqual(a.names, ['www.a.com.', 'a.cdn.net.', 'edge.cdn.net.']);
    assert.deepEqual(a.cnames, ['a.cdn.net.', 'edge.cdn.net.']);
    assert.deepEqual(a.ips, ['1.2.3.4', '1.2.3.5']);
    assert.equal(a.ttlSeconds, 20);
    assert.deepEqual(a.rrtypes, ['CNAME', 'A']);
  });
  it('stops at a CNAME loop', () => {
    const buf = dnsPacket.encode({
      type: 'response',
      id: 9,
      questions: [{ type: 'A', name: 'a.com' }],
      answers: [
        { type: 'CNAME', name: 'a.com', ttl: 5, data: 'b.com' },
        { type: 'CNAME', name: 'b.com', ttl: 5, data: 'a.com' },
      ],
    });
    assert.deepEqual(decodeAnswer(buf)!.names, ['a.com.', 'b.com.']);
  });
  it('reads the rcode of an NXDOMAIN answer', () => {
    const buf = dnsPacket.encode({ type: 'response', id: 1, flags: 3, questions: [{ type: 'A', name: 'x.com' }] });
    assert.equal(decodeAnswer(buf)!.rcode, 3);
    assert.equal(decodeAnswer(buf)!.ttlSeconds, 0);
  });
});

describe('encodeStatusResponse', () => {
  it('answers REFUSED with the query ID, RD and question', () => {
    const q = decodeQuery(query('api.github.com', 'A', 4242))!;
    const p = dnsPacket.decode(encodeStatusResponse(q, RCODE_REFUSED));
    assert.equal(p.id, 4242);
    assert.equal(p.type, 'response');
    assert.equal((p as { rcode?: string }).rcode, 'REFUSED');
    assert.equal(p.flag_rd, true);
    assert.deepEqual(p.questions, [{ name: 'api.github.com', type: 'A', class: 'IN' }]);
    assert.deepEqual(p.answers, []);
  });
});

describe('decoding untrusted bytes', () => {
  it('returns undefined and never throws on random and truncated messages', () => {
    let seed = 20261207;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const valid = query('api.stripe.com');
    for (let i = 0; i < 3000; i++) {
      const b =
        i % 2 === 0
          ? Buffer.from(Array.from({ length: rnd() % 80 }, () => rnd() & 255))
          : Buffer.from(valid.subarray(0, rnd() % valid.length));
      if (i % 3 === 0 && b.length > 4) b[rnd() % b.length] = rnd() & 255;
      decodeQuery(b);
      decodeAnswer(b);
    }
  });
});

function dnsPolicy(
  rules: Array<{ matchName?: string; matchPattern?: string }>,
  allowAll = false,
  name = 'p',
): L7Policy {
  return {
    endpointId: 1,
    direction: 'egress',
    protocol: 17,
    port: 53,
    portPrefixLen: 16,
    proxyPort: 10006,
    parser: 'dns',
    remoteIdentities: [0],
    allowAll,
    dns: rules,
    derivedFrom: [{ kind: 'CiliumNetworkPolicy', namespace: 'shop', name }] as unknown as L7Policy['derivedFrom'],
  };
}

describe('decideDnsQuery', () => {
  const CASES: Array<{ what: string; policies: L7Policy[]; names: string[]; isAllowed: boolean }> = [
    { what: 'no policy refuses', policies: [], names: ['a.com.'], isAllowed: false },
    {
      what: 'a matching pattern allows',
      policies: [dnsPolicy([{ matchPattern: '*.stripe.com' }])],
      names: ['api.stripe.com.'],
      isAllowed: true,
    },
    {
      what: 'a non-matching pattern refuses',
      policies: [dnsPolicy([{ matchPattern: '*.stripe.com' }])],
      names: ['api.github.com.'],
      isAllowed: false,
    },
    {
      what: 'matchName is exact',
      policies: [dnsPolicy([{ matchName: 'stripe.com' }])],
      names: ['api.stripe.com.'],
      isAllowed: false,
    },
    {
      what: 'rules of two policies are OR-ed',
      policies: [dnsPolicy([{ matchName: 'a.com' }]), dnsPolicy([{ matchName: 'b.com' }])],
      names: ['b.com.'],
      isAllowed: true,
    },
    { what: 'allow-all observes only', policies: [dnsPolicy([], true)], names: ['anything.org.'], isAllowed: true },
    {
      what: 'every question must be allowed',
      policies: [dnsPolicy([{ matchName: 'a.com' }])],
      names: ['a.com.', 'b.com.'],
      isAllowed: false,
    },
    {
      what: 'a "*" pattern allows every name',
      policies: [dnsPolicy([{ matchPattern: '*' }])],
      names: ['x.y.z.'],
      isAllowed: true,
    },
  ];
  for (const c of CASES)
    it(c.what, () => {
      const v = decideDnsQuery(c.policies, c.names);
      assert.equal(v.isAllowed, c.isAllowed);
      assert.equal(v.derivedFrom.length > 0, c.isAllowed);
    });
});
