// The FQDN cache: what DNS answers told each endpoint, name -> IPs with their TTL (Cilium's
// pkg/fqdn DNSCache with its zombies). Pure: the clock is passed in, and whether the datapath
// still tracks a connection to an IP is a predicate the caller backs with the CT map.
//
// Rules (Cilium's defaults):
// - an IP is kept for max(record TTL, minTtlSeconds) (tofqdns-min-ttl, default 0);
// - at most maxIpsPerName IPs per (endpoint, name) (tofqdns-endpoint-max-ip-per-hostname, 1000):
//   past it, those that expire first are evicted: they expire now;
// - an expired IP is deleted by gc() only when no tracked connection uses it (deferred delete);
//   until then `fqdn cache list` shows it with source "connection"; at most maxDeferredDeletes
//   such IPs per endpoint (tofqdns-max-deferred-connection-deletes, 10,000), the oldest go first;
// - a name nobody queried has no IPs: a matchName for it selects nothing.
// The agent needs, per name, the union over endpoints (namesIps / ipsOf): that is what
// engine.updateFqdn takes.
import { normalizeFqdn } from '../policy/fqdn-pattern.js';

export const DEFAULT_MIN_TTL_SECONDS = 0;
export const DEFAULT_MAX_IPS_PER_NAME = 1000;
/** Cilium's tofqdns-max-deferred-connection-deletes: expired IPs kept for connections, per endpoint. */
export const DEFAULT_MAX_DEFERRED_DELETES = 10_000;

export interface FqdnCacheOptions {
  /** Wall-clock milliseconds (persisted expiries survive restarts). */
  readonly now: () => number;
  readonly minTtlSeconds?: number;
  readonly maxIpsPerName?: number;
  readonly maxDeferredDeletes?: number;
}

/** One DNS answer's names for one endpoint: each with the addresses and TTL it resolved to. */
export interface FqdnLookup {
  readonly endpointId: number;
  readonly name: string;
  readonly ips: readonly string[];
  readonly ttlSeconds: number;
}

/** One row of `membrane fqdn cache list`. */
export interface FqdnCacheEntry {
  readonly endpointId: number;
  /** "lookup": within its TTL; "connection": expired, kept while a connection uses it. */
  readonly source: 'lookup' | 'connection';
  readonly fqdn: string;
  readonly ips: readonly string[];
  readonly ttlSeconds: number;
  /** ISO time. */
  readonly expirationTime: string;
}

/** The persisted form (version 1): every (endpoint, name, ip) with absolute times. */
export interface FqdnCacheSnapshot {
  readonly version: 1;
  readonly entries: ReadonlyArray<{
    readonly endpointId: number;
    readonly name: string;
    readonly ip: string;
    readonly ttlSeconds: number;
    readonly lookupTimeMs: number;
    readonly expiresAtMs: number;
  }>;
}

export class FqdnCacheError extends Error {
  readonly code = 'MBR_FQDN_CACHE_INVALID';
}

export class FqdnCache {
  readonly minTtlSeconds: number;
  readonly maxIpsPerName: number;
  readonly maxDeferredDeletes: number;
  /** The cache's clock (wall-clock ms). */
  readonly now: () => number;
  /** endpoint -> name -> ip -> record */
  readonly #byEp = new Map<number, Map<string, Map<string, IpRecord>>>();
  /** name -> ip -> how many endpoints hold it (the union the ipcache needs). */
  readonly #union = new Map<string, Map<string, number>>();
  readonly #namesByIp = new Map<string, Set<string>>();

  constructor(opts: FqdnCacheOptions) {
    this.now = opts.now;
    this.minTtlSeconds = opts.minTtlSeconds ?? DEFAULT_MIN_TTL_SECONDS;
    this.maxIpsPerName = opts.maxIpsPerName ?? DEFAULT_MAX_IPS_PER_NAME;
    this.maxDeferredDeletes = opts.maxDeferredDeletes ?? DEFAULT_MAX_DEFERRED_DELETES;
  }

  /**
   * Records what an answer said. Returns the names whose union of IPs changed (a new IP for the
   * name): those the ipcache must learn before the answer is released.
   */
  update(lookups: readonly FqdnLookup[], atMs?: number): string[] {
    // atMs: the time of the answer when it is replayed from a journal (persistence).
    const now = atMs ?? this.now();
    const changed = new Set<string>();
    for (const l of lookups) {
      const name = normalizeFqdn(l.name);
      const ttl = Math.max(Math.max(0, Math.floor(l.ttlSeconds)), this.minTtlSeconds);
      const expiresAtMs = now + ttl * 1000;
      const names = getOrSet(this.#byEp, l.endpointId, () => new Map<string, Map<string, IpRecord>>());
      const ips = getOrSet(names, name, () => new Map<string, IpRecord>());
      for (const ip of l.ips) {
        const had = ips.get(ip);
        // A new answer extends an IP's life; it never shortens what an earlier answer granted.
        if (had) {
          if (expiresAtMs >= had.expiresAtMs) ips.set(ip, { ttlSeconds: ttl, lookupTimeMs: now, expiresAtMs });
          continue;
        }
        ips.set(ip, { ttlSeconds: ttl, lookupTimeMs: now, expiresAtMs });
        if (this.#addUnion(name, ip)) changed.add(name);
      }
      this.#evictOverLimit(ips, now);
    }
    return [...changed];
  }

  /**
   * Deletes expired IPs no tracked connection uses. Returns the names whose union of IPs
   * shrank (the ipcache drops those IPs).
   */
  gc(isIpInUse: (ip: string) => boolean): string[] {
    const now = this.now();
    const changed = new Set<string>();
    const drop = (names: Map<string, Map<string, IpRecord>>, name: string, ip: string) => {
      names.get(name)?.delete(ip);
      if (this.#dropUnion(name, ip)) changed.add(name);
    };
    for (const [ep, names] of this.#byEp) {
      // Expired IPs a connection still uses wait (Cilium's zombies), at most maxDeferredDeletes
      // per endpoint: past it, those that expired first go anyway.
      const kept: Array<{ name: string; ip: string; expiresAtMs: number }> = [];
      for (const [name, ips] of names)
        for (const [ip, r] of ips)
          if (r.expiresAtMs <= now) {
            if (isIpInUse(ip)) kept.push({ name, ip, expiresAtMs: r.expiresAtMs });
            else drop(names, name, ip);
          }
      if (kept.length > this.maxDeferredDeletes) {
        kept.sort((a, b) => a.expiresAtMs - b.expiresAtMs);
        for (const k of kept.slice(0, kept.length - this.maxDeferredDeletes)) drop(names, k.name, k.ip);
      }
      for (const [name, ips] of names) if (ips.size === 0) names.delete(name);
      if (names.size === 0) this.#byEp.delete(ep);
    }
    return [...changed];
  }

  /**
   * `fqdn cache clean`: forgets entries (all, or one endpoint's, or names a matcher selects)
   * whatever their TTL. Returns the names whose union of IPs changed.
   */
  clean(filter: { endpointId?: number; matches?: (name: string) => boolean } = {}): string[] {
    const changed = new Set<string>();
    for (const [ep, names] of this.#byEp) {
      if (filter.endpointId !== undefined && ep !== filter.endpointId) continue;
      for (const [name, ips] of names) {
        if (filter.matches && !filter.matches(name)) continue;
        for (const ip of ips.keys()) if (this.#dropUnion(name, ip)) changed.add(name);
        names.delete(name);
      }
      if (names.size === 0) this.#byEp.delete(ep);
    }
    return [...changed];
  }

  /** How many (endpoint, name, IP) entries the cache holds. */
  entryCount(): number {
    let n = 0;
    for (const names of this.#byEp.values()) for (const ips of names.values()) n += ips.size;
    return n;
  }

  /** Every IP some endpoint holds for the name (normalised), expired-but-in-use ones included. */
  ipsOf(name: string): string[] {
    return [...(this.#union.get(normalizeFqdn(name))?.keys() ?? [])].sort();
  }

  /** Each known name with its IPs (what the engine is fed on start). */
  namesIps(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [name, ips] of this.#union) out.set(name, [...ips.keys()].sort());
    return out;
  }

  /** The names an IP was learned for (flows' destination_names), sorted. */
  namesOf(ip: string): readonly string[] | undefined {
    const s = this.#namesByIp.get(ip);
    return s && s.size > 0 ? [...s].sort() : undefined;
  }

  /** The rows of `fqdn cache list`: one per (endpoint, name, source), ordered. */
  list(filter: { endpointId?: number; matches?: (name: string) => boolean } = {}): FqdnCacheEntry[] {
    const now = this.now();
    const out: FqdnCacheEntry[] = [];
    for (const [ep, names] of [...this.#byEp].sort((a, b) => a[0] - b[0])) {
      if (filter.endpointId !== undefined && ep !== filter.endpointId) continue;
      for (const [name, ips] of [...names].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
        if (filter.matches && !filter.matches(name)) continue;
        for (const source of ['lookup', 'connection'] as const) {
          const rs = [...ips].filter(([, r]) => r.expiresAtMs > now === (source === 'lookup'));
          if (rs.length === 0) continue;
          const last = rs.reduce((a, b) => (b[1].expiresAtMs > a[1].expiresAtMs ? b : a))[1];
          out.push({
            endpointId: ep,
            source,
            fqdn: name,
            ips: rs.map(([ip]) => ip).sort(compareIps),
            ttlSeconds: last.ttlSeconds,
            expirationTime: new Date(last.expiresAtMs).toISOString(),
          });
        }
      }
    }
    return out;
  }

  snapshot(): FqdnCacheSnapshot {
    const entries: FqdnCacheSnapshot['entries'][number][] = [];
    for (const [endpointId, names] of this.#byEp)
      for (const [name, ips] of names) for (const [ip, r] of ips) entries.push({ endpointId, name, ip, ...r });
    return { version: 1, entries };
  }

  /** Replaces the content with a snapshot (a restart); throws FqdnCacheError on a bad one. */
  restore(snap: unknown): void {
    const s = snap as Partial<FqdnCacheSnapshot> | null;
    if (!s || typeof s !== 'object' || s.version !== 1 || !Array.isArray(s.entries))
      throw new FqdnCacheError('FQDN cache snapshot: expected {"version":1,"entries":[...]}');
    this.clean();
    s.entries.forEach((e, i) => {
      const ok =
        e &&
        Number.isInteger(e.endpointId) &&
        typeof e.name === 'string' &&
        typeof e.ip === 'string' &&
        Number.isFinite(e.ttlSeconds) &&
        Number.isFinite(e.lookupTimeMs) &&
        Number.isFinite(e.expiresAtMs);
      if (!ok) throw new FqdnCacheError(`FQDN cache snapshot: entries[${i}]: expected endpointId, name, ip, times`);
      const names = getOrSet(this.#byEp, e.endpointId, () => new Map<string, Map<string, IpRecord>>());
      const name = normalizeFqdn(e.name);
      getOrSet(names, name, () => new Map()).set(e.ip, {
        ttlSeconds: e.ttlSeconds,
        lookupTimeMs: e.lookupTimeMs,
        expiresAtMs: e.expiresAtMs,
      });
      this.#addUnion(name, e.ip);
    });
  }

  #evictOverLimit(ips: Map<string, IpRecord>, now: number): void {
    const live = [...ips].filter(([, r]) => r.expiresAtMs > now);
    if (live.length <= this.maxIpsPerName) return;
    live.sort((a, b) => a[1].expiresAtMs - b[1].expiresAtMs || a[1].lookupTimeMs - b[1].lookupTimeMs);
    for (const [ip, r] of live.slice(0, live.length - this.maxIpsPerName)) ips.set(ip, { ...r, expiresAtMs: now });
  }

  /** True when the IP is new to the name's union. */
  #addUnion(name: string, ip: string): boolean {
    const u = getOrSet(this.#union, name, () => new Map<string, number>());
    const n = u.get(ip) ?? 0;
    u.set(ip, n + 1);
    if (n === 0) getOrSet(this.#namesByIp, ip, () => new Set<string>()).add(name);
    return n === 0;
  }

  /** True when the IP left the name's union. */
  #dropUnion(name: string, ip: string): boolean {
    const u = this.#union.get(name);
    const n = u?.get(ip) ?? 0;
    if (!u || n === 0) return false;
    if (n > 1) {
      u.set(ip, n - 1);
      return false;
    }
    u.delete(ip);
    if (u.size === 0) this.#union.delete(name);
    const s = this.#namesByIp.get(ip);
    s?.delete(name);
    if (s?.size === 0) this.#namesByIp.delete(ip);
    return true;
  }
}

interface IpRecord {
  readonly ttlSeconds: number;
  readonly lookupTimeMs: number;
  readonly expiresAtMs: number;
}

function getOrSet<K, V>(m: Map<K, V>, k: K, make: () => V): V {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    m.set(k, v);
  }
  return v;
}

function compareIps(a: string, b: string): number {
  const ka = a.includes(':')
    ? `6${a}`
    : `4${a
        .split('.')
        .map((x) => x.padStart(3, '0'))
        .join('.')}`;
  const kb = b.includes(':')
    ? `6${b}`
    : `4${b
        .split('.')
        .map((x) => x.padStart(3, '0'))
        .join('.')}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
