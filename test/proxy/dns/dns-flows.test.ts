// From the DNS proxy to where users look: its access records become Hubble L7 DNS flows (query,
// qtypes, rcode, ips, ttl, cnames, verdict, the policy), flows to a learned IP carry
// destination_names, --to-fqdn / --protocol dns select them, and the dns metrics count them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AgentFlowEnrichment } from '../../../src/agent/flow-enrichment.js';
import { compileFlowFilter } from '../../../src/hubble/filters/flow-filter.js';
import { type FlowParserContext, parseDatapathEvent, parseL7Record } from '../../../src/hubble/flow/parser.js';
import { HubbleMetrics } from '../../../src/hubble/metrics/hubble-metrics.js';
import type { TraceEvent } from '../../../src/monitor/event-types.js';
import { CLIENT, type DnsHarness, startDnsHarness } from '../../support/dns-harness.js';

const run = promisify(execFile);

describe('DNS flows', () => {
  let h: DnsHarness;
  let ctx: FlowParserContext;
  before(async () => {
    h = await startDnsHarness({
      hosts: ['10.200.0.1 api.stripe.com', '10.200.0.9 api.github.com'],
      ttlSeconds: 30,
      dnsPatterns: ['*.stripe.com'],
      fqdnPatterns: ['*.stripe.com'],
    });
    let n = 0;
    ctx = {
      nodeName: 'n1',
      enrichment: new AgentFlowEnrichment(h.agent),
      monoToWall: () => ({ seconds: 0, nanos: 0 }),
      uuid: () => `uuid-${n++}`,
    };
    for (const name of ['api.stripe.com', 'api.github.com'])
      await run('dig', ['+time=2', '+tries=2', '-p', String(h.udpPort), '@127.0.0.1', name]);
  });
  after(async () => {
    await h?.stop();
  });

  it('turns the answer into an L7 DNS response flow with the policy that allowed it', () => {
    const rec = h.records.find((r) => r.type === 'response' && r.dns?.query === 'api.stripe.com.')!;
    const f = parseL7Record(rec, ctx);
    assert.equal(f.Type, 2, 'L7');
    assert.equal(f.verdict, 1, 'FORWARDED');
    assert.deepEqual(f.l7?.dns?.ips, ['10.200.0.1']);
    assert.equal(f.l7?.dns?.query, 'api.stripe.com.');
    assert.deepEqual(f.l7?.dns?.qtypes, ['A']);
    assert.equal(f.l7?.dns?.ttl, 30);
    assert.equal(f.l7?.dns?.observation_source, 'proxy');
    assert.equal(f.Summary, 'DNS Answer "10.200.0.1" TTL: 30 (Proxy api.stripe.com. A)');
    // The harness's clients ask from 127.0.0.1; the identity is the endpoint's.
    assert.equal(f.destination?.identity, h.agent.endpoint(h.endpointId)!.identity);
    assert.ok(f.l7?.latency_ns !== undefined && f.l7.latency_ns > 0);
    assert.deepEqual(
      f.egress_allowed_by?.map((p) => p.name),
      ['client-dns'],
    );
  });

  it('turns a refused query into a DROPPED L7 DNS request flow', () => {
    const recs = h.records.filter((r) => r.dns?.query === 'api.github.com.');
    assert.equal(recs.length, 1);
    const f = parseL7Record(recs[0]!, ctx);
    assert.equal(f.verdict, 2, 'DROPPED');
    assert.equal(f.Summary, 'DNS Query api.github.com. A');
    assert.deepEqual(
      f.egress_denied_by?.map((p) => p.name),
      ['client-dns'],
    );
    assert.equal(f.source?.identity, h.agent.endpoint(h.endpointId)!.identity);
  });

  it('names the learned IP in destination_names of an L3/L4 flow, and --to-fqdn selects it', () => {
    const ev: TraceEvent = {
      kind: 4,
      monoNs: 1,
      cpu: 0,
      ifindex: 0,
      origLen: 60,
      capLen: 60,
      endpointId: h.endpointId,
      srcIdentity: h.agent.endpoint(h.endpointId)!.identity,
      dstIdentity: h.ipcache('10.200.0.1')!,
      srcIp: CLIENT.ip,
      dstIp: '10.200.0.1',
      protocol: 6,
      srcPort: 40000,
      dstPort: 443,
      tcpFlags: 2,
      observationPoint: 5,
      ctState: 1,
    } as unknown as TraceEvent;
    const f = parseDatapathEvent(ev, ctx);
    assert.deepEqual(f.destination_names, ['api.stripe.com']);
    assert.equal(compileFlowFilter({ destination_fqdn: ['*.stripe.com'] })(f), true);
    assert.equal(compileFlowFilter({ destination_fqdn: ['api.github.com'] })(f), false);
    const dnsFlows = h.records.map((r) => parseL7Record(r, ctx));
    assert.equal(dnsFlows.filter(compileFlowFilter({ protocol: ['dns'] })).length, dnsFlows.length);
  });

  it("counts the flows in Hubble's dns metrics", async () => {
    const m = new HubbleMetrics(['dns:query']);
    for (const r of h.records) m.processFlow(parseL7Record(r, ctx));
    const value = async (name: string, labels: Record<string, string>) => {
      const got = await m.registry.getSingleMetric(name)!.get();
      return got.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
    };
    const stripe = { qtypes: 'A', query: 'api.stripe.com.' };
    assert.equal(await value('hubble_dns_queries_total', { ...stripe, rcode: '', ips_returned: '0' }), 1);
    assert.equal(
      await value('hubble_dns_queries_total', { qtypes: 'A', query: 'api.github.com.', rcode: 'Policy denied' }),
      1,
    );
    assert.equal(await value('hubble_dns_responses_total', { ...stripe, rcode: 'No Error', ips_returned: '1' }), 1);
    assert.equal(await value('hubble_dns_response_types_total', { ...stripe, type: 'A' }), 1);
  });
});
