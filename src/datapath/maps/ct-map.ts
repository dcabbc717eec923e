// Layout: struct mbr_ct_key / mbr_ct_entry in bpf/include/membrane/maps.h (map mbr_ct4, LRU hash).
// Addresses network order; ports, counters and times host order. lifetime is CLOCK_MONOTONIC seconds.
import type { StructLayout } from '../layout.js';
import { ipv4ToNetworkU32, u32ToIpv4 } from '../layout.js';

export const CT_KEY: StructLayout = {
  struct: 'mbr_ct_key',
  size: 16,
  fields: { saddr: 0, daddr: 4, sport: 8, dport: 10, protocol: 12, dir: 13, pad: 14 },
};
export const CT_ENTRY: StructLayout = {
  struct: 'mbr_ct_entry',
  size: 64,
  fields: {
    tx_packets: 0,
    tx_bytes: 8,
    rx_packets: 16,
    rx_bytes: 24,
    lifetime: 32,
    src_sec_id: 36,
    policy_revision: 40,
    flags: 44,
    tx_flags_seen: 46,
    rx_flags_seen: 47,
    proxy_port: 48,
    pad0: 50,
    last_tx_report: 52,
    last_rx_report: 56,
    peer_ifindex: 60,
  },
};

export const CtFlags = {
  rxClosing: 0x01,
  txClosing: 0x02,
  seenNonSyn: 0x04,
  proxyRedirect: 0x08,
  seenReply: 0x10,
  /** The remote end is an endpoint of this node. */
  remoteLocal: 0x20,
} as const;

export interface CtKey {
  readonly saddr: string;
  readonly daddr: string;
  readonly sport: number;
  readonly dport: number;
  readonly protocol: number;
  readonly direction: 'ingress' | 'egress';
}

export interface CtEntry {
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
  /** CLOCK_MONOTONIC second at which the entry expires. */
  readonly lifetime: number;
  readonly sourceSecurityId: number;
  readonly policyRevision: number;
  readonly flags: number;
  readonly txFlagsSeen: number;
  readonly rxFlagsSeen: number;
  readonly proxyPort: number;
  /** CLOCK_MONOTONIC second of the last trace event per direction (0 = never). */
  readonly lastTxReport: number;
  readonly lastRxReport: number;
  /** The remote endpoint's host-side veth when it is on this node (local delivery), else 0. */
  readonly peerIfindex: number;
}

export function encodeCtKey(k: CtKey, out: Buffer = Buffer.alloc(16), offset = 0): Buffer {
  out.writeUInt32BE(ipv4ToNetworkU32(k.saddr), offset);
  out.writeUInt32BE(ipv4ToNetworkU32(k.daddr), offset + 4);
  out.writeUInt16LE(k.sport, offset + 8);
  out.writeUInt16LE(k.dport, offset + 10);
  out.writeUInt8(k.protocol, offset + 12);
  out.writeUInt8(k.direction === 'egress' ? 1 : 0, offset + 13);
  out.writeUInt16LE(0, offset + 14);
  return out;
}

export function decodeCtKey(b: Buffer, offset = 0): CtKey {
  return {
    saddr: u32ToIpv4(b.readUInt32BE(offset)),
    daddr: u32ToIpv4(b.readUInt32BE(offset + 4)),
    sport: b.readUInt16LE(offset + 8),
    dport: b.readUInt16LE(offset + 10),
    protocol: b.readUInt8(offset + 12),
    direction: b.readUInt8(offset + 13) === 1 ? 'egress' : 'ingress',
  };
}

export function encodeCtEntry(e: CtEntry, out: Buffer = Buffer.alloc(64), offset = 0): Buffer {
  out.fill(0, offset, offset + 64);
  out.writeBigUInt64LE(BigInt(e.txPackets), offset);
  out.writeBigUInt64LE(BigInt(e.txBytes), offset + 8);
  out.writeBigUInt64LE(BigInt(e.rxPackets), offset + 16);
  out.writeBigUInt64LE(BigInt(e.rxBytes), offset + 24);
  out.writeUInt32LE(e.lifetime, offset + 32);
  out.writeUInt32LE(e.sourceSecurityId, offset + 36);
  out.writeUInt32LE(e.policyRevision, offset + 40);
  out.writeUInt16LE(e.flags, offset + 44);
  out.writeUInt8(e.txFlagsSeen, offset + 46);
  out.writeUInt8(e.rxFlagsSeen, offset + 47);
  out.writeUInt16LE(e.proxyPort, offset + 48);
  out.writeUInt32LE(e.lastTxReport, offset + 52);
  out.writeUInt32LE(e.lastRxReport, offset + 56);
  out.writeUInt32LE(e.peerIfindex, offset + 60);
  return out;
}

export function decodeCtEntry(b: Buffer, offset = 0): CtEntry {
  const u64 = (o: number) => b.readUInt32LE(offset + o) + b.readUInt32LE(offset + o + 4) * 2 ** 32;
  return {
    txPackets: u64(0),
    txBytes: u64(8),
    rxPackets: u64(16),
    rxBytes: u64(24),
    lifetime: b.readUInt32LE(offset + 32),
    sourceSecurityId: b.readUInt32LE(offset + 36),
    policyRevision: b.readUInt32LE(offset + 40),
    flags: b.readUInt16LE(offset + 44),
    txFlagsSeen: b.readUInt8(offset + 46),
    rxFlagsSeen: b.readUInt8(offset + 47),
    proxyPort: b.readUInt16LE(offset + 48),
    lastTxReport: b.readUInt32LE(offset + 52),
    lastRxReport: b.readUInt32LE(offset + 56),
    peerIfindex: b.readUInt32LE(offset + 60),
  };
}
