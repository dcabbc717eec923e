// Layout: struct mbr_event in bpf/include/membrane/maps.h, as framed by the native ring pump:
// [u32 len][record][pad to 8]. Addresses network order, everything else host order. Decodes into
// the DatapathEvent contract of event-types.ts.
import { type DatapathEvent, EventKind } from './event-types.js';
import type { StructLayout } from './layout.js';

export const EVENT: StructLayout = {
  struct: 'mbr_event',
  size: 56,
  fields: {
    type: 0,
    subtype: 1,
    flags: 2,
    endpoint_id: 4,
    mono_ns: 8,
    ifindex: 16,
    src_identity: 20,
    dst_identity: 24,
    saddr: 28,
    daddr: 32,
    sport: 36,
    dport: 38,
    protocol: 40,
    tcp_flags: 41,
    icmp_type: 42,
    icmp_code: 43,
    length: 44,
    verdict: 48,
    ct_state: 52,
    auth_type: 53,
    pad: 54,
  },
};

const F_EGRESS = 0x01;
const F_REPLY = 0x02;
const F_AUDIT = 0x04;

/** Decodes one record; undefined for a kind this build does not know (skipped, not fatal). */
export function decodeEvent(b: Buffer, o = 0): DatapathEvent | undefined {
  const type = b.readUInt8(o);
  const subtype = b.readUInt8(o + 1);
  const flags = b.readUInt16LE(o + 2);
  switch (type) {
    case EventKind.drop:
      return {
        kind: EventKind.drop,
        reason: subtype,
        direction: flags & F_EGRESS ? 'egress' : 'ingress',
        ...common(b, o, flags),
      };
    case EventKind.trace:
      return {
        kind: EventKind.trace,
        observationPoint: subtype,
        ctState: b.readUInt8(o + 52),
        ...common(b, o, flags),
      };
    case EventKind.policyVerdict:
      return {
        kind: EventKind.policyVerdict,
        direction: flags & F_EGRESS ? 'egress' : 'ingress',
        matchType: subtype,
        verdict: b.readInt32LE(o + 48),
        isAudit: (flags & F_AUDIT) !== 0,
        authType: b.readUInt8(o + 53),
        ...common(b, o, flags),
      };
    default:
      return undefined;
  }
}

/** Decodes a batch framed by the ring pump ([u32 len][record][pad8] x count). */
export function decodeEventBatch(buf: Buffer, count: number, out: DatapathEvent[] = []): DatapathEvent[] {
  let off = 0;
  for (let i = 0; i < count && off + 4 <= buf.length; i++) {
    const len = buf.readUInt32LE(off);
    if (len >= EVENT.size) {
      const e = decodeEvent(buf, off + 4);
      if (e) out.push(e);
    }
    off += 4 + ((len + 7) & ~7);
  }
  return out;
}

function common(b: Buffer, o: number, flags: number) {
  return {
    monoNs: b.readUInt32LE(o + 8) + b.readUInt32LE(o + 12) * 2 ** 32,
    endpointId: b.readUInt32LE(o + 4),
    ifindex: b.readUInt32LE(o + 16),
    srcIdentity: b.readUInt32LE(o + 20),
    dstIdentity: b.readUInt32LE(o + 24),
    ipVersion: 4 as const,
    srcIp: ipv4At(b, o + 28),
    dstIp: ipv4At(b, o + 32),
    protocol: b[o + 40] as number,
    srcPort: b.readUInt16LE(o + 36),
    dstPort: b.readUInt16LE(o + 38),
    tcpFlags: b[o + 41] as number,
    icmpType: b[o + 42] as number,
    icmpCode: b[o + 43] as number,
    length: b.readUInt32LE(o + 44),
    isReply: (flags & F_REPLY) !== 0,
  };
}

function ipv4At(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}
