import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostPrefix, type Prefix, parsePrefix, prefixContains } from '../../src/identity/cidr.js';

const p = (s: string) => parsePrefix(s) as Prefix;

describe('prefixes', () => {
  it('parses and canonicalises IPv4 and IPv6 prefixes', () => {
    assert.equal(p('10.1.2.3/8').text, '10.0.0.0/8');
    assert.equal(p('fd00:0:0::1/64').text, 'fd00::/64');
    assert.equal(p('::ffff:1.2.3.4').text, '::ffff:102:304/128');
    assert.equal(p('0.0.0.0/0').text, '0.0.0.0/0');
  });
  it('rejects bad addresses and lengths', () => {
    for (const bad of ['10.0.0.256/8', '10.0.0.0/33', 'foo', '1::2::3', '01.2.3.4', '10.0.0.0/x'])
      assert.equal(typeof parsePrefix(bad), 'string', bad);
  });
  it('tests containment within one family', () => {
    assert.ok(prefixContains(p('10.0.0.0/8'), p('10.1.0.0/16')));
    assert.ok(prefixContains(p('10.0.0.0/8'), p('10.0.0.0/8')));
    assert.ok(!prefixContains(p('10.1.0.0/16'), p('10.0.0.0/8')));
    assert.ok(!prefixContains(p('0.0.0.0/0'), p('::/0')));
    assert.ok(prefixContains(p('fd00::/8'), hostPrefix('fd00::5')!));
  });
});
