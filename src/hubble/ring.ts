// The per-node flow ring: one writer, many readers, never blocks the writer.
//
// Capacity is 2^n - 1 (Hubble's rule; default 4095): the backing array has 2^n slots. Positions
// are absolute write counts (a JS number, exact far beyond any uptime), so a reader knows it fell
// behind when its position is older than `written - capacity`; it then learns how many entries it
// lost and jumps to the oldest one still held.

export class RingError extends Error {
  readonly code = 'MBR_RING_CAPACITY';
  constructor(got: number) {
    super(`ring: capacity: expected 2^n - 1 between 1 and 65535 (1, 3, 7, ..., 4095, ..., 65535), got ${got}`);
    this.name = 'RingError';
  }
}

export const DEFAULT_RING_CAPACITY = 4095;

export class Ring<T> {
  readonly capacity: number;
  private readonly slots: (T | undefined)[];
  private readonly size: number;
  private writeCount = 0;
  private waiters: (() => void)[] = [];

  constructor(capacity: number = DEFAULT_RING_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65535 || ((capacity + 1) & capacity) !== 0)
      throw new RingError(capacity);
    this.capacity = capacity;
    this.size = capacity + 1;
    this.slots = new Array(this.size);
  }

  push(v: T): void {
    this.slots[this.writeCount % this.size] = v;
    this.writeCount++;
    if (this.waiters.length > 0) {
      const ws = this.waiters;
      this.waiters = [];
      for (const w of ws) w();
    }
  }

  /** Entries ever written; the next write goes to this position. */
  get written(): number {
    return this.writeCount;
  }

  /** The oldest position still held. */
  get oldest(): number {
    return Math.max(0, this.writeCount - this.capacity);
  }

  get length(): number {
    return Math.min(this.writeCount, this.capacity);
  }

  /** The entry at an absolute position, or undefined when it is overwritten or not written yet. */
  at(pos: number): T | undefined {
    if (pos < this.oldest || pos >= this.writeCount) return undefined;
    return this.slots[pos % this.size];
  }

  /** Resolves on the next write (or at once if `pos` is already readable). */
  waitFor(pos: number): Promise<void> {
    if (pos < this.writeCount) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
