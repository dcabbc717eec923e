// IPv4/IPv6 prefixes as (family, address bits, length), with the containment tests CIDR
// selectors and the ipcache need. Addresses are BigInt so one code path serves both families.

export interface Prefix {
  readonly family: 4 | 6;
  /** Address with host bits cleared. */
  readonly addr: bigint;
  readonly len: number;
  /** Canonical text, e.g. `10.0.0.0/8`, `fd00::/64`. */
  readonly text: string;
}

/** Parses `a.b.c.d/n`, `x::y/n` or a bare address (a host prefix). Returns an error string if bad. */
export function parsePrefix(raw: string): Prefix | string {
  const slash = raw.indexOf('/');
  const ipText = slash < 0 ? raw : raw.slice(0, slash);
  const ip = parseIp(ipText);
  if (ip === undefined) return 'not an IP address';
  const max = ip.family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = raw.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) return `prefix length must be 0-${max}`;
    len = Number(lenText);
  }
  return makePrefix(ip.family, ip.addr, len);
}

export function parseIp(text: string): { family: 4 | 6; addr: bigint } | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split('.').map(Number);
    if (parts.some((p) => p > 255)) return undefined;
    if (text.split('.').some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    return { family: 4, addr: parts.reduce((a, p) => (a << 8n) | BigInt(p), 0n) };
  }
  if (!text.includes(':') || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let head = text;
  let v4tail: bigint | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = parseIp(text.slice(lastColon + 1));
    if (v4?.family !== 4) return undefined;
    v4tail = v4.addr;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = head.split('::');
  if (dbl.length > 2) return undefined;
  const left = dbl[0] === '' ? [] : dbl[0].split(':');
  const right = dbl.length === 2 ? (dbl[1] === '' ? [] : dbl[1].split(':')) : [];
  const groups = dbl.length === 2 ? 8 - left.length - right.length : 0;
  if (dbl.length === 1 && left.length !== 8) return undefined;
  if (dbl.length === 2 && groups < 1) return undefined;
  const all = [...left, ...Array<string>(groups).fill('0'), ...right];
  if (all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  let addr = all.reduce((a, g) => (a << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
  if (v4tail !== undefined) addr = (addr & ~0xffffffffn) | v4tail;
  return { family: 6, addr };
}

export function makePrefix(family: 4 | 6, addr: bigint, len: number): Prefix {
  const max = family === 4 ? 32 : 128;
  const hostBits = BigInt(max - len);
  const masked = (addr >> hostBits) << hostBits;
  return { family, addr: masked, len, text: `${formatIp(family, masked)}/${len}` };
}

/** True when a has its host bits set (e.g. `10.1.2.3/8`), which selectors reject. */
export function hasHostBits(raw: string): boolean {
  const p = parsePrefix(raw);
  if (typeof p === 'string') return false;
  const ip = parseIp(raw.split('/')[0])!;
  return ip.addr !== p.addr;
}

/** True when `inner` lies within `outer` (equal counts). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.family !== inner.family || inner.len < outer.len) return false;
  const max = outer.family === 4 ? 32 : 128;
  const shift = BigInt(max - outer.len);
  return inner.addr >> shift === outer.addr >> shift;
}

export function hostPrefix(ip: string): Prefix | undefined {
  const a = parseIp(ip);
  if (!a) return undefined;
  return makePrefix(a.family, a.addr, a.family === 4 ? 32 : 128);
}

export function formatIp(family: 4 | 6, addr: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 255n)).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((addr >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (length >= 2), as RFC 5952 asks.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
