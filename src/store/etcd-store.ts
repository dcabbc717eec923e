// The etcd v3 cluster store: the ClusterStore interface on an etcd cluster, through the etcd3
// client. The interface is etcd-shaped, so the mapping is direct:
//   get/list      → Range (list answers with the response header's revision)
//   put/delete    → Put/DeleteRange (the header's revision is the write's revision)
//   txn           → Txn: createRevision/modRevision/value compares; put, delete, and
//                   deletePrefix as a DeleteRange over the prefix's range
//   leases        → LeaseGrant, one LeaseKeepAlive round trip, LeaseRevoke
//   watch         → Watch from afterRevision+1 with prev_kv; events of one revision are one batch
// A watch whose start revision etcd has compacted is cancelled by etcd with compact_revision set:
// the consumer is told onCompacted(current revision) and the watch goes on from there. When the
// connection drops, the etcd3 watcher reconnects; we make it resume after the last revision we
// delivered and drop anything at or below it, so nothing is missed or delivered twice.
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  Etcd3,
  type IEvent,
  type IKeyValue,
  type IOptions,
  type IRequestOp,
  type IWatchResponse,
  type Watcher,
} from 'etcd3';
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

export interface EtcdStoreOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379` (https when tls is given). */
  readonly endpoints: readonly string[];
  /** PEM file paths for a TLS client: the CA that signed the server, and this client's pair. */
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
  /** How long to wait for a connection, in ms (default 5000). */
  readonly dialTimeoutMs?: number;
}

/**
 * How long a broken watch stream waits before it reconnects: a constant 500 ms. The client's
 * default is an exponential backoff up to 30 s, so after a long outage the agents would follow
 * the store again only up to half a minute after it is back.
 */
const WATCH_RETRY_MS = 500;
const WATCH_RETRY = (() => {
  const b = { duration: WATCH_RETRY_MS, next: () => b };
  return b as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;
})();

export class EtcdStore implements ClusterStore {
  readonly description: string;
  readonly #client: Etcd3;
  readonly #endpoints: string;
  readonly #timeoutMs: number;
  readonly #watches = new Set<EtcdWatch>();
  /** One client per member, for status (the pool's client answers from any one member). */
  readonly #members: ReadonlyArray<{ readonly endpoint: string; readonly client: Etcd3 }>;
  /** When a call first failed as unreachable, since the last call that succeeded. */
  #unreachableSince: Date | undefined;
  #closed = false;

  private constructor(client: Etcd3, opts: EtcdStoreOptions, credentials: IOptions['credentials'], timeoutMs: number) {
    this.#client = client;
    this.#endpoints = opts.endpoints.join(',');
    this.#timeoutMs = timeoutMs;
    this.description = `etcd ${this.#endpoints}`;
    this.#members = opts.endpoints.map((endpoint) => ({
      endpoint,
      client: new Etcd3({ hosts: [endpoint], dialTimeout: timeoutMs, ...(credentials ? { credentials } : {}) }),
    }));
  }

  /** Connects and checks that the cluster answers; throws MBR_STORE_UNREACHABLE when it does not. */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const endpoints = opts.endpoints.join(',');
    if (opts.endpoints.length === 0) throw new StoreError('MBR_STORE_UNREACHABLE', 'etcd: no endpoints given');
    let credentials: IOptions['credentials'];
    if (opts.tls) {
      const read = (what: string, path: string): Buffer => {
        try {
          return readFileSync(path);
        } catch (err) {
          throw new StoreError('MBR_STORE_UNREACHABLE', `etcd ${endpoints}: read tls.${what} ${path}: ${message(err)}`);
        }
      };
      credentials = {
        rootCertificate: read('ca', opts.tls.ca),
        ...(opts.tls.cert ? { certChain: read('cert', opts.tls.cert) } : {}),
        ...(opts.tls.key ? { privateKey: read('key', opts.tls.key) } : {}),
      };
    }
    const timeoutMs = opts.dialTimeoutMs ?? 5000;
    const client = new Etcd3({
      hosts: [...opts.endpoints],
      dialTimeout: timeoutMs,
      ...(credentials ? { credentials } : {}),
      faultHandling: { watchBackoff: WATCH_RETRY },
    });
    const store = new EtcdStore(client, opts, credentials, timeoutMs);
    try {
      await store.#call('connect', () => client.maintenance.status({ deadline: Date.now() + timeoutMs }));
    } catch (err) {
      store.#closeClients();
      throw err;
    }
    return store;
  }

  /**
   * Asks every member for its status (bounded by the dial timeout, at most 2 s): how many answer,
   * and which one leads, by its client URL. `Failure` with the time it stopped answering when
   * no member does.
   */
  async health(): Promise<StoreHealth> {
    if (this.#closed) return { state: 'Failure', message: `etcd ${this.#endpoints}: closed` };
    const deadlineMs = Math.min(this.#timeoutMs, 2000);
    const answers = await Promise.all(
      this.#members.map(async (m) => {
        try {
          const st = await m.client.maintenance.status({ deadline: Date.now() + deadlineMs });
          return { endpoint: m.endpoint, memberId: st.header.member_id, leader: st.leader, version: st.version };
        } catch {
          return undefined;
        }
      }),
    );
    const up = answers.filter((a) => a !== undefined);
    const total = this.#members.length;
    if (up.length === 0) {
      this.#unreachableSince ??= new Date();
      const since = this.#unreachableSince;
      return {
        state: 'Failure',
        message: `etcd: 0/${total} connected, unreachable since ${since.toISOString()}: ${this.#endpoints}`,
        unreachableSince: since.toISOString(),
      };
    }
    this.#unreachableSince = undefined;
    const leaderId = up.find((a) => a.leader !== '0')?.leader;
    const leader = leaderId === undefined ? undefined : up.find((a) => a.memberId === leaderId);
    const leaderText = leader
      ? `leader ${leader.endpoint}`
      : leaderId === undefined
        ? 'no leader (no quorum)'
        : `leader member ${BigInt(leaderId).toString(16)} (not among the endpoints)`;
    return {
      state: leaderId === undefined ? 'Failure' : 'Ok',
      message: `etcd: ${up.length}/${total} connected, ${leaderText} - ${up[0].version}`,
    };
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.#call(`get ${key}`, () => this.#client.kv.range({ key: Buffer.from(key) }));
    return res.kvs.length > 0 ? toKeyValue(res.kvs[0]) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    const res = await this.#call(`list ${prefix}`, () =>
      this.#client.kv.range({ ...prefixRange(prefix), sort_target: 'Key', sort_order: 'Ascend' }),
    );
    return { items: res.kvs.map(toKeyValue), revision: Number(res.header.revision) };
  }

  /** A count-only range of one key: etcd answers with the header's revision and no values. */
  async currentRevision(): Promise<number> {
    const res = await this.#call('revision', () => this.#client.kv.range({ key: Buffer.from('\0'), count_only: true }));
    return Number(res.header.revision);
  }

  watch(prefix: string, afterRevision: number, handlers: WatchHandlers): Watch {
    this.#assertOpen();
    const w = new EtcdWatch(this.#client, prefix, afterRevision, handlers, () => this.#watches.delete(w));
    this.#watches.add(w);
    return w;
  }

  async put(key: string, value: string, opts: { readonly lease?: number } = {}): Promise<number> {
    const res = await this.#call(`put ${key}`, () =>
      this.#client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease: opts.lease ?? 0 }),
    );
    return Number(res.header.revision);
  }

  async delete(key: string): Promise<number> {
    const res = await this.#call(`delete ${key}`, () => this.#client.kv.deleteRange({ key: Buffer.from(key) }));
    return Number(res.header.revision);
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    const res = await this.#call('txn', () =>
      this.#client.kv.txn({
        compare: req.compare.map(toCompare),
        success: req.success.map(toRequestOp),
        failure: (req.failure ?? []).map(toRequestOp),
      }),
    );
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async grantLease(ttlSeconds: number): Promise<number> {
    // etcd picks 63-bit lease IDs, which a JS number cannot hold exactly; ask for one that fits
    // (random, below 2^53) and pick again on the rare collision.
    for (let attempt = 0; ; attempt++) {
      const id = randomInt(1, 2 ** 48);
      try {
        await this.#call('grant lease', () => this.#client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: id }));
        return id;
      } catch (err) {
        if (attempt < 3 && err instanceof StoreError && /lease already exists/.test(err.message)) continue;
        throw err;
      }
    }
  }

  async keepAlive(lease: number): Promise<void> {
    const res = await this.#call(`keep lease ${lease} alive`, async () => {
      // The deadline bounds the round trip: a keep-alive stream has no answer to wait for otherwise.
      const stream = await this.#client.leaseClient.leaseKeepAlive({ deadline: Date.now() + this.#timeoutMs });
      try {
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', reject);
          stream.write({ ID: lease });
        });
      } finally {
        stream.end();
      }
    });
    // etcd answers a keep-alive of an unknown or expired lease with TTL 0.
    if (Number(res.TTL) <= 0) throw noLease(this.#endpoints, lease);
  }

  async revokeLease(lease: number): Promise<void> {
    try {
      await this.#call(`revoke lease ${lease}`, () => this.#client.leaseClient.leaseRevoke({ ID: lease }));
    } catch (err) {
      if (err instanceof StoreError && /lease not found/.test(err.message)) throw noLease(this.#endpoints, lease);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#watches].map((w) => w.cancel()));
    this.#closeClients();
  }

  #closeClients(): void {
    this.#client.close();
    for (const m of this.#members) m.client.close();
  }

  /** Compacts etcd's history up to `revision` (tests; etcd's own auto-compaction does this in production). */
  async compact(revision: number): Promise<void> {
    await this.#call(`compact ${revision}`, () => this.#client.kv.compact({ revision, physical: true }));
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError('MBR_STORE_CLOSED', `etcd ${this.#endpoints}: the store is closed`);
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    try {
      const out = await fn();
      this.#unreachableSince = undefined;
      return out;
    } catch (err) {
      const e = wrapError(this.#endpoints, what, err);
      if (e.code === 'MBR_STORE_UNREACHABLE') this.#unreachableSince ??= new Date();
      throw e;
    }
  }
}

class EtcdWatch implements Watch {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #handlers: WatchHandlers;
  readonly #onClose: () => void;
  /** The last revision handed to onEvents (or resynced to); the watch resumes after it. */
  #delivered: number;
  #watcher: Watcher | undefined;
  #closed = false;

  constructor(client: Etcd3, prefix: string, afterRevision: number, handlers: WatchHandlers, onClose: () => void) {
    this.#client = client;
    this.#prefix = prefix;
    this.#handlers = handlers;
    this.#onClose = onClose;
    this.#delivered = afterRevision;
    this.#start();
  }

  close(): void {
    void this.cancel();
  }

  async cancel(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    const w = this.#watcher;
    this.#watcher = undefined;
    await w?.cancel().catch(() => undefined);
  }

  #start(): void {
    const range = prefixRange(this.#prefix);
    const w = this.#client
      .watch()
      .inRange({ start: range.key, end: range.range_end })
      .startRevision(String(this.#delivered + 1))
      .withPreviousKV()
      .watcher();
    this.#watcher = w;
    w.on('data', (res: IWatchResponse) => this.#deliver(res));
    // The etcd3 watcher resumes from the last header revision it saw; resume from what was
    // delivered instead, which is never later (a header can run ahead of the events).
    w.on('disconnected', () => {
      (w as unknown as { request: { start_revision: string } }).request.start_revision = String(this.#delivered + 1);
    });
    // etcd cancels a watch whose start revision was compacted (with compact_revision set and,
    // in 3.4, no reason; 3.5 says "required revision has been compacted"); the etcd3 watcher
    // turns a cancel into an error and forgets the watch. Resync and watch from the present.
    // Any other cancel (permissions, say) is retried from where the watch was, after a pause.
    w.on('error', (err: Error) => {
      if (/^Watcher canceled: $|compacted/.test(err.message)) void this.#resync(w);
      else this.#restartLater(w);
    });
  }

  #restartLater(old: Watcher | undefined): void {
    if (this.#closed || (old && this.#watcher !== old)) return;
    this.#watcher = undefined;
    setTimeout(() => {
      if (!this.#closed && this.#watcher === undefined) this.#start();
    }, 1000).unref();
  }

  #deliver(res: IWatchResponse): void {
    if (this.#closed) return;
    // One response can hold several revisions; the consumer gets one call per revision.
    const batches: WatchEvent[][] = [];
    for (const ev of res.events) {
      const e = toWatchEvent(ev);
      if (e.revision <= this.#delivered) continue; // replayed after a reconnect
      const last = batches.at(-1);
      if (last && last[0].revision === e.revision) last.push(e);
      else batches.push([e]);
    }
    for (const batch of batches) {
      if (this.#closed) return;
      this.#delivered = batch[0].revision;
      this.#handlers.onEvents(batch);
    }
  }

  async #resync(old: Watcher): Promise<void> {
    if (this.#closed || this.#watcher !== old) return;
    this.#watcher = undefined;
    let revision: number;
    try {
      const res = await this.#client.kv.range({ key: Buffer.from(this.#prefix || '\0'), count_only: true });
      revision = Number(res.header.revision);
    } catch {
      // Unreachable: try again from where we were; a compacted start comes back here.
      this.#restartLater(undefined);
      return;
    }
    if (this.#closed) return;
    this.#delivered = revision;
    this.#handlers.onCompacted?.(revision);
    this.#start();
  }
}

function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  // etcd's convention: key "\0" with range_end "\0" is every key.
  if (prefix === '') return { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  const key = Buffer.from(prefix);
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return { key, range_end: end.subarray(0, i + 1) };
    }
  }
  return { key, range_end: Buffer.from([0]) };
}

function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    lease: Number(kv.lease),
  };
}

function toWatchEvent(ev: IEvent): WatchEvent {
  const isPut = ev.type === 'Put';
  return {
    type: isPut ? 'put' : 'delete',
    key: ev.kv.key.toString(),
    value: isPut ? ev.kv.value.toString() : '',
    ...(ev.prev_kv ? { prevValue: ev.prev_kv.value.toString() } : {}),
    revision: Number(ev.kv.mod_revision),
  };
}

function toCompare(c: Compare) {
  // No key under the prefix: etcd compares every key of the range, and an empty range as a key
  // with create_revision 0.
  if ('prefix' in c)
    return { ...prefixRange(c.prefix), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 };
  const key = Buffer.from(c.key);
  switch (c.target) {
    case 'createRevision':
      return { key, target: 'Create' as const, result: 'Equal' as const, create_revision: c.equals };
    case 'modRevision':
      return { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: c.equals };
    case 'value':
      return { key, target: 'Value' as const, result: 'Equal' as const, value: Buffer.from(c.equals) };
  }
}

function toRequestOp(op: Op): IRequestOp {
  switch (op.type) {
    case 'put':
      return { request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value), lease: op.lease ?? 0 } };
    case 'delete':
      return { request_delete_range: { key: Buffer.from(op.key) } };
    case 'deletePrefix':
      return { request_delete_range: prefixRange(op.prefix) };
  }
}

function noLease(endpoints: string, lease: number): StoreError {
  return new StoreError('MBR_STORE_NO_LEASE', `etcd ${endpoints}: lease ${lease} not found (expired or revoked)`);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function wrapError(endpoints: string, what: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const name = err instanceof Error ? err.constructor.name : '';
  const isUnreachable =
    /Unavailable|DeadlineExceeded|ConnectFailed|ClientClosed|BrokenCircuit|Cancelled/.test(name) ||
    /ECONNREFUSED|UNAVAILABLE|No connection established|Deadline exceeded/i.test(message(err));
  return new StoreError(
    isUnreachable ? 'MBR_STORE_UNREACHABLE' : 'MBR_STORE_FAILED',
    `etcd ${endpoints}: ${what}: ${message(err)}`,
  );
}
