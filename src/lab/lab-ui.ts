// The lab's web UI: `membrane ui` in the host's network namespace (so the browser on the host
// reaches it on 127.0.0.1), reading the lab's relay socket and asking the agents for policies and
// traces (the agent of the node that saw a flow). Its pid is kept in the lab's directory; `lab
// down` stops it (it runs in no lab netns).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentSocket, labDir, relaySocket } from './lab-paths.js';
import { isAlive } from './pod-process.js';

export interface LabUiOptions {
  readonly port: number;
  readonly address?: string;
}

/** Starts the UI unless it already runs; resolves with its URL once it answers (10 s at most). */
export async function ensureLabUi(lab: string, repoRoot: string, ui: LabUiOptions): Promise<string> {
  const address = ui.address ?? '127.0.0.1';
  const url = `http://${address}:${ui.port}`;
  const pidFile = uiPidFile(lab);
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
  if (!(pid && isLabUi(pid))) {
    // Started from `lab up`'s own netns, the host's, where the user's browser runs.
    const log = openSync(join(labDir(lab), 'logs', 'ui.log'), 'a');
    let started: number | undefined;
    try {
      const argv = [
        join(repoRoot, 'bin/membrane'),
        'ui',
        '--port',
        String(ui.port),
        '--address',
        address,
        '--server',
        `unix://${relaySocket(lab)}`,
        '--agent-socket',
        agentSocket(lab, '{node}'),
      ];
      const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', log, log], cwd: repoRoot });
      child.unref();
      started = child.pid;
    } finally {
      closeSync(log);
    }
    if (started === undefined) throw Object.assign(new Error('could not start membrane ui'), { code: 'MBR_LAB_UI' });
    writeFileSync(pidFile, String(started));
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/api/status`)).ok) return url;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw Object.assign(
        new Error(`the UI did not answer on ${url} within 10 s: see ${join(labDir(lab), 'logs', 'ui.log')}`),
        {
          code: 'MBR_LAB_UI',
        },
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the lab's UI, if it runs, and waits (3 s at most) for it to exit. */
export async function stopLabUi(lab: string): Promise<void> {
  const pidFile = uiPidFile(lab);
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
  if (!pid || !isLabUi(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** The pid file may be stale: only a process running `membrane ui` is ours to stop. */
function isLabUi(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => a.endsWith('bin/membrane')) && argv.includes('ui');
  } catch {
    return false;
  }
}

function uiPidFile(lab: string): string {
  return join(labDir(lab), 'ui.pid');
}
