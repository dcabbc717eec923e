// Fuzzes the datapath event decoder with what a ring buffer batch could hold: any bytes, any
// record count, lengths that lie. Decoding never throws: an unknown kind or a short record is
// skipped, and every event it returns has every field set.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeEvent, decodeEventBatch, EVENT } from '../../src/monitor/event-codec.js';
import type { DatapathEvent } from '../../src/monitor/event-types.js';
import { fuzzProperty } from '../support/fuzz.js';

const IPV4 = /^(\d{1,3}\.){3}\d{1,3}$/;

/** A batch holds at most this many records: each takes its u32 length and EVENT.size bytes. */
function maxRecords(buf: Buffer): number {
  return Math.floor(buf.length / (4 + EVENT.size));
}

/** Every field of a decoded event is a finite number, a boolean or a well-formed string. */
function assertWellFormed(e: DatapathEvent): void {
  for (const [k, v] of Object.entries(e)) {
    if (typeof v === 'number') assert.ok(Number.isFinite(v), `${k} is ${v}`);
    else if (k === 'srcIp' || k === 'dstIp') assert.ok(v === '' || IPV4.test(v as string), `${k} is ${v}`);
    else assert.ok(typeof v === 'string' || typeof v === 'boolean', `${k} is ${String(v)}`);
  }
}

/** One record framed as the ring pump frames it: [u32 len][record][pad to 8]; len may lie. */
const record = fc
  .tuple(
    fc.constantFrom(0, 1, 2, 3, 4, 255),
    fc.uint8Array({ minLength: EVENT.size, maxLength: EVENT.size }),
    fc.oneof(
      fc.constant(undefined),
      fc.constantFrom(0, 1, 55, 57, 63, 64, 0x7fffffff, 0x80000000, 0xfffffff8, 0xffffffff),
      fc.nat(),
    ),
  )
  .map(([type, body, lie]) => {
    const b = Buffer.from(body);
    b[0] = type;
    const len = lie ?? EVENT.size;
    const out = Buffer.alloc(4 + ((EVENT.size + 7) & ~7));
    out.writeUInt32LE(len >>> 0, 0);
    b.copy(out, 4);
    return out;
  });

/** A batch of records, cut short at any byte and starting at any offset of its buffer. */
const batch = fc
  .tuple(
    fc.array(record, { maxLength: 8 }),
    fc.nat({ max: 7 }),
    fc.double({ min: 0, max: 1, noNaN: true }),
    fc.nat({ max: 12 }),
  )
  .map(([records, shift, keep, extra]) => {
    const whole = Buffer.concat([Buffer.alloc(shift), ...records]);
    const cut = shift + Math.floor(keep * (whole.length - shift));
    return { buf: whole.subarray(shift, cut), count: records.length + extra - 4 };
  });

describe('fuzzing the datapath event decoder', () => {
  it('decodes any bytes and any count without throwing, at most count well-formed events', () => {
    const arb = fc.tuple(fc.uint8Array({ maxLength: 1024 }), fc.integer({ min: -1, max: 4096 }), fc.nat({ max: 7 }));
    fuzzProperty(arb, ([bytes, count, shift]) => {
      const buf = Buffer.from(bytes).subarray(Math.min(shift, bytes.length));
      const events = decodeEventBatch(buf, count);
      assert.ok(events.length <= Math.min(Math.max(count, 0), maxRecords(buf)), `${events.length} events`);
      events.forEach(assertWellFormed);
    });
  });

  it('decodes framed records with lying lengths, cut short and misaligned, without throwing', () => {
    fuzzProperty(batch, ({ buf, count }) => {
      const events = decodeEventBatch(buf, count);
      assert.ok(events.length <= Math.min(Math.max(count, 0), maxRecords(buf)), `${events.length} events`);
      events.forEach(assertWellFormed);
    });
  });

  it('decodes one record of any bytes, however short, without throwing', () => {
    fuzzProperty(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      const e = decodeEvent(Buffer.from(bytes));
      if (e !== undefined) assertWellFormed(e);
    });
  });
});
