import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import RE2 from 're2';
import type { HttpRule } from '../../../src/policy/policy-rule.js';
import { applyHeaderEdits, decideHttp, type SecretSource } from '../../../src/proxy/http/http-rules.js';
import type { HttpHeader } from '../../../src/proxy/http/http1-parser.js';
import { httpPolicy } from '../../support/l7-loopback.js';

function req(method: string, path: string, headers: Record<string, string | string[]> = {}, host = 'svc') {
  const fields: HttpHeader[] = [];
  for (const [k, v] of Object.entries(headers))
    for (const x of Array.isArray(v) ? v : [v]) fields.push({ name: k.toLowerCase(), value: x });
  return { method, path, host, headers: fields };
}

const allows = (rules: HttpRule[], r: ReturnType<typeof req>, secrets?: SecretSource) =>
  decideHttp([httpPolicy(rules)], r, secrets).allowed;

describe('HTTP rules (Cilium semantics)', () => {
  it('matches method, path and host as regexes over the whole value', () => {
    const rules: HttpRule[] = [
      { method: 'GET', path: '/api/v1/payments/.*' },
      { method: 'POST', path: '/api/v1/payments$' },
    ];
    assert.equal(allows(rules, req('GET', '/api/v1/payments/42')), true);
    assert.equal(allows(rules, req('POST', '/api/v1/payments')), true);
    assert.equal(allows(rules, req('DELETE', '/api/v1/payments/42')), false);
    assert.equal(allows(rules, req('GET', '/api/v1/payment')), false);
    // Anchored at both ends: a prefix or a suffix of the value does not match.
    assert.equal(allows([{ method: 'GE' }], req('GET', '/')), false);
    assert.equal(allows([{ path: '/public' }], req('GET', '/public/x')), false);
    assert.equal(allows([{ path: '/public' }], req('GET', '/x/public')), false);
    // Alternation binds inside the anchors.
    assert.equal(allows([{ method: 'GET|HEAD' }], req('HEAD', '/')), true);
    assert.equal(allows([{ method: 'GET|HEAD' }], req('GETX', '/')), false);
    // The path is :path, query included.
    assert.equal(allows([{ path: '/search' }], req('GET', '/search?q=1')), false);
    assert.equal(allows([{ path: '/search.*' }], req('GET', '/search?q=1')), true);
    assert.equal(allows([{ host: 'api\\.shop(:80)?' }], req('GET', '/', {}, 'api.shop:80')), true);
    assert.equal(allows([{ host: 'api\\.shop' }], req('GET', '/', {}, 'evil.api.shop')), false);
  });

  it('treats an empty rule as allow-all and no policies as deny', () => {
    assert.equal(allows([{}], req('PATCH', '/anything')), true);
    assert.equal(decideHttp([], req('GET', '/')).allowed, false);
  });

  it('ORs the rules of every policy and reports the one that allowed', () => {
    const a = httpPolicy([{ method: 'GET' }], { ref: { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'a' } });
    const b = httpPolicy([{ method: 'PUT' }], { ref: { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'b' } });
    const d1 = decideHttp([a, b], req('PUT', '/'));
    assert.equal(d1.allowed, true);
    assert.deepEqual(
      d1.policies.map((p) => p.name),
      ['b'],
    );
    const d2 = decideHttp([a, b], req('DELETE', '/'));
    assert.equal(d2.allowed, false);
    assert.deepEqual(
      d2.policies.map((p) => p.name),
      ['a', 'b'],
    );
  });

  it('lets an allowAll policy (L4-only rule on the port) observe only', () => {
    const d = decideHttp([httpPolicy([{ method: 'GET' }]), httpPolicy([], { allowAll: true })], req('DELETE', '/'));
    assert.equal(d.allowed, true);
  });

  it('matches headers by presence or "Name: value", repeated fields joined with commas', () => {
    assert.equal(allows([{ headers: ['X-Token'] }], req('GET', '/', { 'x-token': '' })), true);
    assert.equal(allows([{ headers: ['X-Token'] }], req('GET', '/')), false);
    assert.equal(allows([{ headers: ['X-Token: abc'] }], req('GET', '/', { 'X-Token': 'abc' })), true);
    assert.equal(allows([{ headers: ['X-Token: abc'] }], req('GET', '/', { 'X-Token': 'abcd' })), false);
    assert.equal(allows([{ headers: ['X-A: 1,2'] }], req('GET', '/', { 'X-A': ['1', '2'] })), true);
    // Cilium splits at the first space: "Name:value" is a presence match on a strange name.
    assert.equal(allows([{ headers: ['X-A:1'] }], req('GET', '/', { 'X-A': '1' })), false);
  });

  describe('headerMatches', () => {
    const secrets: SecretSource = {
      version: 1,
      get: (ns, name) => (ns === 'shop' && name === 'token' ? 'sekret' : undefined),
    };
    it('fails the rule on a mismatch by default, and matches values exactly', () => {
      const rules: HttpRule[] = [{ headerMatches: [{ name: 'X-Key', value: 'v' }] }];
      assert.equal(allows(rules, req('GET', '/', { 'x-key': 'v' })), true);
      assert.equal(allows(rules, req('GET', '/', { 'x-key': 'w' })), false);
      assert.equal(allows(rules, req('GET', '/')), false);
    });
    it('is a presence match without a value', () => {
      const rules: HttpRule[] = [{ headerMatches: [{ name: 'X-Key' }] }];
      assert.equal(allows(rules, req('GET', '/', { 'x-key': 'anything' })), true);
      assert.equal(allows(rules, req('GET', '/')), false);
    });
    it('LOG allows and edits nothing', () => {
      const d = decideHttp(
        [httpPolicy([{ headerMatches: [{ name: 'X-Key', value: 'v', mismatch: 'LOG' }] }])],
        req('GET', '/'),
      );
      assert.equal(d.allowed, true);
      assert.deepEqual(d.edits, []);
    });
    it('ADD appends the value as another field', () => {
      const r = req('GET', '/', { 'x-key': 'w' });
      const d = decideHttp([httpPolicy([{ headerMatches: [{ name: 'X-Key', value: 'v', mismatch: 'ADD' }] }])], r);
      assert.equal(d.allowed, true);
      assert.deepEqual(applyHeaderEdits(r.headers, d.edits), [
        { name: 'x-key', value: 'w' },
        { name: 'x-key', value: 'v' },
      ]);
    });
    it('DELETE removes a field with a wrong value and leaves a missing one missing', () => {
      const rule: HttpRule = { headerMatches: [{ name: 'X-Key', value: 'v', mismatch: 'DELETE' }] };
      const r = req('GET', '/', { 'x-key': ['w', 'z'], other: '1' });
      const d = decideHttp([httpPolicy([rule])], r);
      assert.equal(d.allowed, true);
      assert.deepEqual(applyHeaderEdits(r.headers, d.edits), [{ name: 'other', value: '1' }]);
      assert.deepEqual(decideHttp([httpPolicy([rule])], req('GET', '/')).edits, []);
      // A failed presence match deletes nothing.
      const p = decideHttp([httpPolicy([{ headerMatches: [{ name: 'X-Key', mismatch: 'DELETE' }] }])], req('GET', '/'));
      assert.deepEqual(p.edits, []);
      assert.equal(p.allowed, true);
    });
    it('REPLACE sets one field with the value, in place of the first', () => {
      const rule: HttpRule = { headerMatches: [{ name: 'X-Key', value: 'v', mismatch: 'REPLACE' }] };
      const r = req('GET', '/', { a: '1', 'x-key': 'w', b: '2', 'X-KEY': 'z' });
      const d = decideHttp([httpPolicy([rule])], r);
      assert.deepEqual(applyHeaderEdits(r.headers, d.edits), [
        { name: 'a', value: '1' },
        { name: 'x-key', value: 'v' },
        { name: 'b', value: '2' },
      ]);
      const missing = req('GET', '/');
      assert.deepEqual(applyHeaderEdits(missing.headers, decideHttp([httpPolicy([rule])], missing).edits), [
        { name: 'x-key', value: 'v' },
      ]);
    });
    it('compares against a secret, falls back to the value, fails without either', () => {
      const withSecret: HttpRule = {
        headerMatches: [{ name: 'Authorization', secret: { namespace: 'shop', name: 'token' } }],
      };
      assert.equal(allows([withSecret], req('GET', '/', { authorization: 'sekret' }), secrets), true);
      assert.equal(allows([withSecret], req('GET', '/', { authorization: 'nope' }), secrets), false);
      const missing: HttpRule = {
        headerMatches: [{ name: 'Authorization', secret: { namespace: 'shop', name: 'gone' }, mismatch: 'LOG' }],
      };
      // No secret and no value: the match fails even with LOG.
      assert.equal(allows([missing], req('GET', '/', { authorization: 'x' }), secrets), false);
      const fallback: HttpRule = {
        headerMatches: [{ name: 'Authorization', value: 'fb', secret: { namespace: 'shop', name: 'gone' } }],
      };
      assert.equal(allows([fallback], req('GET', '/', { authorization: 'fb' }), secrets), true);
      // Secret-matched fields are redacted in records, whichever rule or policy decides.
      const d = decideHttp([httpPolicy([withSecret])], req('GET', '/', { authorization: 'sekret' }), secrets);
      assert.ok(d.redact.has('authorization'));
      const other = decideHttp(
        [httpPolicy([], { allowAll: true }), httpPolicy([withSecret])],
        req('GET', '/', { authorization: 'sekret' }),
        secrets,
      );
      assert.ok(other.allowed && other.redact.has('authorization'));
      const deniedOne = decideHttp(
        [httpPolicy([{ method: 'PUT', ...withSecret }])],
        req('GET', '/', { authorization: 'x' }),
        secrets,
      );
      assert.ok(!deniedOne.allowed && deniedOne.redact.has('authorization'));
    });
    it('evaluates every rule when any has headerMatches, so every action runs', () => {
      const rules: HttpRule[] = [
        { method: 'GET' },
        { headerMatches: [{ name: 'X-Added', value: 'yes', mismatch: 'ADD' }] },
      ];
      const r = req('GET', '/');
      const d = decideHttp([httpPolicy(rules)], r);
      assert.equal(d.allowed, true);
      assert.deepEqual(applyHeaderEdits(r.headers, d.edits), [{ name: 'x-added', value: 'yes' }]);
    });
    it('recompiles when the secret version changes', () => {
      let value = 'one';
      const src = { version: 1, get: () => value };
      const p = httpPolicy([{ headerMatches: [{ name: 'X', secret: { namespace: 'shop', name: 's' } }] }]);
      assert.equal(decideHttp([p], req('GET', '/', { x: 'one' }), src).allowed, true);
      value = 'two';
      src.version = 2;
      assert.equal(decideHttp([p], req('GET', '/', { x: 'two' }), src).allowed, true);
      assert.equal(decideHttp([p], req('GET', '/', { x: 'one' }), src).allowed, false);
    });
  });
});

describe('HTTP rule regexes without RE2 (literals)', () => {
  it('answers as RE2 anchored at both ends, for literal, literal.* and anything else', () => {
    const atom = fc.constantFrom('a', 'b', '/', '.', '.*', '\\.', '$', '^', '\\$', 'a|b', '[ab]', '\\\\', '*');
    const pattern = fc.array(atom, { maxLength: 5 }).map((xs) => xs.join(''));
    const value = fc
      .array(fc.constantFrom('a', 'b', '/', '.', '$', '^', '\\'), { maxLength: 6 })
      .map((xs) => xs.join(''));
    fc.assert(
      fc.property(pattern, value, (p, v) => {
        // An empty regex is no constraint at all (Cilium: omitted or empty allows every path).
        if (p === '') return true;
        let re: RE2;
        try {
          re = new RE2(`^(?:${p})$`);
        } catch {
          return true;
        }
        assert.equal(
          allows([{ path: p }], req('GET', v)),
          re.test(v),
          `pattern ${JSON.stringify(p)} value ${JSON.stringify(v)}`,
        );
        return true;
      }),
      { seed: 20261207, numRuns: 3000 },
    );
  });
});
