import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { VERSION } from '../../src/version.js';

const BIN = new URL('../../../bin/membrane', import.meta.url).pathname;

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('membrane CLI', () => {
  it('prints top-level help listing every command group', () => {
    const r = run('--help');
    assert.equal(r.code, 0);
    for (const g of [
      'policy',
      'lab',
      'apply',
      'delete',
      'status',
      'endpoint',
      'identity',
      'bpf',
      'monitor',
      'observe',
    ]) {
      assert.match(r.out, new RegExp(`^  ${g}\\b`, 'm'), `group ${g} missing from help`);
    }
    for (const g of ['service', 'fqdn', 'agent', 'version', 'hubble'])
      assert.match(r.out, new RegExp(`^  ${g}\\b`, 'm'));
  });

  for (const group of ['policy', 'lab', 'bpf', 'endpoint', 'identity', 'observe', 'hubble', 'agent']) {
    it(`prints help for the ${group} group`, () => {
      const r = run(group, '--help');
      assert.equal(r.code, 0);
      assert.match(r.out, new RegExp(`Usage: membrane ${group}`));
    });
  }

  it('prints the version equal to package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    assert.equal(VERSION, pkg.version);
    const r = run('version');
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`^membrane ${VERSION.replaceAll('.', '\\.')} `));
    assert.equal(JSON.parse(run('version', '-o', 'json').out).version, VERSION);
  });

  it('suggests the command meant by a typo and exits 2', () => {
    const r = run('versoin');
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown command 'versoin'/);
    assert.match(r.err, /Did you mean version\?/);
  });

  it('rejects an unknown flag with exit code 2 and suggests the right one', () => {
    const r = run('status', '--verbos');
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown option '--verbos'/);
    assert.match(r.err, /Did you mean --verbose\?/);
  });
});
