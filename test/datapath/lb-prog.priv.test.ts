// Service translation under BPF_PROG_TEST_RUN, byte for byte: a SYN to a ClusterIP leaves
// mbr_from_pod addressed to the backend with both checksums still right, the backend's reply leaves
// mbr_to_pod from the service address, and a service with no backend is answered in place (a RST
// for a TCP SYN, ICMP port unreachable quoting the datagram for UDP), sent back into the pod.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipv4ToNetworkU32 } from '../../src/datapath/layout.js';
import { type LbPod, LbTable } from '../../src/lb/lb-table.js';
import { parseServiceObject } from '../../src/lb/service.js';
import { POD_IP } from './fixtures/prog-cases.js';
import { ipChecksumValid, TCP_FLAGS, tcpPacket, udpPacket, withIpChecksum } from './support/packet.js';
import { openTestDatapath, writeEndpoint } from './support/prog-setup.js';
import { requireBpf } from './support/require-bpf.js';

const BACKEND = '10.201.9.2';
const TCX_NEXT = -1;
const TC_ACT_REDIRECT = 7;
const NO_ENFORCE = 0x02 | 0x04;

describe('service translation under BPF_PROG_TEST_RUN', () => {
  it('translates a SYN to the backend, the reply back to the service, with valid checksums', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { dp } = openTestDatapath(t, 'lb');
    writeEndpoint(dp, NO_ENFORCE, 1);
    realize(dp, [{ clusterIP: '10.96.0.50', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] }]);

    const syn = withL4Checksum(
      withIpChecksum(tcpPacket({ src: POD_IP, dst: '10.96.0.50', sport: 40000, dport: 80, flags: TCP_FLAGS.syn })),
    );
    const out = dp.testRun('mbr_from_pod', syn);
    assert.equal(out.retval, TCX_NEXT);
    assert.deepEqual(addresses(out.data), [POD_IP, 40000, BACKEND, 8080]);
    assert.ok(ipChecksumValid(out.data), 'IP header checksum');
    assert.ok(l4ChecksumValid(out.data), 'TCP checksum');

    const synAck = withL4Checksum(
      withIpChecksum(
        tcpPacket({ src: BACKEND, dst: POD_IP, sport: 8080, dport: 40000, flags: TCP_FLAGS.syn | TCP_FLAGS.ack }),
      ),
    );
    const back = dp.testRun('mbr_to_pod', synAck);
    assert.equal(back.retval, TCX_NEXT);
    assert.deepEqual(addresses(back.data), ['10.96.0.50', 80, POD_IP, 40000], 'the client sees the service');
    assert.ok(ipChecksumValid(back.data));
    assert.ok(l4ChecksumValid(back.data));

    // A flow opened straight to the backend from the same port is left alone on the way back.
    const direct = withL4Checksum(
      withIpChecksum(tcpPacket({ src: POD_IP, dst: BACKEND, sport: 40000, dport: 8080, flags: TCP_FLAGS.syn })),
    );
    assert.equal(dp.testRun('mbr_from_pod', direct).retval, TCX_NEXT);
    assert.deepEqual(addresses(dp.testRun('mbr_to_pod', synAck).data), [BACKEND, 8080, POD_IP, 40000]);
  });

  it('answers a service with no backend: RST for a TCP SYN, ICMP port unreachable for UDP', (t) => {
    if (!requireBpf(t, 'loads BPF programs')) return;
    const { dp } = openTestDatapath(t, 'lbnone');
    writeEndpoint(dp, NO_ENFORCE, 1);
    realize(dp, [
      {
        clusterIP: '10.96.0.55',
        selector: { app: 'nothing' },
        ports: [
          { name: 'http', port: 80 },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      },
    ]);
    const syn = tcpPacket({ src: POD_IP, dst: '10.96.0.55', sport: 40001, dport: 80, flags: TCP_FLAGS.syn });
    syn.writeUInt32BE(1000, 14 + 20 + 4); // seq
    const rst = dp.testRun('mbr_from_pod', withL4Checksum(withIpChecksum(syn)));
    assert.equal(rst.retval, TC_ACT_REDIRECT);
    assert.equal(rst.data.length, 54);
    assert.deepEqual(addresses(rst.data), ['10.96.0.55', 80, POD_IP, 40001]);
    assert.equal(rst.data[14 + 20 + 13], TCP_FLAGS.rst | TCP_FLAGS.ack);
    assert.equal(rst.data.readUInt32BE(14 + 20 + 8), 1001, 'acknowledges the SYN');
    assert.deepEqual([...rst.data.subarray(0, 6)], [...syn.subarray(6, 12)], 'back to the sender MAC');
    assert.ok(ipChecksumValid(rst.data));
    assert.ok(l4ChecksumValid(rst.data));

    const dgram = withL4Checksum(
      withIpChecksum(udpPacket({ src: POD_IP, dst: '10.96.0.55', sport: 40002, dport: 53, payload: 12 })),
    );
    const icmp = dp.testRun('mbr_from_pod', dgram);
    assert.equal(icmp.retval, TC_ACT_REDIRECT);
    assert.equal(icmp.data.length, 70);
    assert.equal(icmp.data[14 + 9], 1, 'ICMP');
    assert.deepEqual([icmp.data[34], icmp.data[35]], [3, 3], 'destination unreachable, port unreachable');
    assert.deepEqual(icmp.data.subarray(42, 70), dgram.subarray(14, 42), 'quotes the IP header and 8 bytes');
    assert.ok(ipChecksumValid(icmp.data));
    assert.equal(onesSum(icmp.data.subarray(34, 70)), 0xffff, 'ICMP checksum');
  });
});

function realize(dp: ReturnType<typeof openTestDatapath>['dp'], specs: Record<string, unknown>[]): void {
  const backend: LbPod = {
    namespace: 'alpha',
    name: 'web',
    labels: { app: 'web' },
    podIPs: [BACKEND],
    ports: [],
    nodeName: 'n1',
  };
  const table = new LbTable({ node: 'n1', nodeIp: '', pods: () => [backend], maglevTableSize: 251 });
  for (const [i, spec] of specs.entries())
    table.upsertService(
      parseServiceObject(
        { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'alpha' }, spec },
        'test',
      ),
    );
  dp.lb.setConfig({ netnsCookie: 0, nodeAddr: '', maglevSize: 251 });
  dp.lb.apply(table.takeDiff(), 251);
}

/** [source address, source port, destination address, destination port] of a TCP/UDP frame. */
function addresses(p: Buffer): [string, number, string, number] {
  const ip = (o: number) => [...p.subarray(o, o + 4)].join('.');
  return [ip(26), p.readUInt16BE(34), ip(30), p.readUInt16BE(36)];
}

function onesSum(b: Buffer, start = 0): number {
  let sum = start;
  for (let o = 0; o + 1 < b.length; o += 2) sum += b.readUInt16BE(o);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function pseudoSum(p: Buffer): number {
  const l4len = p.readUInt16BE(16) - 20;
  const src = ipv4ToNetworkU32([...p.subarray(26, 30)].join('.'));
  const dst = ipv4ToNetworkU32([...p.subarray(30, 34)].join('.'));
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + p[23] + l4len;
}

function l4ChecksumValid(p: Buffer): boolean {
  return onesSum(p.subarray(34, 14 + p.readUInt16BE(16)), pseudoSum(p)) === 0xffff;
}

/** The frame with a correct TCP or UDP checksum. */
function withL4Checksum(p: Buffer): Buffer {
  const b = Buffer.from(p);
  const at = 34 + (b[23] === 6 ? 16 : 6);
  b.writeUInt16BE(0, at);
  b.writeUInt16BE(~onesSum(b.subarray(34, 14 + b.readUInt16BE(16)), pseudoSum(b)) & 0xffff, at);
  return b;
}
