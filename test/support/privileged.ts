// Gate for tests that need root (netns, BPF). Outside CI they skip with the reason;
// under CI=true they fail instead, so a green CI run means the datapath really ran.
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function isCi(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

/** Why this process cannot run privileged tests, or undefined when it can. */
export function privilegeGap(needs: readonly string[] = []): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const tool of needs) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool} on PATH`;
    }
  }
  return undefined;
}

/**
 * Skip the test (or fail it under CI) when it cannot run privileged.
 * Returns true when the test may go on.
 */
export function requireRoot(t: TestContext, why: string, needs: readonly string[] = []): boolean {
  const gap = privilegeGap(needs);
  if (gap === undefined) return true;
  if (isCi()) throw new Error(`privileged test cannot run under CI: ${gap} (${why})`);
  t.skip(`${gap}: ${why}`);
  return false;
}
