import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lookupMapState, type MapState, mapStateKey, portRangePrefixes } from '../../src/policy/map-state.js';
import { MatchType, type PolicyEntry, type PolicyKey } from '../../src/policy/map-state-types.js';

function state(rows: Array<[number, number, number, number, Partial<PolicyEntry>?]>): MapState {
  const m = new Map<string, readonly [PolicyKey, PolicyEntry]>();
  for (const [identity, protocol, port, portPrefixLen, e] of rows) {
    const key: PolicyKey = { identity, direction: 'ingress', protocol, port, portPrefixLen };
    m.set(mapStateKey(key), [key, { isDeny: false, proxyPort: 0, authType: 0, derivedFrom: [], ...e }]);
  }
  return m;
}

describe('portRangePrefixes', () => {
  const cases: Array<[number, number, string]> = [
    [80, 80, '80/16'],
    [80, 81, '80/15'],
    [79, 81, '79/16 80/15'],
    [0, 0, '0/0'],
    [1, 65535, '1/16 2/15 4/14 8/13 16/12 32/11 64/10 128/9 256/8 512/7 1024/6 2048/5 4096/4 8192/3 16384/2 32768/1'],
    [1024, 2047, '1024/6'],
    [65535, 65535, '65535/16'],
  ];
  for (const [a, b, want] of cases)
    it(`splits ${a}-${b} into aligned prefixes`, () => {
      assert.equal(
        portRangePrefixes(a, b)
          .map((p) => `${p.port}/${p.portPrefixLen}`)
          .join(' '),
        want,
      );
    });
});

describe('lookupMapState', () => {
  const cases: Array<{
    name: string;
    rows: Parameters<typeof state>[0];
    id: number;
    proto: number;
    port: number;
    want: string;
  }> = [
    { name: 'no entry: no-match', rows: [], id: 256, proto: 6, port: 80, want: 'no-match' },
    { name: 'L3-L4 exact hit', rows: [[256, 6, 80, 16]], id: 256, proto: 6, port: 80, want: `allow ${MatchType.l3l4}` },
    { name: 'L4-only hit', rows: [[0, 6, 80, 16]], id: 256, proto: 6, port: 80, want: `allow ${MatchType.l4Only}` },
    { name: 'L3-only hit', rows: [[256, 0, 0, 0]], id: 256, proto: 17, port: 53, want: `allow ${MatchType.l3Only}` },
    { name: 'allow-all hit', rows: [[0, 0, 0, 0]], id: 256, proto: 17, port: 53, want: `allow ${MatchType.all}` },
    { name: 'L3-proto hit', rows: [[256, 6, 0, 0]], id: 256, proto: 6, port: 9, want: `allow ${MatchType.l3Proto}` },
    { name: 'proto-only hit', rows: [[0, 6, 0, 0]], id: 256, proto: 6, port: 9, want: `allow ${MatchType.protoOnly}` },
    {
      name: 'a range prefix hit',
      rows: [[256, 6, 80, 15]],
      id: 256,
      proto: 6,
      port: 81,
      want: `allow ${MatchType.l3l4}`,
    },
    { name: 'a range prefix miss', rows: [[256, 6, 80, 15]], id: 256, proto: 6, port: 82, want: 'no-match' },
    {
      name: 'the longer L4 prefix wins between ID and ANY',
      rows: [
        [256, 0, 0, 0],
        [0, 6, 80, 16, { proxyPort: 10001 }],
      ],
      id: 256,
      proto: 6,
      port: 80,
      want: `allow ${MatchType.l4Only} proxy 10001`,
    },
    {
      name: 'a tie goes to the ID hit',
      rows: [
        [256, 6, 80, 16],
        [0, 6, 80, 16, { proxyPort: 10001 }],
      ],
      id: 256,
      proto: 6,
      port: 80,
      want: `allow ${MatchType.l3l4}`,
    },
    {
      name: 'a broad ANY deny beats a specific ID allow',
      rows: [
        [256, 6, 80, 16],
        [0, 0, 0, 0, { isDeny: true }],
      ],
      id: 256,
      proto: 6,
      port: 80,
      want: `deny ${MatchType.all}`,
    },
    {
      name: 'an ID deny is reported when both hits deny',
      rows: [
        [256, 6, 80, 16, { isDeny: true }],
        [0, 6, 80, 16, { isDeny: true }],
      ],
      id: 256,
      proto: 6,
      port: 80,
      want: `deny ${MatchType.l3l4}`,
    },
    {
      name: 'auth is inherited from the other hit',
      rows: [
        [256, 6, 80, 16],
        [0, 0, 0, 0, { authType: 1 }],
      ],
      id: 256,
      proto: 6,
      port: 80,
      want: `allow ${MatchType.l3l4} auth 1`,
    },
    { name: 'other identities do not match', rows: [[257, 6, 80, 16]], id: 256, proto: 6, port: 80, want: 'no-match' },
  ];
  for (const c of cases)
    it(c.name, () => {
      const r = lookupMapState(state(c.rows), c.id, 'ingress', c.proto, c.port);
      let got: string = r.verdict === 'no-match' ? 'no-match' : `${r.verdict} ${r.matchType}`;
      if (r.entry?.proxyPort) got += ` proxy ${r.entry.proxyPort}`;
      if (r.authType) got += ` auth ${r.authType}`;
      assert.equal(got, c.want);
    });
});
