// The agent's side of toFQDNs: the owner of the node's FQDN cache (src/fqdn/dns-cache.ts). The
// DNS proxy sends each answer here (FqdnSink); names some toFQDNs selector matches go into the
// policy engine (engine.updateFqdn through Agent.applyFqdnNames) and the resulting ipcache and
// policy-map diffs are written before observe() resolves, so the proxy can release the answer.
//
// Every gcIntervalMs: expired IPs that no connection tracked by the datapath uses leave the
// cache and the ipcache (Cilium's deferred delete), and the engine is brought up to date with
// the current selectors (a toFQDNs selector added after a lookup learns the cached names here).
// The cache is persisted to statePath (debounced; flushed on stop) and restored on start, so an
// agent restart keeps every learned IP in the ipcache (Agent feeds selectedNames() to the engine
// before its first map comparison).
import { join } from 'node:path';
import { FqdnCache, type FqdnCacheEntry, FqdnCacheError, type FqdnCacheSnapshot } from '../fqdn/dns-cache.js';
import type { DnsObservation, FqdnSink } from '../fqdn/fqdn-sink.js';
import { compileFqdnSelector, type FqdnSelectorSpec, formatFqdnSelector } from '../policy/fqdn-pattern.js';
import { readJsonFile, writeJsonFile } from '../store/json-file.js';

export const DEFAULT_FQDN_GC_INTERVAL_MS = 5000;
const PERSIST_DEBOUNCE_MS = 100;

export interface FqdnManagerOptions {
  readonly cache: FqdnCache;
  /** Where the cache is persisted; none: in memory only. */
  readonly statePath?: string;
  /** Agent.applyFqdnNames: resolves when the maps hold the names' IPs. */
  readonly apply: (names: ReadonlyMap<string, readonly string[]>) => Promise<void>;
  /** engine.fqdnSelectors(): the toFQDNs selectors of the current policies. */
  readonly selectors: () => readonly FqdnSelectorSpec[];
  /** Addresses a connection tracked by the datapath still uses (the CT map). */
  readonly ipsInUse: () => Promise<ReadonlySet<string>>;
  readonly gcIntervalMs?: number;
}

/** One toFQDNs selector with the cached names it selects (`membrane fqdn names`). */
export interface FqdnSelectorNames {
  readonly selector: string;
  readonly names: ReadonlyArray<{ readonly name: string; readonly ips: readonly string[] }>;
}

export class FqdnManager implements FqdnSink {
  readonly cache: FqdnCache;
  readonly stats = { observations: 0, namesApplied: 0, gcRuns: 0, gcDeleted: 0, persistErrors: 0 };
  readonly #o: FqdnManagerOptions;
  #timer: NodeJS.Timeout | undefined;
  #persistTimer: NodeJS.Timeout | undefined;
  #gcRunning: Promise<void> | undefined;

  constructor(o: FqdnManagerOptions) {
    this.#o = o;
    this.cache = o.cache;
    if (o.statePath) {
      const snap = readJsonFile<FqdnCacheSnapshot>(o.statePath);
      if (snap !== undefined) {
        try {
          o.cache.restore(snap);
        } catch (err) {
          if (!(err instanceof FqdnCacheError)) throw err;
          throw new FqdnCacheError(`${o.statePath}: ${err.message}`);
        }
      }
    }
  }

  start(): void {
    this.#timer = setInterval(() => void this.gc(), this.#o.gcIntervalMs ?? DEFAULT_FQDN_GC_INTERVAL_MS).unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#gcRunning;
    this.flush();
  }

  async observe(obs: DnsObservation): Promise<void> {
    this.stats.observations++;
    const changed = this.cache.update(
      obs.names.map((n) => ({ endpointId: obs.endpointId, name: n.name, ips: n.ips, ttlSeconds: n.ttlSeconds })),
    );
    this.#dirty();
    if (changed.length === 0) return;
    const selected = this.#selectedSubset(changed);
    if (selected.size > 0) await this.#apply(selected);
  }

  selectedNames(selectors: readonly FqdnSelectorSpec[]): Map<string, string[]> {
    const ms = selectors.map(compileFqdnSelector);
    const out = new Map<string, string[]>();
    for (const [name, ips] of this.cache.namesIps()) if (ms.some((m) => m(name))) out.set(name, ips);
    return out;
  }

  /**
   * Deletes expired IPs nobody uses and brings the engine to the cache's state for every
   * selected name (a name no selector matches any more is emptied).
   */
  gc(): Promise<void> {
    this.#gcRunning ??= (async () => {
      try {
        const inUse = await this.#o.ipsInUse();
        const changed = this.cache.gc((ip) => inUse.has(ip));
        this.stats.gcRuns++;
        this.stats.gcDeleted += changed.length;
        if (changed.length > 0) this.#dirty();
        const names = this.selectedNames(this.#o.selectors());
        for (const n of changed) if (!names.has(n)) names.set(n, []);
        if (names.size > 0) await this.#apply(names);
      } finally {
        this.#gcRunning = undefined;
      }
    })();
    return this.#gcRunning;
  }

  list(filter: { endpointId?: number; matchPattern?: string } = {}): FqdnCacheEntry[] {
    return this.cache.list(toFilter(filter));
  }

  /** `fqdn cache clean`: forgets entries and drops their IPs from the ipcache now. */
  async clean(filter: { endpointId?: number; matchPattern?: string } = {}): Promise<number> {
    const changed = this.cache.clean(toFilter(filter));
    this.#dirty();
    if (changed.length > 0) await this.#apply(new Map(changed.map((n) => [n, this.cache.ipsOf(n)])));
    return changed.length;
  }

  names(): FqdnSelectorNames[] {
    const all = this.cache.namesIps();
    return this.#o.selectors().map((s) => {
      const m = compileFqdnSelector(s);
      return {
        selector: formatFqdnSelector(s),
        names: [...all].filter(([n]) => m(n)).map(([name, ips]) => ({ name, ips })),
      };
    });
  }

  namesOf(ip: string): readonly string[] | undefined {
    return this.cache.namesOf(ip);
  }

  /** Writes the cache now (also on stop). */
  flush(): void {
    if (this.#persistTimer) clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    if (!this.#o.statePath) return;
    try {
      writeJsonFile(this.#o.statePath, this.cache.snapshot());
    } catch {
      this.stats.persistErrors++;
    }
  }

  #dirty(): void {
    if (!this.#o.statePath || this.#persistTimer) return;
    this.#persistTimer = setTimeout(() => this.flush(), PERSIST_DEBOUNCE_MS);
  }

  #selectedSubset(names: readonly string[]): Map<string, string[]> {
    const ms = this.#o.selectors().map(compileFqdnSelector);
    const out = new Map<string, string[]>();
    for (const n of names) if (ms.some((m) => m(n))) out.set(n, this.cache.ipsOf(n));
    return out;
  }

  async #apply(names: ReadonlyMap<string, readonly string[]>): Promise<void> {
    this.stats.namesApplied += names.size;
    await this.#o.apply(names);
  }
}

/** The addresses of the datapath's CT entries (DatapathPort.dumpCt: {key: {saddr, daddr}}). */
export function ctAddresses(entries: readonly unknown[]): Set<string> {
  const out = new Set<string>();
  for (const e of entries) {
    const k = (e as { key?: { saddr?: unknown; daddr?: unknown } } | null)?.key;
    if (typeof k?.saddr === 'string') out.add(k.saddr);
    if (typeof k?.daddr === 'string') out.add(k.daddr);
  }
  return out;
}

function toFilter(f: { endpointId?: number; matchPattern?: string }): {
  endpointId?: number;
  matches?: (name: string) => boolean;
} {
  return {
    ...(f.endpointId !== undefined ? { endpointId: f.endpointId } : {}),
    ...(f.matchPattern ? { matches: compileFqdnSelector({ matchPattern: f.matchPattern }) } : {}),
  };
}

/** The part of the Agent the FQDN state talks to (structural: no import of agent.ts). */
export interface FqdnOwner {
  applyFqdnNames(names: ReadonlyMap<string, readonly string[]>): Promise<void>;
  readonly engine: { fqdnSelectors(): FqdnSelectorSpec[] };
}

/**
 * The node's FQDN state as `membrane agent run` builds it (tests build it the same way): the
 * cache in `<stateDir>/fqdn-cache.json`, the agent as ipcache owner (bound late: the agent takes
 * this object in its options), CT addresses as "in use".
 */
export function createAgentFqdn(o: {
  readonly stateDir: string;
  readonly dumpCt: () => Promise<unknown[]>;
  readonly owner: () => FqdnOwner | undefined;
  readonly now?: () => number;
  readonly minTtlSeconds?: number;
  readonly maxIpsPerName?: number;
  readonly gcIntervalMs?: number;
}): FqdnManager {
  return new FqdnManager({
    cache: new FqdnCache({
      now: o.now ?? Date.now,
      ...(o.minTtlSeconds !== undefined ? { minTtlSeconds: o.minTtlSeconds } : {}),
      ...(o.maxIpsPerName !== undefined ? { maxIpsPerName: o.maxIpsPerName } : {}),
    }),
    statePath: join(o.stateDir, 'fqdn-cache.json'),
    apply: async (names) => {
      const a = o.owner();
      if (a) await a.applyFqdnNames(names);
    },
    selectors: () => o.owner()?.engine.fqdnSelectors() ?? [],
    ipsInUse: async () => ctAddresses(await o.dumpCt()),
    ...(o.gcIntervalMs !== undefined ? { gcIntervalMs: o.gcIntervalMs } : {}),
  });
}
