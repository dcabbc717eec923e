// A BPF map held by an fd this object owns: typed byte-level operations over the addon. Codecs in
// maps/ turn values into these bytes; this class knows nothing about layouts.
import { DatapathError, nativeFailure } from './datapath-error.js';
import { nativeBpf, sys } from './native.js';

export const BPF_MAP_TYPE = {
  hash: 1,
  array: 2,
  percpuHash: 5,
  percpuArray: 6,
  lruHash: 9,
  lpmTrie: 11,
  hashOfMaps: 13,
  ringbuf: 27,
} as const;

export const BPF_F_NO_PREALLOC = 1;
export const BPF_NOEXIST = 1;

export interface MapSpec {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags?: number;
}

export class BpfMap {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  #fd: number;

  constructor(fd: number, spec: Omit<MapSpec, 'flags'>) {
    this.#fd = fd;
    this.name = spec.name;
    this.type = spec.type;
    this.keySize = spec.keySize;
    this.valueSize = spec.valueSize;
    this.maxEntries = spec.maxEntries;
  }

  /** Opens a pinned map; its geometry comes from the kernel. */
  static fromPinned(path: string): BpfMap {
    const n = nativeBpf();
    const fd = sys(`open pinned map ${path}`, () => n.objGet(path));
    return BpfMap.fromFd(fd);
  }

  static fromId(id: number): BpfMap {
    const n = nativeBpf();
    return BpfMap.fromFd(sys(`open map id ${id}`, () => n.mapFdById(id)));
  }

  static fromFd(fd: number): BpfMap {
    const info = sys('read map info', () => nativeBpf().mapInfo(fd));
    return new BpfMap(fd, info);
  }

  static create(spec: MapSpec): BpfMap {
    const n = nativeBpf();
    const fd = sys(`create map ${spec.name} (${spec.maxEntries} entries)`, () =>
      n.mapCreate(spec.type, spec.keySize, spec.valueSize, spec.maxEntries, spec.flags ?? 0, spec.name),
    );
    return new BpfMap(fd, spec);
  }

  get fd(): number {
    if (this.#fd < 0) throw new DatapathError('MBR_DATAPATH_CLOSED', `map ${this.name} is closed`);
    return this.#fd;
  }

  get id(): number {
    return nativeBpf().mapInfo(this.fd).id;
  }

  get isPerCpu(): boolean {
    return this.type === BPF_MAP_TYPE.percpuArray || this.type === BPF_MAP_TYPE.percpuHash;
  }

  /** Bytes a lookup writes: per-CPU maps return one 8-aligned slot per possible CPU. */
  get valueBufferSize(): number {
    return this.isPerCpu ? ((this.valueSize + 7) & ~7) * nativeBpf().numPossibleCpus() : this.valueSize;
  }

  update(key: Uint8Array, value: Uint8Array, flags = 0): void {
    sys(`update ${this.name}`, () => nativeBpf().mapUpdate(this.fd, key, value, flags));
  }

  lookup(key: Uint8Array, out: Buffer = Buffer.alloc(this.valueBufferSize)): Buffer | undefined {
    return sys(`lookup ${this.name}`, () => nativeBpf().mapLookup(this.fd, key, out)) ? out : undefined;
  }

  delete(key: Uint8Array): boolean {
    return sys(`delete from ${this.name}`, () => nativeBpf().mapDelete(this.fd, key));
  }

  /** Every key, by get_next_key (works on every map type, including LPM tries). */
  *keys(): Generator<Buffer> {
    const n = nativeBpf();
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      if (!sys(`iterate ${this.name}`, () => n.mapNextKey(this.fd, prev, next))) return;
      yield next;
      prev = next;
    }
  }

  *entries(): Generator<[Buffer, Buffer]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  count(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  /**
   * Writes `count` packed keys and values in one syscall per chunk. On failure the error says how
   * many leading elements were written (`done`), so callers can undo exactly those.
   */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags = 0): void {
    const n = nativeBpf();
    const chunk = 8192;
    for (let i = 0; i < count; i += chunk) {
      const c = Math.min(chunk, count - i);
      const k = keys.subarray(i * this.keySize, (i + c) * this.keySize);
      const v = values.subarray(i * this.valueSize, (i + c) * this.valueSize);
      try {
        n.mapUpdateBatch(this.fd, k, v, c, flags);
      } catch (err) {
        throw DatapathError.fromNative(`batch update of ${this.name}`, err, {
          done: i + (nativeFailure(err).done ?? 0),
        });
      }
    }
  }

  deleteBatch(keys: Buffer, count: number): void {
    const n = nativeBpf();
    for (let i = 0; i < count; i += 8192) {
      const c = Math.min(8192, count - i);
      sys(`batch delete from ${this.name}`, () =>
        n.mapDeleteBatch(this.fd, keys.subarray(i * this.keySize, (i + c) * this.keySize), c),
      );
    }
  }

  pin(path: string): void {
    sys(`pin ${this.name} at ${path}`, () => nativeBpf().objPin(this.fd, path));
  }

  close(): void {
    if (this.#fd >= 0) nativeBpf().closeFd(this.#fd);
    this.#fd = -1;
  }
}
