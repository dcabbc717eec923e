// Layout: struct mbr_ipcache_key / mbr_ipcache_value in bpf/include/membrane/maps.h (map mbr_ipcache,
// an LPM trie). addr is network order; prefixlen, identity, flags and ifindex are host order
// (little-endian here).
import { DatapathError } from '../datapath-error.js';
import { ipv4ToNetworkU32, type StructLayout, u32ToIpv4 } from '../layout.js';

export const IPCACHE_KEY: StructLayout = { struct: 'mbr_ipcache_key', size: 8, fields: { prefixlen: 0, addr: 4 } };
export const IPCACHE_VALUE: StructLayout = {
  struct: 'mbr_ipcache_value',
  size: 12,
  fields: { identity: 0, flags: 4, ifindex: 8 },
};

/** mbr_ipcache_value.flags. */
export const IpcacheFlags = {
  /** The address is an endpoint of this node. */
  localEndpoint: 0x01,
} as const;

export interface IpcachePrefix {
  /** Network address with the host bits cleared. */
  readonly addr: string;
  readonly prefixLen: number;
}

export interface IpcacheEntry {
  readonly prefix: IpcachePrefix;
  readonly identity: number;
  /** IpcacheFlags bits; absent when written (the datapath sets localEndpoint itself). */
  readonly flags?: number;
  /** A local endpoint's host-side veth (local delivery); absent when written, 0 for the rest. */
  readonly ifindex?: number;
}

/** Parses "10.1.2.3" (a /32) or "10.0.0.0/8"; clears host bits so one prefix has one key. */
export function parseIpv4Prefix(text: string): IpcachePrefix {
  const [ip, len, extra] = text.split('/');
  const prefixLen = len === undefined ? 32 : Number(len);
  if (extra !== undefined || !Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32 || len === '')
    throw new DatapathError(
      'MBR_DATAPATH_BAD_INPUT',
      `ipcache prefix: expected A.B.C.D or A.B.C.D/0-32, got "${text}"`,
    );
  let n: number;
  try {
    n = ipv4ToNetworkU32(ip ?? '', 'ipcache prefix');
  } catch {
    throw new DatapathError(
      'MBR_DATAPATH_BAD_INPUT',
      `ipcache prefix: expected A.B.C.D or A.B.C.D/0-32, got "${text}"`,
    );
  }
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  return { addr: u32ToIpv4((n & mask) >>> 0), prefixLen };
}

export function formatIpv4Prefix(p: IpcachePrefix): string {
  return `${p.addr}/${p.prefixLen}`;
}

export function encodeIpcacheKey(p: IpcachePrefix, out: Buffer = Buffer.alloc(8), offset = 0): Buffer {
  return encodeIpcacheKeyAt(ipv4ToNetworkU32(p.addr), p.prefixLen, out, offset);
}

/** The key of an address already parsed to its network-order u32. */
export function encodeIpcacheKeyAt(addr: number, prefixLen: number, out: Buffer, offset: number): Buffer {
  out.writeUInt32LE(prefixLen, offset);
  out.writeUInt32BE(addr >>> 0, offset + 4);
  return out;
}

export function decodeIpcacheKey(b: Buffer, offset = 0): IpcachePrefix {
  return { prefixLen: b.readUInt32LE(offset), addr: u32ToIpv4(b.readUInt32BE(offset + 4)) };
}

export function encodeIpcacheValue(
  identity: number,
  out: Buffer = Buffer.alloc(IPCACHE_VALUE.size),
  offset = 0,
  flags = 0,
  ifindex = 0,
): Buffer {
  out.writeUInt32LE(identity >>> 0, offset);
  out.writeUInt32LE(flags >>> 0, offset + 4);
  out.writeUInt32LE(ifindex >>> 0, offset + 8);
  return out;
}

export function decodeIpcacheValue(b: Buffer, offset = 0): number {
  return b.readUInt32LE(offset);
}

export function decodeIpcacheFlags(b: Buffer, offset = 0): number {
  return b.readUInt32LE(offset + 4);
}

export function decodeIpcacheIfindex(b: Buffer, offset = 0): number {
  return b.readUInt32LE(offset + 8);
}

/** Flag names as `bpf ipcache list` prints them. */
export function formatIpcacheFlags(flags: number): string {
  const names: string[] = [];
  if (flags & IpcacheFlags.localEndpoint) names.push('localendpoint');
  const rest = flags & ~IpcacheFlags.localEndpoint;
  if (rest) names.push(`0x${rest.toString(16)}`);
  return names.length ? names.join(',') : '<none>';
}
