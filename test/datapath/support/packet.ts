// Crafted Ethernet/IPv4 frames for BPF_PROG_TEST_RUN. Checksums are left 0: the programs only read.
import { ipv4ToNetworkU32 } from '../../../src/datapath/layout.js';

export const TCP_FLAGS = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;

export interface Ipv4Opts {
  readonly src: string;
  readonly dst: string;
  readonly fragOffset?: number;
}

export function tcpPacket(o: Ipv4Opts & { sport: number; dport: number; flags: number; payload?: number }): Buffer {
  const l4 = Buffer.alloc(20 + (o.payload ?? 0));
  l4.writeUInt16BE(o.sport, 0);
  l4.writeUInt16BE(o.dport, 2);
  l4.writeUInt8(5 << 4, 12);
  l4.writeUInt8(o.flags, 13);
  l4.writeUInt16BE(65535, 14);
  return frame(o, 6, l4);
}

export function udpPacket(o: Ipv4Opts & { sport: number; dport: number; payload?: number }): Buffer {
  const l4 = Buffer.alloc(8 + (o.payload ?? 0));
  l4.writeUInt16BE(o.sport, 0);
  l4.writeUInt16BE(o.dport, 2);
  l4.writeUInt16BE(l4.length, 4);
  return frame(o, 17, l4);
}

export function icmpEcho(o: Ipv4Opts & { type: 0 | 8; id: number }): Buffer {
  const l4 = Buffer.alloc(8 + 56);
  l4.writeUInt8(o.type, 0);
  l4.writeUInt16BE(o.id, 4);
  l4.writeUInt16BE(1, 6);
  return frame(o, 1, l4);
}

/** An ICMP error (type 3 code 3 = port unreachable) quoting `inner` (an IPv4 frame built here). */
export function icmpError(o: Ipv4Opts & { inner: Buffer }): Buffer {
  const quoted = o.inner.subarray(14, 14 + 28);
  const l4 = Buffer.concat([Buffer.from([3, 3, 0, 0, 0, 0, 0, 0]), quoted]);
  return frame(o, 1, l4);
}

/** Cuts a frame to `len` bytes (a truncated header). */
export function truncate(p: Buffer, len: number): Buffer {
  return Buffer.from(p.subarray(0, len));
}

/** An IPv6 ICMPv6 router solicitation (fe80::1 -> ff02::2), what a pod's kernel sends on link up. */
export function ipv6RouterSolicitation(): Buffer {
  const eth = ethernet([0x33, 0x33, 0, 0, 0, 0x02], 0x86dd);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(8, 4);
  ip6.writeUInt8(58, 6);
  ip6.writeUInt8(255, 7);
  ip6.set([0xfe, 0x80], 8);
  ip6.writeUInt8(1, 23);
  ip6.set([0xff, 0x02], 24);
  ip6.writeUInt8(2, 39);
  const icmp6 = Buffer.from([133, 0, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([eth, ip6, icmp6]);
}

export function arpPacket(): Buffer {
  const b = Buffer.alloc(14 + 28);
  b.fill(0xff, 0, 6);
  b.writeUInt16BE(0x0806, 12);
  return b;
}

/** An Ethernet header from the pod's MAC (02:00:00:00:00:01) to `dst`. */
function ethernet(dst: readonly number[], etherType: number): Buffer {
  const eth = Buffer.alloc(14);
  eth.set(dst, 0);
  eth.set([0x02, 0, 0, 0, 0, 0x01], 6);
  eth.writeUInt16BE(etherType, 12);
  return eth;
}

function frame(o: Ipv4Opts, protocol: number, l4: Buffer): Buffer {
  const eth = ethernet([0x02, 0, 0, 0, 0, 0x02], 0x0800);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + l4.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip.writeUInt16BE((o.fragOffset ?? 0) & 0x1fff, 6);
  ip.writeUInt8(64, 8);
  ip.writeUInt8(protocol, 9);
  ip.writeUInt32BE(ipv4ToNetworkU32(o.src), 12);
  ip.writeUInt32BE(ipv4ToNetworkU32(o.dst), 16);
  return Buffer.concat([eth, ip, l4]);
}

/** The frame with a correct IPv4 header checksum (programs that rewrite the header must keep it so). */
export function withIpChecksum(p: Buffer): Buffer {
  const b = Buffer.from(p);
  b.writeUInt16BE(0, 14 + 10);
  b.writeUInt16BE(~ipHeaderSum(b) & 0xffff, 14 + 10);
  return b;
}

/** Whether the frame's IPv4 header checksum is right. */
export function ipChecksumValid(p: Buffer): boolean {
  return ipHeaderSum(p) === 0xffff;
}

function ipHeaderSum(b: Buffer): number {
  let sum = 0;
  for (let o = 14; o < 14 + (b[14] & 0x0f) * 4; o += 2) sum += b.readUInt16BE(o);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
