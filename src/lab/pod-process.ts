// Starting a process "in a pod": in the pod's network namespace, and in a private mount namespace
// where the lab's resolv.conf is bind-mounted over /etc/resolv.conf, so the pod resolves names
// through the lab DNS while sharing the host's files otherwise. nsenter, unshare and sh all exec,
// so the pid we get is the workload's.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface PodProcessSpec {
  readonly netnsPath: string;
  readonly resolvConf: string | undefined;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly logFile: string;
  readonly cwd: string;
}

export function podArgv(netnsPath: string, resolvConf: string | undefined, argv: readonly string[]): string[] {
  const inNs = ['nsenter', `--net=${netnsPath}`, '--'];
  if (!resolvConf) return [...inNs, ...argv];
  return [
    ...inNs,
    'unshare',
    '--mount',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    'mount --bind "$0" /etc/resolv.conf && exec "$@"',
    resolvConf,
    ...argv,
  ];
}

/** Starts a detached workload and returns its pid. */
export function startPodProcess(spec: PodProcessSpec): number {
  const fd = openSync(spec.logFile, 'a');
  try {
    const argv = podArgv(spec.netnsPath, spec.resolvConf, spec.argv);
    const child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...spec.env },
      cwd: spec.cwd,
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${spec.argv.join(' ')}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export function isAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
