// Identity garbage collection, as Cilium's operator does it for the kvstore allocator: a master
// key (identities/v1/id/<id>) that no node has held (no slave key under its label set) for a
// grace period is deleted, and its id becomes free.
//
// Every agent runs the loop, but only the holder of the GC lock collects: a key under
// operator/v1/ created by a transaction only if absent, on the holder's lease, so it passes to
// another agent when the holder's lease expires. Each delete is itself a transaction that holds
// only if the master key is unchanged since it was found orphaned and still no node holds its
// label set, so a GC never races an allocation that reuses the id (one of the two fails and
// looks again), nor another GC.
import {
  decodeIdentity,
  IDENTITY_IDS_PREFIX,
  IDENTITY_VALUES_PREFIX,
  identityValuePrefix,
  labelsKey,
  OPERATOR_PREFIX,
} from './cluster-resources.js';
import type { ClusterStore } from './cluster-store.js';

export const IDENTITY_GC_LOCK = `${OPERATOR_PREFIX}identity-gc`;

export interface IdentityGcOptions {
  readonly store: ClusterStore;
  readonly node: string;
  /** The node's current lease (the lock hangs on it). */
  readonly lease: () => number;
  /** How often to look, in ms (Cilium: --identity-gc-interval). */
  readonly intervalMs: number;
  /** How long a master key must stay unheld before it goes, in ms. */
  readonly graceMs: number;
  readonly nowMs?: () => number;
  /** Told each pass's failure (the loop goes on). */
  readonly onError?: (err: Error) => void;
}

export class IdentityGc {
  readonly #o: IdentityGcOptions;
  /** Master keys seen unheld: since when, and at which modRevision. */
  readonly #orphans = new Map<number, { sinceMs: number; modRevision: number }>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();
  #collected = 0;
  #isLeader = false;

  constructor(o: IdentityGcOptions) {
    this.#o = o;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.#running = this.#running.then(() => this.runOnce().catch((err) => this.#o.onError?.(err as Error)));
    }, this.#o.intervalMs).unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  get isLeader(): boolean {
    return this.#isLeader;
  }

  /** Ids deleted since start. */
  get collected(): number {
    return this.#collected;
  }

  /** One pass: take (or keep) the lock; if held, collect what has been unheld long enough. */
  async runOnce(): Promise<number[]> {
    const { store } = this.#o;
    this.#isLeader = await this.#lock();
    if (!this.#isLeader) {
      this.#orphans.clear();
      return [];
    }
    const now = (this.#o.nowMs ?? Date.now)();
    const [masters, slaves] = await Promise.all([store.list(IDENTITY_IDS_PREFIX), store.list(IDENTITY_VALUES_PREFIX)]);
    const held = new Set<string>();
    for (const kv of slaves.items) held.add(kv.key.slice(IDENTITY_VALUES_PREFIX.length, kv.key.lastIndexOf('/')));
    const seen = new Set<number>();
    const collected: number[] = [];
    for (const kv of masters.items) {
      const rec = decodeIdentity(kv);
      if (!rec) continue;
      seen.add(rec.id);
      if (held.has(labelsKey(rec.labels))) {
        this.#orphans.delete(rec.id);
        continue;
      }
      const was = this.#orphans.get(rec.id);
      if (!was || was.modRevision !== kv.modRevision) {
        this.#orphans.set(rec.id, { sinceMs: now, modRevision: kv.modRevision });
        continue;
      }
      if (now - was.sinceMs < this.#o.graceMs) continue;
      const r = await store.txn({
        compare: [
          { key: kv.key, target: 'modRevision', equals: kv.modRevision },
          { prefix: identityValuePrefix(rec.labels), target: 'empty' },
        ],
        success: [{ type: 'delete', key: kv.key }],
      });
      this.#orphans.delete(rec.id);
      if (r.succeeded) collected.push(rec.id);
    }
    for (const id of [...this.#orphans.keys()]) if (!seen.has(id)) this.#orphans.delete(id);
    this.#collected += collected.length;
    return collected;
  }

  async #lock(): Promise<boolean> {
    const { store, node } = this.#o;
    const lease = this.#o.lease();
    if (!lease) return false;
    const r = await store.txn({
      compare: [{ key: IDENTITY_GC_LOCK, target: 'createRevision', equals: 0 }],
      success: [{ type: 'put', key: IDENTITY_GC_LOCK, value: node, lease }],
    });
    if (r.succeeded) return true;
    const kv = await store.get(IDENTITY_GC_LOCK);
    if (kv?.value !== node) return false;
    // Ours from a lease this agent no longer keeps alive (it registered again): move it over.
    if (kv.lease !== lease) {
      const moved = await store.txn({
        compare: [{ key: IDENTITY_GC_LOCK, target: 'modRevision', equals: kv.modRevision }],
        success: [{ type: 'put', key: IDENTITY_GC_LOCK, value: node, lease }],
      });
      return moved.succeeded;
    }
    return true;
  }
}
