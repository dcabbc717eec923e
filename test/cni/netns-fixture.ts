// Scratch network namespaces for privileged tests: names mbr-t<random>-<suffix>, all removed
// in t.after even when the test fails.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export interface Scratch {
  /** The test's lab-like tag: "t" plus random hex. */
  readonly tag: string;
  readonly dir: string;
  /** Creates mbr-<tag>-<suffix> and returns its /run/netns path. */
  netns(suffix: string): string;
}

export function scratch(t: TestContext): Scratch {
  const tag = `t${randomBytes(3).toString('hex')}`;
  const made: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), `mbr-${tag}-`));
  t.after(() => {
    for (const n of made.reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    tag,
    dir,
    netns(suffix: string): string {
      const name = `mbr-${tag}-${suffix}`;
      execFileSync('ip', ['netns', 'add', name]);
      made.push(name);
      return `/run/netns/${name}`;
    },
  };
}

/** Runs a command inside a netns (nsenter, never `ip netns exec`). */
export function inNetns(path: string, argv: readonly string[]): string {
  return execFileSync('nsenter', [`--net=${path}`, '--', ...argv], { encoding: 'utf8', timeout: 20_000 });
}
