// Kafka protocol primitives: a bounds-checked reader over one frame and a growing writer, for the
// classic encodings (int16-length strings, int32-length arrays) and the flexible ones of KIP-482
// (unsigned-varint "compact" lengths + 1, tagged fields). Pure; a read past the end throws
// KafkaWireError, which the request parser turns into a malformed-frame verdict.

export class KafkaWireError extends Error {
  readonly code = 'MBR_KAFKA_MALFORMED';
}

export class KafkaReader {
  offset: number;
  constructor(
    readonly buf: Buffer,
    offset = 0,
  ) {
    this.offset = offset;
  }

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.offset++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  skip(n: number): void {
    this.need(n);
    this.offset += n;
  }

  /** An unsigned varint of at most 5 bytes (32 bits). */
  uvarint(): number {
    let v = 0;
    for (let i = 0; i < 5; i++) {
      this.need(1);
      const b = this.buf[this.offset++]!;
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return v;
    }
    throw new KafkaWireError('varint longer than 5 bytes');
  }

  /** A string (int16 length, or compact); null when nullable and absent. */
  string(flexible: boolean): string | null {
    const len = flexible ? this.uvarint() - 1 : this.int16();
    if (len < 0) return null;
    this.need(len);
    const s = this.buf.toString('utf8', this.offset, this.offset + len);
    this.offset += len;
    return s;
  }
  skipBytes(flexible: boolean): void {
    const len = flexible ? this.uvarint() - 1 : this.int32();
    if (len > 0) this.skip(len);
  }

  /** An array's element count (int32, or compact); -1 = null. Bounded by the bytes left. */
  arrayLength(flexible: boolean): number {
    const n = flexible ? this.uvarint() - 1 : this.int32();
    if (n < -1 || n > this.remaining) throw new KafkaWireError(`array length ${n} exceeds the frame`);
    return n;
  }

  /** Skips a tagged-field section (flexible versions only). */
  taggedFields(): void {
    const n = this.uvarint();
    if (n > this.remaining) throw new KafkaWireError('tagged field count exceeds the frame');
    for (let i = 0; i < n; i++) {
      this.uvarint();
      this.skip(this.uvarint());
    }
  }

  private need(n: number): void {
    if (n < 0 || this.offset + n > this.buf.length) throw new KafkaWireError('field runs past the end of the frame');
  }
}

export class KafkaWriter {
  private buf = Buffer.allocUnsafe(256);
  private len = 0;

  int8(v: number): this {
    this.ensure(1).writeInt8(v, this.len++);
    return this;
  }
  int16(v: number): this {
    this.ensure(2).writeInt16BE(v, this.len);
    this.len += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4).writeInt32BE(v, this.len);
    this.len += 4;
    return this;
  }
  int64(v: bigint): this {
    this.ensure(8).writeBigInt64BE(v, this.len);
    this.len += 8;
    return this;
  }
  uvarint(v: number): this {
    let x = v;
    while (x >= 0x80) {
      this.ensure(1)[this.len++] = (x & 0x7f) | 0x80;
      x = Math.floor(x / 128);
    }
    this.ensure(1)[this.len++] = x;
    return this;
  }
  /** A string, or null (nullable fields only). */
  string(s: string | null, flexible: boolean): this {
    if (s === null) return flexible ? this.uvarint(0) : this.int16(-1);
    const n = Buffer.byteLength(s);
    if (flexible) this.uvarint(n + 1);
    else this.int16(n);
    this.ensure(n).write(s, this.len, 'utf8');
    this.len += n;
    return this;
  }
  /** An array length; -1 = null. */
  arrayLength(n: number, flexible: boolean): this {
    return flexible ? this.uvarint(n + 1) : this.int32(n);
  }
  /** An empty tagged-field section, when flexible. */
  tags(flexible: boolean): this {
    return flexible ? this.uvarint(0) : this;
  }

  /** The frame: a 4-byte length, then what was written. */
  frame(): Buffer {
    const out = Buffer.allocUnsafe(4 + this.len);
    out.writeInt32BE(this.len, 0);
    this.buf.copy(out, 4, 0, this.len);
    return out;
  }

  private ensure(n: number): Buffer {
    if (this.len + n > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    return this.buf;
  }
}
