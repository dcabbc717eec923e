// Golden bytes of struct mbr_event (bpf/include/membrane/maps.h) through the ring decoder. Its
// layout against the object's BTF is checked with every other header mirror in
// test/datapath/codec-layout.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEvent, decodeEventBatch, EVENT } from '../../src/monitor/event-codec.js';
import { EventKind } from '../../src/monitor/event-types.js';

const DROP_HEX =
  '01b5010007000000' + // type drop, reason 181, flags egress, endpoint 7
  '0094357700000000' + // mono_ns 2000000000
  '02000000' + // ifindex
  'e9030000' + // src identity 1001
  '02000000' + // dst identity 2 (world)
  '0af00102' + // 10.240.1.2
  '0af00909' + // 10.240.9.9
  '409c' + // sport 40000
  '5000' + // dport 80
  '0602' + // tcp, SYN
  '0000' + // icmp
  '3c000000' + // length 60
  '4bffffff' + // verdict -181
  '01000000'; // ct new, auth 0

describe('event codec', () => {
  it('decodes a golden drop event', () => {
    const b = Buffer.from(DROP_HEX, 'hex');
    assert.equal(b.length, EVENT.size);
    assert.deepEqual(decodeEvent(b), {
      kind: EventKind.drop,
      reason: 181,
      direction: 'egress',
      monoNs: 2000000000,
      endpointId: 7,
      ifindex: 2,
      srcIdentity: 1001,
      dstIdentity: 2,
      ipVersion: 4,
      srcIp: '10.240.1.2',
      dstIp: '10.240.9.9',
      protocol: 6,
      srcPort: 40000,
      dstPort: 80,
      tcpFlags: 2,
      icmpType: 0,
      icmpCode: 0,
      length: 60,
      isReply: false,
    });
  });

  it('decodes a ring batch and skips a record of an unknown kind', () => {
    const rec = Buffer.from(DROP_HEX, 'hex');
    const unknown = Buffer.from(rec);
    unknown[0] = 99;
    const frame = (r: Buffer) => Buffer.concat([Buffer.from([EVENT.size, 0, 0, 0]), r]);
    const batch = Buffer.concat([frame(rec), frame(unknown), frame(rec)]);
    const events = decodeEventBatch(batch, 3);
    assert.equal(events.length, 2);
    assert.deepEqual(events[0], decodeEvent(rec));
    assert.deepEqual(events[1], decodeEvent(rec));
  });

  // Found by the fuzz tests (test/fuzz/event-codec.test.ts): a length of 2^31 or more made the
  // next offset negative, and the decoder walked back to the same record and decoded it again.
  for (const len of [0xfffffff8, 0x80000000, 4096]) {
    it(`stops a batch at a record whose length ${len} runs past the end, decoding nothing twice`, () => {
      const rec = Buffer.from(DROP_HEX, 'hex');
      const lying = Buffer.alloc(4);
      lying.writeUInt32LE(len);
      const good = Buffer.concat([Buffer.from([EVENT.size, 0, 0, 0]), rec]);
      assert.deepEqual(decodeEventBatch(Buffer.concat([good, lying, rec]), 8), [decodeEvent(rec)]);
    });
  }
});
