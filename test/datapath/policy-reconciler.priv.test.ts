// The reconciler's promises on real maps: a change is published whole or not at all, capacity
// problems are reported (error code, status) with the previous policy still in force, maps grow
// with the state, and bad keys are refused before anything is written.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { BpfMap } from '../../src/datapath/bpf-map.js';
import { removePinDir } from '../../src/datapath/bpffs.js';
import { Datapath, type DatapathOptions } from '../../src/datapath/datapath.js';
import { activePolicyMapId } from '../../src/datapath/endpoint-policy.js';
import { EndpointFlags } from '../../src/datapath/maps/endpoint-map.js';
import { parseIpv4Prefix } from '../../src/datapath/maps/ipcache-map.js';
import { decodePolicyKey } from '../../src/datapath/maps/policy-map.js';
import { requireBpf } from './support/require-bpf.js';
import { allow, deny } from './support/traffic.js';

function open(t: TestContext, name: string, opts: DatapathOptions = {}): Datapath {
  const pinDir = `/sys/fs/bpf/membrane/dp-rec-${name}-${process.pid}`;
  removePinDir(pinDir);
  const dp = Datapath.open({ pinDir, ...opts });
  t.after(() => {
    dp.destroy();
    removePinDir(pinDir);
  });
  return dp;
}

/** What the datapath really uses: the trie mbr_policy[ep] points at. */
function kernelPolicyKeys(dp: Datapath, ep: number): string[] {
  // Not attached: no mbr_endpoints entry names a slot, so read the datapath's own choice.
  const slot = dp.activePolicySlot(ep);
  const id = activePolicyMapId(dp.map('mbr_policy'), slot, ep);
  assert.ok(id, 'endpoint has a published policy map');
  const m = BpfMap.fromId(id);
  try {
    return [...m.keys()].map((b) => JSON.stringify(decodePolicyKey(b))).sort();
  } finally {
    m.close();
  }
}

/** n ipcache entries 10.9.x.y/32 with identities from 3000. */
function ipcacheFiller(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    prefix: parseIpv4Prefix(`10.9.${i >> 8}.${i & 255}`),
    identity: 3000 + i,
  }));
}

describe('policy reconciler', () => {
  it('refuses a change past the map limit and keeps the previous policy in force', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'full', { policyMapMaxEntries: 4 });
    dp.applyPolicy({
      endpointId: 5,
      adds: [allow(1, 'ingress'), allow(2, 'ingress'), allow(3, 'ingress')],
      deletes: [],
    });
    const before = kernelPolicyKeys(dp, 5);
    assert.throws(
      () =>
        dp.applyPolicy({
          endpointId: 5,
          adds: [allow(4, 'ingress'), allow(5, 'ingress'), allow(6, 'ingress')],
          deletes: [],
        }),
      {
        code: 'MBR_DATAPATH_MAP_FULL',
        message:
          'endpoint 5: policy needs 6 entries, more than the limit of 4 (policyMapMaxEntries); the previous policy stays in force',
      },
    );
    assert.deepEqual(kernelPolicyKeys(dp, 5), before);
    assert.equal(dp.policyEntries(5).length, 3);
    const st = dp.status();
    assert.equal(st.ok, false);
    assert.deepEqual(
      st.errors.map((e) => [e.code, e.endpointId]),
      [['MBR_DATAPATH_MAP_FULL', 5]],
    );
    // A change that fits clears the error.
    dp.applyPolicy({ endpointId: 5, adds: [allow(4, 'ingress')], deletes: [] });
    assert.equal(dp.status().ok, true);
    assert.equal(kernelPolicyKeys(dp, 5).length, 4);
  });

  it("publishes a steady change by flipping the endpoint's slot, with no write to mbr_policy", (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'flip');
    dp.writeEndpointInfo({ endpointId: 4, identity: 1, ipv4: '10.0.0.4', flags: 0, policyRevision: 1, ifindex: 77 });
    const outerIds = () =>
      [0, 1].map((slot) => {
        const k = Buffer.alloc(4);
        k.writeUInt32LE((4 << 1) | slot);
        return dp.map('mbr_policy').lookup(k)?.readUInt32LE(0);
      });
    const entry = () => {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(77);
      const v = dp.map('mbr_endpoints').lookup(k);
      assert.ok(v);
      return { slotB: (v.readUInt32LE(12) & EndpointFlags.policySlotB) !== 0, revision: v.readUInt32LE(16) };
    };
    // The first two changes give each slot its trie in mbr_policy.
    dp.applyPolicy({ endpointId: 4, adds: [allow(1, 'ingress')], deletes: [] });
    dp.applyPolicy({ endpointId: 4, adds: [allow(2, 'ingress')], deletes: [] });
    const ids = outerIds();
    assert.ok(ids[0] && ids[1] && ids[0] !== ids[1], JSON.stringify(ids));
    let before = entry();
    for (const id of [3, 4, 5]) {
      dp.applyPolicy({ endpointId: 4, adds: [allow(id, 'ingress')], deletes: [] });
      const now = entry();
      assert.equal(now.slotB, !before.slotB, 'the slot flips');
      assert.equal(now.revision, before.revision + 1, 'the revision is bumped with it');
      assert.deepEqual(outerIds(), ids, 'mbr_policy is not written');
      assert.equal(dp.activePolicySlot(4), now.slotB ? 1 : 0);
      before = now;
    }
    assert.deepEqual(
      kernelPolicyKeys(dp, 4)
        .map((k) => JSON.parse(k).identity)
        .sort(),
      [1, 2, 3, 4, 5],
    );
  });

  it('finds the published slot again after a restart, for an endpoint not attached yet too', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'slots');
    for (const id of [1, 2, 3]) dp.applyPolicy({ endpointId: 6, adds: [allow(id, 'ingress')], deletes: [] });
    const slot = dp.activePolicySlot(6);
    const keys = kernelPolicyKeys(dp, 6);
    dp.close();
    const again = Datapath.open({ pinDir: dp.pinDir });
    t.after(() => again.close());
    assert.equal(again.activePolicySlot(6), slot);
    assert.deepEqual(
      again
        .policyEntries(6)
        .map((e) => JSON.stringify(e.key))
        .sort(),
      keys,
    );
  });

  it("publishes several endpoints' changes in one batch, and none of an endpoint whose change does not fit", (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'many', { policyMapMaxEntries: 4 });
    dp.applyPolicies([
      { endpointId: 1, adds: [allow(10, 'ingress')], deletes: [] },
      { endpointId: 2, adds: [allow(20, 'ingress'), allow(21, 'egress')], deletes: [] },
      { endpointId: 3, adds: [allow(30, 'ingress')], deletes: [] },
    ]);
    const keys = (ep: number) => kernelPolicyKeys(dp, ep).map((k) => JSON.parse(k).identity);
    assert.deepEqual([keys(1), keys(2).sort(), keys(3)], [[10], [20, 21], [30]]);
    // The second change: endpoint 2 swaps its entries; endpoint 3 asks for more than fits, so the
    // batch is refused before anything is published and every endpoint keeps what it had.
    assert.throws(
      () =>
        dp.applyPolicies([
          { endpointId: 2, adds: [allow(22, 'ingress')], deletes: [allow(20, 'ingress')[0]] },
          {
            endpointId: 3,
            adds: [allow(31, 'ingress'), allow(32, 'ingress'), allow(33, 'ingress'), allow(34, 'ingress')],
            deletes: [],
          },
        ]),
      { code: 'MBR_DATAPATH_MAP_FULL' },
    );
    assert.deepEqual([keys(2).sort(), keys(3)], [[20, 21], [30]]);
    assert.deepEqual(
      dp
        .policyEntries(2)
        .map((e) => e.key.identity)
        .sort(),
      [20, 21],
    );
    // A later change of endpoint 2 starts from what is published, not from the abandoned trie.
    dp.applyPolicies([
      { endpointId: 2, adds: [allow(23, 'ingress')], deletes: [] },
      { endpointId: 3, adds: [], deletes: [allow(30, 'ingress')[0]] },
    ]);
    assert.deepEqual([keys(2).sort(), keys(3)], [[20, 21, 23], []]);
    // One diff per endpoint in a batch: a second one for the same endpoint is refused whole.
    assert.throws(
      () =>
        dp.applyPolicies([
          { endpointId: 1, adds: [allow(11, 'ingress')], deletes: [] },
          { endpointId: 1, adds: [allow(12, 'ingress')], deletes: [] },
        ]),
      {
        code: 'MBR_DATAPATH_BAD_INPUT',
        message: 'policy diffs: endpoint 1 appears twice in one batch; expected one diff per endpoint',
      },
    );
    assert.deepEqual(keys(1), [10]);
  });

  it('grows the maps with the state and publishes every change whole', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'grow');
    const adds = Array.from({ length: 500 }, (_, i) => allow(2000 + i, 'egress', 6, 80));
    dp.applyPolicy({ endpointId: 6, adds, deletes: [] });
    assert.equal(kernelPolicyKeys(dp, 6).length, 500);
    const pol = dp.status().maps.find((m) => m.name === 'mbr_policy/6');
    assert.ok(pol && pol.maxEntries >= 500 && pol.pressure < 1);
    // Replace half, deny one: the published trie is always exactly the desired state.
    dp.applyPolicy({
      endpointId: 6,
      adds: [...Array.from({ length: 250 }, (_, i) => allow(5000 + i, 'egress', 6, 80)), deny(2000, 'egress')],
      deletes: adds.slice(0, 250).map(([k]) => k),
    });
    assert.equal(kernelPolicyKeys(dp, 6).length, 501);
    dp.applyPolicy({ endpointId: 6, adds: [], deletes: [deny(2000, 'egress')[0]] });
    const keys = kernelPolicyKeys(dp, 6);
    assert.equal(keys.length, 500);
    assert.deepEqual(
      keys,
      dp
        .policyEntries(6)
        .map((e) => JSON.stringify(e.key))
        .sort(),
    );
  });

  it('shrinks to a small fresh trie when a change deletes most of the state, both slots in turn', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'shrink');
    const big = Array.from({ length: 3000 }, (_, i) => deny(20000 + i, 'ingress', 6, 9999));
    dp.applyPolicy({ endpointId: 7, adds: big, deletes: [] });
    const cap = () => dp.status().maps.find((m) => m.name === 'mbr_policy/7')?.maxEntries ?? 0;
    assert.ok(cap() >= 3000);
    const small = [allow(1001, 'ingress', 6, 80), allow(1001, 'ingress', 6, 443)];
    dp.applyPolicy({ endpointId: 7, adds: small, deletes: big.map(([k]) => k) });
    assert.deepEqual(kernelPolicyKeys(dp, 7), small.map(([k]) => JSON.stringify(k)).sort());
    assert.ok(cap() < 3000, `the published trie shrank (capacity ${cap()})`);
    // The next change lands in the other slot, which still held the 3000: it is rebuilt small too.
    dp.applyPolicy({ endpointId: 7, adds: [allow(1002, 'ingress', 17, 53)], deletes: [small[1][0]] });
    assert.deepEqual(
      kernelPolicyKeys(dp, 7),
      [small[0], allow(1002, 'ingress', 17, 53)].map(([k]) => JSON.stringify(k)).sort(),
    );
    assert.ok(cap() < 3000, `the other slot shrank too (capacity ${cap()})`);
  });

  const BAD = [
    {
      name: 'a port with protocol any',
      key: { identity: 1, direction: 'ingress', protocol: 0, port: 80, portPrefixLen: 16 },
      message:
        'policy diff adds[0].key.port: expected port 0 with portPrefixLen 0 when protocol is 0 (any), got "80/16"',
    },
    {
      name: 'a port prefix longer than 16',
      key: { identity: 1, direction: 'ingress', protocol: 6, port: 80, portPrefixLen: 17 },
      message: 'policy diff adds[0].key.portPrefixLen: expected an integer 0-16, got 17',
    },
    {
      name: 'an unknown direction',
      key: { identity: 1, direction: 'sideways', protocol: 6, port: 80, portPrefixLen: 16 },
      message: 'policy diff adds[0].key.direction: expected "ingress" or "egress", got "sideways"',
    },
  ] as const;
  for (const c of BAD) {
    it(`refuses ${c.name} before writing anything`, (t) => {
      if (!requireBpf(t, 'creates BPF maps')) return;
      const dp = open(t, 'bad');
      dp.applyPolicy({ endpointId: 7, adds: [allow(1, 'ingress')], deletes: [] });
      const entry = allow(1, 'ingress')[1];
      assert.throws(
        () =>
          dp.applyPolicy({
            endpointId: 7,
            adds: [[c.key as never, entry]],
            deletes: [],
          }),
        { code: 'MBR_DATAPATH_BAD_INPUT', message: c.message },
      );
      assert.equal(kernelPolicyKeys(dp, 7).length, 1);
    });
  }

  it('refuses an ipcache batch that cannot fit and writes none of it', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'ipc', { ipcacheMaxEntries: 100 });
    const entries = ipcacheFiller(101);
    assert.throws(() => dp.upsertIpcacheBatch(entries), {
      code: 'MBR_DATAPATH_MAP_FULL',
      message: 'ipcache: 101 new entries do not fit (0 of 100 used); nothing written',
    });
    assert.equal(dp.ipcacheEntries().length, 0);
    dp.upsertIpcacheBatch(entries.slice(0, 100));
    assert.equal(dp.status().maps.find((m) => m.name === 'mbr_ipcache')?.pressure, 1);
  });

  it('deletes an ipcache batch, skipping prefixes it does not hold, and frees the room', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const dp = open(t, 'ipdel', { ipcacheMaxEntries: 100 });
    const entries = ipcacheFiller(100);
    dp.upsertIpcacheBatch(entries);
    const gone = [...entries.slice(0, 60).map((e) => e.prefix), parseIpv4Prefix('192.0.2.0/24')];
    assert.equal(dp.deleteIpcacheBatch(gone), 60);
    assert.deepEqual(
      dp
        .ipcacheEntries()
        .map((e) => e.identity)
        .sort((a, b) => a - b),
      entries.slice(60).map((e) => e.identity),
    );
    dp.upsertIpcacheBatch(entries.slice(0, 60)); // fits again: the key count followed the deletes
    assert.equal(dp.ipcacheEntries().length, 100);
  });
});
