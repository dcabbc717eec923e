// Input checks of the map codecs: exact codes and messages, no kernel needed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIpv4Prefix, parseIpv4Prefix } from '../../src/datapath/maps/ipcache-map.js';
import {
  decodePolicyKey,
  encodePolicyKey,
  policyKeyId,
  validatePolicyKey,
} from '../../src/datapath/maps/policy-map.js';
import type { PolicyKey } from '../../src/policy/map-state-types.js';

describe('ipcache prefixes', () => {
  const OK = [
    ['10.1.2.3', '10.1.2.3/32'],
    ['10.1.2.3/24', '10.1.2.0/24'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['255.255.255.255/1', '128.0.0.0/1'],
  ] as const;
  for (const [input, want] of OK)
    it(`parses ${input} as ${want}`, () => assert.equal(formatIpv4Prefix(parseIpv4Prefix(input)), want));

  for (const bad of ['10.1.2', '10.1.2.300', '10.1.2.3/33', '10.1.2.3/', '10.1.2.3/8/9', 'a.b.c.d'])
    it(`rejects ${bad}`, () =>
      assert.throws(() => parseIpv4Prefix(bad), {
        code: 'MBR_DATAPATH_BAD_INPUT',
        message: `ipcache prefix: expected A.B.C.D or A.B.C.D/0-32, got "${bad}"`,
      }));
});

describe('policy keys', () => {
  it('round-trips every prefix length and clears port bits below the prefix', () => {
    for (let pl = 0; pl <= 16; pl++) {
      const k: PolicyKey = { identity: 7, direction: 'egress', protocol: 17, port: 0xffff, portPrefixLen: pl };
      const back = decodePolicyKey(encodePolicyKey(k));
      const mask = pl === 0 ? 0 : (0xffff << (16 - pl)) & 0xffff;
      assert.deepEqual(back, { ...k, port: 0xffff & mask });
      assert.equal(policyKeyId(back), policyKeyId(k));
    }
  });

  const BAD: Array<[string, PolicyKey, string]> = [
    [
      'a negative identity',
      { identity: -1, direction: 'ingress', protocol: 6, port: 80, portPrefixLen: 16 },
      'policy key.identity: expected an integer 0-4294967295, got -1',
    ],
    [
      'a protocol over 255',
      { identity: 1, direction: 'ingress', protocol: 256, port: 80, portPrefixLen: 16 },
      'policy key.protocol: expected an IP protocol number 0-255, got 256',
    ],
    [
      'a port over 65535',
      { identity: 1, direction: 'ingress', protocol: 6, port: 65536, portPrefixLen: 16 },
      'policy key.port: expected a port 0-65535, got 65536',
    ],
  ];
  for (const [name, key, message] of BAD)
    it(`rejects ${name}`, () =>
      assert.throws(() => validatePolicyKey(key), { code: 'MBR_DATAPATH_BAD_INPUT', message }));
});
