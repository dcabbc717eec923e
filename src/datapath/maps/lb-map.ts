// Layout: the struct mbr_lb4_* and mbr_lb_config of bpf/include/membrane/maps.h (maps
// mbr_lb4_services, mbr_lb4_backends, mbr_lb4_reverse_nat, mbr_lb4_affinity, mbr_lb4_ct,
// mbr_lb4_reverse_sk, mbr_lb_config, mbr_lb4_maglev). Addresses and ports network order; slots,
// IDs, counts, flags, timeouts and cookies host order. Backend and service IDs are the maps' u32
// keys (host order).
import type { LbBackend, LbFrontendKey, LbServiceKey, LbServiceValue } from '../../lb/lb-table.js';
import type { StructLayout } from '../layout.js';
import { ipv4ToNetworkU32, u32ToIpv4 } from '../layout.js';

export const LB4_KEY: StructLayout = {
  struct: 'mbr_lb4_key',
  size: 12,
  fields: { address: 0, dport: 4, backend_slot: 6, proto: 8, pad: 9 },
};
export const LB4_SERVICE: StructLayout = {
  struct: 'mbr_lb4_service',
  size: 16,
  fields: { backend_id: 0, affinity_timeout: 4, count: 8, rev_nat_index: 10, flags: 12, algorithm: 13, pad: 14 },
};
export const LB4_BACKEND: StructLayout = {
  struct: 'mbr_lb4_backend',
  size: 8,
  fields: { address: 0, port: 4, proto: 6, flags: 7 },
};
export const LB4_REVERSE_NAT: StructLayout = {
  struct: 'mbr_lb4_reverse_nat',
  size: 8,
  fields: { address: 0, port: 4, pad: 6 },
};
export const LB4_AFFINITY_KEY: StructLayout = {
  struct: 'mbr_lb4_affinity_key',
  size: 16,
  fields: { client_id: 0, rev_nat_index: 8, netns_cookie: 12, pad: 13 },
};
export const LB4_AFFINITY_VALUE: StructLayout = {
  struct: 'mbr_lb4_affinity_value',
  size: 8,
  fields: { backend_id: 0, last_used: 4 },
};
export const LB4_CT_ENTRY: StructLayout = {
  struct: 'mbr_lb4_ct_entry',
  size: 16,
  fields: { backend_id: 0, client_addr: 4, rev_nat_index: 8, client_port: 10, flags: 12, pad: 13 },
};
export const LB4_SOCK_KEY: StructLayout = {
  struct: 'mbr_lb4_sock_key',
  size: 16,
  fields: { cookie: 0, address: 8, port: 12, pad: 14 },
};
export const LB4_SOCK_VALUE: StructLayout = {
  struct: 'mbr_lb4_sock_value',
  size: 8,
  fields: { address: 0, port: 4, rev_nat_index: 6 },
};
export const LB_CONFIG: StructLayout = {
  struct: 'mbr_lb_config',
  size: 16,
  fields: { netns_cookie: 0, node_addr: 8, maglev_size: 12 },
};

export const LbBackendFlags = { terminating: 0x01 } as const;
export const LbCtFlags = { reverse: 0x01, snat: 0x02 } as const;

export interface LbConfig {
  /** The node's network namespace cookie: socket LB acts there only (0: nowhere). */
  readonly netnsCookie: number;
  /** The node's underlay address ('' = none: NodePort to a remote backend is not translated). */
  readonly nodeAddr: string;
  readonly maglevSize: number;
}

export interface LbCtEntry {
  readonly backendId: number;
  readonly clientAddr: string;
  readonly revNatIndex: number;
  readonly clientPort: number;
  readonly flags: number;
}

export function encodeLbKey(k: LbServiceKey, out: Buffer = Buffer.alloc(12), offset = 0): Buffer {
  out.fill(0, offset, offset + 12);
  out.writeUInt32BE(ipv4ToNetworkU32(k.address), offset);
  out.writeUInt16BE(k.port, offset + 4);
  out.writeUInt16LE(k.slot, offset + 6);
  out.writeUInt8(k.protocol, offset + 8);
  return out;
}

export function decodeLbKey(b: Buffer, offset = 0): LbServiceKey {
  return {
    address: u32ToIpv4(b.readUInt32BE(offset)),
    port: b.readUInt16BE(offset + 4),
    slot: b.readUInt16LE(offset + 6),
    protocol: b.readUInt8(offset + 8),
  };
}

export function encodeLbService(v: LbServiceValue, out: Buffer = Buffer.alloc(16), offset = 0): Buffer {
  out.fill(0, offset, offset + 16);
  out.writeUInt32LE(v.backendId, offset);
  out.writeUInt32LE(v.affinityTimeoutSeconds, offset + 4);
  out.writeUInt16LE(v.count, offset + 8);
  out.writeUInt16LE(v.revNatIndex, offset + 10);
  out.writeUInt8(v.flags, offset + 12);
  out.writeUInt8(v.algorithm, offset + 13);
  return out;
}

export function decodeLbService(b: Buffer, offset = 0): LbServiceValue {
  return {
    backendId: b.readUInt32LE(offset),
    affinityTimeoutSeconds: b.readUInt32LE(offset + 4),
    count: b.readUInt16LE(offset + 8),
    revNatIndex: b.readUInt16LE(offset + 10),
    flags: b.readUInt8(offset + 12),
    algorithm: b.readUInt8(offset + 13),
  };
}

export function encodeLbBackend(v: LbBackend, out: Buffer = Buffer.alloc(8), offset = 0): Buffer {
  out.writeUInt32BE(ipv4ToNetworkU32(v.address), offset);
  out.writeUInt16BE(v.port, offset + 4);
  out.writeUInt8(v.protocol, offset + 6);
  out.writeUInt8(v.isTerminating ? LbBackendFlags.terminating : 0, offset + 7);
  return out;
}

export function decodeLbBackend(b: Buffer, offset = 0): LbBackend {
  return {
    address: u32ToIpv4(b.readUInt32BE(offset)),
    port: b.readUInt16BE(offset + 4),
    protocol: b.readUInt8(offset + 6),
    isTerminating: (b.readUInt8(offset + 7) & LbBackendFlags.terminating) !== 0,
  };
}

export function encodeLbReverseNat(v: LbFrontendKey, out: Buffer = Buffer.alloc(8), offset = 0): Buffer {
  out.fill(0, offset, offset + 8);
  out.writeUInt32BE(ipv4ToNetworkU32(v.address), offset);
  out.writeUInt16BE(v.port, offset + 4);
  return out;
}

/** The reverse-NAT entry holds no protocol: the caller knows it from the service. */
export function decodeLbReverseNat(b: Buffer, offset = 0): { address: string; port: number } {
  return { address: u32ToIpv4(b.readUInt32BE(offset)), port: b.readUInt16BE(offset + 4) };
}

export function encodeLbId(id: number, out: Buffer = Buffer.alloc(4), offset = 0): Buffer {
  out.writeUInt32LE(id, offset);
  return out;
}

export function encodeLbConfig(c: LbConfig): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(c.netnsCookie), 0);
  b.writeUInt32BE(c.nodeAddr ? ipv4ToNetworkU32(c.nodeAddr) : 0, 8);
  b.writeUInt32LE(c.maglevSize, 12);
  return b;
}

export function decodeLbConfig(b: Buffer): LbConfig {
  const addr = b.readUInt32BE(8);
  return {
    netnsCookie: Number(b.readBigUInt64LE(0)),
    nodeAddr: addr ? u32ToIpv4(addr) : '',
    maglevSize: b.readUInt32LE(12),
  };
}

export function decodeLbCtEntry(b: Buffer, offset = 0): LbCtEntry {
  const addr = b.readUInt32BE(offset + 4);
  return {
    backendId: b.readUInt32LE(offset),
    clientAddr: addr ? u32ToIpv4(addr) : '',
    revNatIndex: b.readUInt16LE(offset + 8),
    clientPort: b.readUInt16BE(offset + 10),
    flags: b.readUInt8(offset + 12),
  };
}

export function encodeLbCtEntry(e: LbCtEntry): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(e.backendId, 0);
  b.writeUInt32BE(e.clientAddr ? ipv4ToNetworkU32(e.clientAddr) : 0, 4);
  b.writeUInt16LE(e.revNatIndex, 8);
  b.writeUInt16BE(e.clientPort, 10);
  b.writeUInt8(e.flags, 12);
  return b;
}

/** A Maglev table as the inner array map holds it: cell i -> backend ID, u32 host order. */
export function encodeMaglevValues(table: Uint32Array): Buffer {
  const b = Buffer.alloc(table.length * 4);
  for (let i = 0; i < table.length; i++) b.writeUInt32LE(table[i], i * 4);
  return b;
}
