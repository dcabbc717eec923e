import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Agent } from '../../src/agent/agent.js';
import { AgentFlowEnrichment } from '../../src/agent/flow-enrichment.js';
import { InMemoryEnrichment } from '../../src/hubble/flow/enrichment.js';
import { FlowType, TraceObservationPoint, TrafficDirection, Verdict } from '../../src/hubble/flow/flow.js';
import {
  l4Summary,
  parseDatapathEvent,
  parseL7Record,
  redactUrl,
  uuidSource,
  wallFromMono,
} from '../../src/hubble/flow/parser.js';
import { formatLabel } from '../../src/identity/labels.js';
import { PolicyEngine } from '../../src/policy/policy-engine.js';
import { context, dropDefaultDeny, dropNotIpv4, httpRequest, sampleFlows, T0, traceSyn } from './fixtures.js';

describe('flow parser', () => {
  const [syn, synAck, allowed, defaultDeny, denyWorld, icmp, udp6, httpReq, httpResp, dnsReq, dnsResp] = sampleFlows();

  it('turns a trace event into a FORWARDED L3/L4 flow with both endpoints enriched', () => {
    assert.deepEqual(syn, {
      time: { seconds: T0.seconds, nanos: 1_000_000 },
      uuid: '01234567-89ab-4def-a123-000000000001',
      verdict: Verdict.FORWARDED,
      IP: { source: '10.1.0.11', destination: '10.1.0.12', ipVersion: 1 },
      l4: { TCP: { source_port: 43210, destination_port: 8080, flags: { SYN: true } } },
      source: {
        ID: 101,
        identity: 5001,
        namespace: 'shop',
        labels: ['k8s:app=frontend', 'k8s:io.kubernetes.pod.namespace=shop', 'k8s:tier=web'],
        pod_name: 'frontend-7d9f',
        workloads: [{ name: 'frontend', kind: 'Deployment' }],
      },
      destination: {
        ID: 102,
        identity: 5002,
        namespace: 'shop',
        labels: ['k8s:app=payments', 'k8s:io.kubernetes.pod.namespace=shop', 'k8s:tier=api'],
        pod_name: 'payments-5c4b',
        workloads: [{ name: 'payments', kind: 'Deployment' }],
      },
      Type: FlowType.L3_L4,
      node_name: 'node-1',
      event_type: { type: 4, sub_type: 5 },
      Summary: 'TCP Flags: SYN',
      interface: { index: 7, name: 'mbr-veth101' },
      trace_observation_point: TraceObservationPoint.FROM_ENDPOINT,
      trace_reason: 1,
      is_reply: { value: false },
      traffic_direction: TrafficDirection.EGRESS,
    });
  });

  it("marks a reply trace as a reply, maps point 0 to TO_ENDPOINT and keeps the connection's EGRESS", () => {
    assert.deepEqual(synAck.is_reply, { value: true });
    assert.equal(synAck.reply, true);
    assert.equal(synAck.trace_observation_point, TraceObservationPoint.TO_ENDPOINT);
    assert.equal(synAck.traffic_direction, TrafficDirection.EGRESS);
    assert.equal(synAck.Summary, 'TCP Flags: SYN, ACK');
  });

  it('attributes an allowed policy verdict to the allowing policy', () => {
    assert.equal(allowed.verdict, Verdict.FORWARDED);
    assert.equal(allowed.policy_match_type, 2);
    assert.deepEqual(allowed.event_type, { type: 5, sub_type: 0 });
    assert.deepEqual(allowed.ingress_allowed_by, [
      { name: 'payments-from-frontend', namespace: 'shop', kind: 'CiliumNetworkPolicy' },
    ]);
    assert.deepEqual(allowed.is_reply, { value: false });
  });

  it('names the policies that made a direction default-deny on a Policy denied drop', () => {
    assert.equal(defaultDeny.verdict, Verdict.DROPPED);
    assert.equal(defaultDeny.drop_reason_desc, 133);
    assert.equal(defaultDeny.drop_reason, 133);
    assert.deepEqual(defaultDeny.event_type, { type: 1, sub_type: 133 });
    assert.equal(defaultDeny.traffic_direction, TrafficDirection.INGRESS);
    assert.deepEqual(defaultDeny.ingress_denied_by, [
      { name: 'db-default-deny', namespace: 'db', kind: 'NetworkPolicy' },
    ]);
    assert.equal(defaultDeny.is_reply, undefined);
  });

  it('names the deny rule on a denylist drop and resolves a remote identity and DNS name', () => {
    assert.equal(denyWorld.drop_reason_desc, 181);
    assert.deepEqual(denyWorld.egress_denied_by, [{ name: 'deny-world', kind: 'CiliumClusterwideNetworkPolicy' }]);
    assert.deepEqual(denyWorld.destination, { identity: 16777217, labels: ['cidr:93.184.216.0/24', 'reserved:world'] });
    assert.deepEqual(denyWorld.destination_names, ['example.com']);
  });

  it('decodes ICMP and IPv6 UDP layers', () => {
    assert.deepEqual(icmp.l4, { ICMPv4: { type: 8, code: 0 } });
    assert.equal(icmp.Summary, 'ICMPv4 EchoRequest');
    assert.deepEqual(udp6.l4, { UDP: { source_port: 5353, destination_port: 53 } });
    assert.equal(udp6.IP?.ipVersion, 2);
    assert.deepEqual(udp6.destination, { identity: 2, labels: ['reserved:world'] });
  });

  it('reports a drop of a frame that is not IPv4 with no IP or L4 layer and its EtherType as summary', () => {
    const f = parseDatapathEvent(dropNotIpv4, context());
    assert.equal(f.verdict, Verdict.DROPPED);
    assert.equal(f.drop_reason_desc, 139);
    assert.equal(f.IP, undefined);
    assert.equal(f.l4, undefined);
    assert.equal(f.Summary, 'IPv6');
    const other = parseDatapathEvent({ ...dropNotIpv4, etherType: 0x88cc }, context());
    assert.equal(other.Summary, 'EtherType 0x88cc');
  });

  it('turns HTTP access records into L7 flows with summaries and attribution', () => {
    assert.equal(httpReq.Type, FlowType.L7);
    assert.deepEqual(httpReq.event_type, { type: 129 });
    assert.deepEqual(httpReq.l7, {
      type: 1,
      http: {
        method: 'POST',
        url: 'http://payments.shop:8080/v1/charge?id=7',
        protocol: 'HTTP/1.1',
        headers: [{ key: 'x-request-id', value: 'abc' }],
      },
    });
    assert.equal(httpReq.Summary, 'HTTP/1.1 POST http://payments.shop:8080/v1/charge?id=7');
    assert.equal(httpReq.ingress_allowed_by?.[0]?.name, 'payments-from-frontend');
    assert.equal(httpResp.l7?.type, 2);
    assert.equal(httpResp.l7?.latency_ns, 3_000_000);
    assert.equal(httpResp.Summary, 'HTTP/1.1 503 3ms (POST http://payments.shop:8080/v1/charge?id=7)');
    assert.deepEqual(httpResp.is_reply, { value: true });
  });

  it('attributes an L7 record to the policies the proxy names, allowed or denied', () => {
    const ref = { kind: 'CiliumNetworkPolicy' as const, namespace: 'shop', name: 'l7-rule' };
    const ctx = context();
    const allowedFlow = parseL7Record({ ...httpRequest, policies: [ref] }, ctx);
    assert.deepEqual(allowedFlow.ingress_allowed_by, [
      { name: 'l7-rule', kind: 'CiliumNetworkPolicy', namespace: 'shop' },
    ]);
    const deniedFlow = parseL7Record({ ...httpRequest, verdict: 'denied', policies: [ref] }, ctx);
    assert.equal(deniedFlow.verdict, Verdict.DROPPED);
    assert.deepEqual(deniedFlow.ingress_denied_by, [
      { name: 'l7-rule', kind: 'CiliumNetworkPolicy', namespace: 'shop' },
    ]);
    assert.equal(deniedFlow.ingress_allowed_by, undefined);
  });

  it('turns DNS access records into L7 flows', () => {
    assert.equal(dnsReq.Summary, 'DNS Query example.com. A');
    assert.deepEqual(dnsReq.l4, { UDP: { source_port: 40000, destination_port: 53 } });
    assert.equal(dnsResp.Summary, 'DNS Answer "93.184.216.34" TTL: 300 (Proxy example.com. A)');
    assert.deepEqual(dnsResp.l7?.dns, {
      query: 'example.com.',
      qtypes: ['A'],
      ips: ['93.184.216.34'],
      ttl: 300,
      rrtypes: ['A'],
      observation_source: 'proxy',
    });
  });

  it('lets the identity in the event win over the endpoint table', () => {
    const f = parseDatapathEvent({ ...traceSyn, srcIdentity: 9999 }, context());
    assert.equal(f.source?.identity, 9999);
    assert.equal(f.source?.pod_name, 'frontend-7d9f');
  });

  it('names a pod on another node without giving it a local endpoint ID', () => {
    const remote = new InMemoryEnrichment({
      endpoints: [
        {
          id: 0,
          ips: ['10.2.0.5'],
          identity: 7000,
          namespace: 'shop',
          podName: 'cart-1',
          labels: ['k8s:app=cart'],
          workloads: [],
        },
      ],
    });
    const f = parseDatapathEvent(
      { ...traceSyn, dstIp: '10.2.0.5', dstIdentity: 7000 },
      { ...context(), enrichment: remote },
    );
    assert.deepEqual(f.destination, {
      identity: 7000,
      namespace: 'shop',
      labels: ['k8s:app=cart'],
      pod_name: 'cart-1',
    });
  });

  it('reports a drop for an endpoint with no attribution data without inventing one', () => {
    const f = parseDatapathEvent({ ...dropDefaultDeny, endpointId: 555 }, context());
    assert.equal(f.ingress_denied_by, undefined);
  });

  const SUMMARIES: [number, number, number, string][] = [
    [6, 0x11, 0, 'TCP Flags: ACK, FIN'],
    [6, 0x14, 0, 'TCP Flags: ACK, RST'],
    [17, 0, 0, 'UDP'],
    [132, 0, 0, 'SCTP'],
    [1, 0, 0, 'ICMPv4 EchoReply'],
    [58, 0, 128, 'ICMPv6 EchoRequest'],
    [58, 0, 200, 'ICMPv6 Type200'],
  ];
  for (const [proto, flags, icmpType, want] of SUMMARIES)
    it(`summarises protocol ${proto} flags ${flags} type ${icmpType} as "${want}"`, () =>
      assert.equal(l4Summary(proto, flags, icmpType), want));

  const URLS: [string, string][] = [
    ['http://user:secret@host/p', 'http://user:HUBBLE_REDACTED@host/p'],
    ['http://user@host/p', 'http://user@host/p'],
    ['/just/a/path', '/just/a/path'],
    ['https://a:b@h', 'https://a:HUBBLE_REDACTED@h'],
  ];
  for (const [url, want] of URLS) it(`redacts ${url} to ${want}`, () => assert.equal(redactUrl(url), want));

  it('adds monotonic time to boot time without losing nanoseconds', () =>
    assert.deepEqual(wallFromMono({ seconds: 1795428000, nanos: 999_999_999 }, 2_000_000_001), {
      seconds: 1795428003,
      nanos: 0,
    }));

  it('makes unique uuids', () => {
    const next = uuidSource('ffffffffffffffffffff');
    assert.notEqual(next(), next());
  });

  it("gives a pod on another node ID 0 but its identity and names, and a local pod its own ID (the agent's enrichment)", () => {
    // Both nodes number endpoints from 1: web on n1 and client on n2 are both endpoint 5 there.
    const engine = new PolicyEngine();
    engine.upsertPod({
      namespace: 'alpha',
      name: 'client',
      labels: { app: 'client' },
      ports: [],
      podIPs: ['10.201.2.10'],
      endpointId: 5,
      nodeName: 'n2',
    });
    engine.upsertPod({
      namespace: 'alpha',
      name: 'web',
      labels: { app: 'web' },
      ports: [],
      podIPs: ['10.201.1.10'],
      nodeName: 'n1',
      remote: true,
    });
    const labels = (id: number) => engine.identityLabels(id)!.labels.map(formatLabel);
    const c = engine.endpointByPod('alpha', 'client')!;
    const w = engine.endpointByPod('alpha', 'web')!;
    const client = { ipv4: '10.201.2.10', identity: c.identity };
    const web = { ipv4: '10.201.1.10', identity: w.identity };
    const agent = {
      opts: { node: 'n2' },
      engine,
      storedEndpoint: (id: number) =>
        id === 5
          ? { id: 5, identity: c.identity, namespace: 'alpha', podName: 'client', identityLabels: labels(c.identity) }
          : undefined,
      endpointByIfindex: () => undefined,
      serviceOfAddress: () => undefined,
    } as unknown as Agent;
    const f = parseDatapathEvent(
      {
        ...traceSyn,
        endpointId: 5,
        srcIp: client.ipv4,
        dstIp: web.ipv4,
        srcIdentity: client.identity,
        dstIdentity: web.identity,
      },
      { ...context('n2'), enrichment: new AgentFlowEnrichment(agent) },
    );
    assert.deepEqual(f.source, {
      ID: 5,
      identity: c.identity,
      namespace: 'alpha',
      labels: labels(c.identity),
      pod_name: 'client',
    });
    assert.deepEqual(f.destination, {
      identity: w.identity,
      namespace: 'alpha',
      labels: labels(w.identity),
      pod_name: 'web',
    });
    assert.equal(f.traffic_direction, TrafficDirection.EGRESS);
  });
});
