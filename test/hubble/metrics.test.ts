// Metrics fed with the sample flows, scraped over HTTP and checked by value.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Flow } from '../../src/hubble/flow/flow.js';
import { HubbleMetrics } from '../../src/hubble/metrics/hubble-metrics.js';
import { parseMetricSpec, splitMetricOptions } from '../../src/hubble/metrics/metric-options.js';
import { MetricsServer } from '../../src/hubble/metrics/metrics-server.js';
import { sampleFlows } from './fixtures.js';

/** name{labels} -> value, from the Prometheus text format. */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

describe('hubble metrics over HTTP', () => {
  const metrics = new HubbleMetrics([
    'flow',
    'drop',
    'tcp',
    'port-distribution',
    'icmp',
    'dns:query;ignoreAAAA',
    'httpV2:sourceContext=pod;destinationContext=namespace|ip',
    'policy',
    'flows-to-world',
  ]);
  const server = new MetricsServer(metrics.registry);
  let samples = new Map<string, number>();

  before(async () => {
    const flows = sampleFlows();
    for (const f of flows) metrics.processFlow(f);
    const aaaa = structuredClone(flows[9]!);
    aaaa.l7!.dns!.qtypes = ['AAAA'];
    metrics.processFlow(aaaa);
    metrics.processLost(3, 13);
    metrics.processLost(1, 2);
    const addr = await server.listen('127.0.0.1:0');
    const res = await fetch(`http://${addr}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    samples = parseExposition(await res.text());
  });
  after(() => server.close());

  const EXPECTED: [string, number][] = [
    ['hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="from-endpoint",verdict="FORWARDED"}', 1],
    ['hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED"}', 1],
    ['hubble_flows_processed_total{protocol="TCP",type="PolicyVerdict",subtype="",verdict="FORWARDED"}', 1],
    ['hubble_flows_processed_total{protocol="TCP",type="Drop",subtype="",verdict="DROPPED"}', 2],
    ['hubble_flows_processed_total{protocol="ICMPv4",type="Trace",subtype="to-stack",verdict="FORWARDED"}', 1],
    ['hubble_flows_processed_total{protocol="UDP",type="Trace",subtype="to-stack",verdict="FORWARDED"}', 1],
    ['hubble_flows_processed_total{protocol="HTTP",type="L7",subtype="HTTP",verdict="FORWARDED"}', 2],
    ['hubble_flows_processed_total{protocol="DNS",type="L7",subtype="DNS",verdict="FORWARDED"}', 3],
    ['hubble_drop_total{reason="POLICY_DENIED",protocol="TCP"}', 1],
    ['hubble_drop_total{reason="POLICY_DENY",protocol="TCP"}', 1],
    ['hubble_tcp_flags_total{family="IPv4",flag="SYN"}', 2],
    ['hubble_tcp_flags_total{family="IPv4",flag="SYN-ACK"}', 1],
    ['hubble_port_distribution_total{protocol="TCP",port="8080"}', 2],
    ['hubble_port_distribution_total{protocol="ICMPv4",port="0"}', 1],
    ['hubble_port_distribution_total{protocol="UDP",port="53"}', 1],
    ['hubble_icmp_total{family="IPv4",type="EchoRequest"}', 1],
    ['hubble_dns_queries_total{qtypes="A",query="example.com.",rcode="",ips_returned="0"}', 1],
    ['hubble_dns_responses_total{qtypes="A",query="example.com.",rcode="No Error",ips_returned="1"}', 1],
    ['hubble_dns_response_types_total{qtypes="A",query="example.com.",type="A"}', 1],
    [
      'hubble_http_requests_total{method="POST",reporter="server",source="shop/payments-5c4b",destination="shop",protocol="HTTP/1.1",status="503"}',
      1,
    ],
    [
      'hubble_http_request_duration_seconds_bucket{le="0.005",method="POST",reporter="server",source="shop/payments-5c4b",destination="shop"}',
      1,
    ],
    [
      'hubble_http_request_duration_seconds_sum{method="POST",reporter="server",source="shop/payments-5c4b",destination="shop"}',
      0.003,
    ],
    [
      'hubble_http_request_duration_seconds_count{method="POST",reporter="server",source="shop/payments-5c4b",destination="shop"}',
      1,
    ],
    ['hubble_policy_verdicts_total{direction="ingress",match="l3-l4",action="forwarded"}', 1],
    ['hubble_policy_verdicts_total{direction="ingress",match="l7/http",action="forwarded"}', 1],
    // The AAAA query counts everywhere but in the dns metric (ignoreAAAA).
    ['hubble_policy_verdicts_total{direction="egress",match="l7/dns",action="forwarded"}', 2],
    ['hubble_flows_to_world_total{protocol="TCP",verdict="DROPPED"}', 1],
    ['hubble_flows_to_world_total{protocol="UDP",verdict="FORWARDED"}', 1],
    ['hubble_flows_to_world_total{protocol="DNS",verdict="FORWARDED"}', 2],
    ['hubble_lost_events_total{source="HUBBLE_RING_BUFFER"}', 13],
    ['hubble_lost_events_total{source="PERF_EVENT_RING_BUFFER"}', 2],
  ];
  for (const [series, value] of EXPECTED)
    it(`exposes ${series} = ${value}`, () => assert.equal(samples.get(series), value));

  it('counts only what it should (no series beyond the expected ones for flows and drops)', () => {
    const flowSeries = [...samples.keys()].filter((k) => k.startsWith('hubble_flows_processed_total'));
    assert.equal(flowSeries.length, 8);
    assert.equal([...samples.keys()].filter((k) => k.startsWith('hubble_drop_total')).length, 2);
  });

  it('answers 404 outside /metrics', async () => {
    const s = new MetricsServer(metrics.registry);
    const addr = await s.listen('127.0.0.1:0');
    assert.equal((await fetch(`http://${addr}/`)).status, 404);
    await s.close();
  });

  const BAD: [string, string][] = [
    [
      'dnss',
      'metrics option "dnss": expected a metric name (flow, drop, tcp, port-distribution, icmp, dns, http, httpV2, kafka, policy, flows-to-world), got "dnss"',
    ],
    ['dns:queries', 'metrics option "dns:queries": expected an option of dns, got "queries"'],
    [
      'flow:sourceContext=pod|nope',
      'metrics option "flow:sourceContext=pod|nope": expected sourceContext values among identity|namespace|pod|pod-short|pod-name|dns|ip|reserved-identity|workload-name|app, got "nope"',
    ],
    [
      'http:labelsContext=source_ip,bogus',
      'metrics option "http:labelsContext=source_ip,bogus": expected labelsContext labels among source_ip,source_pod,source_namespace,source_workload,source_app,destination_ip,destination_pod,destination_namespace,destination_workload,destination_app,traffic_direction, got "bogus"',
    ],
  ];
  for (const [spec, message] of BAD)
    it(`rejects the option string ${spec}`, () =>
      assert.throws(() => parseMetricSpec(spec), { code: 'MBR_METRICS_OPTION_INVALID', message }));

  const SPLITS: [string, string[]][] = [
    ['drop;sourceContext=pod flow port-distribution', ['drop;sourceContext=pod', 'flow', 'port-distribution']],
    ['flow,drop, tcp', ['flow', 'drop', 'tcp']],
    [
      'httpV2:labelsContext=source_ip,destination_pod,flow dns',
      ['httpV2:labelsContext=source_ip,destination_pod', 'flow', 'dns'],
    ],
    ['  ', []],
  ];
  for (const [text, want] of SPLITS)
    it(`splits the --hubble-metrics value ${JSON.stringify(text)}`, () =>
      assert.deepEqual(splitMetricOptions(text), want));
});

describe('hubble kafka metric', () => {
  it('counts Kafka requests by topic, API key, error code and reporter, and not responses', async () => {
    const metrics = new HubbleMetrics(['kafka']);
    const request = (topic: string, errorCode: number) =>
      ({
        Type: 2,
        verdict: errorCode === 0 ? 1 : 2,
        traffic_direction: 1,
        l7: { type: 1, kafka: { topic, api_key: 'produce', api_version: 7, correlation_id: 3, error_code: errorCode } },
      }) as Flow;
    metrics.processFlow(request('orders', 0));
    metrics.processFlow(request('orders', 0));
    metrics.processFlow(request('payment-events', 29));
    metrics.processFlow({
      ...request('orders', 0),
      l7: { type: 2, latency_ns: 2_000_000, kafka: { topic: 'orders' } },
    });
    const samples = parseExposition(await metrics.registry.metrics());
    assert.equal(
      samples.get('hubble_kafka_requests_total{topic="orders",api_key="produce",reporter="server",error_code="0"}'),
      2,
    );
    assert.equal(
      samples.get(
        'hubble_kafka_requests_total{topic="payment-events",api_key="produce",reporter="server",error_code="29"}',
      ),
      1,
    );
    assert.equal(
      samples.get('hubble_kafka_request_duration_seconds_count{topic="orders",api_key="produce",reporter="server"}'),
      2,
    );
  });
});
