// The node's one table of security identities: global ones as the cluster store holds them
// (filled from the store's identity keys by the agent's watch), node-local ones (CIDR, FQDN)
// numbered here from 1<<24. It is the policy engine's allocator, so the engine, `identity list`
// and the flows read the same numbers. A global identity is allocated in the store (`ensure`,
// asynchronous) before the engine is told about the pod that needs it; the engine's synchronous
// `acquire` then only finds it.
import type { IdentityAllocator, IdentityScope } from '../identity/identity-allocator.js';
import { formatLabel, type Label, type LabelSet, makeLabelSet } from '../identity/labels.js';
import { LOCAL_IDENTITY_SCOPE } from '../identity/reserved-identities.js';
import { allocateIdentity, type IdentityRecord } from '../store/cluster-resources.js';
import type { ClusterStore } from '../store/cluster-store.js';

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

  constructor(store: ClusterStore) {
    this.#store = store;
  }

  /** The cluster-wide identity of these labels, allocated in the store when none exists yet. */
  async ensure(labels: LabelSet): Promise<number> {
    const have = this.#globalByKey.get(labels.key);
    if (have !== undefined) return have;
    const id = await allocateIdentity(this.#store, labels.labels.map(formatLabel));
    this.upsertGlobal({ id, labels: labels.labels.map(formatLabel) });
    return id;
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

/** "source:key=value" (or "source:key") back into a label. */
function parseLabel(text: string): Label {
  const colon = text.indexOf(':');
  const eq = text.indexOf('=', colon);
  return eq < 0
    ? { source: text.slice(0, colon), key: text.slice(colon + 1), value: '' }
    : { source: text.slice(0, colon), key: text.slice(colon + 1, eq), value: text.slice(eq + 1) };
}
