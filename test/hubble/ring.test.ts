import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flow } from '../../src/hubble/flow/flow.js';
import { FlowReader, LostRecord, type RingEntry } from '../../src/hubble/observer/flow-reader.js';
import { Ring } from '../../src/hubble/ring.js';

const flow = (i: number): Flow => ({ uuid: `f${i}`, time: { seconds: 100 + i, nanos: 0 }, verdict: i % 2 ? 1 : 2 });
const all = () => true;

function filled(capacity: number, n: number): Ring<RingEntry> {
  const r = new Ring<RingEntry>(capacity);
  for (let i = 0; i < n; i++) r.push(flow(i));
  return r;
}

describe('ring', () => {
  for (const bad of [0, 2, 4, 4096, 65536, 1.5, -1])
    it(`rejects capacity ${bad}`, () =>
      assert.throws(() => new Ring(bad), {
        code: 'MBR_RING_CAPACITY',
        message: `ring: capacity: expected 2^n - 1 between 1 and 65535 (1, 3, 7, ..., 4095, ..., 65535), got ${bad}`,
      }));

  for (const good of [1, 3, 7, 4095, 65535])
    it(`accepts capacity ${good}`, () => assert.equal(new Ring(good).capacity, good));

  it('holds the newest `capacity` entries', () => {
    const r = filled(7, 10);
    assert.equal(r.length, 7);
    assert.equal(r.oldest, 3);
    assert.equal(r.at(2), undefined);
    assert.equal((r.at(3) as Flow).uuid, 'f3');
    assert.equal((r.at(9) as Flow).uuid, 'f9');
    assert.equal(r.at(10), undefined);
  });

  it('wakes a waiter on the next write only', async () => {
    const r = filled(3, 1);
    let woke = false;
    const w = r.waitFor(1).then(() => {
      woke = true;
    });
    await Promise.resolve();
    assert.equal(woke, false);
    r.push(flow(1));
    await w;
    assert.equal(woke, true);
  });
});

describe('flow reader', () => {
  const uuids = (r: FlowReader) => {
    const out: string[] = [];
    for (let s = r.next(); s !== 'done' && s !== 'wait'; s = r.next())
      out.push(s.flow?.uuid ?? `lost:${s.lost_events?.num_events_lost}`);
    return out;
  };

  it('reads everything held when no selector is given', () =>
    assert.deepEqual(uuids(new FlowReader(filled(7, 10), all, 'n', {})), ['f3', 'f4', 'f5', 'f6', 'f7', 'f8', 'f9']));

  it('reads the last N', () =>
    assert.deepEqual(uuids(new FlowReader(filled(7, 10), all, 'n', { number: 2 })), ['f8', 'f9']));

  it('reads the first N', () =>
    assert.deepEqual(uuids(new FlowReader(filled(7, 10), all, 'n', { number: 2, first: true })), ['f3', 'f4']));

  it('reads a since/until window', () =>
    assert.deepEqual(
      uuids(
        new FlowReader(filled(7, 10), all, 'n', {
          since: { seconds: 105, nanos: 0 },
          until: { seconds: 107, nanos: 0 },
        }),
      ),
      ['f5', 'f6', 'f7'],
    ));

  it('waits at the end while following, from the newest when no number is given', () => {
    const r = filled(7, 10);
    const reader = new FlowReader(r, all, 'n', { follow: true });
    assert.equal(reader.next(), 'wait');
    r.push(flow(10));
    assert.equal((reader.next() as { flow: Flow }).flow.uuid, 'f10');
    assert.equal(reader.next(), 'wait');
  });

  it('reports a HUBBLE_RING_BUFFER lost event when the writer laps a reader, then resumes at the oldest', () => {
    const r = filled(7, 10);
    const reader = new FlowReader(r, all, 'n', { number: 1, follow: true });
    assert.equal((reader.next() as { flow: Flow }).flow.uuid, 'f9');
    for (let i = 10; i < 30; i++) r.push(flow(i));
    assert.deepEqual(reader.next(), { lost_events: { source: 3, num_events_lost: 13 }, node_name: 'n' });
    assert.equal((reader.next() as { flow: Flow }).flow.uuid, 'f23');
  });

  it('passes datapath lost records through unfiltered', () => {
    const r = filled(7, 1);
    r.push(new LostRecord(1, 9, { seconds: 5, nanos: 0 }));
    const reader = new FlowReader(r, () => false, 'n', {});
    assert.deepEqual(reader.next(), {
      lost_events: { source: 1, num_events_lost: 9 },
      node_name: 'n',
      time: { seconds: 5, nanos: 0 },
    });
    assert.equal(reader.next(), 'done');
  });
});
