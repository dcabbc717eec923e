// The embedded cluster store: the default for one machine, with no extra process. Its state is
// an append-only log in one directory, shared by every process that opens it (the lab's agents
// and CLI): a writer takes the directory's lock, catches up with the log, checks its
// transaction's compares, appends one record and fsyncs it. Every process keeps the key space in
// memory and follows the log through inotify (fs.watch on the directory), so a watch wakes on a
// change instead of polling. Durable across restarts: opening the store replays the log.
//
// Compaction: the log is a sequence of generations, `log.<n>.jsonl`. When a writer finds its
// generation past `compactBytes`, it writes generation n+1 whose first line is a snapshot of the
// whole key space (written to a temporary name, fsynced, renamed: it appears whole or not at all),
// then appends {"r": revision, "o": [], "n": n+1} to generation n: followers reading n switch to
// n+1 there and skip its snapshot (they hold the same state). A process opening the store reads the
// newest generation; a watch from a revision older than its snapshot is told `onCompacted`.
// Generations before n are removed (a follower still in one keeps its open descriptor).
//
// Record format, one JSON object per line: {"r": revision after the record, "o": [op...]} with
//   {"p": key, "v": value, "l": lease}   put          {"d": key}                  delete
//   {"g": lease, "t": ttlSeconds, "e": expiresAtMs}    lease grant / keep-alive
//   {"x": lease}                                        lease revoked or expired
// A record with puts or deletes bumps the revision by one; lease records leave it as it is.
// A writer that died mid-line leaves a partial line: the next writer ends it with a newline and
// every reader skips it (counted in `corruptRecords`).
import {
  closeSync,
  existsSync,
  type FSWatcher,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  type ClusterStore,
  type Compare,
  type KeyValue,
  type ListResult,
  type Op,
  StoreError,
  type StoreHealth,
  type TxnRequest,
  type TxnResult,
  type Watch,
  type WatchEvent,
  type WatchHandlers,
} from './cluster-store.js';

export interface EmbeddedStoreOptions {
  /** Wall clock in ms, for lease expiry (shared by every process on the machine). */
  readonly nowMs?: () => number;
  /** How many past writes a watch can resume from before it is told to resync (default 100k). */
  readonly historyLimit?: number;
  /** How often expired leases are looked for, in ms (default 1000; 0 turns the sweep off). */
  readonly leaseSweepMs?: number;
  /** A generation of the log past this size is compacted into a snapshot (default 4 MiB). */
  readonly compactBytes?: number;
}

export class EmbeddedStore implements ClusterStore {
  readonly description: string;
  readonly #dir: string;
  readonly #compactBytes: number;
  #gen = 0;
  readonly #nowMs: () => number;
  readonly #historyLimit: number;
  readonly #kv = new Map<string, KeyValue>();
  readonly #leases = new Map<number, { ttlSeconds: number; expiresAtMs: number }>();
  readonly #history: Array<{ revision: number; events: WatchEvent[] }> = [];
  readonly #watchers = new Set<Watcher>();
  readonly #deliveries: Array<() => void> = [];
  #fd: number;
  /** What to do with the first line of the current generation: a snapshot to load, or to skip. */
  #snapshot: 'apply' | 'skip' | 'none' = 'none';
  /** Revision of the snapshot the history starts after (watches from before it must resync). */
  #compactedAt = 0;
  #offset = 0;
  #partial = '';
  #revision = 0;
  #corrupt = 0;
  #fsWatcher: FSWatcher | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(dir: string, opts: EmbeddedStoreOptions) {
    this.#dir = dir;
    this.description = `embedded ${dir}`;
    this.#nowMs = opts.nowMs ?? Date.now;
    this.#historyLimit = opts.historyLimit ?? 100_000;
    this.#compactBytes = opts.compactBytes ?? 4 * 1024 * 1024;
    mkdirSync(dir, { recursive: true });
    this.#gen = newestGeneration(dir);
    this.#fd = openSync(this.#genPath(this.#gen), 'a+');
    this.#snapshot = this.#gen > 0 ? 'apply' : 'none';
    this.#catchUp();
    // inotify wakes the follower on every append by any process; the callback only reads the tail.
    this.#fsWatcher = watch(dir, { persistent: false }, () => this.#catchUp());
    this.#fsWatcher.on('error', () => undefined);
    const sweepMs = opts.leaseSweepMs ?? 1000;
    if (sweepMs > 0) this.#sweep = setInterval(() => this.#expireLeases(), sweepMs).unref();
  }

  static open(dir: string, opts: EmbeddedStoreOptions = {}): EmbeddedStore {
    return new EmbeddedStore(dir, opts);
  }

  /** The store's current revision (after catching up with the log). */
  get revision(): number {
    this.#catchUp();
    return this.#revision;
  }

  /** Log lines that could not be read (a writer died mid-record). */
  get corruptRecords(): number {
    return this.#corrupt;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.#catchUp();
    return this.#kv.get(key);
  }

  async health(): Promise<StoreHealth> {
    if (this.#closed) return { state: 'Failure', message: `${this.description}: closed` };
    return { state: 'Ok', message: this.description };
  }

  async currentRevision(): Promise<number> {
    return this.revision;
  }

  async list(prefix: string): Promise<ListResult> {
    this.#catchUp();
    const items: KeyValue[] = [];
    for (const kv of this.#kv.values()) if (kv.key.startsWith(prefix)) items.push(kv);
    items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { items, revision: this.#revision };
  }

  watch(prefix: string, afterRevision: number, handlers: WatchHandlers): Watch {
    this.#assertOpen();
    this.#catchUp();
    const w: Watcher = { prefix, after: afterRevision, handlers };
    const oldest = this.#history[0]?.revision ?? this.#revision + 1;
    const lost = afterRevision < this.#compactedAt || (afterRevision + 1 < oldest && afterRevision < this.#revision);
    if (lost) {
      w.after = this.#revision;
      this.#deliver(() => handlers.onCompacted?.(this.#revision));
    } else {
      for (const h of this.#history) if (h.revision > afterRevision) this.#offer(w, h.revision, h.events);
    }
    this.#watchers.add(w);
    return { close: () => this.#watchers.delete(w) };
  }

  async put(key: string, value: string, opts: { readonly lease?: number } = {}): Promise<number> {
    return (await this.txn({ compare: [], success: [{ type: 'put', key, value, lease: opts.lease }] })).revision;
  }

  async delete(key: string): Promise<number> {
    return (await this.txn({ compare: [], success: [{ type: 'delete', key }] })).revision;
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    return this.#locked(() => {
      const succeeded = req.compare.every((c) => this.#compare(c));
      const ops = succeeded ? req.success : (req.failure ?? []);
      const records: RecordOp[] = [];
      for (const op of ops) records.push(...this.#expand(op));
      if (records.length > 0) this.#append(records);
      return { succeeded, revision: this.#revision };
    });
  }

  async grantLease(ttlSeconds: number): Promise<number> {
    return this.#locked(() => {
      let id = 1 + Math.floor(Math.random() * 0x7fffffff);
      while (this.#leases.has(id)) id++;
      this.#append([{ g: id, t: ttlSeconds, e: this.#nowMs() + ttlSeconds * 1000 }]);
      return id;
    });
  }

  async keepAlive(lease: number): Promise<void> {
    this.#locked(() => {
      const l = this.#leases.get(lease);
      if (!l) throw new StoreError('MBR_STORE_NO_LEASE', `lease ${lease}: expected a live lease, got none (expired)`);
      this.#append([{ g: lease, t: l.ttlSeconds, e: this.#nowMs() + l.ttlSeconds * 1000 }]);
    });
  }

  async revokeLease(lease: number): Promise<void> {
    this.#locked(() => {
      if (this.#leases.has(lease)) this.#append(this.#revokeOps(lease));
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#fsWatcher?.close();
    this.#watchers.clear();
    closeSync(this.#fd);
  }

  // ---- the log ----

  /** Reads what other processes appended since the last call and applies it. */
  #catchUp(): void {
    if (this.#closed) return;
    for (;;) {
      let next = this.#readTail();
      // A compaction whose pointer record never made it (its writer died after the rename).
      if (next === undefined && existsSync(this.#genPath(this.#gen + 1))) next = this.#gen + 1;
      if (next === undefined) return;
      this.#switchTo(next);
    }
  }

  /** Applies what the current generation holds past the offset; the next generation if it ends. */
  #readTail(): number | undefined {
    const size = fstatSync(this.#fd).size;
    if (size <= this.#offset) return undefined;
    const buf = Buffer.allocUnsafe(size - this.#offset);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(this.#fd, buf, got, buf.length - got, this.#offset + got);
      if (n === 0) break;
      got += n;
    }
    this.#offset += got;
    const text = this.#partial + buf.subarray(0, got).toString('utf8');
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') continue;
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
      } catch {
        this.#corrupt++;
        continue;
      }
      if (Array.isArray(rec?.s)) {
        if (this.#snapshot === 'apply') this.#loadSnapshot(rec as unknown as SnapshotRecord);
        this.#snapshot = 'none';
        continue;
      }
      if (typeof rec?.r !== 'number' || !Array.isArray(rec.o)) {
        this.#corrupt++;
        continue;
      }
      this.#apply(rec);
      // The generation ends here: the log goes on in the next one.
      if (typeof rec.n === 'number') return rec.n;
    }
    return undefined;
  }

  /** Follows the log into generation `gen` (whose snapshot is the state already held). */
  #switchTo(gen: number): void {
    let fd: number;
    try {
      fd = openSync(this.#genPath(gen), 'a+');
    } catch {
      // Removed already (this process fell more than a generation behind): load the newest.
      this.#reload();
      return;
    }
    closeSync(this.#fd);
    this.#fd = fd;
    this.#gen = gen;
    this.#offset = 0;
    this.#partial = '';
    this.#snapshot = 'skip';
  }

  /** Starts over from the newest generation's snapshot; watches resync (onCompacted). */
  #reload(): void {
    const gen = newestGeneration(this.#dir);
    closeSync(this.#fd);
    this.#fd = openSync(this.#genPath(gen), 'a+');
    this.#gen = gen;
    this.#offset = 0;
    this.#partial = '';
    this.#snapshot = 'apply';
    this.#readTail();
    for (const w of this.#watchers) {
      w.after = this.#revision;
      this.#deliver(() => w.handlers.onCompacted?.(this.#revision));
    }
  }

  #loadSnapshot(rec: SnapshotRecord): void {
    this.#kv.clear();
    for (const [key, value, createRevision, modRevision, lease] of rec.s)
      this.#kv.set(key, { key, value, createRevision, modRevision, lease });
    this.#leases.clear();
    for (const [id, ttlSeconds, expiresAtMs] of rec.l ?? []) this.#leases.set(id, { ttlSeconds, expiresAtMs });
    this.#revision = rec.r;
    this.#compactedAt = rec.r;
    this.#history.length = 0;
  }

  /** Writes the next generation (snapshot first), then ends this one with a pointer to it. */
  #compact(): void {
    const next = this.#gen + 1;
    const snap: SnapshotRecord = {
      r: this.#revision,
      s: [...this.#kv.values()].map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.lease]),
      l: [...this.#leases].map(([id, l]) => [id, l.ttlSeconds, l.expiresAtMs]),
    };
    const tmp = `${this.#genPath(next)}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeAll(fd, Buffer.from(`${JSON.stringify(snap)}\n`));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#genPath(next));
    writeAll(this.#fd, Buffer.from(`${JSON.stringify({ r: this.#revision, o: [], n: next })}\n`));
    fsyncSync(this.#fd);
    this.#catchUp();
    for (const f of readdirSync(this.#dir)) {
      const m = /^log\.(\d+)\.jsonl$/.exec(f);
      if (m && Number(m[1]) < this.#gen - 1) rmSync(join(this.#dir, f), { force: true });
    }
  }

  #genPath(gen: number): string {
    return join(this.#dir, `log.${gen}.jsonl`);
  }

  #apply(rec: LogRecord): void {
    const events: WatchEvent[] = [];
    const revision = rec.r;
    for (const op of rec.o) {
      if ('p' in op) {
        const prev = this.#kv.get(op.p);
        this.#kv.set(op.p, {
          key: op.p,
          value: op.v,
          createRevision: prev?.createRevision ?? revision,
          modRevision: revision,
          lease: op.l ?? 0,
        });
        events.push({ type: 'put', key: op.p, value: op.v, prevValue: prev?.value, revision });
      } else if ('d' in op) {
        const prev = this.#kv.get(op.d);
        if (!prev) continue;
        this.#kv.delete(op.d);
        events.push({ type: 'delete', key: op.d, value: '', prevValue: prev.value, revision });
      } else if ('g' in op) {
        this.#leases.set(op.g, { ttlSeconds: op.t, expiresAtMs: op.e });
      } else if ('x' in op) {
        this.#leases.delete(op.x);
      }
    }
    this.#revision = Math.max(this.#revision, revision);
    if (events.length === 0) return;
    this.#history.push({ revision, events });
    if (this.#history.length > this.#historyLimit) this.#history.splice(0, this.#history.length - this.#historyLimit);
    for (const w of this.#watchers) this.#offer(w, revision, events);
  }

  #append(ops: RecordOp[]): void {
    const bumps = ops.some((o) => 'p' in o || 'd' in o);
    const rec: LogRecord = { r: this.#revision + (bumps ? 1 : 0), o: ops };
    // A partial line left by a writer that died: end it so it stays one unreadable line.
    const lead = this.#partial !== '' ? '\n' : '';
    writeAll(this.#fd, Buffer.from(`${lead}${JSON.stringify(rec)}\n`));
    fsyncSync(this.#fd);
    this.#catchUp();
    if (this.#offset > this.#compactBytes) this.#compact();
  }

  #expand(op: Op): RecordOp[] {
    switch (op.type) {
      case 'put':
        if (op.lease && !this.#leases.has(op.lease))
          throw new StoreError('MBR_STORE_NO_LEASE', `put ${op.key}: expected a live lease, got lease ${op.lease}`);
        return [op.lease ? { p: op.key, v: op.value, l: op.lease } : { p: op.key, v: op.value }];
      case 'delete':
        return this.#kv.has(op.key) ? [{ d: op.key }] : [];
      case 'deletePrefix':
        return [...this.#kv.keys()].filter((k) => k.startsWith(op.prefix)).map((d) => ({ d }));
    }
  }

  #compare(c: Compare): boolean {
    if ('prefix' in c) {
      for (const k of this.#kv.keys()) if (k.startsWith(c.prefix)) return false;
      return true;
    }
    const kv = this.#kv.get(c.key);
    if (c.target === 'value') return kv !== undefined && kv.value === c.equals;
    return (kv?.[c.target] ?? 0) === c.equals;
  }

  #revokeOps(lease: number): RecordOp[] {
    const ops: RecordOp[] = [];
    for (const kv of this.#kv.values()) if (kv.lease === lease) ops.push({ d: kv.key });
    ops.push({ x: lease });
    return ops;
  }

  #expireLeases(): void {
    if (this.#closed) return;
    this.#catchUp();
    const now = this.#nowMs();
    if (![...this.#leases.values()].some((l) => l.expiresAtMs < now)) return;
    try {
      this.#locked(() => {
        for (const [id, l] of [...this.#leases]) if (l.expiresAtMs < this.#nowMs()) this.#append(this.#revokeOps(id));
      });
    } catch {
      // Another process holds the lock for long: the next sweep tries again.
    }
  }

  // ---- watch delivery ----

  #offer(w: Watcher, revision: number, events: readonly WatchEvent[]): void {
    if (revision <= w.after) return;
    const mine = events.filter((e) => e.key.startsWith(w.prefix));
    w.after = revision;
    if (mine.length === 0) return;
    this.#deliver(() => {
      if (this.#watchers.has(w)) w.handlers.onEvents(mine);
    });
  }

  /** Handlers run after the store call that found the change returns, one at a time, in order. */
  #deliver(fn: () => void): void {
    this.#deliveries.push(fn);
    if (this.#deliveries.length === 1) queueMicrotask(() => this.#drain());
  }

  #drain(): void {
    while (this.#deliveries.length > 0) {
      const fn = this.#deliveries[0];
      try {
        fn();
      } finally {
        this.#deliveries.shift();
      }
    }
  }

  // ---- the lock ----

  #locked<T>(fn: () => T): T {
    this.#assertOpen();
    const lock = join(this.#dir, 'lock');
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
        if (Date.now() > deadline) throw new StoreError('MBR_STORE_LOCKED', `${lock}: held for more than 5 s`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      }
    }
    try {
      this.#catchUp();
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError('MBR_STORE_CLOSED', `${this.description}: store is closed`);
  }
}

interface Watcher {
  readonly prefix: string;
  after: number;
  readonly handlers: WatchHandlers;
}

type RecordOp =
  | { p: string; v: string; l?: number }
  | { d: string }
  | { g: number; t: number; e: number }
  | { x: number };

interface LogRecord {
  r: number;
  o: RecordOp[];
  /** The generation the log continues in (the last record of a compacted generation). */
  n?: number;
  s?: unknown;
}

/** The first line of a generation after 0: the key space and leases at revision r. */
interface SnapshotRecord {
  r: number;
  /** [key, value, createRevision, modRevision, lease] */
  s: Array<[string, string, number, number, number]>;
  /** [lease, ttlSeconds, expiresAtMs] */
  l?: Array<[number, number, number]>;
}

/** The newest generation whose file exists (a `.tmp` never counts: it is renamed when whole). */
function newestGeneration(dir: string): number {
  let gen = 0;
  for (const f of readdirSync(dir)) {
    const m = /^log\.(\d+)\.jsonl$/.exec(f);
    if (m) gen = Math.max(gen, Number(m[1]));
  }
  return gen;
}

function writeAll(fd: number, buf: Buffer): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done);
}

function holderIsGone(lock: string): boolean {
  try {
    const pid = Number(readFileSync(lock, 'utf8'));
    if (!pid) return false;
    if (pid === process.pid) return false;
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
