// The shape of one C struct from bpf/include/membrane/maps.h as a codec mirrors it: the struct's
// name, its size and each field's byte offset. test/datapath/codec-layout.test.ts compares every
// StructLayout with the BTF of the compiled object.
export interface StructLayout {
  readonly struct: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, number>>;
}

export function ipv4ToNetworkU32(ip: string, what = 'IPv4 address'): number {
  // Hand-rolled: the ipcache loads 100k+ addresses at a time, and split/regex cost 10x more.
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46 && digits > 0 && dots < 3) {
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48);
      digits++;
      if (part > 255) digits = 99;
    } else {
      digits = 99;
      break;
    }
  }
  if (dots !== 3 || digits === 0 || digits > 3)
    throw new TypeError(`${what}: expected a dotted IPv4 address, got ${JSON.stringify(ip)}`);
  return (n * 256 + part) >>> 0;
}

export function u32ToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
