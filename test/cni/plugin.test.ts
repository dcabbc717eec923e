// The plugin as a runtime sees it, without root: runCni in-process and the executable itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { CNI_VERSION } from '../../src/cni/cni-types.js';
import { MAX_CONFIG_BYTES, readConfig } from '../../src/cni/main.js';
import { runCni } from '../../src/cni/plugin.js';

const BIN = new URL('../../../bin/membrane-cni', import.meta.url).pathname;
const ADD_ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' };
const CONF = { cniVersion: '1.0.0', name: 'membrane', type: 'membrane-cni', ipam: { podCIDR: '10.201.1.0/24' } };

describe('runCni', () => {
  it('answers a prevResult with a null interface with code 7 naming the field, without a stack', async () => {
    const out = await runCni(ADD_ENV, JSON.stringify({ ...CONF, prevResult: { interfaces: [null] } }));
    assert.equal(out.exitCode, 1);
    assert.deepEqual(JSON.parse(out.stdout), {
      cniVersion: '1.0.0',
      code: 7,
      msg: 'prevResult.interfaces[0]: expected an interface object, got null',
    });
  });
});

/** A stand-in for the agent's API on a unix socket: healthz, the endpoint list, and DELETE. */
async function fakeAgent(t: TestContext, dir: string, endpoints: Array<{ containerId: string; ifname: string }>) {
  const socket = join(dir, 'agent.sock');
  const deleted: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    res.setHeader('content-type', 'application/json');
    if (req.method === 'GET' && url.pathname === '/v1/healthz') return res.end('{"ok":true}');
    if (req.method === 'GET' && url.pathname === '/v1/endpoint')
      return res.end(JSON.stringify(endpoints.map((e, i) => ({ id: i + 1, ...e }))));
    if (req.method === 'DELETE' && url.pathname === '/v1/endpoint') {
      deleted.push(`${url.searchParams.get('containerId')}/${url.searchParams.get('ifname')}`);
      return res.end('{}');
    }
    res.statusCode = 404;
    res.end('{"code":"MBR_NOT_FOUND","message":"not found"}');
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => server.close());
  return { socket, deleted };
}

function scratchDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-cni-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const V11 = { ...CONF, cniVersion: '1.1.0' };
const NETWORK_ENV = { CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' };

describe('CNI 1.1 commands', () => {
  it('reports 1.1.0 among its versions', async () => {
    const out = await runCni({ CNI_COMMAND: 'VERSION' }, JSON.stringify(V11));
    assert.deepEqual(JSON.parse(out.stdout), {
      cniVersion: '1.1.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it('answers STATUS with success when the agent answers /v1/healthz', async (t) => {
    const dir = scratchDir(t);
    const agent = await fakeAgent(t, dir, []);
    const conf = { ...V11, agentSocket: agent.socket, ipam: { podCIDR: '10.201.1.0/24', dataDir: join(dir, 'ipam') } };
    assert.deepEqual(await runCni(NETWORK_ENV, JSON.stringify(conf)), { stdout: '', exitCode: 0 });
  });

  it('answers STATUS with code 50 when the agent does not answer', async (t) => {
    const dir = scratchDir(t);
    const conf = { ...V11, agentSocket: join(dir, 'gone.sock'), ipam: { podCIDR: '10.201.1.0/24' } };
    const out = await runCni(NETWORK_ENV, JSON.stringify(conf));
    assert.equal(out.exitCode, 1);
    const r = JSON.parse(out.stdout);
    assert.equal(r.code, 50);
    assert.match(r.msg, /^agent is not ready: agent at .*gone\.sock: ENOENT/);
  });

  it('answers STATUS with code 50 when the pod CIDR has no free address', async (t) => {
    const dir = scratchDir(t);
    const ipam = join(dir, 'ipam');
    mkdirSync(ipam);
    for (let n = 2; n <= 6; n++) writeFileSync(join(ipam, `10.201.1.${n}`), `c${n}\neth0\n`);
    const conf = { ...V11, ipam: { podCIDR: '10.201.1.0/29', dataDir: ipam } };
    const out = await runCni(NETWORK_ENV, JSON.stringify(conf));
    assert.deepEqual(JSON.parse(out.stdout), {
      cniVersion: '1.1.0',
      code: 50,
      msg: 'no free address in 10.201.1.0/29 (5 of 5 reserved)',
    });
  });

  it('refuses GC and STATUS for a config older than 1.1.0 with code 1', async () => {
    for (const cmd of ['GC', 'STATUS']) {
      const out = await runCni({ CNI_COMMAND: cmd }, JSON.stringify(CONF));
      assert.deepEqual(JSON.parse(out.stdout), {
        cniVersion: '1.0.0',
        code: 1,
        msg: `cniVersion: ${cmd} needs 1.1.0 or later, got "1.0.0"`,
      });
    }
  });

  it('GC releases reservations and agent endpoints missing from cni.dev/valid-attachments', async (t) => {
    const dir = scratchDir(t);
    const ipam = join(dir, 'ipam');
    mkdirSync(ipam);
    writeFileSync(join(ipam, '10.201.1.2'), 'keep\neth0\n');
    writeFileSync(join(ipam, '10.201.1.3'), 'stale\neth0\n');
    writeFileSync(join(ipam, '10.201.1.4'), 'keep\nnet1\n');
    const agent = await fakeAgent(t, dir, [
      { containerId: 'keep', ifname: 'eth0' },
      { containerId: 'stale', ifname: 'eth0' },
      { containerId: 'gone', ifname: 'eth0' },
    ]);
    const conf = {
      ...V11,
      agentSocket: agent.socket,
      ipam: { podCIDR: '10.201.1.0/24', dataDir: ipam },
      'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }],
    };
    // libcni sets CNI_CONTAINERID and CNI_IFNAME empty for GC.
    const env = { CNI_COMMAND: 'GC', CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_PATH: '/usr/lib/cni' };
    assert.deepEqual(await runCni(env, JSON.stringify(conf)), { stdout: '', exitCode: 0 });
    assert.deepEqual(readdirSync(ipam), ['10.201.1.2']);
    assert.deepEqual(agent.deleted, ['stale/eth0', 'gone/eth0']);
  });

  it('refuses GC without cni.dev/valid-attachments rather than release everything', async () => {
    const out = await runCni({ CNI_COMMAND: 'GC' }, JSON.stringify(V11));
    assert.deepEqual(JSON.parse(out.stdout), {
      cniVersion: '1.1.0',
      code: 7,
      msg: 'cni.dev/valid-attachments: expected a list of {containerID, ifname} for GC, got nothing',
    });
  });

  it('rejects a valid-attachments entry without a container ID, naming it', async () => {
    const conf = { ...V11, 'cni.dev/valid-attachments': [{ ifname: 'eth0' }] };
    const out = await runCni({ CNI_COMMAND: 'GC' }, JSON.stringify(conf));
    assert.deepEqual(JSON.parse(out.stdout), {
      cniVersion: '1.1.0',
      code: 7,
      msg: 'cni.dev/valid-attachments[0].containerID: expected a container ID, got nothing',
    });
  });

  it('GC reports an unreachable agent with code 11 after releasing the reservations', async (t) => {
    const dir = scratchDir(t);
    const ipam = join(dir, 'ipam');
    mkdirSync(ipam);
    writeFileSync(join(ipam, '10.201.1.3'), 'stale\neth0\n');
    const conf = {
      ...V11,
      agentSocket: join(dir, 'gone.sock'),
      ipam: { podCIDR: '10.201.1.0/24', dataDir: ipam },
      'cni.dev/valid-attachments': [],
    };
    const out = await runCni({ CNI_COMMAND: 'GC' }, JSON.stringify(conf));
    assert.equal(JSON.parse(out.stdout).code, 11);
    assert.deepEqual(readdirSync(ipam), []);
  });
});

describe('membrane-cni stdin', () => {
  it('reads a config up to the limit', async () => {
    assert.equal(await readConfig(Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]), 8), '{"a":1}');
  });

  it('refuses stdin over the limit with code 7', async () => {
    const r = await readConfig(Readable.from([Buffer.alloc(5), Buffer.alloc(5)]), 8);
    assert.equal(typeof r, 'object');
    assert.deepEqual((r as { toResult(v: string): unknown }).toResult('1.0.0'), {
      cniVersion: '1.0.0',
      code: 7,
      msg: 'network config: expected at most 8 bytes on stdin, got more',
    });
  });

  it('answers 600 MiB of stdin with a CNI error on stdout and exit 1, not a crash', async () => {
    const child = spawn(process.execPath, [BIN], { env: { ...ADD_ENV, PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.stdin.on('error', () => undefined); // EPIPE once the plugin stops reading
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    const feed = async () => {
      while (sent < 600 && child.stdin.writable) {
        sent++;
        if (!child.stdin.write(chunk))
          await new Promise((r) => {
            child.stdin.once('drain', r);
            child.once('close', r);
          });
      }
      child.stdin.end();
    };
    void feed();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 1, stderr);
    assert.deepEqual(JSON.parse(stdout), {
      cniVersion: CNI_VERSION,
      code: 7,
      msg: `network config: expected at most ${MAX_CONFIG_BYTES} bytes on stdin, got more`,
    });
    assert.ok(sent < 600, `the plugin read all ${sent} MiB`);
  });
});
