import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCniArgs, parseCniEnv, parseNetConf } from '../../src/cni/net-conf.js';

const GOOD = { cniVersion: '1.0.0', name: 'membrane', type: 'membrane-cni', ipam: { podCIDR: '10.201.1.0/24' } };

const INVALID_CONFIGS: ReadonlyArray<{ name: string; conf: unknown; code: number; message: string }> = [
  { name: 'text that is not JSON', conf: '{', code: 6, message: /^network config: expected JSON, /.source },
  {
    name: 'an unsupported cniVersion',
    conf: { ...GOOD, cniVersion: '9.9.9' },
    code: 1,
    message: 'cniVersion: expected one of 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0, got "9.9.9"',
  },
  {
    name: 'a missing name',
    conf: { ...GOOD, name: undefined },
    code: 7,
    message: 'name: expected a network name of letters, digits, "_", "." or "-", got nothing',
  },
  {
    name: 'a missing pod CIDR',
    conf: { ...GOOD, ipam: {} },
    code: 7,
    message: 'ipam.podCIDR: expected an IPv4 CIDR such as 10.201.1.0/24, got nothing',
  },
  {
    name: 'a pod CIDR that is not a CIDR',
    conf: { ...GOOD, ipam: { podCIDR: '10.201.1.0' } },
    code: 7,
    message: 'ipam.podCIDR: expected an IPv4 CIDR with a prefix length of 8 to 29, got "10.201.1.0"',
  },
  {
    name: 'a pod CIDR too small for pods',
    conf: { ...GOOD, ipam: { podCIDR: '10.201.1.0/31' } },
    code: 7,
    message: 'ipam.podCIDR: expected an IPv4 CIDR with a prefix length of 8 to 29, got "10.201.1.0/31"',
  },
  {
    name: 'a relative IPAM data directory',
    conf: { ...GOOD, ipam: { podCIDR: '10.201.1.0/24', dataDir: 'ipam' } },
    code: 7,
    message: 'ipam.dataDir: expected an absolute directory path, got "ipam"',
  },
  {
    name: 'an MTU out of range',
    conf: { ...GOOD, mtu: 100 },
    code: 7,
    message: 'mtu: expected an integer 576-65535, got 100',
  },
  {
    name: 'a label without a key',
    conf: { ...GOOD, args: { cni: { labels: [{ value: 'x' }] } } },
    code: 7,
    message: 'args.cni.labels[0].key: expected a label key, got nothing',
  },
  {
    name: 'a prevResult whose ips is not a list',
    conf: { ...GOOD, prevResult: { ips: 'x' } },
    code: 7,
    message: 'prevResult.ips: expected a list, got "x"',
  },
  {
    name: 'a prevResult with a null interface',
    conf: { ...GOOD, prevResult: { interfaces: [null] } },
    code: 7,
    message: 'prevResult.interfaces[0]: expected an interface object, got null',
  },
  {
    name: 'a prevResult interface without a name',
    conf: { ...GOOD, prevResult: { interfaces: [{ mac: 'aa' }] } },
    code: 7,
    message: 'prevResult.interfaces[0].name: expected an interface name, got nothing',
  },
  {
    name: 'a prevResult with a null IP config',
    conf: { ...GOOD, prevResult: { ips: [null] } },
    code: 7,
    message: 'prevResult.ips[0]: expected an IP config object, got null',
  },
  {
    name: 'a prevResult address that is not a CIDR',
    conf: { ...GOOD, prevResult: { ips: [{ address: 7 }] } },
    code: 7,
    message: 'prevResult.ips[0].address: expected an address in CIDR notation, got 7',
  },
  {
    name: 'a prevResult IP pointing past the interfaces',
    conf: { ...GOOD, prevResult: { interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.2/24', interface: 3 }] } },
    code: 7,
    message: 'prevResult.ips[0].interface: expected an index into prevResult.interfaces (0-0), got 3',
  },
  {
    name: 'a prevResult route without a destination',
    conf: { ...GOOD, prevResult: { routes: [{ gw: '10.0.0.1' }] } },
    code: 7,
    message: 'prevResult.routes[0].dst: expected a destination in CIDR notation, got nothing',
  },
  {
    name: 'a prevResult whose dns is a list',
    conf: { ...GOOD, prevResult: { dns: [] } },
    code: 7,
    message: 'prevResult.dns: expected an object, got []',
  },
];

describe('parseNetConf', () => {
  it('accepts a minimal config and fills in defaults', () => {
    const c = parseNetConf(JSON.stringify({ ...GOOD, args: { cni: { labels: [{ key: 'app', value: 'web' }] } } }));
    assert.deepEqual(c, {
      cniVersion: '1.0.0',
      name: 'membrane',
      type: 'membrane-cni',
      podCIDR: '10.201.1.0/24',
      ipamDataDir: '/var/lib/cni/membrane/membrane',
      agentSocket: '',
      mtu: 1500,
      labels: { app: 'web' },
      ports: [],
      prevResult: undefined,
      validAttachments: undefined,
    });
  });

  it('normalises a pod CIDR with host bits set', () => {
    assert.equal(
      parseNetConf(JSON.stringify({ ...GOOD, ipam: { podCIDR: '10.201.1.77/24' } })).podCIDR,
      '10.201.1.0/24',
    );
  });

  for (const c of INVALID_CONFIGS) {
    it(`rejects ${c.name}, naming the field`, () => {
      const text = typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf);
      assert.throws(
        () => parseNetConf(text),
        (err: Error & { code: number }) => {
          assert.equal(err.code, c.code);
          if (c.message.startsWith('^')) assert.match(err.message, new RegExp(c.message));
          else assert.equal(err.message, c.message);
          return true;
        },
      );
    });
  }
});

describe('parseCniEnv', () => {
  const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' };
  const INVALID_ENVS = [
    {
      name: 'an unknown command',
      env: { ...base, CNI_COMMAND: 'FOO' },
      message: 'CNI_COMMAND: expected one of ADD, DEL, CHECK, VERSION, GC, STATUS, got "FOO"',
    },
    {
      name: 'ADD without a netns',
      env: { ...base, CNI_NETNS: '' },
      message: 'CNI_NETNS: required for ADD, got nothing',
    },
    {
      name: 'DEL without a container id',
      env: { ...base, CNI_COMMAND: 'DEL', CNI_CONTAINERID: undefined },
      message: 'CNI_CONTAINERID: required for DEL, got nothing',
    },
    {
      name: 'an interface name that is too long',
      env: { ...base, CNI_IFNAME: 'a-very-long-ifname' },
      message: 'CNI_IFNAME: expected an interface name of at most 15 characters, got "a-very-long-ifname"',
    },
    {
      name: 'CNI_ARGS without "="',
      env: { ...base, CNI_ARGS: 'IgnoreUnknown=1;oops' },
      message: 'CNI_ARGS: expected KEY=VALUE pairs, got "oops"',
    },
  ];
  for (const c of INVALID_ENVS) {
    it(`rejects ${c.name} with code 4`, () => {
      assert.throws(() => parseCniEnv(c.env), { code: 4, message: c.message });
    });
  }

  it('needs only CNI_COMMAND for GC and STATUS', () => {
    for (const cmd of ['GC', 'STATUS']) assert.equal(parseCniEnv({ CNI_COMMAND: cmd }).command, cmd);
  });

  it('lets DEL go without a netns, as the spec allows', () => {
    assert.equal(parseCniEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns, '');
  });

  it('parses CNI_ARGS pairs, keeping "=" inside values', () => {
    assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=web;X=a=b'), {
      IgnoreUnknown: '1',
      K8S_POD_NAME: 'web',
      X: 'a=b',
    });
  });
});
