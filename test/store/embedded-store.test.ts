import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { allocateIdentity, FIRST_GLOBAL_IDENTITY, IDENTITY_IDS_PREFIX } from '../../src/store/cluster-resources.js';
import type { WatchEvent } from '../../src/store/cluster-store.js';
import { EmbeddedStore, type EmbeddedStoreOptions } from '../../src/store/embedded-store.js';
import { until } from '../support/until.js';

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
  it('gives every write one revision and lists a prefix consistently with it', async (t) => {
    const s = open(t, storeDir(t));
    assert.equal(await s.put('a/1', 'x'), 1);
    assert.equal(await s.put('a/2', 'y'), 2);
    assert.equal(await s.put('b/1', 'z'), 3);
    assert.equal(await s.put('a/1', 'x2'), 4);
    const l = await s.list('a/');
    assert.equal(l.revision, 4);
    assert.deepEqual(
      l.items.map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision]),
      [
        ['a/1', 'x2', 1, 4],
        ['a/2', 'y', 2, 2],
      ],
    );
  });

  it('watches from a revision with nothing missed and nothing twice, across processes sharing the directory', async (t) => {
    const dir = storeDir(t);
    const writer = open(t, dir);
    const reader = open(t, dir);
    await writer.put('p/1', 'one');
    const listed = await reader.list('p/');
    await writer.put('p/2', 'two');
    const seen: WatchEvent[] = [];
    reader.watch('p/', listed.revision, { onEvents: (evs) => seen.push(...evs) });
    await writer.put('q/ignored', '-');
    await writer.delete('p/1');
    await writer.put('p/3', 'three');
    // The reader learns of the writer's appends through inotify, not by polling.
    await until(() => seen.length === 3, { what: 'three events' });
    assert.deepEqual(
      seen.map((e) => [e.type, e.key, e.value, e.prevValue, e.revision]),
      [
        ['put', 'p/2', 'two', undefined, 2],
        ['delete', 'p/1', '', 'one', 4],
        ['put', 'p/3', 'three', undefined, 5],
      ],
    );
  });

  it('runs a transaction only when every compare holds, all of its writes at one revision', async (t) => {
    const s = open(t, storeDir(t));
    const create = {
      compare: [{ key: 'k', target: 'createRevision' as const, equals: 0 }],
      success: [
        { type: 'put' as const, key: 'k', value: '1' },
        { type: 'put' as const, key: 'k2', value: '2' },
      ],
    };
    assert.deepEqual(await s.txn(create), { succeeded: true, revision: 1 });
    assert.deepEqual(await s.txn(create), { succeeded: false, revision: 1 });
    assert.equal((await s.get('k2'))?.modRevision, 1);
    const r = await s.txn({
      compare: [{ key: 'k', target: 'value', equals: '1' }],
      success: [{ type: 'deletePrefix', prefix: 'k' }],
    });
    assert.deepEqual(r, { succeeded: true, revision: 2 });
    assert.equal((await s.list('k')).items.length, 0);
  });

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

  it('gives racing allocators of one label set one identity, and other label sets other ones', async (t) => {
    const dir = storeDir(t);
    const a = open(t, dir);
    const b = open(t, dir);
    const labels = ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop'];
    const ids = await Promise.all([
      allocateIdentity(a, labels),
      allocateIdentity(b, [...labels].reverse()),
      allocateIdentity(a, ['k8s:app=db']),
      allocateIdentity(b, ['k8s:app=cache']),
    ]);
    assert.equal(ids[0], ids[1]);
    assert.equal(new Set(ids).size, 3);
    assert.ok(ids.every((id) => id >= FIRST_GLOBAL_IDENTITY));
    assert.equal((await a.list(IDENTITY_IDS_PREFIX)).items.length, 3);
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
