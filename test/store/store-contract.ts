// What every ClusterStore implementation must do, as one table of cases run by each
// implementation's test file (embedded-store.test.ts, etcd-store.priv.test.ts). Revisions are
// asserted relative to the store's revision when the case starts, since an etcd starts at 1 and
// the embedded store at 0.
import assert from 'node:assert/strict';
import {
  allocateIdentity,
  FIRST_GLOBAL_IDENTITY,
  IDENTITY_IDS_PREFIX,
  identityKey,
  identityValuePrefix,
  releaseIdentity,
} from '../../src/store/cluster-resources.js';
import type { ClusterStore, WatchEvent } from '../../src/store/cluster-store.js';
import { IdentityGc } from '../../src/store/identity-gc.js';
import { until } from '../support/until.js';

/** Opens another instance (process, client) on the same backing store; the harness closes it. */
export type OpenStore = () => Promise<ClusterStore>;

export interface StoreContractCase {
  readonly name: string;
  readonly run: (open: OpenStore) => Promise<void>;
}

export const STORE_CONTRACT: readonly StoreContractCase[] = [
  {
    name: 'gives every write one revision and lists a prefix consistently with it',
    async run(open) {
      const s = await open();
      const r0 = (await s.list('')).revision;
      assert.equal(await s.put('a/1', 'x'), r0 + 1);
      assert.equal(await s.put('a/2', 'y'), r0 + 2);
      assert.equal(await s.put('b/1', 'z'), r0 + 3);
      assert.equal(await s.put('a/1', 'x2'), r0 + 4);
      const l = await s.list('a/');
      assert.equal(l.revision, r0 + 4);
      assert.equal(await s.currentRevision(), r0 + 4, 'the current revision, without reading keys');
      assert.deepEqual(
        l.items.map((kv) => [kv.key, kv.value, kv.createRevision - r0, kv.modRevision - r0, kv.lease]),
        [
          ['a/1', 'x2', 1, 4, 0],
          ['a/2', 'y', 2, 2, 0],
        ],
      );
      assert.deepEqual(
        (await s.list('')).items.map((kv) => kv.key),
        ['a/1', 'a/2', 'b/1'],
      );
      assert.equal(await s.get('nope'), undefined);
      assert.equal(await s.delete('a/2'), r0 + 5);
    },
  },
  {
    name: 'watches from a revision with nothing missed and nothing twice, across two instances',
    async run(open) {
      const writer = await open();
      const reader = await open();
      const r1 = await writer.put('p/1', 'one');
      const listed = await reader.list('p/');
      await writer.put('p/2', 'two');
      const seen: WatchEvent[] = [];
      const batches: number[] = [];
      reader.watch('p/', listed.revision, {
        onEvents: (evs) => {
          batches.push(evs.length);
          seen.push(...evs);
        },
      });
      await writer.put('q/ignored', '-');
      await writer.delete('p/1');
      await writer.put('p/3', 'three');
      // One transaction that writes two keys under the prefix is one batch.
      await writer.txn({
        compare: [],
        success: [
          { type: 'put', key: 'p/4', value: 'four' },
          { type: 'put', key: 'p/5', value: 'five' },
        ],
      });
      await until(() => seen.length === 5, { what: 'five events' });
      assert.deepEqual(
        seen.map((e) => [e.type, e.key, e.value, e.prevValue, e.revision - r1]),
        [
          ['put', 'p/2', 'two', undefined, 1],
          ['delete', 'p/1', '', 'one', 3],
          ['put', 'p/3', 'three', undefined, 4],
          ['put', 'p/4', 'four', undefined, 5],
          ['put', 'p/5', 'five', undefined, 5],
        ],
      );
      assert.deepEqual(batches, [1, 1, 1, 2]);
    },
  },
  {
    name: 'runs a transaction only when every compare holds, all of its writes at one revision',
    async run(open) {
      const s = await open();
      const r0 = (await s.list('')).revision;
      const create = {
        compare: [{ key: 'k', target: 'createRevision' as const, equals: 0 }],
        success: [
          { type: 'put' as const, key: 'k', value: '1' },
          { type: 'put' as const, key: 'k2', value: '2' },
        ],
      };
      assert.deepEqual(await s.txn(create), { succeeded: true, revision: r0 + 1 });
      assert.deepEqual(await s.txn(create), { succeeded: false, revision: r0 + 1 });
      assert.equal((await s.get('k2'))?.modRevision, r0 + 1);
      const stale = await s.txn({
        compare: [{ key: 'k', target: 'modRevision', equals: r0 }],
        success: [{ type: 'put', key: 'k', value: 'stale' }],
        failure: [{ type: 'put', key: 'lost', value: 'yes' }],
      });
      assert.deepEqual(stale, { succeeded: false, revision: r0 + 2 });
      assert.equal((await s.get('lost'))?.value, 'yes');
      const r = await s.txn({
        compare: [
          { key: 'k', target: 'value', equals: '1' },
          { key: 'k', target: 'modRevision', equals: r0 + 1 },
        ],
        success: [
          { type: 'deletePrefix', prefix: 'k' },
          { type: 'delete', key: 'lost' },
        ],
      });
      assert.deepEqual(r, { succeeded: true, revision: r0 + 3 });
      assert.equal((await s.list('k')).items.length, 0);
      assert.equal(await s.get('lost'), undefined);
    },
  },
  {
    name: 'gives racing allocators of one label set one identity, and other label sets other ones',
    async run(open) {
      const a = await open();
      const b = await open();
      const labels = ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop'];
      const ids = await Promise.all([
        allocateIdentity(a, labels, { node: 'n1', lease: 0 }),
        allocateIdentity(b, [...labels].reverse(), { node: 'n2', lease: 0 }),
        allocateIdentity(a, ['k8s:app=db'], { node: 'n1', lease: 0 }),
        allocateIdentity(b, ['k8s:app=cache'], { node: 'n2', lease: 0 }),
      ]);
      assert.equal(ids[0], ids[1]);
      assert.equal(new Set(ids).size, 3);
      assert.ok(ids.every((id) => id >= FIRST_GLOBAL_IDENTITY));
      assert.equal((await a.list(IDENTITY_IDS_PREFIX)).items.length, 3);
      assert.deepEqual(
        (await a.list(identityValuePrefix(labels))).items.map((kv) => [kv.key.split('/').at(-1), Number(kv.value)]),
        [
          ['n1', ids[0]],
          ['n2', ids[0]],
        ],
        'one slave key per holding node, both naming the one id',
      );
    },
  },
  {
    name: "moves a node's hold onto its new lease when it allocates again after a restart",
    async run(open) {
      const s = await open();
      const [old, fresh] = [await s.grantLease(30), await s.grantLease(30)];
      const labels = ['k8s:app=web'];
      const id = await allocateIdentity(s, labels, { node: 'n1', lease: old });
      assert.equal(await allocateIdentity(s, labels, { node: 'n1', lease: fresh }, { isUsed: () => false }), id);
      assert.deepEqual(
        (await s.list(identityValuePrefix(labels))).items.map((kv) => kv.lease),
        [fresh],
      );
      await s.revokeLease(old);
      assert.equal((await s.list(identityValuePrefix(labels))).items.length, 1, 'still held after the old lease went');
    },
  },
  {
    name: 'runs a transaction on a prefix holding no key, and not on one holding any',
    async run(open) {
      const s = await open();
      const none = await s.txn({
        compare: [{ prefix: 'x/', target: 'empty' }],
        success: [{ type: 'put', key: 'x/1', value: '1' }],
      });
      assert.equal(none.succeeded, true);
      const some = await s.txn({
        compare: [{ prefix: 'x/', target: 'empty' }],
        success: [{ type: 'put', key: 'x/2', value: '2' }],
      });
      assert.equal(some.succeeded, false);
      assert.equal(await s.get('x/2'), undefined);
    },
  },
  {
    name: 'collects an identity no node holds after the grace period, and keeps one a node holds',
    async run(open) {
      const s = await open();
      const lease = await s.grantLease(30);
      let nowMs = 1_000_000;
      const gc = new IdentityGc({
        store: s,
        node: 'n1',
        lease: () => lease,
        intervalMs: 1000,
        graceMs: 5000,
        nowMs: () => nowMs,
      });
      const web = ['k8s:app=web'];
      const db = ['k8s:app=db'];
      const webId = await allocateIdentity(s, web, { node: 'n1', lease });
      const dbId = await allocateIdentity(s, db, { node: 'n2', lease: 0 });
      await releaseIdentity(s, db, 'n2');
      assert.deepEqual(await gc.runOnce(), [], 'first seen unheld: kept');
      nowMs += 4000;
      assert.deepEqual(await gc.runOnce(), [], 'within the grace period');
      // Reused within the grace period: the same number, and it stays.
      assert.equal(await allocateIdentity(s, db, { node: 'n3', lease: 0 }), dbId);
      nowMs += 10_000;
      assert.deepEqual(await gc.runOnce(), []);
      await releaseIdentity(s, db, 'n3');
      await gc.runOnce();
      nowMs += 5000;
      assert.deepEqual(await gc.runOnce(), [dbId]);
      assert.equal(await s.get(identityKey(dbId)), undefined);
      assert.ok(await s.get(identityKey(webId)), 'held: kept');
      // A second GC does not get the lock while the first one's lease lives.
      const other = new IdentityGc({ store: s, node: 'n2', lease: () => lease + 1, intervalMs: 1000, graceMs: 0 });
      await other.runOnce();
      assert.equal(other.isLeader, false);
      assert.equal(gc.isLeader, true);
    },
  },
];
