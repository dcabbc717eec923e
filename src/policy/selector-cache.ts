// Interned selectors and the identities each one selects, kept up to date incrementally as
// identities come, go or change (a pod IP, a learned DNS name). Every change reports exactly
// which (selector, identity) pairs flipped, so the engine touches only what they affect.
import type { Prefix } from '../identity/cidr.js';
import type { LabelSet } from '../identity/labels.js';

export interface IdentityInfo {
  readonly id: number;
  readonly labels: LabelSet;
  /** For CIDR / FQDN (local) identities: the prefix they stand for. */
  readonly prefix?: Prefix;
  /** For pod identities: the IPs of the pods that have it (for ipBlock matching pod IPs). */
  readonly podPrefixes?: readonly Prefix[];
  /** Namespace of a pod identity (selector bucketing). */
  readonly namespace?: string;
}

export type SelectorMatch = (id: IdentityInfo) => boolean;

export interface SelectionChange {
  readonly selector: string;
  readonly identity: number;
  readonly added: boolean;
}

export class SelectorCache {
  private readonly selectors = new Map<string, CachedSelector>();
  private readonly idents = new Map<number, IdentityInfo>();
  /** Selectors bound to one namespace only need a look at identities of that namespace. */
  private readonly byNamespace = new Map<string, Set<CachedSelector>>();
  private readonly unbucketed = new Set<CachedSelector>();
  private readonly selectedBy = new Map<number, Set<string>>();

  /** Interns a selector (counting a reference) and returns its current selections. */
  addSelector(key: string, match: SelectorMatch, namespace?: string): ReadonlySet<number> {
    const have = this.selectors.get(key);
    if (have) {
      have.refs++;
      return have.ids;
    }
    const s: CachedSelector = { key, match, ids: new Set(), refs: 1, namespace };
    for (const info of this.idents.values())
      if ((namespace === undefined || info.namespace === namespace) && match(info)) {
        s.ids.add(info.id);
        this.link(info.id, key);
      }
    this.selectors.set(key, s);
    if (namespace === undefined) this.unbucketed.add(s);
    else {
      let b = this.byNamespace.get(namespace);
      if (!b) {
        b = new Set();
        this.byNamespace.set(namespace, b);
      }
      b.add(s);
    }
    return s.ids;
  }

  releaseSelector(key: string): void {
    const s = this.selectors.get(key);
    if (!s || --s.refs > 0) return;
    this.selectors.delete(key);
    for (const id of s.ids) this.selectedBy.get(id)?.delete(key);
    if (s.namespace === undefined) this.unbucketed.delete(s);
    else this.byNamespace.get(s.namespace)?.delete(s);
  }

  /** Adds or re-evaluates an identity; returns the selections that changed. */
  upsertIdentity(info: IdentityInfo, onlySelectors?: (key: string) => boolean): SelectionChange[] {
    this.idents.set(info.id, info);
    const out: SelectionChange[] = [];
    const visit = (s: CachedSelector) => {
      if (onlySelectors && !onlySelectors(s.key)) return;
      const now = (s.namespace === undefined || s.namespace === info.namespace) && s.match(info);
      const was = s.ids.has(info.id);
      if (now === was) return;
      if (now) {
        s.ids.add(info.id);
        this.link(info.id, s.key);
      } else {
        s.ids.delete(info.id);
        this.selectedBy.get(info.id)?.delete(s.key);
      }
      out.push({ selector: s.key, identity: info.id, added: now });
    };
    for (const s of this.unbucketed) visit(s);
    if (info.namespace !== undefined) for (const s of this.byNamespace.get(info.namespace) ?? []) visit(s);
    return out;
  }

  removeIdentity(id: number): SelectionChange[] {
    this.idents.delete(id);
    const out: SelectionChange[] = [];
    for (const key of this.selectedBy.get(id) ?? []) {
      this.selectors.get(key)?.ids.delete(id);
      out.push({ selector: key, identity: id, added: false });
    }
    this.selectedBy.delete(id);
    return out;
  }

  selections(key: string): ReadonlySet<number> {
    return this.selectors.get(key)?.ids ?? EMPTY;
  }

  /** The selectors that currently select an identity. */
  selectorsOf(id: number): ReadonlySet<string> {
    return this.selectedBy.get(id) ?? EMPTY_S;
  }

  identity(id: number): IdentityInfo | undefined {
    return this.idents.get(id);
  }

  identities(): IterableIterator<IdentityInfo> {
    return this.idents.values();
  }

  has(key: string): boolean {
    return this.selectors.has(key);
  }

  private link(id: number, key: string): void {
    let s = this.selectedBy.get(id);
    if (!s) {
      s = new Set();
      this.selectedBy.set(id, s);
    }
    s.add(key);
  }
}

// Private helpers.

interface CachedSelector {
  readonly key: string;
  readonly match: SelectorMatch;
  readonly ids: Set<number>;
  refs: number;
  readonly namespace?: string;
}

const EMPTY: ReadonlySet<number> = new Set();
const EMPTY_S: ReadonlySet<string> = new Set();
