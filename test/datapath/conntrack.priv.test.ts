// Conntrack housekeeping: expired entries are removed by ctGc, live ones stay, and entries read
// back decode to what was written.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { removePinDir } from '../../src/datapath/bpffs.js';
import { monotonicSeconds } from '../../src/datapath/ct-gc.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { type CtEntry, type CtKey, encodeCtEntry, encodeCtKey } from '../../src/datapath/maps/ct-map.js';
import { requireBpf } from './support/require-bpf.js';

const ENTRY: CtEntry = {
  txPackets: 2,
  txBytes: 120,
  rxPackets: 1,
  rxBytes: 60,
  lifetime: 0,
  sourceSecurityId: 1002,
  policyRevision: 1,
  flags: 0x10,
  txFlagsSeen: 0x12,
  rxFlagsSeen: 0x12,
  proxyPort: 0,
  lastTxReport: 5,
  lastRxReport: 7,
  peerIfindex: 12,
};

describe('conntrack', () => {
  it('removes expired entries and keeps live ones', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const pinDir = `/sys/fs/bpf/membrane/dp-ct-${process.pid}`;
    removePinDir(pinDir);
    const dp = Datapath.open({ pinDir });
    t.after(() => {
      dp.destroy();
      removePinDir(pinDir);
    });
    const now = monotonicSeconds();
    const key = (sport: number): CtKey => ({
      saddr: '10.0.1.2',
      daddr: '10.0.2.2',
      sport,
      dport: 80,
      protocol: 6,
      direction: 'egress',
    });
    const ct = dp.map('mbr_ct4');
    ct.update(encodeCtKey(key(1)), encodeCtEntry({ ...ENTRY, lifetime: now - 1 }, 'egress'));
    ct.update(encodeCtKey(key(2)), encodeCtEntry({ ...ENTRY, lifetime: now + 100 }, 'egress'));
    assert.equal(dp.ctGc(now), 1);
    assert.deepEqual(dp.ctEntries(), [[key(2), { ...ENTRY, lifetime: now + 100 }]]);
  });
});
