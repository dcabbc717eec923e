// Layout: struct mbr_metrics_value in bpf/include/membrane/maps.h (map mbr_metrics, a per-CPU
// array indexed by (dir << 8) | reason; reason 0 = forwarded). Host order; summed over CPUs here.
import type { StructLayout } from '../layout.js';

export const METRICS_VALUE: StructLayout = { struct: 'mbr_metrics_value', size: 16, fields: { packets: 0, bytes: 8 } };
export const METRICS_ENTRIES = 512;

export interface MetricsRow {
  readonly direction: 'ingress' | 'egress';
  /** 0 = forwarded, else a Cilium drop reason. */
  readonly reason: number;
  readonly packets: number;
  readonly bytes: number;
}

export function metricsIndex(direction: 'ingress' | 'egress', reason: number): number {
  return ((direction === 'egress' ? 1 : 0) << 8) | reason;
}

/** Sums one per-CPU lookup result (one 16-byte slot per possible CPU). */
export function sumPerCpuMetrics(b: Buffer, cpus: number): { packets: number; bytes: number } {
  let packets = 0;
  let bytes = 0;
  for (let c = 0; c < cpus; c++) {
    const o = c * 16;
    packets += b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 2 ** 32;
    bytes += b.readUInt32LE(o + 8) + b.readUInt32LE(o + 12) * 2 ** 32;
  }
  return { packets, bytes };
}
