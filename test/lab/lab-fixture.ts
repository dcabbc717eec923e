// A lab per test: its own name ("t" + random hex) and state directory, torn down in t.after even
// when the test fails.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { labDown } from '../../src/lab/teardown.js';

export const REPO = new URL('../../../', import.meta.url).pathname.replace(/\/$/, '');
export const MINI_WORLD = join(REPO, 'test/lab/worlds/mini.yaml');
export const MEMBRANE = join(REPO, 'bin/membrane');
export const LAB_TOOLS = ['ip', 'nsenter', 'unshare', 'curl', 'dnsmasq', 'ss', 'dig', 'kcat'];

export interface TestLab {
  readonly lab: string;
  readonly stateDir: string;
  readonly env: NodeJS.ProcessEnv;
}

/** Every test shares one state root (lab paths read it from the environment). */
const stateRoot = mkdtempSync(join(tmpdir(), 'mbr-labtest-'));
process.env.MEMBRANE_STATE_DIR = stateRoot;

export function testLab(t: TestContext): TestLab {
  const lab = `t${randomBytes(3).toString('hex')}`;
  t.after(async () => {
    await labDown(lab);
  });
  return { lab, stateDir: stateRoot, env: { ...process.env, MEMBRANE_STATE_DIR: stateRoot, MEMBRANE_LAB: lab } };
}

process.on('exit', () => rmSync(stateRoot, { recursive: true, force: true }));
