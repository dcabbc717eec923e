// What the datapath reports about itself: map pressure, events lost in the ring, the per-reason
// packet counters of mbr_metrics, and the failures still in effect (DatapathHealth).
import type { LostEvents } from '../monitor/event-types.js';
import type { BpfMap } from './bpf-map.js';
import type { DatapathError } from './datapath-error.js';
import { METRICS_ENTRIES, type MetricsRow, sumPerCpuMetrics } from './maps/metrics-map.js';

export interface MapStatus {
  readonly name: string;
  readonly entries: number;
  readonly maxEntries: number;
  /** entries / maxEntries, 0..1. */
  readonly pressure: number;
}

export interface DatapathHealthError {
  readonly code: string;
  readonly message: string;
  readonly endpointId?: number;
  readonly at: string;
}

export interface DatapathStatus {
  readonly pinDir: string;
  /** How endpoints are attached: tcx links, or legacy tc filters on kernels without tcx. */
  readonly attachMode: 'tcx' | 'tc';
  readonly endpoints: number;
  readonly maps: readonly MapStatus[];
  readonly lostEvents: readonly LostEvents[];
  /** Failures still in effect (e.g. an endpoint whose last policy change did not fit). */
  readonly errors: readonly DatapathHealthError[];
  readonly ok: boolean;
}

/**
 * Failures still in effect, by what failed: 'ipcache', or `ep/<id>/<what>` for one endpoint. A
 * success of the same thing clears its entry; detaching an endpoint clears all of its entries.
 */
export class DatapathHealth {
  #errors = new Map<string, DatapathHealthError>();

  /** Keeps err as the failure of `key`; returns err so callers can `throw health.record(...)`. */
  record(key: string, err: DatapathError, endpointId?: number): DatapathError {
    this.#errors.set(key, { code: err.code, message: err.message, endpointId, at: new Date().toISOString() });
    return err;
  }

  clear(key: string): void {
    this.#errors.delete(key);
  }

  clearEndpoint(endpointId: number): void {
    for (const k of this.#errors.keys()) if (k.startsWith(`ep/${endpointId}/`)) this.#errors.delete(k);
  }

  list(): DatapathHealthError[] {
    return [...this.#errors.values()];
  }
}

export function mapStatus(name: string, entries: number, maxEntries: number): MapStatus {
  return { name, entries, maxEntries, pressure: maxEntries ? entries / maxEntries : 0 };
}

/** mbr_lost: one per-CPU u64 of records the programs could not reserve in the ring. */
export function readLostEvents(lost: BpfMap): LostEvents[] {
  const v = lost.lookup(Buffer.alloc(4));
  let count = 0;
  if (v) for (let o = 0; o + 8 <= v.length; o += 8) count += v.readUInt32LE(o) + v.readUInt32LE(o + 4) * 2 ** 32;
  return [{ source: 'datapath-ring', count }];
}

/** mbr_metrics summed over CPUs; rows with no packets are left out. Key: direction << 8 | reason. */
export function readMetrics(metrics: BpfMap, possibleCpus: number): MetricsRow[] {
  const out: MetricsRow[] = [];
  const key = Buffer.alloc(4);
  const buf = Buffer.alloc(metrics.valueBufferSize);
  for (let i = 0; i < METRICS_ENTRIES; i++) {
    key.writeUInt32LE(i);
    if (!metrics.lookup(key, buf)) continue;
    const s = sumPerCpuMetrics(buf, possibleCpus);
    if (s.packets === 0) continue;
    out.push({ direction: i >> 8 ? 'egress' : 'ingress', reason: i & 255, ...s });
  }
  return out;
}
