// Fuzzes what a container runtime hands the CNI plugin: the network config on stdin and the
// CNI_* environment with CNI_ARGS. The parsers return or throw a CniError (a CNI result code),
// never a TypeError or a RangeError.
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CniError } from '../../src/cni/cni-error.js';
import { parseCniArgs, parseCniEnv, parseNetConf, peekCniVersion } from '../../src/cni/net-conf.js';
import { fuzzProperty, HOSTILE_KEYS, hostileJson, mutatedJson, returnsOrThrowsTyped } from '../support/fuzz.js';

const typed = (parse: () => unknown) => returnsOrThrowsTyped(parse, (err) => err instanceof CniError);

const SEED_CONF = {
  cniVersion: '1.0.0',
  name: 'membrane',
  type: 'membrane-cni',
  mtu: 1500,
  agentSocket: '/run/membrane/cni.sock',
  ipam: { podCIDR: '10.201.1.0/24', dataDir: '/var/lib/cni/membrane/lab' },
  args: {
    cni: {
      labels: [{ key: 'app', value: 'frontend' }],
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    },
  },
  prevResult: {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }],
    ips: [{ address: '10.201.1.5/24', gateway: '10.201.1.1', interface: 0 }],
    routes: [{ dst: '0.0.0.0/0' }],
  },
};

const envValue = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', 'ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS', 'eth0', 'a'.repeat(16), 'a:b', '/x/y'),
);
const cniArgs = fc
  .array(
    fc.oneof(
      fc.tuple(fc.oneof(fc.constantFrom(...HOSTILE_KEYS, 'K8S_POD_NAME', 'IgnoreUnknown'), fc.string()), fc.string()),
      fc.string({ maxLength: 10 }).map((s) => [s] as [string]),
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.map((p) => p.join('=')).join(';'));

describe('fuzzing the CNI config and environment parsers', () => {
  it('parses any stdin text to a network config or a CniError', () => {
    fuzzProperty(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
      typed(() => parseNetConf(text));
      typed(() => peekCniVersion(text));
    });
  });

  it('parses any JSON value as a network config or throws a CniError', () => {
    fuzzProperty(hostileJson(), (v) => typed(() => parseNetConf(JSON.stringify(v) ?? '')));
  });

  it('parses a mutated valid network config (values, keys and types changed) or throws a CniError', () => {
    fuzzProperty(mutatedJson(SEED_CONF), (v) => typed(() => parseNetConf(JSON.stringify(v) ?? '')));
  });

  it('parses any CNI_ARGS text or throws a CniError', () => {
    fuzzProperty(fc.oneof(fc.string({ maxLength: 200 }), cniArgs), (text) => typed(() => parseCniArgs(text)));
  });

  it('parses any CNI_* environment or throws a CniError', () => {
    const env = fc.record(
      {
        CNI_COMMAND: envValue,
        CNI_CONTAINERID: envValue,
        CNI_NETNS: envValue,
        CNI_IFNAME: envValue,
        CNI_ARGS: fc.oneof(envValue, cniArgs),
        CNI_PATH: envValue,
      },
      { requiredKeys: [] },
    );
    fuzzProperty(env, (e) => typed(() => parseCniEnv(e)));
  });
});
