// Running the lab's system commands (iproute2, nsenter): errors carry the command and its stderr.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export class LabCommandError extends Error {
  readonly code = 'MBR_LAB_COMMAND';
  constructor(argv: readonly string[], stderr: string) {
    super(`${argv.join(' ')}: ${stderr.trim()}`);
    this.name = 'LabCommandError';
  }
}

export async function sh(argv: readonly string[], timeoutMs = 20_000): Promise<string> {
  try {
    const { stdout } = await execFileP(argv[0], argv.slice(1), { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new LabCommandError(argv, e.stderr || e.message);
  }
}

/** Like sh, but "already exists" is success: the lab's steps are idempotent. */
export async function shIdempotent(argv: readonly string[]): Promise<void> {
  try {
    await sh(argv);
  } catch (err) {
    if (!/File exists|already exists|already assigned/.test((err as Error).message)) throw err;
  }
}

export function inNetns(netnsPath: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=${netnsPath}`, '--', ...argv];
}
