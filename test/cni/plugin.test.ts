// The plugin as a runtime sees it, without root: runCni in-process and the executable itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
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
