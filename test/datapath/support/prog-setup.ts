// Sets up the maps of one BPF_PROG_TEST_RUN fixture (fixtures/prog-cases.ts) in a datapath
// instance: the fixture endpoint on ifindex 1, ipcache, policy, conntrack and auth entries; and
// opens the throwaway instances those tests run in.
import type { TestContext } from 'node:test';
import { removePinDir } from '../../../src/datapath/bpffs.js';
import { monotonicSeconds } from '../../../src/datapath/ct-gc.js';
import { Datapath, type DatapathOptions } from '../../../src/datapath/datapath.js';
import { encodeCtEntry, encodeCtKey } from '../../../src/datapath/maps/ct-map.js';
import type { DatapathEvent } from '../../../src/monitor/event-types.js';
import { POD_ID, POD_IP, type ProgCase } from '../fixtures/prog-cases.js';

export const EP = 9;

/** A fresh datapath instance pinned under dp-<name>-<pid>, removed after the test, its events collected. */
export function openTestDatapath(
  t: TestContext,
  name: string,
  opts: DatapathOptions = {},
): { dp: Datapath; events: DatapathEvent[] } {
  const pinDir = `/sys/fs/bpf/membrane/dp-${name}-${process.pid}`;
  removePinDir(pinDir);
  const dp = Datapath.open({ pinDir, ...opts });
  t.after(() => {
    dp.destroy();
    removePinDir(pinDir);
  });
  const events: DatapathEvent[] = [];
  dp.onEvents((e) => events.push(...e));
  return { dp, events };
}

export function setUpCase(dp: Datapath, c: ProgCase): void {
  writeEndpoint(dp, c.endpointFlags ?? 0, 1);
  for (const [prefix, id] of c.ipcache ?? []) dp.upsertIpcache(prefix, id);
  dp.applyPolicy({ endpointId: EP, adds: c.policy, deletes: [] });
  const life = monotonicSeconds() + 3600;
  for (const k of c.ct ?? [])
    dp.map('mbr_ct4').update(
      encodeCtKey(k),
      encodeCtEntry(
        {
          txPackets: 1,
          txBytes: 60,
          rxPackets: 0,
          rxBytes: 0,
          lifetime: life,
          sourceSecurityId: 0,
          policyRevision: 1,
          flags: 0,
          txFlagsSeen: 0,
          rxFlagsSeen: 0,
          proxyPort: 0,
          lastTxReport: 0,
          lastRxReport: 0,
          peerIfindex: 0,
        },
        k.direction,
      ),
    );
  if (c.auth)
    dp.upsertAuth(
      { localIdentity: POD_ID, remoteIdentity: 1002, authType: 1 },
      process.hrtime.bigint() + 3_600_000_000_000n,
    );
}

export function writeEndpoint(dp: Datapath, flags: number, revision: number): void {
  dp.writeEndpointInfo({ endpointId: EP, identity: POD_ID, ipv4: POD_IP, flags, policyRevision: revision, ifindex: 1 });
}
