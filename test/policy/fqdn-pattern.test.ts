import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileMatchPattern, fqdnSelectorMatches, normalizeFqdn } from '../../src/policy/fqdn-pattern.js';

// Cilium's pkg/fqdn/matchpattern/matchpattern_test.go (TestAnchoredMatchPatternMatching, main):
// each pattern with the names it must accept and reject. Names are compared as given (already
// in Cilium's lower-case, trailing-dot form); "" and names without the final dot are rejected.
const CILIUM_CASES: Array<{ pattern: string; accept: string[]; reject: string[] }> = [
  {
    pattern: 'cilium.io.',
    accept: ['cilium.io.'],
    reject: ['', 'anysub.cilium.io.', 'anysub.ci.io.', 'anysub.ciliumandmore.io.'],
  },
  {
    pattern: '*.cilium.io.',
    accept: ['anysub.cilium.io.'],
    reject: ['', 'cilium.io.', 'anysub.ci.io.', 'anysub.ciliumandmore.io.'],
  },
  {
    pattern: '*.ci*.io.',
    accept: ['anysub.cilium.io.', 'anysub.ci.io.', 'anysub.ciliumandmore.io.'],
    reject: ['', 'cilium.io.'],
  },
  {
    pattern: '*',
    accept: [
      '.',
      'io.',
      'cilium.io.',
      'svc.cluster.local.',
      'service.namesace.svc.cluster.local.',
      '_foobar._tcp.cilium.io.',
    ],
    reject: ['', '.io.', '.cilium.io.', '.svc.cluster.local.', 'cilium.io'],
  },
  { pattern: '.', accept: ['.'], reject: ['', '.io.', '.cilium.io'] },
  {
    pattern: '_foobar._tcp.cilium.io.',
    accept: ['_foobar._tcp.cilium.io.'],
    reject: ['', '_tcp.cilium.io.', 'cilium.io.'],
  },
  { pattern: '*.*.cilium.io.', accept: ['_foobar._tcp.cilium.io.'], reject: [''] },
  {
    pattern: '**.cilium.io.',
    accept: ['anysub.cilium.io.', '_foobar._tcp.cilium.io.', 'sub11.sub22.sub33._foobar._tcp.cilium.io.'],
    reject: [
      '',
      'cilium.io.',
      'anysub.ci.io.',
      'anysub.ciliumandmore.io.',
      'sub.cilium.io',
      '1._foobar_tcp.cilium.trio.',
    ],
  },
  {
    pattern: '*.**.cilium.io.',
    accept: ['_foobar._tcp.cilium.io.', '2._foobar._tcp.cilium.io.'],
    reject: ['', '_tcp.cilium.io.', '_foobar.._tcp.cilium.io.'],
  },
  {
    pattern: '**.ci*.io.',
    accept: ['anysub.cilium.io.', 'anysub.ci.io.', '1.anysub.ciliumandmore.io.', 'service.namesace.svc.ciuster.io.'],
    reject: ['', 'cilium.io.', 'service.namesace.svc..ciblaster.io.'],
  },
  {
    pattern: '**.*.io.',
    accept: ['anysub.cilium.io.', 'anysub.ci.io.', 'anysub.ciliumandmore.io.', 'service.namesace.svc.ciuster.io.'],
    reject: ['', 'io.', '..cilium.io.', 'cilium.io.', 'service..namesace.svc.cluster.io.'],
  },
  {
    pattern: '*.**.io.',
    accept: ['anysub.cilium.io.', 'anysub.ci.io.', 'anysub.ciliumandmore.io.', 'service.namesace.svc.ciuster.io.'],
    reject: ['', '..cilium.io.', 'io.', 'cilium.io', 'service.namesace.svc..cluster.io.'],
  },
  {
    pattern: '**',
    accept: [
      '.',
      'io.',
      'cilium.io.',
      'svc.cluster.local.',
      'service.namesace.svc.cluster.local.',
      '_foobar._tcp.cilium.io.',
    ],
    reject: ['', '..io.', '..cilium.io.', '.svc.cluster..local.', 'cilium..io'],
  },
  {
    pattern: '**.',
    accept: [
      'io.',
      'cilium.io.',
      'svc.cluster.local.',
      'service.namesace.svc.cluster.local.',
      '_foobar._tcp.cilium.io.',
    ],
    reject: ['', '.cilium.io.', '..cilium.io.', '.svc.cluster..local.', 'cilium.io'],
  },
  {
    pattern: '1.**.*io.',
    accept: ['1._foobar._tcp.cilium.io.', '1.2._foobar._tcp.cilium.io.', '1._foobar_tcp.cilium.trio.'],
    reject: [
      '',
      '_tcp.cilium.io.',
      '_foobar._tcp.cilium.io.',
      '2._foobar._tcp.cilium.io.',
      '1_foobar._tcp.cilium.trio.',
    ],
  },
  {
    pattern: 'subdomain.**.*ili*.io.',
    accept: [
      'subdomain._foobar._tcp.cilium.io.',
      'subdomain.1.2._foobar._tcp.cili.io.',
      'subdomain._foobar_tcp.ilium.io.',
    ],
    reject: [
      '',
      '_tcp.cilium.io.',
      '_foobar._tcp.cilium.io.',
      '.subdomain._foobar._tcp.cilium.io.',
      'subdomain.cilium.trio.',
      'subdomain.1..2._foobar._tcp.cili.io.',
    ],
  },
  {
    pattern: '1.**.cilium.io.',
    accept: ['1._foobar._tcp.cilium.io.', '1.2._foobar._tcp.cilium.io.'],
    reject: ['', '_tcp.cilium.io.', '_foobar._tcp.cilium.io.', '2._foobar._tcp.cilium.io.'],
  },
  {
    pattern: '*.1.**.cilium.io.',
    accept: ['_sub.1._foobar._tcp.cilium.io.', '_sub.1.2._foobar._tcp.cilium.io.'],
    reject: [
      '',
      '_sub._tcp.1.cilium.io.',
      '_foobar._tcp.cilium.io.',
      '2._foobar._tcp.cilium.io.',
      '2._foobar.1._tcp.cilium.io.',
    ],
  },
];

describe("matchPattern (Cilium's matchpattern test table)", () => {
  for (const c of CILIUM_CASES) {
    const m = compileMatchPattern(c.pattern);
    for (const n of c.accept) it(`${c.pattern} accepts ${JSON.stringify(n)}`, () => assert.equal(m(n), true));
    for (const n of c.reject) it(`${c.pattern} rejects ${JSON.stringify(n)}`, () => assert.equal(m(n), false));
  }
});

// Selector matching of names as a DNS answer carries them: case and the trailing dot normalised.
const MATCHES: Array<{ sel: { matchName?: string; matchPattern?: string }; name: string; isMatch: boolean }> = [
  { sel: { matchPattern: '*' }, name: 'a.com', isMatch: true },
  { sel: { matchPattern: '**' }, name: 'x.y.a.com.', isMatch: true },
  { sel: { matchPattern: '**.' }, name: 'a.com', isMatch: true },
  { sel: { matchPattern: '*' }, name: 'a b.com', isMatch: false },
  { sel: { matchPattern: '*' }, name: 'a..com', isMatch: false },
  { sel: { matchPattern: '*' }, name: '', isMatch: false },
  { sel: { matchPattern: '*.a.com' }, name: 'www.a.com', isMatch: true },
  { sel: { matchPattern: '*.a.com' }, name: 'x.www.a.com', isMatch: false },
  { sel: { matchPattern: '*.a.com' }, name: 'a.com', isMatch: false },
  { sel: { matchPattern: '**.a.com' }, name: 'x.www.a.com', isMatch: true },
  { sel: { matchPattern: '**.a.com' }, name: 'a.com', isMatch: false },
  { sel: { matchPattern: 'a.**.com' }, name: 'a.x.com', isMatch: true },
  { sel: { matchPattern: 'a.**.com' }, name: 'a.x.y.com', isMatch: true },
  { sel: { matchPattern: 'a.**.com' }, name: 'a.com', isMatch: false },
  { sel: { matchPattern: '*a.com' }, name: 'a.com', isMatch: true },
  { sel: { matchPattern: 'sub*.a.com' }, name: 'SUBdomain.a.com', isMatch: true },
  { sel: { matchPattern: 'API.Stripe.com.' }, name: 'api.stripe.COM', isMatch: true },
  { sel: { matchPattern: 'a*b*c.com' }, name: 'axxbyyc.com', isMatch: true },
  { sel: { matchPattern: 'a*b*c.com' }, name: 'axxcyyb.com', isMatch: false },
  { sel: { matchName: 'API.stripe.com' }, name: 'api.stripe.com.', isMatch: true },
  { sel: { matchName: 'api.stripe.com' }, name: 'x.api.stripe.com', isMatch: false },
  { sel: {}, name: 'api.stripe.com', isMatch: false },
];

describe('fqdnSelectorMatches', () => {
  for (const c of MATCHES)
    it(`${c.isMatch ? 'matches' : 'does not match'} ${JSON.stringify(c.name)} with ${JSON.stringify(c.sel)}`, () => {
      assert.equal(fqdnSelectorMatches(c.sel, c.name), c.isMatch);
    });

  it('normalises case, spaces and the trailing dot', () => {
    assert.equal(normalizeFqdn(' API.Stripe.com '), 'api.stripe.com.');
    assert.equal(normalizeFqdn('api.stripe.com.'), 'api.stripe.com.');
  });

  it('matches a pattern of many stars against a long name in linear time', () => {
    const pattern = `${'**.'.repeat(40)}${'*a'.repeat(30)}.com`;
    const name = `${'x.'.repeat(100)}${'a'.repeat(60)}b.com`;
    const t0 = process.hrtime.bigint();
    assert.equal(compileMatchPattern(pattern)(normalizeFqdn(name)), false);
    // Not a timing assertion on speed: a backtracking regex would not return at all.
    assert.ok(process.hrtime.bigint() - t0 < 5_000_000_000n);
  });
});
