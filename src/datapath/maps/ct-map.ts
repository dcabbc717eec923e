// Layout: struct mbr_ct_key / mbr_ct_entry in bpf/include/membrane/maps.h (map mbr_ct4, LRU hash).
// Addresses network order; ports, counters and times host order. lifetime is CLOCK_MONOTONIC seconds.
// The key holds the flow as its endpoint sees it (own address and port first) and the entry the
// direction it was opened in; CtKey here is the flow as opened (saddr -> daddr, direction), which is
// what `bpf ct list` prints: encodeCtKey orients it, decodeCtKey turns it back with the entry's dir.
import type { StructLayout } from '../layout.js';
import { ipv4ToNetworkU32, u32ToIpv4 } from '../layout.js';

export const CT_KEY: StructLayout = {
  struct: 'mbr_ct_key',
  size: 16,
  fields: { local_addr: 0, remote_addr: 4, local_port: 8, remote_port: 10, protocol: 12, pad: 13 },
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
    dir: 50,
    pad0: 51,
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

/** A flow as opened: the opening packet's tuple and the direction it took at the endpoint. */
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

/** The key bytes: for an egress flow the endpoint is the source, for an ingress flow the destination. */
export function encodeCtKey(k: CtKey, out: Buffer = Buffer.alloc(16), offset = 0): Buffer {
  const egress = k.direction === 'egress';
  out.writeUInt32BE(ipv4ToNetworkU32(egress ? k.saddr : k.daddr), offset);
  out.writeUInt32BE(ipv4ToNetworkU32(egress ? k.daddr : k.saddr), offset + 4);
  out.writeUInt16LE(egress ? k.sport : k.dport, offset + 8);
  out.writeUInt16LE(egress ? k.dport : k.sport, offset + 10);
  out.writeUInt8(k.protocol, offset + 12);
  out.fill(0, offset + 13, offset + 16);
  return out;
}

/** The flow of a key, given the direction its entry says it was opened in. */
export function decodeCtKey(b: Buffer, direction: CtKey['direction'], offset = 0): CtKey {
  const local = u32ToIpv4(b.readUInt32BE(offset));
  const remote = u32ToIpv4(b.readUInt32BE(offset + 4));
  const lport = b.readUInt16LE(offset + 8);
  const rport = b.readUInt16LE(offset + 10);
  const protocol = b.readUInt8(offset + 12);
  return direction === 'egress'
    ? { saddr: local, daddr: remote, sport: lport, dport: rport, protocol, direction }
    : { saddr: remote, daddr: local, sport: rport, dport: lport, protocol, direction };
}

/** One mbr_ct4 entry as the flow it tracks. */
export function decodeCt(k: Buffer, v: Buffer): { key: CtKey; entry: CtEntry } {
  return { key: decodeCtKey(k, ctEntryDirection(v)), entry: decodeCtEntry(v) };
}

function ctEntryDirection(v: Buffer, offset = 0): CtKey['direction'] {
  return v.readUInt8(offset + 50) === 1 ? 'egress' : 'ingress';
}

/** The entry bytes of a flow opened in `direction`. */
export function encodeCtEntry(
  e: CtEntry,
  direction: CtKey['direction'],
  out: Buffer = Buffer.alloc(64),
  offset = 0,
): Buffer {
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
  out.writeUInt8(direction === 'egress' ? 1 : 0, offset + 50);
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
