import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FqdnCache, FqdnCacheError } from '../../src/fqdn/dns-cache.js';

function clock(startMs = Date.UTC(2026, 0, 1)) {
  const c = { t: startMs, now: () => c.t, advance: (s: number) => (c.t += s * 1000) };
  return c;
}

const NOBODY_USES = () => false;

describe('FqdnCache', () => {
  it('keeps an IP for its TTL and deletes it at gc once expired', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now });
    assert.deepEqual(cache.update([{ endpointId: 1, name: 'API.stripe.com', ips: ['1.1.1.1'], ttlSeconds: 30 }]), [
      'api.stripe.com.',
    ]);
    assert.deepEqual(cache.ipsOf('api.stripe.com'), ['1.1.1.1']);
    c.advance(29);
    assert.deepEqual(cache.gc(NOBODY_USES), []);
    assert.deepEqual(cache.ipsOf('api.stripe.com.'), ['1.1.1.1']);
    c.advance(1);
    assert.deepEqual(cache.gc(NOBODY_USES), ['api.stripe.com.']);
    assert.deepEqual(cache.ipsOf('api.stripe.com'), []);
    assert.equal(cache.namesOf('1.1.1.1'), undefined);
  });

  it('keeps an expired IP while a tracked connection uses it, listed as source connection', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now });
    cache.update([{ endpointId: 1, name: 'a.com', ips: ['1.1.1.1', '2.2.2.2'], ttlSeconds: 5 }]);
    c.advance(10);
    assert.deepEqual(
      cache.gc((ip) => ip === '1.1.1.1'),
      ['a.com.'],
    );
    assert.deepEqual(cache.ipsOf('a.com'), ['1.1.1.1']);
    const rows = cache.list();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.source, 'connection');
    assert.deepEqual(rows[0]!.ips, ['1.1.1.1']);
    assert.deepEqual(cache.gc(NOBODY_USES), ['a.com.']);
  });

  it('keeps at most maxDeferredDeletes expired IPs in use per endpoint, dropping those that expired first', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now, maxDeferredDeletes: 2 });
    cache.update([{ endpointId: 1, name: 'a.com', ips: ['1.1.1.1'], ttlSeconds: 1 }]);
    cache.update([{ endpointId: 1, name: 'b.com', ips: ['2.2.2.2'], ttlSeconds: 2 }]);
    cache.update([{ endpointId: 1, name: 'c.com', ips: ['3.3.3.3'], ttlSeconds: 3 }]);
    c.advance(10);
    assert.deepEqual(
      cache.gc(() => true),
      ['a.com.'],
    );
    assert.deepEqual([...cache.namesIps().keys()].sort(), ['b.com.', 'c.com.']);
  });

  it('applies the minimum TTL to short answers', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now, minTtlSeconds: 60 });
    cache.update([{ endpointId: 1, name: 'a.com', ips: ['1.1.1.1'], ttlSeconds: 0 }]);
    c.advance(59);
    cache.gc(NOBODY_USES);
    assert.deepEqual(cache.ipsOf('a.com'), ['1.1.1.1']);
    assert.equal(cache.list()[0]!.ttlSeconds, 60);
    c.advance(1);
    cache.gc(NOBODY_USES);
    assert.deepEqual(cache.ipsOf('a.com'), []);
  });

  it('with the default minimum TTL of 0, a TTL 0 answer is gone at the next gc', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now });
    assert.deepEqual(cache.update([{ endpointId: 1, name: 'a.com', ips: ['1.1.1.1'], ttlSeconds: 0 }]), ['a.com.']);
    assert.deepEqual(cache.gc(NOBODY_USES), ['a.com.']);
  });

  it('evicts the IPs that expire first past the per-name cap (default 1000)', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now });
    assert.equal(cache.maxIpsPerName, 1000);
    const ips = Array.from({ length: 1200 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1`);
    cache.update([{ endpointId: 1, name: 'cdn.com', ips: ips.slice(0, 200), ttlSeconds: 10 }]);
    cache.update([{ endpointId: 1, name: 'cdn.com', ips: ips.slice(200), ttlSeconds: 100 }]);
    const live = cache.list().filter((r) => r.source === 'lookup');
    assert.equal(live[0]!.ips.length, 1000);
    assert.ok(!live[0]!.ips.includes(ips[0]!));
    // Evicted IPs go through the deferred delete like expired ones.
    assert.equal(cache.ipsOf('cdn.com').length, 1200);
    assert.deepEqual(
      cache.gc((ip) => ip === ips[0]),
      ['cdn.com.'],
    );
    assert.equal(cache.ipsOf('cdn.com').length, 1001);
  });

  it('keeps the union over endpoints: an IP leaves a name when no endpoint holds it', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now });
    cache.update([{ endpointId: 1, name: 'a.com', ips: ['1.1.1.1'], ttlSeconds: 5 }]);
    assert.deepEqual(cache.update([{ endpointId: 2, name: 'a.com', ips: ['1.1.1.1'], ttlSeconds: 50 }]), []);
    c.advance(10);
    assert.deepEqual(cache.gc(NOBODY_USES), []);
    assert.deepEqual(cache.ipsOf('a.com'), ['1.1.1.1']);
    assert.deepEqual(cache.clean({ endpointId: 2 }), ['a.com.']);
  });

  it('never learns a name nobody queried', () => {
    const cache = new FqdnCache({ now: clock().now });
    assert.deepEqual(cache.ipsOf('never.queried.com'), []);
    assert.deepEqual([...cache.namesIps()], []);
  });

  it('cleans by name matcher and lists names per IP', () => {
    const cache = new FqdnCache({ now: clock().now });
    cache.update([
      { endpointId: 1, name: 'www.a.com', ips: ['1.1.1.1'], ttlSeconds: 60 },
      { endpointId: 1, name: 'a-cdn.net', ips: ['1.1.1.1'], ttlSeconds: 60 },
      { endpointId: 1, name: 'b.com', ips: ['2.2.2.2'], ttlSeconds: 60 },
    ]);
    assert.deepEqual(cache.namesOf('1.1.1.1'), ['a-cdn.net.', 'www.a.com.']);
    assert.deepEqual(cache.clean({ matches: (n) => n.endsWith('a.com.') }), ['www.a.com.']);
    assert.deepEqual(cache.namesOf('1.1.1.1'), ['a-cdn.net.']);
  });

  it('survives a restart through its snapshot, expiries in wall-clock time', () => {
    const c = clock();
    const cache = new FqdnCache({ now: c.now });
    cache.update([{ endpointId: 3, name: 'a.com', ips: ['1.1.1.1', '1.1.1.2'], ttlSeconds: 30 }]);
    const json = JSON.parse(JSON.stringify(cache.snapshot()));
    const again = new FqdnCache({ now: c.now });
    again.restore(json);
    assert.deepEqual(again.list(), cache.list());
    c.advance(31);
    assert.deepEqual(again.gc(NOBODY_USES), ['a.com.']);
  });

  it('refuses a bad snapshot with a typed error naming the entry', () => {
    const cache = new FqdnCache({ now: clock().now });
    assert.throws(() => cache.restore({ version: 2 }), FqdnCacheError);
    assert.throws(() => cache.restore({ version: 1, entries: [{ endpointId: 'x' }] }), {
      code: 'MBR_FQDN_CACHE_INVALID',
      message: 'FQDN cache snapshot: entries[0]: expected endpointId, name, ip, times',
    });
  });
});
