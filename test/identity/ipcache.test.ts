import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Prefix, parsePrefix } from '../../src/identity/cidr.js';
import { IpCache } from '../../src/identity/ipcache.js';

const p = (s: string) => parsePrefix(s) as Prefix;

describe('IpCache', () => {
  it('maps every address to world until something more specific is known', () => {
    const c = new IpCache();
    assert.deepEqual(c.lookup('1.2.3.4'), { prefix: '0.0.0.0/0', identity: 2, source: 'world' });
    assert.deepEqual(c.lookup('2001:db8::1'), { prefix: '::/0', identity: 2, source: 'world' });
  });
  it('answers with the longest matching prefix, and a pod IP beats a CIDR identity', () => {
    const c = new IpCache();
    c.upsert(p('10.0.0.0/8'), 16777217, 'cidr');
    c.upsert(p('10.1.0.0/16'), 16777218, 'cidr');
    c.upsert(p('10.1.2.3/32'), 16777219, 'cidr');
    c.upsert(p('10.1.2.3/32'), 256, 'pod');
    assert.equal(c.lookup('10.2.0.1')?.identity, 16777217);
    assert.equal(c.lookup('10.1.9.9')?.identity, 16777218);
    assert.equal(c.lookup('10.1.2.3')?.identity, 256);
    c.delete(p('10.1.2.3/32'), 'pod');
    assert.equal(c.lookup('10.1.2.3')?.identity, 16777219);
  });
  it('hands out the changes since the last call as a diff', () => {
    const c = new IpCache();
    c.takeDiff();
    c.upsert(p('10.0.0.1/32'), 256, 'pod');
    c.upsert(p('10.0.0.2/32'), 257, 'pod');
    c.delete(p('10.0.0.2/32'), 'pod');
    assert.deepEqual(c.takeDiff(), {
      upserts: [{ prefix: '10.0.0.1/32', identity: 256, source: 'pod' }],
      deletes: ['10.0.0.2/32'],
    });
    assert.deepEqual(c.takeDiff(), { upserts: [], deletes: [] });
  });
});
