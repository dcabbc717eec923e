// The lab's embedded cluster store: a directory every agent of the lab reads and writes, playing
// the part etcd or the Kubernetes API plays in a cluster. It holds what must be the same on every
// node: identities (labels -> numeric id), every endpoint's address and identity (the ipcache's
// source), namespaces with their labels, and the policy documents with a revision.
//
// Concurrency: identities are allocated with O_EXCL files (one per id and one per label set), so
// two agents racing for the same labels agree on one id; everything else is written by one owner
// (an agent writes only its own node's endpoints; policy writes go through a lock file).
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredPolicy } from '../agent/api-types.js';
import { readJsonFile, writeJsonFile } from './json-file.js';

/** First identity id for label-based (global) identities, as in Cilium. */
export const FIRST_GLOBAL_IDENTITY = 256;
export const MAX_GLOBAL_IDENTITY = 65535;

export interface ClusterEndpoint {
  readonly node: string;
  readonly id: number;
  readonly ipv4: string;
  readonly identity: number;
  readonly namespace: string;
  readonly podName: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ClusterNamespace {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface PolicySet {
  readonly revision: number;
  readonly policies: readonly StoredPolicy[];
}

export interface ClusterNode {
  readonly name: string;
  readonly ipv4: string;
  readonly podCIDR: string;
}

export class ClusterStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    for (const d of ['identities/by-id', 'identities/by-labels', 'endpoints', 'namespaces', 'nodes'])
      mkdirSync(join(dir, d), { recursive: true });
  }

  /** The id for a sorted label set, allocating one if no node has yet. */
  allocateIdentity(labels: readonly string[]): number {
    const key = labelsKey(labels);
    const byLabels = join(this.dir, 'identities/by-labels', key);
    const existing = readIdOrUndefined(byLabels);
    if (existing !== undefined) return existing;
    for (let id = FIRST_GLOBAL_IDENTITY; id <= MAX_GLOBAL_IDENTITY; id++) {
      try {
        writeFileSync(join(this.dir, 'identities/by-id', String(id)), JSON.stringify({ id, labels }), { flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      try {
        writeFileSync(byLabels, String(id), { flag: 'wx' });
        return id;
      } catch (err) {
        // Another agent claimed these labels first: give our id back and use theirs.
        unlinkSync(join(this.dir, 'identities/by-id', String(id)));
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const theirs = readIdOrUndefined(byLabels);
        if (theirs !== undefined) return theirs;
      }
    }
    throw Object.assign(new Error('identity space 256-65535 is exhausted'), { code: 'MBR_IDENTITY_EXHAUSTED' });
  }

  identities(): Array<{ id: number; labels: string[] }> {
    const dir = join(this.dir, 'identities/by-id');
    const out: Array<{ id: number; labels: string[] }> = [];
    for (const f of readdirSync(dir)) {
      const rec = readJsonOrUndefined<{ id: number; labels: string[] }>(join(dir, f));
      if (rec) out.push(rec);
    }
    return out.sort((a, b) => a.id - b.id);
  }

  putEndpoint(ep: ClusterEndpoint): void {
    writeJsonFile(join(this.dir, 'endpoints', `${ep.node}-${ep.id}.json`), ep);
  }

  deleteEndpoint(node: string, id: number): void {
    rmSync(join(this.dir, 'endpoints', `${node}-${id}.json`), { force: true });
  }

  endpoints(): ClusterEndpoint[] {
    const dir = join(this.dir, 'endpoints');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => readJsonOrUndefined<ClusterEndpoint>(join(dir, f)))
      .filter((e): e is ClusterEndpoint => e !== undefined);
  }

  putNamespace(ns: ClusterNamespace): void {
    writeJsonFile(join(this.dir, 'namespaces', `${ns.name}.json`), ns);
  }

  namespaces(): ClusterNamespace[] {
    const dir = join(this.dir, 'namespaces');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => readJsonOrUndefined<ClusterNamespace>(join(dir, f)))
      .filter((e): e is ClusterNamespace => e !== undefined);
  }

  putNode(node: ClusterNode): void {
    writeJsonFile(join(this.dir, 'nodes', `${node.name}.json`), node);
  }

  nodes(): ClusterNode[] {
    const dir = join(this.dir, 'nodes');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => readJsonOrUndefined<ClusterNode>(join(dir, f)))
      .filter((e): e is ClusterNode => e !== undefined);
  }

  policies(): PolicySet {
    return readJsonFile<PolicySet>(join(this.dir, 'policies.json')) ?? { revision: 1, policies: [] };
  }

  /** Replaces the policy set under a lock; `change` gets the current set and returns the new list. */
  updatePolicies(change: (current: PolicySet) => readonly StoredPolicy[]): PolicySet {
    return this.#locked('policies', () => {
      const cur = this.policies();
      const next: PolicySet = { revision: cur.revision + 1, policies: change(cur) };
      writeJsonFile(join(this.dir, 'policies.json'), next);
      return next;
    });
  }

  /** A cheap fingerprint of the store's content, to notice changes by polling. */
  fingerprint(): string {
    const h = createHash('sha1');
    for (const d of ['identities/by-id', 'endpoints', 'namespaces', 'nodes']) {
      for (const f of readdirSync(join(this.dir, d)).sort()) {
        h.update(f);
        try {
          h.update(String(statSync(join(this.dir, d, f)).mtimeMs));
        } catch {
          // removed while listing
        }
      }
    }
    try {
      h.update(String(statSync(join(this.dir, 'policies.json')).mtimeMs));
    } catch {
      // no policies yet
    }
    return h.digest('hex');
  }

  #locked<T>(name: string, fn: () => T): T {
    const lock = join(this.dir, `${name}.lock`);
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        writeFileSync(lock, String(process.pid), { flag: 'wx' });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (holderIsGone(lock)) {
          rmSync(lock, { force: true });
          continue;
        }
        if (Date.now() > deadline)
          throw Object.assign(new Error(`${lock}: held too long`), { code: 'MBR_STORE_LOCKED' });
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
    }
    try {
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }
}

/** Canonical key of a label set: order-insensitive. */
export function labelsKey(labels: readonly string[]): string {
  return createHash('sha256')
    .update([...labels].sort().join('\n'))
    .digest('hex')
    .slice(0, 32);
}

function readIdOrUndefined(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8'));
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function readJsonOrUndefined<T>(path: string): T | undefined {
  try {
    return readJsonFile<T>(path);
  } catch {
    return undefined;
  }
}

function holderIsGone(lock: string): boolean {
  try {
    const pid = Number(readFileSync(lock, 'utf8'));
    if (!pid) return false;
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
