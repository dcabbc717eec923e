// Pod CIDRs claimed through the store: a requested block or the lowest free one of the cluster
// pool, never one block for two nodes, even when they race.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { EmbeddedStore } from '../../src/store/embedded-store.js';
import { claimPodCIDR, listNodes, registerNode } from '../../src/store/node-registry.js';

const POOL = { cidr: '10.201.0.0/16', maskSize: 24 };

function store(t: TestContext): EmbeddedStore {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-nodes-'));
  const s = EmbeddedStore.open(dir, { leaseSweepMs: 0 });
  t.after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return s;
}

describe('node registry', () => {
  it('gives a node the block it asks for, again on restart, and refuses it to another node', async (t) => {
    const s = store(t);
    assert.equal(await claimPodCIDR(s, 'n1', POOL, '10.201.1.0/24'), '10.201.1.0/24');
    assert.equal(await claimPodCIDR(s, 'n1', POOL, '10.201.1.0/24'), '10.201.1.0/24');
    await assert.rejects(claimPodCIDR(s, 'n2', POOL, '10.201.1.0/24'), {
      code: 'MBR_PODCIDR_CONFLICT',
      message: 'pod CIDR 10.201.1.0/24: expected it free, got it allocated to node n1',
    });
    await assert.rejects(claimPodCIDR(s, 'n2', POOL, '10.201.1.0/23'), {
      code: 'MBR_PODCIDR_CONFLICT',
      message: 'pod CIDR: expected a /24 block of the cluster pool 10.201.0.0/16, got "10.201.1.0/23"',
    });
  });

  it('allocates free blocks of the pool to racing nodes, one each, and keeps each node its own', async (t) => {
    const s = store(t);
    await claimPodCIDR(s, 'n0', POOL, '10.201.0.0/24');
    const got = await Promise.all(['a', 'b', 'c', 'd'].map((n) => claimPodCIDR(s, n, POOL)));
    assert.equal(new Set(got).size, 4);
    assert.deepEqual([...got].sort(), ['10.201.1.0/24', '10.201.2.0/24', '10.201.3.0/24', '10.201.4.0/24']);
    assert.equal(await claimPodCIDR(s, 'c', POOL), got[2]);
    await assert.rejects(
      claimPodCIDR(s, 'x', { cidr: '10.9.0.0/30', maskSize: 30 }).then(() =>
        claimPodCIDR(s, 'y', { cidr: '10.9.0.0/30', maskSize: 30 }),
      ),
      {
        code: 'MBR_PODCIDR_EXHAUSTED',
        message: 'pod CIDR: no free /30 block left in 10.9.0.0/30',
      },
    );
  });

  it('lists the nodes whose lease lives, and forgets one whose lease is revoked', async (t) => {
    const s = store(t);
    const l1 = await s.grantLease(30);
    const l2 = await s.grantLease(30);
    await registerNode(s, { name: 'n1', ipv4: '172.30.0.11', podCIDR: '10.201.1.0/24', health: 'ok' }, l1);
    await registerNode(s, { name: 'n2', ipv4: '172.30.0.12', podCIDR: '10.201.2.0/24', health: 'ok' }, l2);
    assert.deepEqual(
      (await listNodes(s)).map((n) => n.name),
      ['n1', 'n2'],
    );
    await s.revokeLease(l2);
    assert.deepEqual(
      (await listNodes(s)).map((n) => n.name),
      ['n1'],
    );
  });
});
