// `lab down`: removes everything a lab made, found again from the lab name alone so it works
// after a crash or a half-finished `up`: every process inside one of the lab's network
// namespaces, the namespaces (and with them every link and address in them), the bpffs pins and
// the state directory.
import { readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { removePinDir } from '../datapath/bpffs.js';
import { sh } from './host-commands.js';
import { bpffsDir, checkLabName, labDir, netnsPrefix } from './lab-paths.js';
import { stopLabUi } from './lab-ui.js';
import { isAlive } from './pod-process.js';

export interface DownReport {
  readonly processes: number;
  readonly netns: readonly string[];
}

export function labNetns(lab: string): string[] {
  try {
    return readdirSync('/run/netns')
      .filter((n) => n.startsWith(netnsPrefix(lab)))
      .sort();
  } catch {
    return [];
  }
}

export async function labDown(lab: string): Promise<DownReport> {
  // The name becomes paths that get removed recursively: never accept one that could escape.
  const bad = checkLabName(lab);
  if (bad) throw Object.assign(new Error(`lab name: ${bad}`), { code: 'MBR_LAB_NAME' });
  // The UI runs in the host's netns, not the lab's: stop it by its pid file.
  await stopLabUi(lab);
  const names = labNetns(lab);
  const inodes = new Set<number>();
  for (const n of names) {
    try {
      inodes.add(statSync(`/run/netns/${n}`).ino);
    } catch {
      // vanished meanwhile
    }
  }
  const pids = processesIn(inodes);
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const pid of pids) if (isAlive(pid)) signal(pid, 'SIGKILL');
  for (const n of names) await sh(['ip', 'netns', 'del', n]).catch(() => undefined);
  removePinDir(bpffsDir(lab));
  rmSync(labDir(lab), { recursive: true, force: true });
  return { processes: pids.length, netns: names };
}

/** Pids whose network namespace is one of `inodes` (by /proc/PID/ns/net). */
function processesIn(inodes: ReadonlySet<number>): number[] {
  if (inodes.size === 0) return [];
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const link = readlinkSync(`/proc/${d}/ns/net`);
      const m = /net:\[(\d+)\]/.exec(link);
      if (m && inodes.has(Number(m[1]))) out.push(Number(d));
    } catch {
      // exited or not ours to read
    }
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
