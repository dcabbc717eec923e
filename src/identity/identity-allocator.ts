// Label set -> numeric identity. The allocator is an interface so a distributed store can back
// it later; the in-memory one here is deterministic: the same sequence of requests gives the
// same numbers (global from 256 up, node-local from 1<<24 up), numbers are never reused.
import type { LabelSet } from './labels.js';
import { LOCAL_IDENTITY_SCOPE, MAX_GLOBAL_IDENTITY, MIN_GLOBAL_IDENTITY } from './reserved-identities.js';

export type IdentityScope = 'global' | 'local';

export interface IdentityAllocator {
  /** Returns the identity for these labels, allocating it on first use; counts a reference. */
  acquire(labels: LabelSet, scope: IdentityScope): number;
  /** Drops one reference; returns true when the identity was freed (no references left). */
  release(id: number): boolean;
  lookup(id: number): LabelSet | undefined;
  lookupByLabels(labels: LabelSet): number | undefined;
}

export class IdentityExhaustedError extends Error {
  readonly code = 'MBR_IDENTITY_EXHAUSTED';
  constructor(scope: IdentityScope) {
    super(`identity allocation: expected a free ${scope} identity, got none left`);
  }
}

export class MemoryIdentityAllocator implements IdentityAllocator {
  private nextGlobal = MIN_GLOBAL_IDENTITY;
  private nextLocal = LOCAL_IDENTITY_SCOPE + 1;
  private readonly byKey = new Map<string, number>();
  private readonly byId = new Map<number, { labels: LabelSet; refs: number }>();

  acquire(labels: LabelSet, scope: IdentityScope): number {
    const have = this.byKey.get(labels.key);
    if (have !== undefined) {
      this.byId.get(have)!.refs++;
      return have;
    }
    let id: number;
    if (scope === 'global') {
      if (this.nextGlobal > MAX_GLOBAL_IDENTITY) throw new IdentityExhaustedError(scope);
      id = this.nextGlobal++;
    } else {
      if (this.nextLocal >= 2 * LOCAL_IDENTITY_SCOPE) throw new IdentityExhaustedError(scope);
      id = this.nextLocal++;
    }
    this.byKey.set(labels.key, id);
    this.byId.set(id, { labels, refs: 1 });
    return id;
  }

  release(id: number): boolean {
    const rec = this.byId.get(id);
    if (!rec) return false;
    if (--rec.refs > 0) return false;
    this.byId.delete(id);
    this.byKey.delete(rec.labels.key);
    return true;
  }

  lookup(id: number): LabelSet | undefined {
    return this.byId.get(id)?.labels;
  }

  lookupByLabels(labels: LabelSet): number | undefined {
    return this.byKey.get(labels.key);
  }
}
