import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatMonitorLine } from '../../src/cli/monitor-format.js';
import { renderTable } from '../../src/cli/table.js';
import type { DatapathEvent } from '../../src/monitor/event-types.js';
import { dropNotIpv4 } from '../hubble/fixtures.js';

const base = {
  monoNs: 1,
  endpointId: 7,
  ifindex: 4,
  srcIdentity: 262,
  dstIdentity: 258,
  ipVersion: 4 as const,
  srcIp: '10.201.1.5',
  dstIp: '10.201.1.3',
  protocol: 6,
  srcPort: 37424,
  dstPort: 8080,
  tcpFlags: 0x02,
  icmpType: 0,
  icmpCode: 0,
  length: 60,
  isReply: false,
};

const LINES: ReadonlyArray<{ name: string; e: DatapathEvent; line: string }> = [
  {
    name: 'a policy drop',
    e: { ...base, kind: 1, reason: 133, direction: 'ingress' },
    line: 'xx drop (Policy denied) to endpoint 7, ifindex 4, identity 262->258: 10.201.1.5:37424 -> 10.201.1.3:8080 tcp SYN',
  },
  {
    name: 'an authentication drop of UDP at egress',
    e: { ...base, kind: 1, reason: 189, direction: 'egress', protocol: 17, tcpFlags: 0 },
    line: 'xx drop (Authentication required) from endpoint 7, ifindex 4, identity 262->258: 10.201.1.5:37424 -> 10.201.1.3:8080 udp',
  },
  {
    name: 'a drop of a frame that is not IPv4',
    e: { ...dropNotIpv4, endpointId: 7, ifindex: 4, srcIdentity: 262, dstIdentity: 258, length: 70 },
    line: 'xx drop (Unsupported L3 protocol) from endpoint 7, ifindex 4, identity 262->258: EtherType 0x86dd, 70 bytes',
  },
  {
    name: 'a trace of an established reply',
    e: { ...base, kind: 4, observationPoint: 0, ctState: 3, tcpFlags: 0x12 },
    line: '-> to-endpoint endpoint 7 identity 262->258 state reply ifindex 4: 10.201.1.5:37424 -> 10.201.1.3:8080 tcp SYN, ACK',
  },
  {
    name: 'an ingress allow verdict',
    e: { ...base, kind: 5, direction: 'ingress', matchType: 2, verdict: 0, isAudit: false, authType: 0 },
    line: 'Policy verdict log: local EP ID 7, remote ID 262, proto 6, ingress, action allow, auth: disabled, match L3-L4, 10.201.1.5:37424 -> 10.201.1.3:8080 tcp SYN',
  },
];

describe('monitor lines', () => {
  for (const c of LINES) it(`prints ${c.name} as Cilium does`, () => assert.equal(formatMonitorLine(c.e), c.line));
});

describe('renderTable', () => {
  it('pads columns, keeps two-line headers and one label per line', () => {
    assert.equal(
      renderTable(
        ['ID', 'POLICY\nENFORCEMENT', 'LABELS'],
        [
          ['1', 'Enabled', ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop']],
          ['12', 'Disabled', ['reserved:host']],
        ],
      ),
      [
        'ID   POLICY        LABELS',
        '     ENFORCEMENT',
        '1    Enabled       k8s:app=web',
        '                   k8s:io.kubernetes.pod.namespace=shop',
        '12   Disabled      reserved:host',
        '',
      ].join('\n'),
    );
  });
});
