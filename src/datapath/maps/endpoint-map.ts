// Layout: struct mbr_endpoint_info in bpf/include/membrane/maps.h (map mbr_endpoints, hash keyed by
// the host-side veth's ifindex as a host-order u32). ipv4 network order, the rest host order.
import type { StructLayout } from '../layout.js';
import { ipv4ToNetworkU32, u32ToIpv4 } from '../layout.js';

export const ENDPOINT_INFO: StructLayout = {
  struct: 'mbr_endpoint_info',
  size: 24,
  fields: { endpoint_id: 0, identity: 4, ipv4: 8, flags: 12, policy_revision: 16, pad: 20 },
};

export const EndpointFlags = { audit: 0x01, noEnforceIngress: 0x02, noEnforceEgress: 0x04, legacyTc: 0x08 } as const;

export interface EndpointInfo {
  readonly endpointId: number;
  readonly identity: number;
  readonly ipv4: string;
  readonly flags: number;
  readonly policyRevision: number;
}

export function encodeIfindexKey(ifindex: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(ifindex);
  return b;
}

export function encodeEndpointInfo(e: EndpointInfo, out: Buffer = Buffer.alloc(24), offset = 0): Buffer {
  out.writeUInt32LE(e.endpointId, offset);
  out.writeUInt32LE(e.identity, offset + 4);
  out.writeUInt32BE(ipv4ToNetworkU32(e.ipv4), offset + 8);
  out.writeUInt32LE(e.flags, offset + 12);
  out.writeUInt32LE(e.policyRevision >>> 0, offset + 16);
  out.writeUInt32LE(0, offset + 20);
  return out;
}

export function decodeEndpointInfo(b: Buffer, offset = 0): EndpointInfo {
  return {
    endpointId: b.readUInt32LE(offset),
    identity: b.readUInt32LE(offset + 4),
    ipv4: u32ToIpv4(b.readUInt32BE(offset + 8)),
    flags: b.readUInt32LE(offset + 12),
    policyRevision: b.readUInt32LE(offset + 16),
  };
}
