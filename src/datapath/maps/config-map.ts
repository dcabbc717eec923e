// Layout: struct mbr_config in bpf/include/membrane/maps.h (map mbr_config, an array of one). Host order.
import type { StructLayout } from '../layout.js';

export const CONFIG: StructLayout = { struct: 'mbr_config', size: 8, fields: { trace_level: 0, wakeup_bytes: 4 } };

export const TraceLevel = { none: 0, connections: 1, all: 2 } as const;

export interface DatapathConfig {
  readonly traceLevel: number;
  readonly wakeupBytes: number;
}

export function encodeConfig(c: DatapathConfig): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(c.traceLevel);
  b.writeUInt32LE(c.wakeupBytes, 4);
  return b;
}

export function decodeConfig(b: Buffer): DatapathConfig {
  return { traceLevel: b.readUInt32LE(0), wakeupBytes: b.readUInt32LE(4) };
}
