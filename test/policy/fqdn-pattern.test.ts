import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fqdnSelectorMatches } from '../../src/policy/fqdn-pattern.js';

// What each matchPattern selects, as Cilium's matchpattern.ToAnchoredRegexp builds it
// (pkg/fqdn/matchpattern/matchpattern.go): "*" is any run of DNS characters within one label,
// a leading "**." is one or more whole labels, and all stars alone are every DNS name.
const MATCHES: Array<{ pattern: string; name: string; isMatch: boolean }> = [
  { pattern: '*', name: 'a.com', isMatch: true },
  { pattern: '**', name: 'x.y.a.com.', isMatch: true },
  { pattern: '**.', name: 'a.com', isMatch: true },
  { pattern: '*', name: 'a b.com', isMatch: false },
  { pattern: '*', name: 'a..com', isMatch: false },
  { pattern: '*.a.com', name: 'www.a.com', isMatch: true },
  { pattern: '*.a.com', name: 'x.www.a.com', isMatch: false },
  { pattern: '*.a.com', name: 'a.com', isMatch: false },
  { pattern: '**.a.com', name: 'x.www.a.com', isMatch: true },
  { pattern: '**.a.com', name: 'a.com', isMatch: false },
  { pattern: 'a.**.com', name: 'a.x.com', isMatch: true },
  { pattern: 'a.**.com', name: 'a.x.y.com', isMatch: false },
  { pattern: '*a.com', name: 'a.com', isMatch: true },
  { pattern: 'sub*.a.com', name: 'SUBdomain.a.com', isMatch: true },
];

describe('fqdnSelectorMatches', () => {
  for (const c of MATCHES)
    it(`${c.isMatch ? 'matches' : 'does not match'} ${c.name} with ${c.pattern}`, () => {
      assert.equal(fqdnSelectorMatches({ matchPattern: c.pattern }, c.name), c.isMatch);
    });
});
