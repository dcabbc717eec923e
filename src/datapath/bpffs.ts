// The BPF filesystem side of a datapath instance: bpffs mounted at /sys/fs/bpf, one pin directory
// per instance, and the record of the build that made its pins.
//
// Layout of a pin directory: maps/<mbr_*>, progs/<mbr_from_pod|mbr_to_pod|mbr_pass>,
// links/<endpointId>-<ingress|egress>, policy/<endpointId>-<a|b> (see endpoint-policy.ts), and
// object-sha256, a symlink to the digest of the object that made them: another build refuses them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statfsSync,
  symlinkSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { DatapathError } from './datapath-error.js';
import { BPF_OBJECT_PATH } from './native.js';

export const BPFFS_ROOT = '/sys/fs/bpf';

/** An instance's pin directory: /sys/fs/bpf/membrane/<instance>. */
export function pinDirFor(instance: string): string {
  return `${BPFFS_ROOT}/membrane/${instance}`;
}

/** Mounts bpffs at /sys/fs/bpf unless it is there already. */
export function ensureBpffs(): void {
  if (statfsSync(BPFFS_ROOT).type === BPF_FS_MAGIC) return;
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS_ROOT], { stdio: 'pipe' });
  } catch (err) {
    throw new DatapathError('MBR_DATAPATH_SYSCALL', `mount bpffs at ${BPFFS_ROOT}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Creates the pin directory and its maps/, progs/, links/ and policy/. */
export function makePinDir(pinDir: string): void {
  for (const d of ['maps', 'progs', 'links', 'policy']) mkdirSync(`${pinDir}/${d}`, { recursive: true });
}

/** The sha256 of the compiled BPF object: the build that pins record and check. */
export function objectDigest(): string {
  return createHash('sha256').update(readFileSync(BPF_OBJECT_PATH)).digest('hex');
}

/**
 * Pins of another build hold other layouts (or other program semantics): refused whole rather than
 * driven or decoded with this build's codecs.
 */
export function assertSameBuild(pinDir: string, build: string): void {
  const pinned = pinnedBuild(pinDir);
  if (pinned !== build)
    throw new DatapathError(
      'MBR_DATAPATH_STALE_PINS',
      `${pinDir}: pinned by another build of the datapath (object ${pinned?.slice(0, 12) ?? 'not recorded'}, ` +
        `this build ${build.slice(0, 12)}); its maps and programs do not fit this build. Remove it ` +
        `(rm -r ${pinDir}; unpinning detaches its tcx links) or run the build that made it`,
    );
}

/** Records the build that made the pins. bpffs holds no regular files: a symlink's target does. */
export function recordBuild(pinDir: string, build: string): void {
  rmSync(`${pinDir}/${OBJECT_LINK}`, { force: true });
  symlinkSync(build, `${pinDir}/${OBJECT_LINK}`);
}

/** Removes an instance's pins, and Membrane's bpffs directory too once no instance is left. */
export function removePinDir(dir: string): void {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  const root = `${BPFFS_ROOT}/membrane`;
  if (dirname(dir) === root && existsSync(root) && readdirSync(root).length === 0) rmdirSync(root);
}

const BPF_FS_MAGIC = 0xcafe4a11;

/** The pin directory's record of the object that made it: a symlink to its sha256. */
const OBJECT_LINK = 'object-sha256';

function pinnedBuild(pinDir: string): string | undefined {
  try {
    return readlinkSync(`${pinDir}/${OBJECT_LINK}`);
  } catch {
    return undefined;
  }
}
