// Layout: struct mbr_auth_key / mbr_auth_value in bpf/include/membrane/maps.h (map mbr_auth, hash).
// Host order; expiry_ns is CLOCK_MONOTONIC nanoseconds.
import type { StructLayout } from '../layout.js';

export const AUTH_KEY: StructLayout = {
  struct: 'mbr_auth_key',
  size: 12,
  fields: { local_identity: 0, remote_identity: 4, auth_type: 8, pad: 9 },
};
export const AUTH_VALUE: StructLayout = { struct: 'mbr_auth_value', size: 8, fields: { expiry_ns: 0 } };

export interface AuthKey {
  readonly localIdentity: number;
  readonly remoteIdentity: number;
  readonly authType: number;
}

export function encodeAuthKey(k: AuthKey): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(k.localIdentity);
  b.writeUInt32LE(k.remoteIdentity, 4);
  b.writeUInt8(k.authType, 8);
  return b;
}

export function encodeAuthValue(expiryMonoNs: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(expiryMonoNs);
  return b;
}
