// Layout: struct mbr_endpoint_info in bpf/include/membrane/maps.h (map mbr_endpoints, hash keyed by
// the host-side veth's ifindex as a host-order u32). ipv4 network order, MACs as on the wire, the
// rest host order.
import { DatapathError } from '../datapath-error.js';
import type { StructLayout } from '../layout.js';
import { ipv4ToNetworkU32, u32ToIpv4 } from '../layout.js';

export const ENDPOINT_INFO: StructLayout = {
  struct: 'mbr_endpoint_info',
  size: 32,
  fields: { endpoint_id: 0, identity: 4, ipv4: 8, flags: 12, policy_revision: 16, pod_mac: 20, host_mac: 26 },
};

export const EndpointFlags = {
  audit: 0x01,
  noEnforceIngress: 0x02,
  noEnforceEgress: 0x04,
  legacyTc: 0x08,
  /** Both MACs known: traffic between two such endpoints skips the node's IP stack. */
  localDelivery: 0x10,
  /** The programs read the endpoint's policy from slot B (mbr_policy key endpointId << 1 | 1). */
  policySlotB: 0x20,
} as const;

export interface EndpointInfo {
  readonly endpointId: number;
  readonly identity: number;
  readonly ipv4: string;
  readonly flags: number;
  readonly policyRevision: number;
  /** The pod's eth0 MAC, "aa:bb:cc:dd:ee:ff"; absent (all zero) when not known. */
  readonly podMac?: string;
  /** The host-side veth's MAC. */
  readonly hostMac?: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Checks "aa:bb:cc:dd:ee:ff"; what names the value in the error. */
export function parseMac(text: string, what: string): Buffer {
  if (!MAC.test(text))
    throw new DatapathError(
      'MBR_DATAPATH_BAD_INPUT',
      `${what}: expected a MAC address aa:bb:cc:dd:ee:ff, got "${text}"`,
    );
  return Buffer.from(text.replaceAll(':', ''), 'hex');
}

function formatMac(b: Buffer, offset: number): string | undefined {
  const m = b.subarray(offset, offset + 6);
  if (m.every((x) => x === 0)) return undefined;
  return [...m].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function encodeIfindexKey(ifindex: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(ifindex);
  return b;
}

export function encodeEndpointInfo(e: EndpointInfo, out: Buffer = Buffer.alloc(32), offset = 0): Buffer {
  out.fill(0, offset, offset + 32);
  out.writeUInt32LE(e.endpointId, offset);
  out.writeUInt32LE(e.identity, offset + 4);
  out.writeUInt32BE(ipv4ToNetworkU32(e.ipv4), offset + 8);
  out.writeUInt32LE(e.flags, offset + 12);
  out.writeUInt32LE(e.policyRevision >>> 0, offset + 16);
  if (e.podMac) parseMac(e.podMac, 'pod MAC').copy(out, offset + 20);
  if (e.hostMac) parseMac(e.hostMac, 'host MAC').copy(out, offset + 26);
  return out;
}

export function decodeEndpointInfo(b: Buffer, offset = 0): EndpointInfo {
  const podMac = formatMac(b, offset + 20);
  const hostMac = formatMac(b, offset + 26);
  return {
    endpointId: b.readUInt32LE(offset),
    identity: b.readUInt32LE(offset + 4),
    ipv4: u32ToIpv4(b.readUInt32BE(offset + 8)),
    flags: b.readUInt32LE(offset + 12),
    policyRevision: b.readUInt32LE(offset + 16),
    ...(podMac ? { podMac } : {}),
    ...(hostMac ? { hostMac } : {}),
  };
}
