// Layout: struct mbr_policy_key / mbr_policy_entry in bpf/include/membrane/maps.h (one LPM trie per
// endpoint, reached through mbr_policy). dport is network order; identity, proxy_port host order.
// prefixlen counts key bits after itself: identity 32 + egress 8, then protocol 8 and port bits only
// when the protocol is not "any" -- the same wildcards as PolicyKey in src/policy/map-state-types.ts.
import type { PolicyEntry, PolicyKey, TrafficDirection } from '../../policy/map-state-types.js';
import { DatapathError } from '../datapath-error.js';
import type { StructLayout } from '../layout.js';

export const POLICY_KEY: StructLayout = {
  struct: 'mbr_policy_key',
  size: 12,
  fields: { prefixlen: 0, identity: 4, egress: 8, protocol: 9, dport: 10 },
};
export const POLICY_ENTRY: StructLayout = {
  struct: 'mbr_policy_entry',
  size: 8,
  fields: { proxy_port: 0, flags: 2, auth_type: 3, l4_prefix_len: 4, pad: 5 },
};

export const POLICY_F_DENY = 0x01;

/** What the datapath stores for a key (the entry's attribution stays in user space). */
export interface PolicyMapValue {
  readonly isDeny: boolean;
  readonly proxyPort: number;
  readonly authType: number;
  /** Protocol bits + port bits of the key: 0 (any protocol), 8 (any port), 8 + portPrefixLen. */
  readonly l4PrefixLen: number;
}

/**
 * Throws MBR_DATAPATH_BAD_INPUT for a key the BPF layout cannot hold. `at` names the key in the
 * message (`policy diff adds[3].key`): the caller says where the key came from.
 */
export function validatePolicyKey(k: PolicyKey, at = 'policy key'): void {
  const bad = (path: string, expected: string, got: unknown) => {
    throw new DatapathError(
      'MBR_DATAPATH_BAD_INPUT',
      `${at}.${path}: expected ${expected}, got ${JSON.stringify(got)}`,
    );
  };
  if (!Number.isInteger(k.identity) || k.identity < 0 || k.identity > 0xffffffff)
    bad('identity', 'an integer 0-4294967295', k.identity);
  if (k.direction !== 'ingress' && k.direction !== 'egress') bad('direction', '"ingress" or "egress"', k.direction);
  if (!Number.isInteger(k.protocol) || k.protocol < 0 || k.protocol > 255)
    bad('protocol', 'an IP protocol number 0-255', k.protocol);
  if (!Number.isInteger(k.portPrefixLen) || k.portPrefixLen < 0 || k.portPrefixLen > 16)
    bad('portPrefixLen', 'an integer 0-16', k.portPrefixLen);
  if (!Number.isInteger(k.port) || k.port < 0 || k.port > 65535) bad('port', 'a port 0-65535', k.port);
  if (k.protocol === 0 && (k.port !== 0 || k.portPrefixLen !== 0))
    bad('port', 'port 0 with portPrefixLen 0 when protocol is 0 (any)', `${k.port}/${k.portPrefixLen}`);
}

export function l4PrefixLenOf(k: PolicyKey): number {
  return k.protocol === 0 ? 0 : 8 + k.portPrefixLen;
}

export function encodePolicyKey(k: PolicyKey, out: Buffer = Buffer.alloc(12), offset = 0): Buffer {
  const l4 = l4PrefixLenOf(k);
  const mask = k.portPrefixLen === 0 ? 0 : (0xffff << (16 - k.portPrefixLen)) & 0xffff;
  out.writeUInt32LE(40 + l4, offset);
  out.writeUInt32LE(k.identity >>> 0, offset + 4);
  out.writeUInt8(k.direction === 'egress' ? 1 : 0, offset + 8);
  out.writeUInt8(k.protocol, offset + 9);
  out.writeUInt16BE(k.port & mask, offset + 10);
  return out;
}

export function decodePolicyKey(b: Buffer, offset = 0): PolicyKey {
  const prefixlen = b.readUInt32LE(offset);
  const protocol = prefixlen > 40 ? b.readUInt8(offset + 9) : 0;
  const portPrefixLen = Math.max(0, prefixlen - 48);
  const direction: TrafficDirection = b.readUInt8(offset + 8) === 1 ? 'egress' : 'ingress';
  return {
    identity: b.readUInt32LE(offset + 4),
    direction,
    protocol,
    port: portPrefixLen === 0 ? 0 : b.readUInt16BE(offset + 10),
    portPrefixLen,
  };
}

export function encodePolicyEntry(
  e: Pick<PolicyEntry, 'isDeny' | 'proxyPort' | 'authType'>,
  key: PolicyKey,
  out: Buffer = Buffer.alloc(8),
  offset = 0,
): Buffer {
  out.writeUInt16LE(e.isDeny ? 0 : e.proxyPort, offset);
  out.writeUInt8(e.isDeny ? POLICY_F_DENY : 0, offset + 2);
  out.writeUInt8(e.authType, offset + 3);
  out.writeUInt8(l4PrefixLenOf(key), offset + 4);
  out.fill(0, offset + 5, offset + 8);
  return out;
}

export function decodePolicyEntry(b: Buffer, offset = 0): PolicyMapValue {
  return {
    proxyPort: b.readUInt16LE(offset),
    isDeny: (b.readUInt8(offset + 2) & POLICY_F_DENY) !== 0,
    authType: b.readUInt8(offset + 3),
    l4PrefixLen: b.readUInt8(offset + 4),
  };
}

/** A key as one value for indexing user-space state: identity, then direction/protocol/prefix/port bits. */
export type PolicyKeyId = number | string;

export function policyKeyId(k: PolicyKey): PolicyKeyId {
  const mask = k.portPrefixLen === 0 ? 0 : (0xffff << (16 - k.portPrefixLen)) & 0xffff;
  const rest =
    (k.direction === 'egress' ? 1 << 29 : 0) + k.protocol * (1 << 21) + k.portPrefixLen * (1 << 16) + (k.port & mask);
  // A number while it is a safe integer (identities below 2^23: reserved and cluster-wide ones), a
  // string above (local CIDR identities from 2^24): a 100k-entry change builds no 100k strings.
  return k.identity < 0x800000 ? k.identity * 0x40000000 + rest : `${k.identity}/${rest}`;
}
