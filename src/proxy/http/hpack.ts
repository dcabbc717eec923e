// HPACK (RFC 7541) for the HTTP/2 proxy, pure. The decoder follows a peer's encoder (dynamic table
// included) so every header block can be read; the encoder is stateless (static-table indexes and
// literals never added to a table), so blocks the proxy writes or re-encodes never change the
// receiving decoder's table.
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables.js';

export type HeaderField = readonly [name: string, value: string];

export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HpackError';
  }
}

export class HpackDecoder {
  private table: HeaderField[] = [];
  private size = 0;
  private maxSize: number;

  /** `limit`: the largest table size the peer may ask for (SETTINGS_HEADER_TABLE_SIZE, 4096 by default). */
  constructor(
    private readonly limit = 65536,
    private readonly maxListBytes = 65536,
  ) {
    this.maxSize = 4096;
  }

  /** Decodes one complete header block. Throws HpackError (a connection error, COMPRESSION_ERROR). */
  decode(block: Buffer): HeaderField[] {
    const out: HeaderField[] = [];
    let listBytes = 0;
    const pos = { i: 0 };
    let fieldSeen = false;
    while (pos.i < block.length) {
      const b = block[pos.i];
      let field: HeaderField | undefined;
      if (b & 0x80) {
        field = this.lookup(readInt(block, pos, 7));
      } else if (b & 0x40) {
        field = this.readLiteral(block, pos, 6);
        this.add(field);
      } else if (b & 0x20) {
        if (fieldSeen) throw new HpackError('table size update after a field');
        const n = readInt(block, pos, 5);
        if (n > this.limit) throw new HpackError('table size update above the limit');
        this.maxSize = n;
        this.evict(0);
        continue;
      } else {
        field = this.readLiteral(block, pos, 4);
      }
      fieldSeen = true;
      listBytes += field[0].length + field[1].length + 32;
      if (listBytes > this.maxListBytes) throw new HpackError('header list too large');
      out.push(field);
    }
    return out;
  }

  private readLiteral(block: Buffer, pos: { i: number }, prefix: number): HeaderField {
    const idx = readInt(block, pos, prefix);
    const name = idx === 0 ? readString(block, pos) : this.lookup(idx)[0];
    const value = readString(block, pos);
    return [name, value];
  }

  private lookup(index: number): HeaderField {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const d = index - STATIC_TABLE.length - 1;
    const f = this.table[d];
    if (f === undefined) throw new HpackError('index beyond the dynamic table');
    return f;
  }

  private add(f: HeaderField): void {
    const s = f[0].length + f[1].length + 32;
    if (s > this.maxSize) {
      this.table = [];
      this.size = 0;
      return;
    }
    this.evict(s);
    this.table.unshift(f);
    this.size += s;
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.table.length > 0) {
      const f = this.table.pop()!;
      this.size -= f[0].length + f[1].length + 32;
    }
  }
}

/**
 * Encodes fields without touching any table: an exact static match is indexed, a static name is
 * referenced, everything else is a literal; strings are not Huffman-coded.
 */
export function encodeHeaders(fields: readonly HeaderField[]): Buffer {
  const parts: number[] = [];
  for (const [name, value] of fields) {
    const exact = STATIC_EXACT.get(`${name}\0${value}`);
    if (exact !== undefined) {
      writeInt(parts, exact, 7, 0x80);
      continue;
    }
    const nameIdx = STATIC_NAME.get(name);
    if (nameIdx !== undefined) writeInt(parts, nameIdx, 4, 0x00);
    else {
      parts.push(0x00);
      writeString(parts, name);
    }
    writeString(parts, value);
  }
  return Buffer.from(parts);
}

// Private helpers.

const STATIC_EXACT = new Map<string, number>();
const STATIC_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([n, v], i) => {
  if (v !== '') STATIC_EXACT.set(`${n}\0${v}`, i + 1);
  if (!STATIC_NAME.has(n)) STATIC_NAME.set(n, i + 1);
});

function readInt(buf: Buffer, pos: { i: number }, prefix: number): number {
  if (pos.i >= buf.length) throw new HpackError('truncated integer');
  const max = (1 << prefix) - 1;
  let n = buf[pos.i++] & max;
  if (n < max) return n;
  let shift = 0;
  for (;;) {
    if (pos.i >= buf.length) throw new HpackError('truncated integer');
    const b = buf[pos.i++];
    n += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (n > 0x7fffffff) throw new HpackError('integer too large');
    if ((b & 0x80) === 0) return n;
  }
}

function writeInt(out: number[], n: number, prefix: number, flags: number): void {
  const max = (1 << prefix) - 1;
  if (n < max) {
    out.push(flags | n);
    return;
  }
  out.push(flags | max);
  let rest = n - max;
  while (rest >= 128) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

function readString(buf: Buffer, pos: { i: number }): string {
  if (pos.i >= buf.length) throw new HpackError('truncated string');
  const huffman = (buf[pos.i] & 0x80) !== 0;
  const len = readInt(buf, pos, 7);
  if (pos.i + len > buf.length) throw new HpackError('truncated string');
  const bytes = buf.subarray(pos.i, pos.i + len);
  pos.i += len;
  return huffman ? huffmanDecode(bytes) : bytes.toString('latin1');
}

function writeString(out: number[], s: string): void {
  writeInt(out, s.length, 7, 0x00);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

// The Huffman decoding tree: node k has children LEFT[k] (bit 0) and RIGHT[k] (bit 1); a leaf
// holds its symbol in SYM (256 = EOS), internal nodes -1.
const MAX_NODES = 513;
const LEFT = new Int16Array(MAX_NODES).fill(-1);
const RIGHT = new Int16Array(MAX_NODES).fill(-1);
const SYM = new Int16Array(MAX_NODES).fill(-1);
{
  let next = 1;
  const insert = (code: number, len: number, sym: number) => {
    let node = 0;
    for (let b = len - 1; b >= 0; b--) {
      const bit = Math.floor(code / 2 ** b) & 1;
      const arr = bit ? RIGHT : LEFT;
      if (arr[node] < 0) arr[node] = next++;
      node = arr[node];
    }
    SYM[node] = sym;
  };
  for (let s = 0; s < 256; s++) insert(HUFFMAN_CODES[s], HUFFMAN_LENGTHS[s], s);
  insert(0x3fffffff, 30, 256);
}

function huffmanDecode(bytes: Buffer): string {
  let out = '';
  let node = 0;
  let depth = 0;
  let allOnes = true;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >> b) & 1;
      node = bit ? RIGHT[node] : LEFT[node];
      depth++;
      if (bit === 0) allOnes = false;
      if (node < 0) throw new HpackError('invalid Huffman code');
      const sym = SYM[node];
      if (sym >= 0) {
        if (sym === 256) throw new HpackError('EOS in Huffman string');
        out += String.fromCharCode(sym);
        node = 0;
        depth = 0;
        allOnes = true;
      }
    }
  }
  // Padding: at most 7 bits, all ones (a prefix of EOS).
  if (depth > 7 || !allOnes) throw new HpackError('invalid Huffman padding');
  return out;
}
