// The load balancer's realized state: the mbr_lb4_* maps. Writes an LbDiff (src/lb/lb-table.ts)
// in an order the programs can read at any moment: backends, reverse NAT and Maglev tables before
// the slots and masters that name them; deletes the other way round. Reads everything back for
// `membrane bpf lb list`, for the agent's restart (IDs are kept) and for resync by diff.
import type { LbDiff, RealizedLb } from '../lb/lb-table.js';
import { BPF_MAP_TYPE, BpfMap } from './bpf-map.js';
import type { MapName } from './bpf-object.js';
import {
  decodeLbBackend,
  decodeLbConfig,
  decodeLbKey,
  decodeLbReverseNat,
  decodeLbService,
  encodeLbBackend,
  encodeLbConfig,
  encodeLbId,
  encodeLbKey,
  encodeLbReverseNat,
  encodeLbService,
  encodeMaglevValues,
  type LbConfig,
} from './maps/lb-map.js';

/** BPF_F_INNER_MAP: an inner array map whose size may differ from the template's. */
const BPF_F_INNER_MAP = 0x1000;

export class LbRealizer {
  readonly #map: (name: MapName) => BpfMap;

  constructor(map: (name: MapName) => BpfMap) {
    this.#map = map;
  }

  setConfig(c: LbConfig): void {
    this.#map('mbr_lb_config').update(Buffer.alloc(4), encodeLbConfig(c));
  }

  config(): LbConfig {
    const v = this.#map('mbr_lb_config').lookup(Buffer.alloc(4));
    return v ? decodeLbConfig(v) : { netnsCookie: 0, nodeAddr: '', maglevSize: 0 };
  }

  apply(d: LbDiff, maglevSize: number): void {
    const backends = this.#map('mbr_lb4_backends');
    const revNat = this.#map('mbr_lb4_reverse_nat');
    const services = this.#map('mbr_lb4_services');
    const maglev = this.#map('mbr_lb4_maglev');
    if (d.backends.upserts.length > 0) {
      const n = d.backends.upserts.length;
      const keys = Buffer.alloc(4 * n);
      const values = Buffer.alloc(8 * n);
      d.backends.upserts.forEach(([id, b], i) => {
        encodeLbId(id, keys, 4 * i);
        encodeLbBackend(b, values, 8 * i);
      });
      backends.updateBatch(keys, values, n);
    }
    if (d.revNat.upserts.length > 0) {
      const n = d.revNat.upserts.length;
      const keys = Buffer.alloc(4 * n);
      const values = Buffer.alloc(8 * n);
      d.revNat.upserts.forEach(([id, f], i) => {
        encodeLbId(id, keys, 4 * i);
        encodeLbReverseNat(f, values, 8 * i);
      });
      revNat.updateBatch(keys, values, n);
    }
    for (const [id, table] of d.maglev.upserts) this.#writeMaglev(maglev, id, table, maglevSize);
    if (d.services.upserts.length > 0) {
      // One batch, in the diff's order: slots first, then the masters that count them.
      const n = d.services.upserts.length;
      const keys = Buffer.alloc(12 * n);
      const values = Buffer.alloc(16 * n);
      d.services.upserts.forEach(([k, v], i) => {
        encodeLbKey(k, keys, 12 * i);
        encodeLbService(v, values, 16 * i);
      });
      services.updateBatch(keys, values, n);
    }
    for (const k of d.services.deletes) services.delete(encodeLbKey(k));
    for (const id of d.maglev.deletes) maglev.delete(encodeLbId(id));
    for (const id of d.revNat.deletes) revNat.delete(encodeLbId(id));
    for (const id of d.backends.deletes) backends.delete(encodeLbId(id));
  }

  /** What the maps hold. */
  dump(): RealizedLb {
    return {
      services: [...this.#map('mbr_lb4_services').entries()].map(([k, v]) => [decodeLbKey(k), decodeLbService(v)]),
      backends: [...this.#map('mbr_lb4_backends').entries()].map(([k, v]) => [k.readUInt32LE(0), decodeLbBackend(v)]),
      revNat: [...this.#map('mbr_lb4_reverse_nat').entries()].map(([k, v]) => [
        k.readUInt32LE(0),
        decodeLbReverseNat(v),
      ]),
    };
  }

  /** A service's Maglev table (cell -> backend ID), or undefined when it has none. */
  maglevTable(id: number): Uint32Array | undefined {
    const outer = this.#map('mbr_lb4_maglev');
    const v = outer.lookup(encodeLbId(id));
    if (!v) return undefined;
    const inner = BpfMap.fromId(v.readUInt32LE(0));
    try {
      const out = new Uint32Array(inner.maxEntries);
      const k = Buffer.alloc(4);
      const val = Buffer.alloc(4);
      for (let i = 0; i < inner.maxEntries; i++) {
        k.writeUInt32LE(i);
        out[i] = inner.lookup(k, val)?.readUInt32LE(0) ?? 0;
      }
      return out;
    } finally {
      inner.close();
    }
  }

  /** A new inner array per change, swapped in with one outer update: a lookup sees one table whole. */
  #writeMaglev(outer: BpfMap, id: number, table: Uint32Array, size: number): void {
    if (table.length === 0) {
      outer.delete(encodeLbId(id));
      return;
    }
    const inner = BpfMap.create({
      name: `mbr_maglev_${id}`.slice(0, 15),
      type: BPF_MAP_TYPE.array,
      keySize: 4,
      valueSize: 4,
      maxEntries: size,
      flags: BPF_F_INNER_MAP,
    });
    try {
      const keys = Buffer.alloc(4 * table.length);
      for (let i = 0; i < table.length; i++) keys.writeUInt32LE(i, 4 * i);
      inner.updateBatch(keys, encodeMaglevValues(table), table.length);
      const v = Buffer.alloc(4);
      v.writeUInt32LE(inner.fd);
      outer.update(encodeLbId(id), v);
    } finally {
      inner.close();
    }
  }
}
