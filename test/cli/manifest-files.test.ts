import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readPolicyFiles } from '../../src/cli/commands/apply.js';
import { listManifestFiles, readManifestFile, readManifestText } from '../../src/cli/manifest-files.js';
import { parseWorld } from '../../src/lab/world.js';
import { parsePolicyFile } from '../../src/policy/policy-parser.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const BIN = `${ROOT}bin/membrane`;
const DUP = `${ROOT}test/fixtures/policy/duplicate-ingress.yaml`;
const DUP_MESSAGE = `${DUP}: document 1 (line 8): spec.ingress: expected each key at most once in a mapping, got it again (first on line 6)`;

function run(...args: string[]) {
  // No agent and no lab: a command that talked to one would fail with a connection error instead.
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    cwd: ROOT,
    env: { ...process.env, MEMBRANE_LAB: 'mbr-no-such-lab' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('manifest files', () => {
  it('every manifest reader rejects the same duplicate-key file with the same message', () => {
    const thrown = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return { code: (e as { code?: string }).code, message: (e as Error).message };
      }
      assert.fail('no error');
    };
    const want = { code: 'MBR_MANIFEST_INVALID', message: DUP_MESSAGE };
    const text = readFileSync(DUP, 'utf8');
    assert.deepEqual(
      thrown(() => parsePolicyFile(text, DUP)),
      want,
      'policy validate and trace parse',
    );
    assert.deepEqual(
      thrown(() => readPolicyFiles([DUP])),
      want,
      'apply and delete read',
    );
    assert.deepEqual(
      thrown(() => parseWorld([{ file: DUP, text }])),
      want,
      'lab world',
    );
    assert.deepEqual(
      thrown(() => readManifestFile(DUP)),
      want,
      'the file reader',
    );

    for (const cmd of [
      ['policy', 'validate'],
      ['policy', 'trace'],
    ]) {
      const r = run(...cmd, '-f', DUP);
      assert.deepEqual(r, { code: 1, out: '', err: `${DUP_MESSAGE}\nmembrane: invalid: 1 error\n` }, cmd.join(' '));
    }
    for (const cmd of ['apply', 'delete']) {
      const r = run(cmd, '-f', DUP);
      assert.deepEqual(r, { code: 1, out: '', err: `membrane: ${DUP_MESSAGE}\n` }, cmd);
    }
  });

  it('reads at most 16 MiB, naming the file, so -f /dev/zero ends', () => {
    assert.throws(() => readManifestText('/dev/zero'), {
      code: 'MBR_MANIFEST_INVALID',
      message: '/dev/zero: expected at most 16777216 bytes (16 MiB), got more',
    });
    const r = run('apply', '-f', '/dev/zero');
    assert.deepEqual(r, {
      code: 1,
      out: '',
      err: 'membrane: /dev/zero: expected at most 16777216 bytes (16 MiB), got more\n',
    });
  });

  it('lists a directory in name order, subdirectories only when recursive', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mbr-manifests-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'b-sub'));
    for (const f of ['c.yaml', 'a.json', 'notes.txt', 'b-sub/x.yml', 'B.yml']) writeFileSync(join(dir, f), 'a: 1\n');
    assert.deepEqual(
      listManifestFiles(dir, { recursive: false }).map((f) => f.slice(dir.length + 1)),
      ['B.yml', 'a.json', 'c.yaml'],
    );
    assert.deepEqual(
      listManifestFiles(dir, { recursive: true }).map((f) => f.slice(dir.length + 1)),
      ['B.yml', 'a.json', 'b-sub/x.yml', 'c.yaml'],
    );
  });
});
