// Maglev tables: every cell filled, backends share the table evenly, the same set gives the same
// table in any order, and removing one of N backends moves about 1/N of the cells (measured).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAGLEV_TABLE_SIZES, maglevTable, murmur3 } from '../../src/lb/maglev.js';

const backends = (n: number) => Array.from({ length: n }, (_, i) => `10.201.${i >> 8}.${i & 255}:8080/TCP`);

describe('maglev', () => {
  it('hashes with MurmurHash3 x86 32 (reference vectors)', () => {
    assert.equal(murmur3('', 0), 0);
    assert.equal(murmur3('', 1), 0x514e28b7);
    assert.equal(murmur3('hello', 0), 0x248bfa47);
    assert.equal(murmur3('The quick brown fox jumps over the lazy dog', 0), 0x2e4ff723);
  });

  it('fills every cell and shares the table evenly', () => {
    const t = maglevTable(backends(10), 16381);
    const counts = new Array(10).fill(0);
    for (const b of t) counts[b]++;
    assert.equal(
      counts.reduce((a, b) => a + b),
      16381,
    );
    for (const c of counts) assert.ok(Math.abs(c - 1638) <= 2, `${counts}`);
  });

  it('gives the same table for the same backends in any order', () => {
    const names = backends(7);
    const a = maglevTable(names, 1021);
    const rev = [...names].reverse();
    const b = maglevTable(rev, 1021);
    for (let i = 0; i < a.length; i++) assert.equal(names[a[i]], rev[b[i]]);
  });

  for (const n of [3, 10, 50]) {
    it(`moves at most 1/N + 1% of the cells when one of ${n} backends goes`, () => {
      const m = 16381;
      const names = backends(n);
      const before = maglevTable(names, m);
      const gone = Math.floor(n / 2);
      const rest = names.filter((_, i) => i !== gone);
      const after = maglevTable(rest, m);
      let moved = 0;
      for (let i = 0; i < m; i++) if (names[before[i]] !== rest[after[i]]) moved++;
      const share = moved / m;
      assert.ok(share <= 1 / n + 0.01, `moved ${(share * 100).toFixed(2)}% with ${n} backends`);
      // Only the cells of the backend that went must move; the rest is Maglev's small extra churn.
      const own = before.filter((b) => b === gone).length / m;
      assert.ok(share >= own);
    });
  }

  it('refuses a table size that is not one of Cilium primes', () => {
    assert.throws(() => maglevTable(backends(2), 1000), /expected one of 251, 509/);
    for (const m of MAGLEV_TABLE_SIZES.slice(0, 3)) assert.equal(maglevTable(backends(3), m).length, m);
    assert.equal(maglevTable([], 251).length, 0);
  });
});
