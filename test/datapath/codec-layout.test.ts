// Every TS codec mirrors a struct of bpf/include/membrane/maps.h. This test reads the structs from
// the BTF of the compiled object (bpftool's JSON dump) and checks size and every field offset, both
// ways (no field the codec forgot, none it invented), then checks golden bytes for each codec.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { StructLayout } from '../../src/datapath/layout.js';
import { AUTH_KEY, AUTH_VALUE, encodeAuthKey } from '../../src/datapath/maps/auth-map.js';
import { CONFIG, encodeConfig } from '../../src/datapath/maps/config-map.js';
import {
  CT_ENTRY,
  CT_KEY,
  decodeCtEntry,
  decodeCtKey,
  encodeCtEntry,
  encodeCtKey,
} from '../../src/datapath/maps/ct-map.js';
import { decodeEndpointInfo, ENDPOINT_INFO, encodeEndpointInfo } from '../../src/datapath/maps/endpoint-map.js';
import {
  decodeIpcacheKey,
  encodeIpcacheKey,
  encodeIpcacheValue,
  IPCACHE_KEY,
  IPCACHE_VALUE,
  parseIpv4Prefix,
} from '../../src/datapath/maps/ipcache-map.js';
import {
  decodeLbBackend,
  decodeLbKey,
  decodeLbService,
  encodeLbBackend,
  encodeLbConfig,
  encodeLbKey,
  encodeLbService,
  LB_CONFIG,
  LB4_AFFINITY_KEY,
  LB4_AFFINITY_VALUE,
  LB4_BACKEND,
  LB4_CT_ENTRY,
  LB4_KEY,
  LB4_REVERSE_NAT,
  LB4_SERVICE,
  LB4_SOCK_KEY,
  LB4_SOCK_VALUE,
} from '../../src/datapath/maps/lb-map.js';
import { METRICS_VALUE } from '../../src/datapath/maps/metrics-map.js';
import {
  decodePolicyEntry,
  decodePolicyKey,
  encodePolicyEntry,
  encodePolicyKey,
  POLICY_ENTRY,
  POLICY_KEY,
} from '../../src/datapath/maps/policy-map.js';
import { BPF_OBJECT_PATH } from '../../src/datapath/native.js';
import { EVENT } from '../../src/monitor/event-codec.js';
import type { PolicyKey } from '../../src/policy/map-state-types.js';

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  members?: { name: string; bits_offset: number }[];
}

const LAYOUTS: StructLayout[] = [
  IPCACHE_KEY,
  IPCACHE_VALUE,
  POLICY_KEY,
  POLICY_ENTRY,
  CT_KEY,
  CT_ENTRY,
  ENDPOINT_INFO,
  METRICS_VALUE,
  CONFIG,
  AUTH_KEY,
  AUTH_VALUE,
  EVENT,
  LB4_KEY,
  LB4_SERVICE,
  LB4_BACKEND,
  LB4_REVERSE_NAT,
  LB4_AFFINITY_KEY,
  LB4_AFFINITY_VALUE,
  LB4_CT_ENTRY,
  LB4_SOCK_KEY,
  LB4_SOCK_VALUE,
  LB_CONFIG,
];

function btfStructs(): Map<string, BtfType> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', BPF_OBJECT_PATH, 'format', 'raw'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.filter((t) => t.kind === 'STRUCT' && t.name).map((t) => [t.name as string, t]));
}

describe('datapath codecs agree with the C header', () => {
  const built = existsSync(BPF_OBJECT_PATH);
  const structs = built ? btfStructs() : new Map<string, BtfType>();

  for (const l of LAYOUTS) {
    it(`matches struct ${l.struct} in the object's BTF`, (t) => {
      if (!built) return t.skip(`needs ${BPF_OBJECT_PATH} (npm run build)`);
      const s = structs.get(l.struct);
      assert.ok(s, `struct ${l.struct} not in BTF`);
      assert.equal(s.size, l.size, `${l.struct} size`);
      const btfFields = Object.fromEntries((s.members ?? []).map((m) => [m.name, m.bits_offset / 8]));
      assert.deepEqual(l.fields, btfFields);
    });
  }

  const key: PolicyKey = { identity: 0x01020304, direction: 'egress', protocol: 6, port: 8080, portPrefixLen: 16 };
  const GOLDEN: { name: string; bytes: () => Buffer; hex: string; roundTrip?: () => void }[] = [
    {
      name: 'ipcache key 10.1.2.0/24',
      bytes: () => encodeIpcacheKey(parseIpv4Prefix('10.1.2.77/24')),
      hex: '180000000a010200',
      roundTrip: () =>
        assert.deepEqual(decodeIpcacheKey(Buffer.from('180000000a010200', 'hex')), { prefixLen: 24, addr: '10.1.2.0' }),
    },
    {
      name: 'ipcache value identity 16777217',
      bytes: () => encodeIpcacheValue(16777217),
      hex: '010000010000000000000000',
    },
    {
      name: 'ipcache value of a local endpoint on ifindex 515',
      bytes: () => encodeIpcacheValue(1001, undefined, 0, 1, 515),
      hex: 'e903000001000000' + '03020000',
    },
    {
      name: 'policy key id/egress/tcp/8080',
      bytes: () => encodePolicyKey(key),
      hex: '40000000040302010106' + '1f90',
      roundTrip: () => assert.deepEqual(decodePolicyKey(encodePolicyKey(key)), key),
    },
    {
      name: 'policy key ANY/ingress/any',
      bytes: () => encodePolicyKey({ identity: 0, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 }),
      hex: '280000000000000000000000',
    },
    {
      name: 'policy key range 8080-8083 (prefix 14) clears the low port bits',
      bytes: () => encodePolicyKey({ identity: 5, direction: 'ingress', protocol: 17, port: 8083, portPrefixLen: 14 }),
      hex: '3e000000050000000011' + '1f90',
    },
    {
      name: 'policy entry allow with proxy 15001 and auth 1',
      bytes: () => encodePolicyEntry({ isDeny: false, proxyPort: 15001, authType: 1 }, key),
      hex: '993a000118000000',
      roundTrip: () =>
        assert.deepEqual(decodePolicyEntry(Buffer.from('993a000118000000', 'hex')), {
          proxyPort: 15001,
          isDeny: false,
          authType: 1,
          l4PrefixLen: 24,
        }),
    },
    {
      name: 'policy entry deny',
      bytes: () =>
        encodePolicyEntry(
          { isDeny: true, proxyPort: 0, authType: 0 },
          { ...key, protocol: 0, port: 0, portPrefixLen: 0 },
        ),
      hex: '0000010000000000',
    },
    {
      name: 'ct key',
      bytes: () =>
        encodeCtKey({
          saddr: '10.240.1.2',
          daddr: '10.240.2.2',
          sport: 40000,
          dport: 80,
          protocol: 6,
          direction: 'egress',
        }),
      hex: '0af001020af00202409c500006000000',
      roundTrip: () =>
        assert.deepEqual(decodeCtKey(Buffer.from('0af001020af00202409c500006000000', 'hex'), 'egress'), {
          saddr: '10.240.1.2',
          daddr: '10.240.2.2',
          sport: 40000,
          dport: 80,
          protocol: 6,
          direction: 'egress',
        }),
    },
    {
      name: 'ct key of an ingress flow (the endpoint, its destination, first)',
      bytes: () =>
        encodeCtKey({
          saddr: '10.240.1.2',
          daddr: '10.240.2.2',
          sport: 40000,
          dport: 80,
          protocol: 6,
          direction: 'ingress',
        }),
      hex: '0af002020af001025000409c06000000',
      roundTrip: () =>
        assert.deepEqual(decodeCtKey(Buffer.from('0af002020af001025000409c06000000', 'hex'), 'ingress'), {
          saddr: '10.240.1.2',
          daddr: '10.240.2.2',
          sport: 40000,
          dport: 80,
          protocol: 6,
          direction: 'ingress',
        }),
    },
    {
      name: 'ct entry',
      bytes: () =>
        encodeCtEntry(
          {
            txPackets: 3,
            txBytes: 300,
            rxPackets: 2,
            rxBytes: 2 ** 33,
            lifetime: 1000,
            sourceSecurityId: 7,
            policyRevision: 9,
            flags: 0x10,
            txFlagsSeen: 0x1a,
            rxFlagsSeen: 0x12,
            proxyPort: 0,
            lastTxReport: 990,
            lastRxReport: 0x01020304,
            peerIfindex: 0x0a0b,
          },
          'egress',
        ),
      hex:
        '0300000000000000' +
        '2c01000000000000' +
        '0200000000000000' +
        '0000000002000000' +
        'e8030000' +
        '07000000' +
        '09000000' +
        '1000' +
        '1a12' +
        '0000' +
        '0100' +
        'de030000' +
        '04030201' +
        '0b0a0000',
      roundTrip: () => {
        const e = decodeCtEntry(
          encodeCtEntry(
            {
              txPackets: 1,
              txBytes: 2,
              rxPackets: 3,
              rxBytes: 2 ** 40,
              lifetime: 5,
              sourceSecurityId: 6,
              policyRevision: 7,
              flags: 8,
              txFlagsSeen: 9,
              rxFlagsSeen: 10,
              proxyPort: 11,
              lastTxReport: 12,
              lastRxReport: 13,
              peerIfindex: 14,
            },
            'ingress',
          ),
        );
        assert.equal(e.rxBytes, 2 ** 40);
        assert.equal(e.proxyPort, 11);
        assert.equal(e.lastTxReport, 12);
        assert.equal(e.lastRxReport, 13);
        assert.equal(e.peerIfindex, 14);
      },
    },
    {
      name: 'endpoint info',
      bytes: () =>
        encodeEndpointInfo({ endpointId: 7, identity: 1234, ipv4: '10.240.1.2', flags: 1, policyRevision: 3 }),
      hex: '07000000d20400000af0010201000000' + '03000000' + '000000000000' + '000000000000',
      roundTrip: () =>
        assert.deepEqual(
          decodeEndpointInfo(
            encodeEndpointInfo({ endpointId: 7, identity: 1234, ipv4: '10.240.1.2', flags: 1, policyRevision: 3 }),
          ),
          { endpointId: 7, identity: 1234, ipv4: '10.240.1.2', flags: 1, policyRevision: 3 },
        ),
    },
    {
      name: 'endpoint info with both MACs (local delivery)',
      bytes: () =>
        encodeEndpointInfo({
          endpointId: 7,
          identity: 1234,
          ipv4: '10.240.1.2',
          flags: 0x10,
          policyRevision: 3,
          podMac: '02:00:0A:F0:01:02',
          hostMac: 'ee:ff:00:11:22:33',
        }),
      hex: '07000000d20400000af0010210000000' + '03000000' + '02000af00102' + 'eeff00112233',
      roundTrip: () => {
        const e = decodeEndpointInfo(
          Buffer.from('07000000d20400000af001021000000003000000' + '02000af00102eeff00112233', 'hex'),
        );
        assert.equal(e.podMac, '02:00:0a:f0:01:02');
        assert.equal(e.hostMac, 'ee:ff:00:11:22:33');
        assert.throws(
          () => encodeEndpointInfo({ ...e, podMac: '02:00:0a' }),
          /pod MAC: expected a MAC address aa:bb:cc:dd:ee:ff, got "02:00:0a"/,
        );
      },
    },
    { name: 'config', bytes: () => encodeConfig({ traceLevel: 1, wakeupBytes: 262144 }), hex: '0100000000000400' },
    {
      name: 'auth key',
      bytes: () => encodeAuthKey({ localIdentity: 1, remoteIdentity: 2, authType: 1 }),
      hex: '010000000200000001000000',
    },
  ];
  const lbKey = { address: '10.96.0.10', port: 53, slot: 2, protocol: 17 };
  const lbService = {
    backendId: 0,
    count: 3,
    revNatIndex: 7,
    flags: 0x03,
    algorithm: 2,
    affinityTimeoutSeconds: 10800,
  };
  const lbBackend = { address: '10.201.1.2', port: 8080, protocol: 6, isTerminating: true };
  GOLDEN.push(
    {
      name: 'lb4 key 10.96.0.10:53/UDP slot 2 (address and port network order, slot host order)',
      bytes: () => encodeLbKey(lbKey),
      hex: '0a60000a' + '0035' + '0200' + '11000000',
      roundTrip: () => assert.deepEqual(decodeLbKey(encodeLbKey(lbKey)), lbKey),
    },
    {
      name: 'lb4 master entry: 3 backends, service 7, NodePort+affinity, maglev, 3 h',
      bytes: () => encodeLbService(lbService),
      hex: '00000000' + '302a0000' + '0300' + '0700' + '0302' + '0000',
      roundTrip: () => assert.deepEqual(decodeLbService(encodeLbService(lbService)), lbService),
    },
    {
      name: 'lb4 backend 10.201.1.2:8080/TCP terminating',
      bytes: () => encodeLbBackend(lbBackend),
      hex: '0ac90102' + '1f90' + '06' + '01',
      roundTrip: () => assert.deepEqual(decodeLbBackend(encodeLbBackend(lbBackend)), lbBackend),
    },
    {
      name: 'lb config: netns cookie 4096, node 172.30.0.11, maglev 16381',
      bytes: () => encodeLbConfig({ netnsCookie: 4096, nodeAddr: '172.30.0.11', maglevSize: 16381 }),
      hex: '0010000000000000' + 'ac1e000b' + 'fd3f0000',
    },
  );
  for (const g of GOLDEN) {
    it(`encodes the golden bytes of ${g.name}`, () => {
      assert.equal(g.bytes().toString('hex'), g.hex);
      g.roundTrip?.();
    });
  }
});
