// The BPF policy lookup against a TS reference of the contract in src/policy/map-state-types.ts
// (exact-identity and ANY longest-prefix hits, deny wins, longer L4 prefix wins with ties to the
// identity, auth inherited), on random policy maps and random packets through BPF_PROG_TEST_RUN.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { policyKeyId } from '../../src/datapath/maps/policy-map.js';
import { EventKind } from '../../src/monitor/event-types.js';
import type { PolicyEntry, PolicyKey, TrafficDirection } from '../../src/policy/map-state-types.js';
import { TCP_FLAGS, tcpPacket, udpPacket } from './support/packet.js';
import { EP, openTestDatapath, writeEndpoint } from './support/prog-setup.js';
import { requireBpf } from './support/require-bpf.js';

type Entry = readonly [PolicyKey, PolicyEntry];

interface Probe {
  readonly identity: number;
  readonly direction: TrafficDirection;
  readonly protocol: 6 | 17;
  readonly port: number;
}

/** The contract's lookup, written from its comment, for comparison only. */
export function referenceLookup(entries: readonly Entry[], p: Probe): { verdict: number; matchType: number } {
  const l4 = (k: PolicyKey) => (k.protocol === 0 ? 0 : 8 + k.portPrefixLen);
  const matches = (k: PolicyKey) =>
    k.direction === p.direction &&
    (k.protocol === 0 ||
      (k.protocol === p.protocol &&
        (k.portPrefixLen === 0 || k.port >> (16 - k.portPrefixLen) === p.port >> (16 - k.portPrefixLen))));
  const best = (id: number) => {
    let hit: Entry | undefined;
    for (const e of entries) if (e[0].identity === id && matches(e[0]) && (!hit || l4(e[0]) > l4(hit[0]))) hit = e;
    return hit;
  };
  const hid = best(p.identity);
  const hany = best(0);
  const mt = (isId: boolean, k: PolicyKey) => {
    const n = l4(k);
    if (n === 0) return isId ? 1 : 4;
    if (n === 8) return isId ? 5 : 6;
    return isId ? 2 : 3;
  };
  if (hid?.[1].isDeny) return { verdict: -181, matchType: mt(true, hid[0]) };
  if (hany?.[1].isDeny) return { verdict: -181, matchType: mt(false, hany[0]) };
  if (!hid && !hany) return { verdict: -133, matchType: 0 };
  const idWins = hid !== undefined && (hany === undefined || l4(hid[0]) >= l4(hany[0]));
  const [win, other] = idWins ? [hid, hany] : [hany, hid];
  if (!win) throw new Error('unreachable');
  const auth = win[1].authType || other?.[1].authType || 0;
  const matchType = mt(idWins, win[0]);
  return { verdict: auth ? -189 : win[1].proxyPort, matchType };
}

const PORTS = [53, 80, 81, 8080, 8081, 8083, 8084];
const keyArb = fc
  .record({
    identity: fc.constantFrom(0, 1001, 1002),
    direction: fc.constantFrom<TrafficDirection>('ingress', 'egress'),
    protocol: fc.constantFrom(0, 6, 17),
    port: fc.constantFrom(...PORTS),
    portPrefixLen: fc.constantFrom(0, 8, 14, 15, 16),
  })
  .map((k): PolicyKey => (k.protocol === 0 ? { ...k, port: 0, portPrefixLen: 0 } : k));
const entryArb = fc.tuple(
  keyArb,
  fc.record({
    isDeny: fc.boolean(),
    proxyPort: fc.constantFrom(0, 0, 15001),
    authType: fc.constantFrom(0, 0, 0, 1),
    derivedFrom: fc.constant([]),
  }),
);
const probeArb = fc.record({
  identity: fc.constantFrom(1001, 1002, 2),
  direction: fc.constantFrom<TrafficDirection>('ingress', 'egress'),
  protocol: fc.constantFrom<6 | 17>(6, 17),
  port: fc.oneof(fc.constantFrom(...PORTS), fc.integer({ min: 1, max: 65535 })),
});

describe('BPF policy lookup', () => {
  it('agrees with the reference lookup on random maps and packets', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { dp, events } = openTestDatapath(t, 'lookup');
    writeEndpoint(dp, 0, 1);
    dp.upsertIpcache('10.0.1.2/32', 1001); // the pod itself
    dp.upsertIpcache('10.0.2.1/32', 1001);
    dp.upsertIpcache('10.0.2.2/32', 1002); // 10.0.2.9 is world
    const ipOf = { 1001: '10.0.2.1', 1002: '10.0.2.2', 2: '10.0.2.9' } as const;
    dp.applyPolicy({ endpointId: EP, adds: [], deletes: [] });
    let sport = 10000;
    fc.assert(
      fc.property(
        fc.uniqueArray(entryArb, { maxLength: 12, selector: ([k]) => policyKeyId(k) }),
        fc.array(probeArb, { minLength: 1, maxLength: 8 }),
        (entries, probes) => {
          const want = new Set(entries.map(([k]) => policyKeyId(k)));
          const deletes = dp
            .policyEntries(EP)
            .map((e) => e.key)
            .filter((k) => !want.has(policyKeyId(k)));
          dp.applyPolicy({ endpointId: EP, adds: entries, deletes });
          for (const p of probes) {
            const remote = ipOf[p.identity as keyof typeof ipOf];
            const [src, dst] = p.direction === 'egress' ? ['10.0.1.2', remote] : [remote, '10.0.1.2'];
            sport = sport >= 60000 ? 10000 : sport + 1; // a new flow each time: no conntrack hit
            const pkt =
              p.protocol === 6
                ? tcpPacket({ src, dst, sport, dport: p.port, flags: TCP_FLAGS.syn })
                : udpPacket({ src, dst, sport, dport: p.port });
            dp.drainEvents();
            const from = events.length;
            dp.testRun(p.direction === 'egress' ? 'mbr_from_pod' : 'mbr_to_pod', pkt);
            dp.drainEvents();
            const v = events.slice(from).find((e) => e.kind === EventKind.policyVerdict);
            assert.ok(v && v.kind === EventKind.policyVerdict, 'a policy-verdict event');
            assert.deepEqual(
              { verdict: v.verdict, matchType: v.matchType },
              referenceLookup(entries, p),
              JSON.stringify({ entries, p }),
            );
          }
        },
      ),
      { numRuns: 300, seed: 4242 },
    );
  });
});
