// `membrane bpf ...` against real pinned maps: the CLI reads the pins of a datapath instance with
// no agent running, in table and JSON form.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { describe, it } from 'node:test';
import { removePinDir } from '../../src/datapath/bpffs.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { DatapathError } from '../../src/datapath/datapath-error.js';
import { PROG_CASES } from './fixtures/prog-cases.js';
import { setUpCase } from './support/prog-setup.js';
import { requireBpf } from './support/require-bpf.js';
import { allow, deny } from './support/traffic.js';

const BIN = new URL('../../../bin/membrane', import.meta.url).pathname;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('membrane bpf on pinned maps', () => {
  it('lists the policy, ipcache and conntrack of an instance with no agent running', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const pinDir = `/sys/fs/bpf/membrane/dp-cli-${process.pid}`;
    removePinDir(pinDir);
    const dp = Datapath.open({ pinDir });
    t.after(() => {
      dp.destroy();
      removePinDir(pinDir);
    });
    dp.applyPolicy({
      endpointId: 3,
      adds: [allow(1001, 'ingress', 6, 8080, 14), deny(0, 'egress', 17, 53), allow(0, 'egress')],
      deletes: [],
    });
    const c = PROG_CASES[0];
    assert.ok(c);
    setUpCase(dp, c);
    dp.testRun(c.program, c.packet);
    dp.close(); // the CLI must not need this process

    const pol = cli('bpf', 'policy', 'get', '3', '--pin-dir', pinDir);
    assert.equal(pol.err, '');
    assert.equal(
      pol.out,
      [
        'POLICY   DIRECTION   IDENTITY   PORT/PROTO      PROXY PORT   AUTH TYPE   PREFIX',
        'Allow    Egress      ANY        ANY             NONE         disabled    0',
        'Deny     Egress      ANY        53/UDP          NONE         disabled    24',
        'Allow    Ingress     1001       8080-8083/TCP   NONE         disabled    22',
        '',
      ].join('\n'),
    );
    const ipc = cli('bpf', 'ipcache', 'list', '--pin-dir', pinDir, '-o', 'json');
    assert.deepEqual(JSON.parse(ipc.out), [
      // The fixture endpoint's own address: a local endpoint on ifindex 1.
      { prefix: '10.0.1.2/32', identity: 1001, flags: 1, ifindex: 1 },
      { prefix: '10.0.2.2/32', identity: 1002, flags: 0, ifindex: 0 },
      { prefix: '192.0.2.0/24', identity: 16777217, flags: 0, ifindex: 0 },
    ]);
    const ct = cli('bpf', 'ct', 'list', 'global', '--pin-dir', pinDir);
    assert.match(ct.out, /^TCP OUT 10\.0\.1\.2:40000 -> 10\.0\.2\.2:80 expires=\d+ \(remaining: \d+ sec\(s\)\) /);
    const missing = cli('bpf', 'policy', 'get', '99', '--pin-dir', pinDir);
    assert.equal(missing.code, 1);
    assert.equal(missing.err, `membrane: endpoint 99 has no policy map in ${pinDir}\n`);
  });

  it('refuses pins made by another build, in the datapath and in the CLI, and changes nothing', (t) => {
    if (!requireBpf(t, 'creates BPF maps')) return;
    const pinDir = `/sys/fs/bpf/membrane/dp-stale-${process.pid}`;
    removePinDir(pinDir);
    const dp = Datapath.open({ pinDir });
    t.after(() => removePinDir(pinDir));
    dp.upsertIpcache('10.0.9.9/32', 4242);
    dp.close();
    const link = `${pinDir}/object-sha256`;
    const build = readlinkSync(link);
    assert.match(build, /^[0-9a-f]{64}$/);
    rmSync(link);
    symlinkSync('0'.repeat(64), link);
    assert.throws(
      () => Datapath.open({ pinDir }),
      (err: unknown) =>
        err instanceof DatapathError &&
        err.code === 'MBR_DATAPATH_STALE_PINS' &&
        err.message.includes('pinned by another build of the datapath (object 000000000000, this build'),
    );
    const listed = cli('bpf', 'ipcache', 'list', '--pin-dir', pinDir);
    assert.equal(listed.code, 1);
    assert.match(listed.err, /pinned by another build of the datapath/);
    // Put back, the same pins open again with their state.
    rmSync(link);
    symlinkSync(build, link);
    const again = Datapath.open({ pinDir });
    t.after(() => again.destroy());
    assert.equal(again.ipcacheEntries().find((e) => e.prefix.addr === '10.0.9.9')?.identity, 4242);
  });
});
