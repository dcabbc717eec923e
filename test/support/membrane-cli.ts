// Runs bin/membrane as a child process, the way a user does, with TZ=UTC for stable times.
import { spawn } from 'node:child_process';

export const MEMBRANE_BIN = new URL('../../../bin/membrane', import.meta.url).pathname;

export interface CliRun {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

/** The command's exit code and output; `stdin` is written and closed when given. */
export function runMembrane(args: readonly string[], stdin?: string): Promise<CliRun> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MEMBRANE_BIN, ...args], { env: { ...process.env, TZ: 'UTC' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
    if (stdin !== undefined) p.stdin.end(stdin);
  });
}
