import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { WatchEvent } from '../../src/store/cluster-store.js';
import { EmbeddedStore, type EmbeddedStoreOptions } from '../../src/store/embedded-store.js';
import { until } from '../support/until.js';
import { STORE_CONTRACT } from './store-contract.js';

function storeDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function open(t: TestContext, dir: string, opts: EmbeddedStoreOptions = {}): EmbeddedStore {
  const s = EmbeddedStore.open(dir, { leaseSweepMs: 0, ...opts });
  t.after(() => s.close());
  return s;
}

describe('embedded cluster store', () => {
  for (const c of STORE_CONTRACT) {
    it(c.name, (t) => {
      const dir = storeDir(t);
      return c.run(async () => open(t, dir));
    });
  }

  it('keeps its state across a restart by replaying its log', async (t) => {
    const dir = storeDir(t);
    const a = EmbeddedStore.open(dir, { leaseSweepMs: 0 });
    await a.put('x', '1');
    await a.put('y', '2');
    await a.delete('x');
    await a.close();
    const b = open(t, dir);
    assert.equal(b.revision, 3);
    assert.deepEqual(
      (await b.list('')).items.map((kv) => kv.key),
      ['y'],
    );
  });

  it('skips a record a dead writer left half-written, and the next write lands intact', async (t) => {
    const dir = storeDir(t);
    const a = EmbeddedStore.open(dir, { leaseSweepMs: 0 });
    await a.put('x', '1');
    await a.close();
    appendFileSync(join(dir, 'log.0.jsonl'), '{"r":2,"o":[{"p":"half');
    const b = open(t, dir);
    assert.equal(await b.put('y', '2'), 2);
    const c = open(t, dir);
    assert.equal(c.corruptRecords, 1);
    assert.deepEqual(
      (await c.list('')).items.map((kv) => [kv.key, kv.value]),
      [
        ['x', '1'],
        ['y', '2'],
      ],
    );
  });

  it('deletes the keys of a lease that was not kept alive, and keeps those of one that was', async (t) => {
    let now = 1_000_000;
    const dir = storeDir(t);
    const s = open(t, dir, { nowMs: () => now, leaseSweepMs: 5 });
    const gone = await s.grantLease(10);
    const kept = await s.grantLease(10);
    await s.put('nodes/a', 'a', { lease: gone });
    await s.put('nodes/b', 'b', { lease: kept });
    await s.put('other', 'o');
    now += 8000;
    await s.keepAlive(kept);
    now += 4000;
    await until(async () => (await s.get('nodes/a')) === undefined, { what: 'nodes/a deleted' });
    assert.equal((await s.get('nodes/b'))?.value, 'b');
    assert.equal((await s.get('other'))?.value, 'o');
    await assert.rejects(s.keepAlive(gone), { code: 'MBR_STORE_NO_LEASE' });
  });

  it('tells a watch whose revision is no longer held to resync', async (t) => {
    const s = open(t, storeDir(t), { historyLimit: 2 });
    for (let i = 0; i < 5; i++) await s.put(`k/${i}`, String(i));
    let compactedAt = 0;
    const seen: WatchEvent[] = [];
    s.watch('k/', 1, { onEvents: (e) => seen.push(...e), onCompacted: (rev) => (compactedAt = rev) });
    await until(() => compactedAt === 5, { what: 'onCompacted' });
    await s.put('k/9', '9');
    await until(() => seen.length === 1, { what: 'the next event' });
    assert.equal(seen[0].revision, 6);
  });
});

describe('embedded cluster store compaction', () => {
  it('compacts into a snapshot generation, and a follower in another instance crosses it missing nothing', async (t) => {
    const dir = storeDir(t);
    const writer = open(t, dir, { compactBytes: 2000 });
    const follower = open(t, dir);
    const seen: WatchEvent[] = [];
    follower.watch('k/', 0, { onEvents: (evs) => seen.push(...evs) });
    for (let i = 0; i < 100; i++) await writer.put(`k/${i % 7}`, `value-${i}`);
    await writer.delete('k/3');
    await until(() => seen.length === 101, { what: '101 events' });
    assert.deepEqual(
      seen.map((e) => e.revision),
      Array.from({ length: 101 }, (_, i) => i + 1),
    );
    const gens = readdirSync(dir).filter((f) => /^log\.\d+\.jsonl$/.test(f));
    assert.ok(gens.length <= 2 && !gens.includes('log.0.jsonl'), gens.join(' '));
    assert.deepEqual(await follower.list('k/'), await writer.list('k/'));
  });

  it('reopens from the newest snapshot with revisions intact, and sends a watch from before it to resync', async (t) => {
    const dir = storeDir(t);
    const a = EmbeddedStore.open(dir, { leaseSweepMs: 0, compactBytes: 1000 });
    const lease = await a.grantLease(60);
    await a.put('node/n1', 'n1', { lease });
    for (let i = 0; i < 50; i++) await a.put(`k/${i % 5}`, `v${i}`);
    const before = await a.list('');
    await a.close();
    const b = open(t, dir);
    assert.deepEqual(await b.list(''), before);
    let compactedAt = 0;
    b.watch('k/', 3, { onEvents: () => undefined, onCompacted: (rev) => (compactedAt = rev) });
    await until(() => compactedAt === before.revision, { what: 'onCompacted' });
    // The lease came through the snapshot: its key still goes with it.
    await b.revokeLease(lease);
    assert.equal(await b.get('node/n1'), undefined);
  });
});
