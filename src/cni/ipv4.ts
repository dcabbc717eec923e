// IPv4 addresses as 32-bit unsigned numbers: parse, format, CIDR arithmetic. Pure.

export interface Cidr {
  /** The network address (host bits cleared). */
  readonly network: string;
  readonly prefixLen: number;
}

export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i].length > 1 && m[i].startsWith('0'))) return undefined;
    n = n * 256 + o;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIpv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (ip === undefined || !/^\d{1,2}$/.test(lenText)) return undefined;
  const prefixLen = Number(lenText);
  if (prefixLen > 32) return undefined;
  return { network: formatIpv4(networkOf(ip, prefixLen)), prefixLen };
}

export function networkOf(ip: number, prefixLen: number): number {
  if (prefixLen === 0) return 0;
  const mask = (0xffffffff << (32 - prefixLen)) >>> 0;
  return (ip & mask) >>> 0;
}

/** Usable pod addresses of a CIDR: the first host is the gateway, the last is broadcast. */
export function podAddressRange(cidr: Cidr): { gateway: number; first: number; last: number } {
  const base = parseIpv4(cidr.network)!;
  const size = 2 ** (32 - cidr.prefixLen);
  return { gateway: base + 1, first: base + 2, last: base + size - 2 };
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const n = parseIpv4(ip);
  return n !== undefined && networkOf(n, cidr.prefixLen) === parseIpv4(cidr.network);
}
