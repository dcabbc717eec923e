// The shape of one C struct from bpf/include/membrane/maps.h as a codec mirrors it: the struct's
// name, its size and each field's byte offset. test/datapath/codec-layout.test.ts compares every
// StructLayout with the BTF of the compiled object.
export interface StructLayout {
  readonly struct: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, number>>;
}

export function ipv4ToNetworkU32(ip: string, what = 'IPv4 address'): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new TypeError(`${what}: expected a dotted IPv4 address, got ${JSON.stringify(ip)}`);
  return ((Number(parts[0]) << 24) | (Number(parts[1]) << 16) | (Number(parts[2]) << 8) | Number(parts[3])) >>> 0;
}

export function u32ToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
