import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { namedSecrets } from '../../src/agent/proxy-link.js';
import { formatL7Line, formatMonitorLine } from '../../src/cli/monitor-format.js';
import { renderTable } from '../../src/cli/table.js';
import type { L7Record } from '../../src/hubble/flow/parser.js';
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

describe('L7 lines (cilium monitor -t l7)', () => {
  const rec: L7Record = {
    time: { seconds: 1, nanos: 0 },
    type: 'request',
    endpointId: 12,
    direction: 'egress',
    srcIp: '10.0.1.5',
    dstIp: '10.0.2.7',
    srcPort: 40000,
    dstPort: 8080,
    protocol: 6,
    srcIdentity: 1234,
    dstIdentity: 5678,
    verdict: 'denied',
    http: { code: 403, method: 'DELETE', url: 'http://10.0.2.7:8080/api/v1/payments/1', protocol: 'HTTP/1.1' },
  };
  const labels = { srcLabels: ['k8s:app=checkout'], dstLabels: ['k8s:app=payments', 'k8s:tier=api'] };

  it('prints a request from the local client endpoint to a remote server, client->server identities', () => {
    assert.equal(
      formatL7Line({ type: 'l7', record: rec, ...labels }),
      '<- Request http from 12 ([k8s:app=checkout]) to 0 ([k8s:app=payments k8s:tier=api]), identity 1234->5678, verdict Denied DELETE http://10.0.2.7:8080/api/v1/payments/1 => 0',
    );
  });

  it('prints a response (the record names the server as its source) at an ingress endpoint', () => {
    const resp: L7Record = {
      ...rec,
      type: 'response',
      direction: 'ingress',
      srcIdentity: 5678,
      dstIdentity: 1234,
      verdict: 'forwarded',
      http: { ...rec.http!, code: 200, method: 'GET' },
    };
    assert.equal(
      formatL7Line({ type: 'l7', record: resp, srcLabels: ['k8s:app=payments'], dstLabels: ['k8s:app=checkout'] }),
      '-> Response http to 0 ([k8s:app=checkout]) from 12 ([k8s:app=payments]), identity 1234->5678, verdict Forwarded GET http://10.0.2.7:8080/api/v1/payments/1 => 200',
    );
  });
});

describe('Secrets sent to the proxy', () => {
  it('are only those some headerMatches of the redirects names', () => {
    const policy = {
      endpointId: 1,
      direction: 'ingress' as const,
      protocol: 6,
      port: 80,
      portPrefixLen: 16,
      proxyPort: 10001,
      parser: 'http' as const,
      remoteIdentities: [0],
      allowAll: false,
      http: [{ headerMatches: [{ name: 'X-Token', secret: { namespace: 'a', name: 'tok' } }] }],
      derivedFrom: [],
    };
    const redirect = {
      endpointId: 1,
      direction: 'ingress' as const,
      protocol: 6,
      port: 80,
      portPrefixLen: 16,
      policies: [policy],
    };
    const secrets = [
      { namespace: 'a', name: 'tok', data: { v: 'x' } },
      { namespace: 'a', name: 'other', data: { v: 'y' } },
      { namespace: 'b', name: 'tok', data: { v: 'z' } },
    ];
    assert.deepEqual(namedSecrets([redirect], secrets), [secrets[0]]);
    assert.deepEqual(namedSecrets([], secrets), []);
  });
});
