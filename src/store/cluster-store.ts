// The cluster store: what every node's agent shares (namespaces, pods/endpoints, policies,
// identities, nodes), as an etcd v3-shaped key-value store. Keys are strings under one prefix
// per resource (see cluster-keys.ts); values are JSON text. Every write bumps one store-wide
// revision; a watch delivers every change under a prefix after a given revision, in order, so
// a consumer that listed at revision R and watches from R misses nothing and sees nothing twice.
//
// Two implementations exist: the embedded one (embedded-store.ts: one machine, no extra process,
// durable) and the etcd v3 one (etcd-store.ts). Nothing above this interface knows which it has.

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the write that created the key (since its last delete). */
  readonly createRevision: number;
  /** Revision of the key's last write. */
  readonly modRevision: number;
  /** Lease the key is attached to; 0 for none. It is deleted when the lease expires. */
  readonly lease: number;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** The new value for a put; '' for a delete. */
  readonly value: string;
  /** The value before this event, when the key existed. */
  readonly prevValue?: string;
  /** Revision of the write that made this event. */
  readonly revision: number;
}

export interface ListResult {
  readonly items: readonly KeyValue[];
  /** The store's revision the list is consistent with: watch from here. */
  readonly revision: number;
}

/**
 * A compare of a transaction, as etcd's: on a key's createRevision, modRevision or value; or,
 * over a prefix (etcd's compare with a range_end), that no key under the prefix exists.
 */
export type Compare =
  | { readonly key: string; readonly target: 'createRevision' | 'modRevision'; readonly equals: number }
  | { readonly key: string; readonly target: 'value'; readonly equals: string }
  | { readonly prefix: string; readonly target: 'empty' };

export type Op =
  | { readonly type: 'put'; readonly key: string; readonly value: string; readonly lease?: number }
  | { readonly type: 'delete'; readonly key: string }
  | { readonly type: 'deletePrefix'; readonly prefix: string };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly Op[];
  readonly failure?: readonly Op[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  /** The store's revision after the transaction (unchanged when it wrote nothing). */
  readonly revision: number;
}

export interface WatchHandlers {
  /** Changes in revision order; one call per write, with every key it changed under the prefix. */
  readonly onEvents: (events: readonly WatchEvent[]) => void;
  /**
   * The store no longer holds the history from the watch's revision (compacted): the consumer
   * lists again and reconciles by diff. The watch stays open and continues from `revision`.
   */
  readonly onCompacted?: (revision: number) => void;
}

export interface Watch {
  close(): void;
}

/** The store's health for `membrane status`: its KVStore line. */
export interface StoreHealth {
  readonly state: 'Ok' | 'Failure';
  /** e.g. "etcd: 3/3 connected, leader http://172.30.0.2:2379" or "embedded /run/..., revision 12". */
  readonly message: string;
  /** When the store stopped answering (ISO time), while it does not. */
  readonly unreachableSince?: string;
}

export interface ClusterStore {
  /** Where the store lives, for status ("embedded /var/lib/..." or "etcd https://..."). */
  readonly description: string;
  get(key: string): Promise<KeyValue | undefined>;
  list(prefix: string): Promise<ListResult>;
  /** The store's current revision (every write so far), without reading any key. */
  currentRevision(): Promise<number>;
  /** Whether the store answers, and how (members connected, leader); never throws. */
  health(): Promise<StoreHealth>;
  /** Delivers every change under `prefix` with a revision greater than `afterRevision`. */
  watch(prefix: string, afterRevision: number, handlers: WatchHandlers): Watch;
  put(key: string, value: string, opts?: { readonly lease?: number }): Promise<number>;
  delete(key: string): Promise<number>;
  txn(req: TxnRequest): Promise<TxnResult>;
  /** A lease that expires `ttlSeconds` after its last keep-alive; keys attached to it go with it. */
  grantLease(ttlSeconds: number): Promise<number>;
  keepAlive(lease: number): Promise<void>;
  revokeLease(lease: number): Promise<void>;
  close(): Promise<void>;
}

export class StoreError extends Error {
  readonly code:
    | 'MBR_STORE_LOCKED'
    | 'MBR_STORE_CORRUPT'
    | 'MBR_STORE_CLOSED'
    | 'MBR_STORE_NO_LEASE'
    | 'MBR_STORE_UNREACHABLE'
    | 'MBR_STORE_FAILED'
    | 'MBR_IDENTITY_EXHAUSTED'
    | 'MBR_IDENTITY_CONFLICT'
    | 'MBR_PODCIDR_CONFLICT'
    | 'MBR_PODCIDR_EXHAUSTED';
  constructor(code: StoreError['code'], message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}
