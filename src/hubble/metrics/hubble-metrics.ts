// Prometheus metrics with Hubble's names and labels (namespace "hubble_"), fed one flow at a
// time. Which metrics exist, and which context labels they carry, comes from Hubble's option
// strings (metric-options.ts).
import { Counter, Histogram, Registry } from 'prom-client';
import { DROP_REASON_NAMES, type Endpoint, type Flow, RESERVED_IDENTITY_NAMES } from '../flow/flow.js';
import { DNS_RCODE_NAMES } from '../flow/parser.js';
import { POLICY_MATCH_NAMES, TRACE_POINT_NAMES } from '../printer/flow-printer.js';
import { type ContextOptions, type MetricSpec, parseMetricSpec } from './metric-options.js';

export class HubbleMetrics {
  readonly registry: Registry;
  private readonly handlers: ((f: Flow) => void)[] = [];
  private readonly lost: Counter;

  constructor(specs: readonly string[], registry = new Registry()) {
    this.registry = registry;
    this.lost = new Counter({
      name: 'hubble_lost_events_total',
      help: 'Number of lost events',
      labelNames: ['source'],
      registers: [registry],
    });
    for (const s of specs) this.handlers.push(this.build(parseMetricSpec(s)));
  }

  processFlow(f: Flow): void {
    for (const h of this.handlers) h(f);
  }

  processLost(source: number, count: number): void {
    this.lost.inc({ source: LOST_SOURCES[source] ?? 'UNKNOWN_LOST_EVENT_SOURCE' }, count);
  }

  private build(spec: MetricSpec): (f: Flow) => void {
    const reg = [this.registry];
    const ctx = contextLabels(spec.context);
    const names = ctx.names;
    switch (spec.name) {
      case 'flow': {
        const c = counter(reg, 'hubble_flows_processed_total', 'Total number of flows processed', [
          'protocol',
          'type',
          'subtype',
          'verdict',
          ...names,
        ]);
        return (f) =>
          c.inc(with_(ctx.values(f), { protocol: flowProtocol(f), ...flowTypeLabels(f), verdict: verdictName(f) }));
      }
      case 'drop': {
        const c = counter(reg, 'hubble_drop_total', 'Number of drops', ['reason', 'protocol', ...names]);
        return (f) => {
          if (f.verdict !== 2) return;
          c.inc(
            with_(ctx.values(f), {
              reason: DROP_REASON_NAMES[f.drop_reason_desc ?? 0] ?? 'DROP_REASON_UNKNOWN',
              protocol: flowProtocol(f),
            }),
          );
        };
      }
      case 'tcp': {
        const c = counter(reg, 'hubble_tcp_flags_total', 'TCP flag occurrences', ['flag', 'family', ...names]);
        return (f) => {
          const flags = f.l4?.TCP?.flags;
          if (flags === undefined || !(f.verdict === 1 || f.verdict === 5)) return;
          const base = with_(ctx.values(f), { family: family(f) });
          if (flags.SYN) c.inc({ ...base, flag: flags.ACK ? 'SYN-ACK' : 'SYN' });
          if (flags.FIN) c.inc({ ...base, flag: 'FIN' });
          if (flags.RST) c.inc({ ...base, flag: 'RST' });
        };
      }
      case 'port-distribution': {
        const c = counter(reg, 'hubble_port_distribution_total', 'Numbers of packets distributed by destination port', [
          'protocol',
          'port',
          ...names,
        ]);
        return (f) => {
          if (!(f.verdict === 1 || f.verdict === 5) || f.is_reply?.value === true || f.l7 !== undefined) return;
          const l4 = f.l4;
          const ports = l4?.TCP ?? l4?.UDP ?? l4?.SCTP;
          if (ports === undefined && l4?.ICMPv4 === undefined && l4?.ICMPv6 === undefined) return;
          c.inc(with_(ctx.values(f), { protocol: flowProtocol(f), port: String(ports?.destination_port ?? 0) }));
        };
      }
      case 'icmp': {
        const c = counter(reg, 'hubble_icmp_total', 'Number of ICMP messages', ['family', 'type', ...names]);
        return (f) => {
          const v4 = f.l4?.ICMPv4;
          const v6 = f.l4?.ICMPv6;
          if (v4 !== undefined)
            c.inc(with_(ctx.values(f), { family: 'IPv4', type: ICMPV4[v4.type ?? 0] ?? String(v4.type ?? 0) }));
          else if (v6 !== undefined)
            c.inc(with_(ctx.values(f), { family: 'IPv6', type: ICMPV6[v6.type ?? 0] ?? String(v6.type ?? 0) }));
        };
      }
      case 'dns': {
        const withQuery = spec.flags.has('query');
        const ignoreAAAA = spec.flags.has('ignoreAAAA');
        const q = withQuery ? ['query'] : [];
        const queries = counter(reg, 'hubble_dns_queries_total', 'Number of DNS queries observed', [
          'rcode',
          'qtypes',
          'ips_returned',
          ...q,
          ...names,
        ]);
        const responses = counter(reg, 'hubble_dns_responses_total', 'Number of DNS responses observed', [
          'rcode',
          'qtypes',
          'ips_returned',
          ...q,
          ...names,
        ]);
        const types = counter(reg, 'hubble_dns_response_types_total', 'Number of DNS response types', [
          'type',
          'qtypes',
          ...q,
          ...names,
        ]);
        return (f) => {
          const dns = f.l7?.dns;
          if (dns === undefined) return;
          const qtypes = (dns.qtypes ?? []).join(',');
          if (ignoreAAAA && (dns.qtypes ?? []).length > 0 && (dns.qtypes ?? []).every((t) => t === 'AAAA')) return;
          const base = with_(ctx.values(f), withQuery ? { qtypes, query: dns.query ?? '' } : { qtypes });
          if (f.verdict === 2) {
            queries.inc({ ...base, rcode: 'Policy denied', ips_returned: '0' });
            return;
          }
          if (f.l7?.type === 1) queries.inc({ ...base, rcode: '', ips_returned: '0' });
          else if (f.l7?.type === 2) {
            responses.inc({
              ...base,
              rcode: DNS_RCODE_NAMES[dns.rcode ?? 0] ?? String(dns.rcode),
              ips_returned: String((dns.ips ?? []).length),
            });
            for (const t of dns.rrtypes ?? []) types.inc({ ...base, type: t });
          }
        };
      }
      case 'http':
      case 'httpV2': {
        const v2 = spec.name === 'httpV2';
        const requests = counter(
          reg,
          'hubble_http_requests_total',
          'Count of HTTP requests',
          v2 ? ['method', 'protocol', 'status', 'reporter', ...names] : ['method', 'protocol', 'reporter', ...names],
        );
        const responses = v2
          ? undefined
          : counter(reg, 'hubble_http_responses_total', 'Count of HTTP responses', [
              'method',
              'protocol',
              'status',
              'reporter',
              ...names,
            ]);
        const duration = new Histogram({
          name: 'hubble_http_request_duration_seconds',
          help: 'Quantiles of HTTP request duration in seconds',
          labelNames: ['method', 'reporter', ...names],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers: reg,
        });
        return (f) => {
          const http = f.l7?.http;
          if (http === undefined) return;
          const reporter = f.traffic_direction === 2 ? 'client' : f.traffic_direction === 1 ? 'server' : 'unknown';
          const base = with_(ctx.values(f), { method: http.method ?? '', reporter });
          const isResponse = f.l7?.type === 2;
          if (!v2 && !isResponse) requests.inc({ ...base, protocol: http.protocol ?? '' });
          if (!isResponse) return;
          const status = String(http.code ?? 0);
          if (v2) requests.inc({ ...base, protocol: http.protocol ?? '', status });
          else responses!.inc({ ...base, protocol: http.protocol ?? '', status });
          if (f.l7?.latency_ns) duration.observe(base, Number(f.l7.latency_ns) / 1e9);
        };
      }
      case 'kafka': {
        // As Hubble: requests only (a denied one carries its error code), by topic and API key.
        const requests = counter(reg, 'hubble_kafka_requests_total', 'Count of Kafka requests', [
          'topic',
          'api_key',
          'error_code',
          'reporter',
          ...names,
        ]);
        const duration = new Histogram({
          name: 'hubble_kafka_request_duration_seconds',
          help: 'Quantiles of Kafka request duration in seconds',
          labelNames: ['topic', 'api_key', 'reporter', ...names],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers: reg,
        });
        return (f) => {
          const kafka = f.l7?.kafka;
          if (kafka === undefined || f.l7?.type !== 1) return;
          const reporter = f.traffic_direction === 2 ? 'client' : f.traffic_direction === 1 ? 'server' : 'unknown';
          const base = with_(ctx.values(f), { topic: kafka.topic ?? '', api_key: kafka.api_key ?? '', reporter });
          requests.inc({ ...base, error_code: String(kafka.error_code ?? 0) });
          duration.observe(base, Number(f.l7.latency_ns ?? 0) / 1e9);
        };
      }
      case 'policy': {
        const c = counter(reg, 'hubble_policy_verdicts_total', 'Number of policy verdict events', [
          'direction',
          'match',
          'action',
          ...names,
        ]);
        return (f) => {
          const dir = ['unknown', 'ingress', 'egress'][f.traffic_direction ?? 0]!;
          const action = verdictName(f).toLowerCase();
          if (f.l7 !== undefined) {
            const kind = f.l7.http !== undefined ? 'http' : f.l7.dns !== undefined ? 'dns' : 'kafka';
            if (f.l7.type === 1 || f.verdict === 2)
              c.inc(with_(ctx.values(f), { direction: dir, match: `l7/${kind}`, action }));
            return;
          }
          if (f.event_type?.type !== 5 || f.source?.identity === 1) return;
          const match = (POLICY_MATCH_NAMES[f.policy_match_type ?? 0] ?? 'none').toLowerCase();
          c.inc(with_(ctx.values(f), { direction: dir, match, action }));
        };
      }
      case 'flows-to-world': {
        const c = counter(reg, 'hubble_flows_to_world_total', 'Total number of flows to reserved:world', [
          'protocol',
          'verdict',
          ...names,
        ]);
        return (f) => {
          const labels = f.destination?.labels ?? [];
          if (!labels.includes('reserved:world') || f.is_reply?.value === true) return;
          c.inc(with_(ctx.values(f), { protocol: flowProtocol(f), verdict: verdictName(f) }));
        };
      }
    }
  }
}

const LOST_SOURCES = [
  'UNKNOWN_LOST_EVENT_SOURCE',
  'PERF_EVENT_RING_BUFFER',
  'OBSERVER_EVENTS_QUEUE',
  'HUBBLE_RING_BUFFER',
];
const VERDICTS = ['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'ERROR', 'AUDIT', 'REDIRECTED', 'TRACED', 'TRANSLATED'];
const ICMPV4: Readonly<Record<number, string>> = {
  0: 'EchoReply',
  3: 'DestinationUnreachable',
  5: 'Redirect',
  8: 'EchoRequest',
  11: 'TimeExceeded',
};
const ICMPV6: Readonly<Record<number, string>> = {
  1: 'DestinationUnreachable',
  2: 'PacketTooBig',
  3: 'TimeExceeded',
  128: 'EchoRequest',
  129: 'EchoReply',
  135: 'NeighborSolicitation',
  136: 'NeighborAdvertisement',
};

type Labels = Record<string, string>;

function counter(registers: Registry[], name: string, help: string, labelNames: string[]): Counter {
  return new Counter({ name, help, labelNames, registers });
}

function with_(context: Labels, labels: Labels): Labels {
  return { ...labels, ...context };
}

function verdictName(f: Flow): string {
  return VERDICTS[f.verdict ?? 0] ?? 'VERDICT_UNKNOWN';
}

/** The L7 protocol for L7 flows, else the L4 one. */
function flowProtocol(f: Flow): string {
  const l7 = f.l7;
  if (l7 !== undefined)
    return l7.http !== undefined ? 'HTTP' : l7.dns !== undefined ? 'DNS' : l7.kafka !== undefined ? 'Kafka' : 'Unknown';
  const l4 = f.l4;
  if (l4?.TCP) return 'TCP';
  if (l4?.UDP) return 'UDP';
  if (l4?.ICMPv4) return 'ICMPv4';
  if (l4?.ICMPv6) return 'ICMPv6';
  if (l4?.SCTP) return 'SCTP';
  return 'Unknown';
}

function flowTypeLabels(f: Flow): { type: string; subtype: string } {
  if (f.l7 !== undefined) return { type: 'L7', subtype: flowProtocol(f) };
  switch (f.event_type?.type) {
    case 1:
      return { type: 'Drop', subtype: '' };
    case 4:
      return { type: 'Trace', subtype: TRACE_POINT_NAMES[f.event_type.sub_type ?? 0] ?? '' };
    case 5:
      return { type: 'PolicyVerdict', subtype: '' };
    case 3:
      return { type: 'Capture', subtype: '' };
    default:
      return { type: 'Unknown', subtype: '' };
  }
}

function family(f: Flow): string {
  return f.IP?.ipVersion === 2 ? 'IPv6' : 'IPv4';
}

interface ContextLabels {
  readonly names: string[];
  values(f: Flow): Labels;
}

/** The "source"/"destination" and labelsContext labels a metric carries, and their values. */
function contextLabels(c: ContextOptions): ContextLabels {
  const names: string[] = [];
  const hasSource = c.source ?? c.sourceEgress ?? c.sourceIngress;
  const hasDestination = c.destination ?? c.destinationEgress ?? c.destinationIngress;
  if (hasSource) names.push('source');
  if (hasDestination) names.push('destination');
  names.push(...c.labels);
  if (names.length === 0) return { names, values: () => ({}) };
  return {
    names,
    values(f) {
      const out: Labels = {};
      const egress = f.traffic_direction === 2;
      const ingress = f.traffic_direction === 1;
      if (hasSource) {
        const chain = (egress ? c.sourceEgress : ingress ? c.sourceIngress : undefined) ?? c.source;
        out.source = chain === undefined ? '' : contextValue(chain, f, 'source');
      }
      if (hasDestination) {
        const chain = (egress ? c.destinationEgress : ingress ? c.destinationIngress : undefined) ?? c.destination;
        out.destination = chain === undefined ? '' : contextValue(chain, f, 'destination');
      }
      for (const l of c.labels) out[l] = labelValue(l, f);
      return out;
    },
  };
}

function contextValue(chain: readonly string[], f: Flow, side: 'source' | 'destination'): string {
  const ep = f[side];
  for (const kind of chain) {
    const v = endpointValue(kind, f, side, ep);
    if (v !== '') return v;
  }
  return '';
}

function endpointValue(kind: string, f: Flow, side: 'source' | 'destination', ep: Endpoint | undefined): string {
  switch (kind) {
    case 'identity':
      return (ep?.labels ?? []).join(',');
    case 'namespace':
      return ep?.namespace ?? '';
    case 'pod':
      return ep?.pod_name ? `${ep.namespace ?? ''}/${ep.pod_name}` : '';
    case 'pod-short':
      return ep?.pod_name ? `${ep.namespace ?? ''}/${shortPod(ep.pod_name)}` : '';
    case 'pod-name':
      return ep?.pod_name ?? '';
    case 'dns':
      return (side === 'source' ? f.source_names : f.destination_names)?.[0] ?? '';
    case 'ip':
      return (side === 'source' ? f.IP?.source : f.IP?.destination) ?? '';
    case 'reserved-identity': {
      const name = RESERVED_IDENTITY_NAMES[ep?.identity ?? 0];
      return name === undefined ? '' : `reserved:${name}`;
    }
    case 'workload-name':
      return ep?.workloads?.[0]?.name ?? '';
    case 'app':
      return appLabel(ep?.labels ?? []);
    default:
      return '';
  }
}

function labelValue(label: string, f: Flow): string {
  const [side, what] = label.startsWith('source_')
    ? (['source', label.slice(7)] as const)
    : label.startsWith('destination_')
      ? (['destination', label.slice(12)] as const)
      : ([undefined, label] as const);
  if (side === undefined) return ['unknown', 'ingress', 'egress'][f.traffic_direction ?? 0]!;
  const kind =
    { ip: 'ip', pod: 'pod-name', namespace: 'namespace', workload: 'workload-name', app: 'app' }[what] ?? what;
  return endpointValue(kind, f, side, f[side]);
}

function appLabel(labels: readonly string[]): string {
  for (const key of ['app.kubernetes.io/name', 'k8s-app', 'app']) {
    for (const l of labels) {
      const colon = l.indexOf(':');
      const kv = l.slice(colon + 1);
      if (kv.startsWith(`${key}=`)) return kv.slice(key.length + 1);
    }
  }
  return '';
}

/** "frontend-7d9f8b6c5-x2x9z" -> "frontend": drops the replica set and pod hash suffixes. */
function shortPod(name: string): string {
  return name.replace(/(-[a-z0-9]{5,10})?-[a-z0-9]{5}$/, '');
}
