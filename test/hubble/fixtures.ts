// Shared fixtures: a small node with two pods and a database, and flows parsed from events.

import { InMemoryEnrichment } from '../../src/hubble/flow/enrichment.js';
import type { Flow } from '../../src/hubble/flow/flow.js';
import {
  type FlowParserContext,
  type L7Record,
  parseDatapathEvent,
  parseL7Record,
  uuidSource,
  wallFromMono,
} from '../../src/hubble/flow/parser.js';
import type { DropEvent, PolicyVerdictEvent, TraceEvent } from '../../src/monitor/event-types.js';

export const T0 = { seconds: Date.UTC(2026, 10, 23, 10, 0, 0) / 1000, nanos: 0 };
const at = (ms: number) => ({ seconds: T0.seconds, nanos: ms * 1e6 });

export const enrichment = new InMemoryEnrichment({
  endpoints: [
    {
      id: 101,
      ips: ['10.1.0.11', 'fd00::11'],
      identity: 5001,
      namespace: 'shop',
      podName: 'frontend-7d9f',
      labels: ['k8s:app=frontend', 'k8s:io.kubernetes.pod.namespace=shop', 'k8s:tier=web'],
      workloads: [{ name: 'frontend', kind: 'Deployment' }],
    },
    {
      id: 102,
      ips: ['10.1.0.12'],
      identity: 5002,
      namespace: 'shop',
      podName: 'payments-5c4b',
      labels: ['k8s:app=payments', 'k8s:io.kubernetes.pod.namespace=shop', 'k8s:tier=api'],
      workloads: [{ name: 'payments', kind: 'Deployment' }],
    },
    {
      id: 103,
      ips: ['10.1.0.13'],
      identity: 5003,
      namespace: 'db',
      podName: 'postgres-0',
      labels: ['k8s:app=postgres', 'k8s:io.kubernetes.pod.namespace=db'],
      workloads: [{ name: 'postgres', kind: 'StatefulSet' }],
    },
  ],
  identities: { 2: ['reserved:world'], 1: ['reserved:host'], 16777217: ['cidr:93.184.216.0/24', 'reserved:world'] },
  names: { '93.184.216.34': ['example.com'] },
  services: [{ ip: '10.96.0.20', port: 8080, service: { name: 'payments', namespace: 'shop' } }],
  interfaces: { 7: 'mbr-veth101' },
  attributions: [
    {
      endpointId: 102,
      direction: 'ingress',
      outcome: 'allowed',
      policies: [{ kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'payments-from-frontend' }],
    },
    {
      endpointId: 103,
      direction: 'ingress',
      outcome: 'default-deny',
      policies: [{ kind: 'NetworkPolicy', namespace: 'db', name: 'db-default-deny' }],
    },
    {
      endpointId: 101,
      direction: 'egress',
      outcome: 'denied',
      policies: [{ kind: 'CiliumClusterwideNetworkPolicy', namespace: '', name: 'deny-world' }],
    },
  ],
});

export function context(nodeName = 'node-1'): FlowParserContext {
  return {
    nodeName,
    enrichment,
    monoToWall: (mono) => wallFromMono(T0, mono),
    uuid: uuidSource('0123456789abcdef0123'),
  };
}

const base = {
  ifindex: 7,
  ipVersion: 4 as const,
  length: 74,
  icmpType: 0,
  icmpCode: 0,
  isReply: false,
};

export const traceSyn: TraceEvent = {
  ...base,
  kind: 4,
  monoNs: 1_000_000,
  endpointId: 101,
  srcIdentity: 5001,
  dstIdentity: 5002,
  srcIp: '10.1.0.11',
  dstIp: '10.1.0.12',
  protocol: 6,
  srcPort: 43210,
  dstPort: 8080,
  tcpFlags: 0x02,
  observationPoint: 5,
  ctState: 1,
};

export const traceSynAckReply: TraceEvent = {
  ...traceSyn,
  monoNs: 2_000_000,
  srcIdentity: 5002,
  dstIdentity: 5001,
  srcIp: '10.1.0.12',
  dstIp: '10.1.0.11',
  srcPort: 8080,
  dstPort: 43210,
  tcpFlags: 0x12,
  observationPoint: 0,
  ctState: 3,
  isReply: true,
};

export const verdictAllowed: PolicyVerdictEvent = {
  ...base,
  kind: 5,
  monoNs: 3_000_000,
  endpointId: 102,
  srcIdentity: 5001,
  dstIdentity: 5002,
  srcIp: '10.1.0.11',
  dstIp: '10.1.0.12',
  protocol: 6,
  srcPort: 43210,
  dstPort: 8080,
  tcpFlags: 0x02,
  direction: 'ingress',
  matchType: 2,
  verdict: 0,
  isAudit: false,
  authType: 0,
};

export const dropDefaultDeny: DropEvent = {
  ...base,
  kind: 1,
  monoNs: 4_000_000,
  endpointId: 103,
  srcIdentity: 5001,
  dstIdentity: 5003,
  srcIp: '10.1.0.11',
  dstIp: '10.1.0.13',
  protocol: 6,
  srcPort: 43211,
  dstPort: 5432,
  tcpFlags: 0x02,
  reason: 133,
  direction: 'ingress',
};

/** A frame that is not IPv4 (an IPv6 router solicitation), dropped with 139 at a pod's egress. */
export const dropNotIpv4: DropEvent = {
  ...dropDefaultDeny,
  reason: 139,
  direction: 'egress',
  ipVersion: 0,
  srcIp: '',
  dstIp: '',
  etherType: 0x86dd,
  protocol: 0,
  srcPort: 0,
  dstPort: 0,
  tcpFlags: 0,
};

export const dropDenyWorld: DropEvent = {
  ...base,
  kind: 1,
  monoNs: 5_000_000,
  endpointId: 101,
  srcIdentity: 5001,
  dstIdentity: 16777217,
  srcIp: '10.1.0.11',
  dstIp: '93.184.216.34',
  protocol: 6,
  srcPort: 43212,
  dstPort: 443,
  tcpFlags: 0x02,
  reason: 181,
  direction: 'egress',
};

export const icmpEcho: TraceEvent = {
  ...traceSyn,
  monoNs: 6_000_000,
  protocol: 1,
  srcPort: 0,
  dstPort: 0,
  tcpFlags: 0,
  icmpType: 8,
  observationPoint: 3,
};

export const udpV6: TraceEvent = {
  ...traceSyn,
  monoNs: 7_000_000,
  ipVersion: 6,
  srcIp: 'fd00::11',
  dstIp: 'fd00::99',
  dstIdentity: 2,
  protocol: 17,
  srcPort: 5353,
  dstPort: 53,
  tcpFlags: 0,
  observationPoint: 3,
};

export const httpRequest: L7Record = {
  time: at(8),
  type: 'request',
  endpointId: 102,
  direction: 'ingress',
  srcIp: '10.1.0.11',
  dstIp: '10.1.0.12',
  srcPort: 43210,
  dstPort: 8080,
  protocol: 6,
  srcIdentity: 5001,
  dstIdentity: 5002,
  verdict: 'forwarded',
  http: {
    method: 'POST',
    url: 'http://payments.shop:8080/v1/charge?id=7',
    protocol: 'HTTP/1.1',
    headers: [{ key: 'x-request-id', value: 'abc' }],
  },
};

export const httpResponse: L7Record = {
  ...httpRequest,
  time: at(9),
  type: 'response',
  srcIp: '10.1.0.12',
  dstIp: '10.1.0.11',
  srcPort: 8080,
  dstPort: 43210,
  srcIdentity: 5002,
  dstIdentity: 5001,
  latencyNs: 3_000_000,
  http: { ...httpRequest.http!, code: 503 },
};

export const dnsRequest: L7Record = {
  time: at(10),
  type: 'request',
  endpointId: 101,
  direction: 'egress',
  srcIp: '10.1.0.11',
  dstIp: '10.96.0.10',
  srcPort: 40000,
  dstPort: 53,
  protocol: 17,
  srcIdentity: 5001,
  dstIdentity: 2,
  verdict: 'forwarded',
  dns: { query: 'example.com.', qtypes: ['A'] },
};

export const dnsResponse: L7Record = {
  ...dnsRequest,
  time: at(11),
  type: 'response',
  srcIp: '10.96.0.10',
  dstIp: '10.1.0.11',
  srcPort: 53,
  dstPort: 40000,
  srcIdentity: 2,
  dstIdentity: 5001,
  dns: { query: 'example.com.', qtypes: ['A'], ips: ['93.184.216.34'], ttl: 300, rrtypes: ['A'] },
};

/** One flow of every kind, parsed with a fresh context (stable uuids). */
export function sampleFlows(nodeName = 'node-1'): Flow[] {
  const ctx = context(nodeName);
  return [
    parseDatapathEvent(traceSyn, ctx),
    parseDatapathEvent(traceSynAckReply, ctx),
    parseDatapathEvent(verdictAllowed, ctx),
    parseDatapathEvent(dropDefaultDeny, ctx),
    parseDatapathEvent(dropDenyWorld, ctx),
    parseDatapathEvent(icmpEcho, ctx),
    parseDatapathEvent(udpV6, ctx),
    parseL7Record(httpRequest, ctx),
    parseL7Record(httpResponse, ctx),
    parseL7Record(dnsRequest, ctx),
    parseL7Record(dnsResponse, ctx),
  ];
}
