// --kvstore and --kvstore-opt into a store spec: every accepted form, and every mistake with the
// message naming the option or the file and field.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatEtcdConfig, storeSpecFromOptions } from '../../src/store/open-store.js';

const dir = mkdtempSync(join(tmpdir(), 'mbr-kvopt-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

describe('store options', () => {
  it('chooses the embedded store by default and for --kvstore embedded', () => {
    assert.deepEqual(storeSpecFromOptions('embedded', [], '/run/x/cluster'), {
      kind: 'embedded',
      dir: '/run/x/cluster',
    });
    assert.deepEqual(storeSpecFromOptions('', [], '/c'), { kind: 'embedded', dir: '/c' });
  });

  it("reads Cilium's etcd config file, and lets options override its TLS files", () => {
    const cfg = file(
      'etcd.config',
      'endpoints:\n- https://10.0.0.1:2379\n- https://10.0.0.2:2379\ntrusted-ca-file: /ca.pem\ncert-file: /c.pem\nkey-file: /k.pem\n',
    );
    assert.deepEqual(storeSpecFromOptions('etcd', [`etcd.config=${cfg}`], '/c'), {
      kind: 'etcd',
      endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
      tls: { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem' },
    });
    assert.deepEqual(storeSpecFromOptions('etcd', [`etcd.config=${cfg}`, 'etcd.trusted-ca-file=/other.pem'], '/c'), {
      kind: 'etcd',
      endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
      tls: { ca: '/other.pem', cert: '/c.pem', key: '/k.pem' },
    });
    assert.deepEqual(
      storeSpecFromOptions('etcd', [`etcd.config=${file('w.config', formatEtcdConfig(['http://a:2379']))}`], '/c'),
      {
        kind: 'etcd',
        endpoints: ['http://a:2379'],
      },
    );
  });

  it('takes etcd.address as a list of client URLs', () => {
    assert.deepEqual(storeSpecFromOptions('etcd', ['etcd.address=http://127.0.0.1:2379, unix:///run/e.sock:0'], '/c'), {
      kind: 'etcd',
      endpoints: ['http://127.0.0.1:2379', 'unix:///run/e.sock:0'],
    });
  });

  const bad: Array<{ name: string; kind: string; opts: string[]; message: string }> = [
    {
      name: 'an unknown store',
      kind: 'consul',
      opts: [],
      message: '--kvstore: expected one of embedded, etcd, got "consul"',
    },
    {
      name: 'an option without =',
      kind: 'etcd',
      opts: ['etcd.address'],
      message: '--kvstore-opt: expected key=value, got "etcd.address"',
    },
    {
      name: 'an unknown option',
      kind: 'etcd',
      opts: ['etcd.adress=http://a:1'],
      message:
        '--kvstore-opt: expected one of etcd.config, etcd.address, etcd.trusted-ca-file, etcd.cert-file, etcd.key-file, got "etcd.adress"',
    },
    {
      name: 'options for the embedded store',
      kind: 'embedded',
      opts: ['etcd.address=http://a:1'],
      message: '--kvstore-opt: the embedded store takes no options, got "etcd.address=http://a:1"',
    },
    {
      name: 'etcd with no endpoints',
      kind: 'etcd',
      opts: [],
      message: '--kvstore etcd: expected --kvstore-opt etcd.config=FILE or etcd.address=URL[,URL...]',
    },
    {
      name: 'an endpoint that is not a URL',
      kind: 'etcd',
      opts: ['etcd.address=10.0.0.1:2379'],
      message: 'etcd endpoint: expected http(s)://host:port or unix://path, got "10.0.0.1:2379"',
    },
    {
      name: 'a certificate without its key',
      kind: 'etcd',
      opts: ['etcd.address=https://a:1', 'etcd.trusted-ca-file=/ca', 'etcd.cert-file=/c'],
      message: 'etcd TLS: expected both cert-file and key-file, or neither',
    },
  ];
  for (const c of bad)
    it(`rejects ${c.name}`, () =>
      assert.throws(() => storeSpecFromOptions(c.kind, c.opts, '/c'), {
        code: 'MBR_KVSTORE_OPTION',
        message: c.message,
      }));

  it('names the config file and the field that is wrong', () => {
    const noList = file('a.config', 'endpoints: http://a:2379\n');
    assert.throws(() => storeSpecFromOptions('etcd', [`etcd.config=${noList}`], '/c'), {
      code: 'MBR_KVSTORE_OPTION',
      message: `${noList}: endpoints: expected a list of client URLs, got "http://a:2379"`,
    });
    const badCa = file('b.config', 'endpoints: [http://a:2379]\ntrusted-ca-file: 7\n');
    assert.throws(() => storeSpecFromOptions('etcd', [`etcd.config=${badCa}`], '/c'), {
      message: `${badCa}: trusted-ca-file: expected a file path, got 7`,
    });
    const notYaml = file('c.config', 'endpoints: [\n');
    assert.throws(() => storeSpecFromOptions('etcd', [`etcd.config=${notYaml}`], '/c'), {
      message: new RegExp(`^${notYaml}: expected YAML, got a parse error: `),
    });
    assert.throws(() => storeSpecFromOptions('etcd', [`etcd.config=${join(dir, 'missing')}`], '/c'), {
      message: new RegExp(`^${join(dir, 'missing')}: ENOENT`),
    });
  });
});
