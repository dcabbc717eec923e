// IP/prefix -> security identity, as the datapath's ipcache holds it: pod IPs (/32, /128),
// CIDR identities from policy (toCIDR, toCIDRSet, ipBlock and their excepts), IPs learned for
// toFQDNs, node addresses (host / remote-node), and world for everything else. A pod's own
// identity wins over a node's, and a node's over a CIDR identity for
// the same address. Lookups are longest-prefix match. Changes are kept as a diff to drain.
import { makePrefix, type Prefix, parseIp } from './cidr.js';
import { IDENTITY_WORLD } from './reserved-identities.js';

export type IpcacheSource = 'pod' | 'node' | 'cidr' | 'world';

export interface IpcacheEntry {
  readonly prefix: string;
  readonly identity: number;
  readonly source: IpcacheSource;
}

export interface IpcacheDiff {
  readonly upserts: readonly IpcacheEntry[];
  readonly deletes: readonly string[];
}

export class IpCache {
  private readonly layers = {
    pod: new Map<string, Slot>(),
    node: new Map<string, Slot>(),
    cidr: new Map<string, Slot>(),
  };
  private readonly effective = new Map<string, Slot & { source: IpcacheSource }>();
  private readonly lengths = { 4: new Map<number, number>(), 6: new Map<number, number>() };
  private pending = new Map<string, IpcacheEntry | null>();

  constructor() {
    for (const text of ['0.0.0.0/0', '::/0']) {
      const ip = parseIp(text.split('/')[0])!;
      const p = makePrefix(ip.family, ip.addr, 0);
      this.effective.set(p.text, { prefix: p, identity: IDENTITY_WORLD, source: 'world' });
      this.countLength(p, 1);
      this.pending.set(p.text, { prefix: p.text, identity: IDENTITY_WORLD, source: 'world' });
    }
  }

  upsert(prefix: Prefix, identity: number, source: LayerSource): void {
    this.layers[source].set(prefix.text, { prefix, identity });
    this.recompute(prefix);
  }

  delete(prefix: Prefix, source: LayerSource): void {
    if (this.layers[source].delete(prefix.text)) this.recompute(prefix);
  }

  /** Longest-prefix match of an address; world when nothing more specific is known. */
  lookup(ip: string): IpcacheEntry | undefined {
    const a = parseIp(ip);
    if (!a) return undefined;
    const lens = [...this.lengths[a.family].keys()].sort((x, y) => y - x);
    for (const len of lens) {
      const hit = this.effective.get(makePrefix(a.family, a.addr, len).text);
      if (hit) return { prefix: hit.prefix.text, identity: hit.identity, source: hit.source };
    }
    return undefined;
  }

  entries(): IpcacheEntry[] {
    return [...this.effective.values()]
      .map((s) => ({ prefix: s.prefix.text, identity: s.identity, source: s.source }))
      .sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  }

  /** The changes since the last call (or since creation). */
  takeDiff(): IpcacheDiff {
    const upserts: IpcacheEntry[] = [];
    const deletes: string[] = [];
    for (const [prefix, e] of this.pending) {
      if (e) upserts.push(e);
      else deletes.push(prefix);
    }
    this.pending = new Map();
    return { upserts, deletes };
  }

  private recompute(prefix: Prefix): void {
    // Precedence: a pod's address, then a node's, then a CIDR identity from policy.
    let next: (Slot & { source: IpcacheSource }) | undefined;
    for (const source of LAYER_ORDER) {
      const slot = this.layers[source].get(prefix.text);
      if (slot) {
        next = { ...slot, source };
        break;
      }
    }
    const prev = this.effective.get(prefix.text);
    if (prev && next && prev.identity === next.identity && prev.source === next.source) return;
    if (next) {
      if (!prev) this.countLength(prefix, 1);
      this.effective.set(prefix.text, next);
      this.pending.set(prefix.text, { prefix: prefix.text, identity: next.identity, source: next.source });
    } else if (prev) {
      this.countLength(prefix, -1);
      this.effective.delete(prefix.text);
      this.pending.set(prefix.text, null);
    }
  }

  private countLength(p: Prefix, delta: number): void {
    const m = this.lengths[p.family];
    const n = (m.get(p.len) ?? 0) + delta;
    if (n <= 0) m.delete(p.len);
    else m.set(p.len, n);
  }
}

type LayerSource = 'pod' | 'node' | 'cidr';
const LAYER_ORDER: readonly LayerSource[] = ['pod', 'node', 'cidr'];

interface Slot {
  readonly prefix: Prefix;
  readonly identity: number;
}
