// The DNS proxy with the agent writing the real BPF maps: an answer reaches the client only once
// mbr_ipcache holds its addresses (with the toFQDNs selector's local identity), and an address
// whose TTL passed leaves mbr_ipcache only when no mbr_ct4 entry uses it (deferred delete).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { openPinnedMap } from '../../../src/datapath/bpf-object.js';
import { ensureBpffs, removePinDir } from '../../../src/datapath/bpffs.js';
import { monotonicSeconds } from '../../../src/datapath/ct-gc.js';
import { encodeCtEntry, encodeCtKey } from '../../../src/datapath/maps/ct-map.js';
import { requireBpf } from '../../datapath/support/require-bpf.js';
import { bpfPortWithoutAttach, startDnsHarness } from '../../support/dns-harness.js';
import { until } from '../../support/until.js';

const run = promisify(execFile);

describe('DNS proxy over the BPF maps', () => {
  it('releases answers after mbr_ipcache has them and deletes expired ones only without a connection', async (t) => {
    if (!requireBpf(t, 'writes BPF maps')) return;
    ensureBpffs();
    const pinDir = `/sys/fs/bpf/membrane/mbr-dns-${process.pid}/n1`;
    removePinDir(pinDir);
    const h = await startDnsHarness({
      hosts: ['10.200.0.1 api.stripe.com', '10.200.0.2 api.stripe.com'],
      ttlSeconds: 1,
      dnsPatterns: ['*.stripe.com'],
      fqdnPatterns: ['*.stripe.com'],
      datapath: bpfPortWithoutAttach(pinDir),
    });
    t.after(async () => {
      await h.stop();
      removePinDir(`/sys/fs/bpf/membrane/mbr-dns-${process.pid}`);
    });
    const ipcache = async () => new Map((await h.datapath.dumpIpcache()).map((e) => [e.prefix, e.identity]));

    const { stdout } = await run('dig', [
      '+short',
      '+time=2',
      '+tries=2',
      '-p',
      String(h.udpPort),
      '@127.0.0.1',
      'api.stripe.com',
    ]);
    assert.deepEqual(stdout.trim().split('\n').sort(), ['10.200.0.1', '10.200.0.2']);
    const after = await ipcache();
    const id = after.get('10.200.0.1/32');
    assert.ok(id !== undefined && id >= 1 << 24, `mbr_ipcache 10.200.0.1 -> ${id}`);
    assert.ok(after.has('10.200.0.2/32'));

    // A connection to 10.200.0.1 the datapath tracks, live for a minute.
    const ct = openPinnedMap(pinDir, 'mbr_ct4');
    const key = encodeCtKey({
      saddr: '10.201.1.10',
      daddr: '10.200.0.1',
      sport: 40000,
      dport: 443,
      protocol: 6,
      direction: 'egress',
    });
    ct.update(
      key,
      encodeCtEntry(
        {
          txPackets: 1,
          txBytes: 60,
          rxPackets: 1,
          rxBytes: 60,
          lifetime: monotonicSeconds() + 60,
          sourceSecurityId: 0,
          policyRevision: 0,
          flags: 0,
          txFlagsSeen: 2,
          rxFlagsSeen: 0x12,
          proxyPort: 0,
          lastTxReport: 0,
          lastRxReport: 0,
          peerIfindex: 0,
        },
        'egress',
      ),
    );
    // The TTL (1 s) passes: the unused address goes, the one with a connection stays.
    await until(
      async () => {
        await h.fqdn.gc();
        return !(await ipcache()).has('10.200.0.2/32');
      },
      { timeoutMs: 10_000, intervalMs: 200, what: '10.200.0.2 to leave mbr_ipcache' },
    );
    assert.equal((await ipcache()).get('10.200.0.1/32'), id);
    assert.deepEqual(
      h.fqdn.list().map((r) => [r.source, r.ips]),
      [['connection', ['10.200.0.1']]],
    );
    // The connection ends: the address goes at the next collection.
    ct.delete(key);
    await h.fqdn.gc();
    assert.equal((await ipcache()).has('10.200.0.1/32'), false);
    assert.deepEqual(h.fqdn.list(), []);
  });
});
