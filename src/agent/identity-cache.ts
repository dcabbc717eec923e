// The node's one table of security identities: global ones as the cluster store holds them
// (filled from the store's identity keys by the agent's watch), node-local ones (CIDR, FQDN)
// numbered here from 1<<24. It is the policy engine's allocator, so the engine, `identity list`
// and the flows read the same numbers. A global identity is allocated in the store (`ensure`,
// asynchronous) before the engine is told about the pod that needs it; the engine's synchronous
// `acquire` then only finds it.
//
// The node holds the identities of its own endpoints (`hold`/`unhold`, counted per endpoint):
// a slave key per identity under the node's lease, as Cilium's kvstore allocator keeps them, so
// an identity stays allocated while any node holds it and the GC collects it after its last
// holder left. While the store does not answer, an endpoint whose labels already have an
// identity still gets it; the slave key is written once the store is back (`syncHolds`).
import type { IdentityAllocator, IdentityScope } from '../identity/identity-allocator.js';
import { formatLabel, type Label, type LabelSet, makeLabelSet } from '../identity/labels.js';
import { LOCAL_IDENTITY_SCOPE } from '../identity/reserved-identities.js';
import { allocateIdentity, type IdentityRecord, releaseIdentity } from '../store/cluster-resources.js';
import { type ClusterStore, StoreError } from '../store/cluster-store.js';

export class IdentityCacheError extends Error {
  readonly code = 'MBR_IDENTITY_UNKNOWN';
  constructor(labels: LabelSet) {
    super(`identity for ${labels.key}: expected one allocated in the cluster store first, got none`);
  }
}

export class IdentityCache implements IdentityAllocator {
  readonly #store: ClusterStore;
  readonly #global = new Map<number, LabelSet>();
  readonly #globalByKey = new Map<string, number>();
  readonly #local = new Map<number, { labels: LabelSet; refs: number }>();
  readonly #localByKey = new Map<string, number>();
  #nextLocal = LOCAL_IDENTITY_SCOPE + 1;
  readonly #node: string;
  #lease = 0;
  /** Identities this node holds: endpoints using each, and whether its slave key is written. */
  readonly #held = new Map<number, { labels: string[]; refs: number; isStored: boolean }>();
  /** Slave keys to delete once the store answers again. */
  readonly #pendingRelease = new Map<number, string[]>();
  /** How many of the engine's pods use each global identity (acquire/release). */
  readonly #engineRefs = new Map<number, number>();
  #serial: Promise<unknown> = Promise.resolve();

  constructor(store: ClusterStore, node = '') {
    this.#store = store;
    this.#node = node;
  }

  /** The node's lease, which its slave keys hang on; a new one means writing them all again. */
  setLease(lease: number): void {
    if (lease === this.#lease) return;
    this.#lease = lease;
    for (const h of this.#held.values()) h.isStored = false;
  }

  /** The cluster-wide identity of these labels, allocated (and held) when none exists yet. */
  async ensure(labels: LabelSet): Promise<number> {
    const have = this.#globalByKey.get(labels.key);
    if (have !== undefined) return have;
    return this.#serialized(() => this.#hold(labels, 0));
  }

  /** A local endpoint's identity, held by this node until the matching `unhold`. */
  hold(labels: LabelSet): Promise<number> {
    return this.#serialized(() => this.#hold(labels, 1));
  }

  /**
   * A local endpoint of this identity is gone; with the last one (or for a hold taken only for
   * other nodes' pods), drop the node's slave key. Other nodes' pods need no hold of ours: their
   * own nodes hold their identities.
   */
  unhold(id: number): Promise<void> {
    return this.#serialized(async () => {
      const h = this.#held.get(id);
      if (!h) return;
      // Called for a local endpoint that left, or (refs already 0) for a hold no pod needs.
      h.refs = Math.max(0, h.refs - 1);
      if (h.refs > 0) return;
      this.#held.delete(id);
      if (!h.isStored) return;
      try {
        await releaseIdentity(this.#store, h.labels, this.#node);
      } catch (err) {
        if (!isUnreachable(err)) throw err;
        this.#pendingRelease.set(id, h.labels);
      }
    });
  }

  /** Writes what the store missed while it did not answer (or under an old lease). */
  syncHolds(): Promise<void> {
    return this.#serialized(async () => {
      for (const [id, labels] of [...this.#pendingRelease]) {
        if (this.#held.has(id)) continue;
        await releaseIdentity(this.#store, labels, this.#node);
        this.#pendingRelease.delete(id);
      }
      for (const [id, h] of [...this.#held]) {
        if (h.isStored) continue;
        const got = await allocateIdentity(this.#store, h.labels, this.#holder(), this.#known(id));
        // Collected while the store was away and allocated afresh: the endpoints keep the number
        // they have until they are created again; the node holds the new one too.
        if (got !== id) this.upsertGlobal({ id: got, labels: h.labels });
        h.isStored = true;
      }
    });
  }

  /** How many identities this node holds, and how many of those the store has not yet been told. */
  holdStats(): { held: number; pending: number } {
    let pending = this.#pendingRelease.size;
    for (const h of this.#held.values()) if (!h.isStored) pending++;
    return { held: this.#held.size, pending };
  }

  async #hold(labels: LabelSet, refs: number): Promise<number> {
    const known = this.#globalByKey.get(labels.key);
    const have = known !== undefined ? this.#held.get(known) : undefined;
    if (have) {
      have.refs += refs;
      return known!;
    }
    const formatted = labels.labels.map(formatLabel);
    let id: number;
    let isStored = true;
    try {
      id = await allocateIdentity(this.#store, formatted, this.#holder(), this.#known(known));
      this.upsertGlobal({ id, labels: formatted });
    } catch (err) {
      if (known === undefined || !isUnreachable(err)) throw err;
      id = known;
      isStored = false;
    }
    const h = this.#held.get(id);
    if (h) h.refs += refs;
    else this.#held.set(id, { labels: [...formatted].sort(), refs, isStored });
    this.#pendingRelease.delete(id);
    return id;
  }

  #holder() {
    return { node: this.#node, lease: this.#lease };
  }

  #known(id: number | undefined) {
    return { ...(id !== undefined ? { id } : {}), isUsed: (n: number) => this.#global.has(n) };
  }

  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#serial.then(fn, fn);
    this.#serial = next.catch(() => undefined);
    return next;
  }

  /** A global identity as the store holds it (from a list or a watch event). */
  upsertGlobal(rec: IdentityRecord): void {
    const labels = makeLabelSet(rec.labels.map(parseLabel));
    const old = this.#global.get(rec.id);
    if (old && old.key !== labels.key) this.#globalByKey.delete(old.key);
    this.#global.set(rec.id, labels);
    this.#globalByKey.set(labels.key, rec.id);
  }

  removeGlobal(id: number): void {
    const old = this.#global.get(id);
    if (!old) return;
    this.#global.delete(id);
    if (this.#globalByKey.get(old.key) === id) this.#globalByKey.delete(old.key);
  }

  globalIdentities(): IdentityRecord[] {
    return [...this.#global].map(([id, l]) => ({ id, labels: l.labels.map(formatLabel) })).sort((a, b) => a.id - b.id);
  }

  // ---- IdentityAllocator, for the policy engine ----

  acquire(labels: LabelSet, scope: IdentityScope): number {
    if (scope === 'global') {
      const id = this.#globalByKey.get(labels.key);
      if (id === undefined) throw new IdentityCacheError(labels);
      this.#engineRefs.set(id, (this.#engineRefs.get(id) ?? 0) + 1);
      return id;
    }
    const have = this.#localByKey.get(labels.key);
    if (have !== undefined) {
      this.#local.get(have)!.refs++;
      return have;
    }
    const id = this.#nextLocal++;
    this.#local.set(id, { labels, refs: 1 });
    this.#localByKey.set(labels.key, id);
    return id;
  }

  /** Local identities are freed with their last holder; global ones live in the store. */
  release(id: number): boolean {
    const engineRefs = this.#engineRefs.get(id);
    if (engineRefs !== undefined) {
      if (engineRefs > 1) this.#engineRefs.set(id, engineRefs - 1);
      else {
        this.#engineRefs.delete(id);
        // Held only for other nodes' pods (ensure), and none of them is left: let it go.
        if (this.#held.get(id)?.refs === 0) void this.unhold(id).catch(() => undefined);
      }
      return false;
    }
    const rec = this.#local.get(id);
    if (!rec || --rec.refs > 0) return false;
    this.#local.delete(id);
    this.#localByKey.delete(rec.labels.key);
    return true;
  }

  lookup(id: number): LabelSet | undefined {
    return this.#global.get(id) ?? this.#local.get(id)?.labels;
  }

  lookupByLabels(labels: LabelSet): number | undefined {
    return this.#globalByKey.get(labels.key) ?? this.#localByKey.get(labels.key);
  }
}

/** Labels as stored ("source:key=value") back into a label set. */
export function labelSetOf(formatted: readonly string[]): LabelSet {
  return makeLabelSet(formatted.map(parseLabel));
}

function isUnreachable(err: unknown): boolean {
  return err instanceof StoreError && err.code === 'MBR_STORE_UNREACHABLE';
}

/** "source:key=value" (or "source:key") back into a label. */
function parseLabel(text: string): Label {
  const colon = text.indexOf(':');
  const eq = text.indexOf('=', colon);
  return eq < 0
    ? { source: text.slice(0, colon), key: text.slice(colon + 1), value: '' }
    : { source: text.slice(0, colon), key: text.slice(colon + 1, eq), value: text.slice(eq + 1) };
}
