// Maglev consistent hashing (Eisenbud et al., NSDI 2016), as Cilium's pkg/maglev uses it: each
// backend gets a permutation of the table's M cells from two hashes of its name, and the backends
// take turns claiming their next free preferred cell until all M are filled. Removing one of N
// backends moves about 1/N of the cells (its own) and only a few others. Pure and deterministic:
// every node computes the same table from the same backends, whatever their order.

/** Table sizes Cilium accepts (primes; M should be > 100 × the number of backends). */
export const MAGLEV_TABLE_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const;
export const DEFAULT_MAGLEV_TABLE_SIZE = 16381;

export function isMaglevTableSize(m: number): boolean {
  return (MAGLEV_TABLE_SIZES as readonly number[]).includes(m);
}

/**
 * The lookup table: cell -> index into `backends` (as given). `backends` are unique names
 * ("10.0.0.1:8080/TCP"); an empty list gives an empty table.
 */
export function maglevTable(backends: readonly string[], m: number, seed = 0): Uint32Array {
  if (!isMaglevTableSize(m))
    throw new RangeError(`maglev table size: expected one of ${MAGLEV_TABLE_SIZES.join(', ')}, got ${m}`);
  const n = backends.length;
  const table = new Uint32Array(n === 0 ? 0 : m);
  if (n === 0) return table;
  // Claim order by name: the table depends on the set, not on the order it arrived in.
  const order = backends
    .map((name, i) => ({ name, i }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  order.forEach((b, k) => {
    offset[k] = murmur3(b.name, seed ^ 0x5bd1e995) % m;
    skip[k] = (murmur3(b.name, seed ^ 0x1b873593) % (m - 1)) + 1;
  });
  const next = new Uint32Array(n);
  const filled = new Uint8Array(m);
  let done = 0;
  for (;;) {
    for (let k = 0; k < n; k++) {
      let c = (offset[k] + next[k] * skip[k]) % m;
      while (filled[c]) {
        next[k]++;
        c = (offset[k] + next[k] * skip[k]) % m;
      }
      filled[c] = 1;
      table[c] = order[k].i;
      next[k]++;
      if (++done === m) return table;
    }
  }
}

/** MurmurHash3 x86 32-bit of the string's UTF-8 bytes. */
export function murmur3(text: string, seed: number): number {
  const bytes = Buffer.from(text, 'utf8');
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const blocks = bytes.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    let k = bytes.readUInt32LE(i * 4);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  let k = 0;
  const tail = blocks * 4;
  const rest = bytes.length & 3;
  if (rest >= 3) k ^= bytes[tail + 2] << 16;
  if (rest >= 2) k ^= bytes[tail + 1] << 8;
  if (rest >= 1) {
    k ^= bytes[tail];
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
