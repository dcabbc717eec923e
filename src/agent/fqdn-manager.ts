// The agent's side of toFQDNs: the owner of the node's FQDN cache (src/fqdn/dns-cache.ts). The
// DNS proxy sends each answer here (FqdnSink); names some toFQDNs selector matches go into the
// policy engine (engine.updateFqdn through Agent.applyFqdnNames) and the resulting ipcache and
// policy-map diffs are written before observe() resolves, so the proxy can release the answer.
// Answers that arrive while a write is in flight are written together in the next one.
//
// Every gcIntervalMs: expired IPs that no connection tracked by the datapath uses leave the
// cache and the ipcache (Cilium's deferred delete); when the toFQDNs selectors changed since the
// last pass, every cached name is matched again (a selector added after a lookup learns the
// cached names here, one removed lets its names go).
//
// Persistence (an agent restart keeps every learned IP in the ipcache: Agent feeds
// selectedNames() to the engine before its first map comparison): a snapshot at statePath and a
// journal next to it (`.journal`, one JSON line per answer or clean, appended as they happen);
// the journal is folded into a new snapshot when it outgrows the cache, and on stop. Cost per
// answer: one appended line, never a rewrite of the whole cache.
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  FqdnCache,
  type FqdnCacheEntry,
  FqdnCacheError,
  type FqdnCacheSnapshot,
  type FqdnLookup,
} from '../fqdn/dns-cache.js';
import type { DnsObservation, FqdnSink } from '../fqdn/fqdn-sink.js';
import {
  compileFqdnSelector,
  type FqdnSelectorSpec,
  formatFqdnSelector,
  normalizeFqdn,
} from '../policy/fqdn-pattern.js';
import { readJsonFile, writeJsonFile } from '../store/json-file.js';

export const DEFAULT_FQDN_GC_INTERVAL_MS = 5000;

export interface FqdnManagerOptions {
  readonly cache: FqdnCache;
  /** Where the cache is persisted (and `${statePath}.journal`); none: in memory only. */
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
  readonly stats = { observations: 0, namesApplied: 0, applies: 0, gcRuns: 0, gcDeleted: 0, persistErrors: 0 };
  readonly #o: FqdnManagerOptions;
  #timer: NodeJS.Timeout | undefined;
  #gcRunning: Promise<void> | undefined;
  /** Names waiting for the next write, and the callers waiting for it. */
  #pending = new Map<string, readonly string[]>();
  #pendingWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  #writing = false;
  /** Each name's latest write not yet done: later answers for the name wait for it. */
  readonly #writes = new Map<string, Promise<void>>();
  #journalLines: string[] = [];
  #journalCount = 0;
  #journalFlush: NodeJS.Immediate | undefined;
  #selectorsSig = '';

  constructor(o: FqdnManagerOptions) {
    this.#o = o;
    this.cache = o.cache;
    if (o.statePath) this.#restore(o.statePath);
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
    const lookups: FqdnLookup[] = obs.names.map((n) => ({
      endpointId: obs.endpointId,
      name: n.name,
      ips: n.ips,
      ttlSeconds: n.ttlSeconds,
    }));
    const changed = this.cache.update(lookups);
    this.#journal({ t: this.cache.now(), l: lookups });
    // An answer whose addresses an earlier answer is still writing waits for that write too.
    const earlier = new Set<Promise<void>>();
    for (const l of lookups) {
      const w = this.#writes.get(normalizeFqdn(l.name));
      if (w) earlier.add(w);
    }
    const selected = changed.length > 0 ? this.#selectedSubset(changed) : new Map<string, string[]>();
    if (selected.size > 0) earlier.add(this.#apply(selected));
    if (earlier.size > 0) await Promise.all(earlier);
  }

  selectedNames(selectors: readonly FqdnSelectorSpec[]): Map<string, string[]> {
    const ms = selectors.map(compileFqdnSelector);
    const out = new Map<string, string[]>();
    for (const [name, ips] of this.cache.namesIps()) if (ms.some((m) => m(name))) out.set(name, ips);
    return out;
  }

  /**
   * Deletes expired IPs nobody uses (their names get their remaining IPs in the engine); when the
   * selectors changed, brings the engine to the cache's state for every cached name.
   */
  gc(): Promise<void> {
    this.#gcRunning ??= (async () => {
      try {
        const inUse = await this.#o.ipsInUse();
        const changed = this.cache.gc((ip) => inUse.has(ip));
        this.stats.gcRuns++;
        this.stats.gcDeleted += changed.length;
        const selectors = this.#o.selectors();
        const sig = JSON.stringify(selectors);
        const names = new Map<string, readonly string[]>();
        if (sig !== this.#selectorsSig) {
          // A name no selector matches any more is emptied in the engine (a no-op when unknown).
          const ms = selectors.map(compileFqdnSelector);
          for (const [name, ips] of this.cache.namesIps()) names.set(name, ms.some((m) => m(name)) ? ips : []);
          this.#selectorsSig = sig;
        }
        for (const n of changed) names.set(n, this.#selectedSubset([n]).get(n) ?? []);
        if (names.size > 0) await this.#apply(names);
        if (this.#journalCount > Math.max(1000, this.cache.entryCount())) this.flush();
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
    this.#journal({ t: this.cache.now(), clean: filter });
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

  /** The `fqdn` line of `membrane status`. */
  health(): { name: string; state: 'Ok' | 'Degraded'; message: string } {
    const names = this.cache.namesIps().size;
    const message = `${names} names, ${this.cache.entryCount()} cached IPs, ${this.stats.observations} answers learned`;
    return this.stats.persistErrors > 0
      ? {
          name: 'fqdn',
          state: 'Degraded',
          message: `${message}; ${this.stats.persistErrors} failed writes of the cache`,
        }
      : { name: 'fqdn', state: 'Ok', message };
  }

  namesOf(ip: string): readonly string[] | undefined {
    return this.cache.namesOf(ip);
  }

  /** Writes a snapshot of the cache now and starts an empty journal (also on stop). */
  flush(): void {
    if (this.#journalFlush) clearImmediate(this.#journalFlush);
    this.#journalFlush = undefined;
    this.#journalLines = [];
    const path = this.#o.statePath;
    if (!path) return;
    try {
      writeJsonFile(path, this.cache.snapshot());
      rmSync(`${path}.journal`, { force: true });
      this.#journalCount = 0;
    } catch {
      this.stats.persistErrors++;
    }
  }

  #restore(path: string): void {
    const snap = readJsonFile<FqdnCacheSnapshot>(path);
    try {
      if (snap !== undefined) this.cache.restore(snap);
    } catch (err) {
      if (!(err instanceof FqdnCacheError)) throw err;
      throw new FqdnCacheError(`${path}: ${err.message}`);
    }
    let text = '';
    try {
      text = readFileSync(`${path}.journal`, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // A torn last line (a crash mid-append) is skipped; every whole line is replayed in order.
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let j: JournalLine;
      try {
        j = JSON.parse(line) as JournalLine;
      } catch {
        continue;
      }
      if (Array.isArray(j.l)) this.cache.update(j.l, j.t);
      else if (j.clean) this.cache.clean(toFilter(j.clean));
      this.#journalCount++;
    }
  }

  #journal(line: JournalLine): void {
    if (!this.#o.statePath) return;
    this.#journalLines.push(JSON.stringify(line));
    this.#journalCount++;
    this.#journalFlush ??= setImmediate(() => {
      this.#journalFlush = undefined;
      const lines = this.#journalLines;
      this.#journalLines = [];
      try {
        appendFileSync(`${this.#o.statePath}.journal`, `${lines.join('\n')}\n`);
      } catch {
        this.stats.persistErrors++;
      }
    });
  }

  #selectedSubset(names: readonly string[]): Map<string, string[]> {
    const ms = this.#o.selectors().map(compileFqdnSelector);
    const out = new Map<string, string[]>();
    for (const n of names) if (ms.some((m) => m(n))) out.set(n, this.cache.ipsOf(n));
    return out;
  }

  /** Writes the names with whatever else is pending; resolves when a write that holds them is done. */
  #apply(names: ReadonlyMap<string, readonly string[]>): Promise<void> {
    for (const [n, ips] of names) this.#pending.set(n, ips);
    const done = new Promise<void>((resolve, reject) => this.#pendingWaiters.push({ resolve, reject }));
    for (const n of names.keys()) this.#writes.set(n, done);
    const forget = () => {
      for (const n of names.keys()) if (this.#writes.get(n) === done) this.#writes.delete(n);
    };
    done.then(forget, forget);
    // The write starts after the answers already received are handled (one turn of the event
    // loop): they join this write instead of paying a map write each.
    if (!this.#writing) {
      this.#writing = true;
      setImmediate(() => void this.#drain());
    }
    return done;
  }

  async #drain(): Promise<void> {
    while (this.#pending.size > 0) {
      const batch = this.#pending;
      const waiters = this.#pendingWaiters;
      this.#pending = new Map();
      this.#pendingWaiters = [];
      this.stats.applies++;
      this.stats.namesApplied += batch.size;
      try {
        await this.#o.apply(batch);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err as Error);
      }
    }
    this.#writing = false;
  }
}

interface JournalLine {
  readonly t: number;
  readonly l?: FqdnLookup[];
  readonly clean?: { endpointId?: number; matchPattern?: string };
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

function toFilter(f: { endpointId?: number; matchPattern?: string }): {
  endpointId?: number;
  matches?: (name: string) => boolean;
} {
  return {
    ...(f.endpointId !== undefined ? { endpointId: f.endpointId } : {}),
    ...(f.matchPattern ? { matches: compileFqdnSelector({ matchPattern: f.matchPattern }) } : {}),
  };
}
