// The node's identity holds: a slave key per identity its endpoints use, dropped with the last
// one; holds taken for other nodes' pods dropped when no pod uses them; while the store does not
// answer, a known identity is still handed out and its hold written once the store is back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { IdentityCache, labelSetOf } from '../../src/agent/identity-cache.js';
import { identityValuePrefix } from '../../src/store/cluster-resources.js';
import { type ClusterStore, StoreError } from '../../src/store/cluster-store.js';
import { EmbeddedStore } from '../../src/store/embedded-store.js';

const WEB = ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop'];

function store(t: TestContext): EmbeddedStore {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-idc-'));
  const s = EmbeddedStore.open(dir, { leaseSweepMs: 0 });
  t.after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return s;
}

/** The store, unless `down`: then every call fails as etcd's would with no member answering. */
function flaky(s: ClusterStore): ClusterStore & { down: boolean } {
  const w = { down: false } as ClusterStore & { down: boolean };
  for (const name of ['get', 'list', 'put', 'delete', 'txn'] as const)
    (w as unknown as Record<string, unknown>)[name] = (...args: unknown[]) =>
      w.down
        ? Promise.reject(new StoreError('MBR_STORE_UNREACHABLE', 'etcd: no member answers'))
        : (s[name] as (...a: unknown[]) => Promise<unknown>).apply(s, args);
  return w;
}

const holders = async (s: ClusterStore) =>
  (await s.list(identityValuePrefix(WEB))).items.map((kv) => kv.key.slice(identityValuePrefix(WEB).length));

describe('identity cache holds', () => {
  it("holds an identity while any local endpoint uses it, and drops the node's slave key with the last", async (t) => {
    const s = store(t);
    const c = new IdentityCache(s, 'n1');
    const id = await c.hold(labelSetOf(WEB));
    assert.equal(await c.hold(labelSetOf(WEB)), id);
    assert.deepEqual(await holders(s), ['n1']);
    await c.unhold(id);
    assert.deepEqual(await holders(s), ['n1'], 'one endpoint still uses it');
    await c.unhold(id);
    assert.deepEqual(await holders(s), []);
  });

  it('drops a hold taken for other nodes’ pods once the engine no longer uses it', async (t) => {
    const s = store(t);
    const c = new IdentityCache(s, 'n1');
    const id = await c.ensure(labelSetOf(WEB));
    assert.equal(c.acquire(labelSetOf(WEB), 'global'), id);
    assert.deepEqual(await holders(s), ['n1']);
    c.release(id);
    await c.syncHolds(); // runs after the release's drop, which is queued on the same chain
    assert.deepEqual(await holders(s), []);
  });

  it('hands out a known identity while the store is away, and writes the hold once it is back', async (t) => {
    const s = store(t);
    const other = new IdentityCache(s, 'n2');
    const id = await other.hold(labelSetOf(WEB));
    const f = flaky(s);
    const c = new IdentityCache(f, 'n1');
    c.upsertGlobal({ id, labels: WEB });
    f.down = true;
    assert.equal(await c.hold(labelSetOf(WEB)), id);
    await assert.rejects(c.hold(labelSetOf(['k8s:app=new'])), { code: 'MBR_STORE_UNREACHABLE' });
    assert.deepEqual(c.holdStats(), { held: 1, pending: 1 });
    await assert.rejects(c.syncHolds(), { code: 'MBR_STORE_UNREACHABLE' });
    f.down = false;
    await c.syncHolds();
    assert.deepEqual(c.holdStats(), { held: 1, pending: 0 });
    assert.deepEqual(await holders(s), ['n1', 'n2']);
  });
});
