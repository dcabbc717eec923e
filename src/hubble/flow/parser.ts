// Datapath events and L7 proxy access records -> flows. Pure: time, uuids and everything about
// endpoints, identities, names and policies come in through FlowParserContext.
//
// Field rules follow Hubble's L3/L4 parser: a drop is DROPPED with its reason; a trace is
// FORWARDED at its observation point; a policy verdict < 0 is DROPPED, > 0 REDIRECTED to that
// proxy port, audit mode AUDIT, else FORWARDED. Endpoint data comes from the local endpoint table
// when the IP belongs to one, else from the identity cache; the identity carried by the event wins
// over a stale userspace one.
//
// Flows share sub-objects (endpoints, flag sets, ...): treat a flow as immutable; copy to change.
import type { DatapathEvent, DropEvent, PolicyVerdictEvent, TraceEvent } from '../../monitor/event-types.js';
import type { TrafficDirection as PolicyDirection, PolicyRef } from '../../policy/map-state-types.js';
import { KAFKA_API_KEYS } from '../../policy/protocol-names.js';
import type { EndpointInfo, FlowEnrichment, PolicyOutcome } from './enrichment.js';
import {
  type DNS,
  type Endpoint,
  type Flow,
  FlowType,
  type HTTP,
  IPVersion,
  type Kafka,
  L7FlowType,
  type Layer4,
  MonitorEventType,
  type Policy,
  RESERVED_IDENTITY_NAMES,
  type Timestamp,
  TraceObservationPoint,
  TrafficDirection,
  Verdict,
} from './flow.js';

export interface FlowParserContext {
  readonly nodeName: string;
  readonly enrichment: FlowEnrichment;
  /** CLOCK_MONOTONIC ns -> wall-clock time (the datapath measures the offset; see wallFromMono). */
  monoToWall(monoNs: number): Timestamp;
  /** A fresh flow uuid. */
  uuid(): string;
}

/** An access record from the L7 proxy: one HTTP/DNS/Kafka request or response it handled. */
export interface L7Record {
  readonly time: Timestamp;
  readonly type: 'request' | 'response';
  /** The local endpoint on whose behalf the proxy acted. */
  readonly endpointId: number;
  readonly direction: PolicyDirection;
  /** Addresses of this message: for a response the server is the source. */
  readonly srcIp: string;
  readonly dstIp: string;
  readonly srcPort: number;
  readonly dstPort: number;
  /** IP protocol number: 6 TCP, 17 UDP. */
  readonly protocol: number;
  readonly srcIdentity: number;
  readonly dstIdentity: number;
  /** forwarded: allowed and passed on; denied: refused by L7 policy; error: the proxy failed. */
  readonly verdict: 'forwarded' | 'denied' | 'error';
  /**
   * The policies whose L7 rules decided: for an allowed message the ones with a matching rule,
   * for a denied one every policy of the redirect (none matched). They become the flow's
   * `*_allowed_by` / `*_denied_by`; absent: attributed from the L3/L4 policy as for any flow.
   */
  readonly policies?: readonly PolicyRef[];
  readonly latencyNs?: number;
  readonly http?: {
    readonly code?: number;
    readonly method: string;
    readonly url: string;
    readonly protocol: string;
    readonly headers?: readonly { readonly key: string; readonly value: string }[];
  };
  readonly dns?: {
    readonly query: string;
    readonly qtypes: readonly string[];
    readonly ips?: readonly string[];
    readonly ttl?: number;
    readonly cnames?: readonly string[];
    readonly rcode?: number;
    readonly rrtypes?: readonly string[];
    /** "proxy" for the DNS proxy. */
    readonly observationSource?: string;
  };
  readonly kafka?: {
    readonly apiKey: number;
    readonly apiVersion: number;
    readonly correlationId: number;
    /** The request's topics, comma-separated; absent for API keys without topics. */
    readonly topic?: string;
    /** A response's error code (29 TOPIC_AUTHORIZATION_FAILED on a denied request). */
    readonly errorCode?: number;
  };
}

export function parseDatapathEvent(ev: DatapathEvent, ctx: FlowParserContext): Flow {
  switch (ev.kind) {
    case 1:
      return parseDrop(ev, ctx);
    case 4:
      return parseTrace(ev, ctx);
    default:
      return parsePolicyVerdict(ev, ctx);
  }
}

export function parseL7Record(rec: L7Record, ctx: FlowParserContext): Flow {
  const en = ctx.enrichment;
  const isResponse = rec.type === 'response';
  const flow: Flow = {
    time: { seconds: rec.time.seconds, nanos: rec.time.nanos },
    uuid: ctx.uuid(),
    verdict:
      rec.verdict === 'forwarded' ? Verdict.FORWARDED : rec.verdict === 'denied' ? Verdict.DROPPED : Verdict.ERROR,
    IP: {
      source: rec.srcIp,
      destination: rec.dstIp,
      ipVersion: rec.srcIp.includes(':') ? IPVersion.IPv6 : IPVersion.IPv4,
    },
    l4: rec.protocol === 17 ? { UDP: ports(rec.srcPort, rec.dstPort) } : { TCP: ports(rec.srcPort, rec.dstPort) },
    source: endpointFor(rec.srcIp, rec.srcIdentity, en),
    destination: endpointFor(rec.dstIp, rec.dstIdentity, en),
    Type: FlowType.L7,
    node_name: ctx.nodeName,
    event_type: { type: MonitorEventType.accessLog },
    traffic_direction: rec.direction === 'ingress' ? TrafficDirection.INGRESS : TrafficDirection.EGRESS,
    is_reply: isResponse ? IS_REPLY : NOT_REPLY,
    l7: { type: isResponse ? L7FlowType.RESPONSE : L7FlowType.REQUEST },
  };
  addNames(flow, rec.srcIp, rec.dstIp, en);
  if (rec.policies !== undefined && rec.policies.length > 0) {
    const policies = rec.policies.map(toPolicy);
    const isIngress = rec.direction === 'ingress';
    if (rec.verdict === 'denied') {
      if (isIngress) flow.ingress_denied_by = policies;
      else flow.egress_denied_by = policies;
    } else if (isIngress) flow.ingress_allowed_by = policies;
    else flow.egress_allowed_by = policies;
  }
  const l7 = flow.l7!;
  if (rec.latencyNs !== undefined && rec.latencyNs > 0) l7.latency_ns = rec.latencyNs;
  if (rec.http !== undefined) {
    const h = rec.http;
    const http: HTTP = { method: h.method, url: redactUrl(h.url), protocol: h.protocol };
    if (h.code !== undefined && h.code > 0) http.code = h.code;
    if (h.headers !== undefined && h.headers.length > 0)
      http.headers = h.headers.map((x) => ({ key: x.key, value: x.value }));
    l7.http = http;
    flow.Summary = isResponse
      ? `${h.protocol} ${h.code ?? 0} ${Math.round((rec.latencyNs ?? 0) / 1e6)}ms (${h.method} ${http.url})`
      : `${h.protocol} ${h.method} ${http.url}`;
  } else if (rec.dns !== undefined) {
    const d = rec.dns;
    const dns: DNS = { query: d.query, qtypes: [...d.qtypes] };
    if (d.ips !== undefined && d.ips.length > 0) dns.ips = [...d.ips];
    if (d.ttl !== undefined && d.ttl > 0) dns.ttl = d.ttl;
    if (d.cnames !== undefined && d.cnames.length > 0) dns.cnames = [...d.cnames];
    if (d.rcode !== undefined && d.rcode > 0) dns.rcode = d.rcode;
    if (d.rrtypes !== undefined && d.rrtypes.length > 0) dns.rrtypes = [...d.rrtypes];
    dns.observation_source = d.observationSource ?? 'proxy';
    l7.dns = dns;
    const qt = d.qtypes.join(',');
    if (!isResponse) flow.Summary = `DNS Query ${d.query} ${qt}`;
    else if ((d.rcode ?? 0) !== 0)
      flow.Summary = `DNS Answer RCode: ${DNS_RCODE_NAMES[d.rcode ?? 0] ?? d.rcode} (Proxy ${d.query} ${qt})`;
    else flow.Summary = `DNS Answer "${(d.ips ?? []).join(',')}" TTL: ${d.ttl ?? 0} (Proxy ${d.query} ${qt})`;
  } else if (rec.kafka !== undefined) {
    const k = rec.kafka;
    const kafka: Kafka = {
      api_key: KAFKA_API_KEYS[k.apiKey] ?? String(k.apiKey),
      api_version: k.apiVersion,
      correlation_id: k.correlationId,
    };
    if (k.topic !== undefined && k.topic !== '') kafka.topic = k.topic;
    if (k.errorCode !== undefined && k.errorCode !== 0) kafka.error_code = k.errorCode;
    l7.kafka = kafka;
    flow.Summary = isResponse
      ? `Kafka response ${kafka.api_key} correlation id ${k.correlationId} topic '${k.topic ?? ''}' return code ${k.errorCode ?? 0}`
      : `Kafka request ${kafka.api_key} correlation id ${k.correlationId} topic '${k.topic ?? ''}'`;
  }
  const remoteIdentity = rec.direction === 'ingress' ? rec.srcIdentity : rec.dstIdentity;
  const port = isResponse ? rec.srcPort : rec.dstPort;
  const outcome: PolicyOutcome = rec.verdict === 'denied' ? 'denied' : 'allowed';
  if (rec.verdict !== 'error' && rec.policies !== undefined && rec.policies.length > 0)
    setAttribution(flow, rec.direction, outcome, rec.policies.map(toPolicy));
  else if (rec.verdict !== 'error')
    attribute(flow, en, rec.endpointId, rec.direction, remoteIdentity, rec.protocol, port, outcome);
  return flow;
}

/**
 * Boot time + a CLOCK_MONOTONIC reading. Wall-clock nanoseconds since the epoch exceed 2^53, so
 * seconds and nanoseconds are added separately to stay exact.
 */
export function wallFromMono(boot: Timestamp, monoNs: number): Timestamp {
  const monoSec = Math.floor(monoNs / 1e9);
  let nanos = boot.nanos + (monoNs - monoSec * 1e9);
  let seconds = boot.seconds + monoSec;
  if (nanos >= 1e9) {
    nanos -= 1e9;
    seconds += 1;
  }
  return { seconds, nanos };
}

/** DNS RCODE names (RFC 1035 and successors), as DNS tooling prints them. */
export const DNS_RCODE_NAMES: Readonly<Record<number, string>> = {
  0: 'No Error',
  1: 'Format Error',
  2: 'Server Failure',
  3: 'Non-Existent Domain',
  4: 'Not Implemented',
  5: 'Query Refused',
};

/** Replaces the password of a URL's user info, so credentials never reach flow storage. */
export function redactUrl(url: string): string {
  const scheme = url.indexOf('://');
  if (scheme < 0) return url;
  const hostEnd = url.indexOf('/', scheme + 3);
  const authority = url.slice(scheme + 3, hostEnd < 0 ? undefined : hostEnd);
  const at = authority.lastIndexOf('@');
  if (at < 0) return url;
  const colon = authority.indexOf(':');
  if (colon < 0 || colon > at) return url;
  const redacted = `${authority.slice(0, colon)}:HUBBLE_REDACTED${authority.slice(at)}`;
  return url.slice(0, scheme + 3) + redacted + (hostEnd < 0 ? '' : url.slice(hostEnd));
}

/** "TCP Flags: SYN, ACK", "ICMPv4 EchoRequest", "UDP": the Summary Hubble writes for L3/L4 flows. */
export function l4Summary(protocol: number, tcpFlags: number, icmpType: number): string {
  switch (protocol) {
    case 6:
      return `TCP Flags: ${tcpFlagNames(tcpFlags)}`;
    case 17:
      return 'UDP';
    case 132:
      return 'SCTP';
    case 1:
      return `ICMPv4 ${ICMPV4_TYPE_NAMES[icmpType] ?? `Type${icmpType}`}`;
    case 58:
      return `ICMPv6 ${ICMPV6_TYPE_NAMES[icmpType] ?? `Type${icmpType}`}`;
    default:
      return protocol === 0 ? 'IPv4' : `IP protocol ${protocol}`;
  }
}

const TCP_FLAG_ORDER: readonly (readonly [number, string])[] = [
  [0x02, 'SYN'],
  [0x10, 'ACK'],
  [0x01, 'FIN'],
  [0x04, 'RST'],
  [0x08, 'PSH'],
  [0x20, 'URG'],
  [0x40, 'ECE'],
  [0x80, 'CWR'],
];

function tcpFlagNames(flags: number): string {
  const out: string[] = [];
  for (const [bit, name] of TCP_FLAG_ORDER) if ((flags & bit) !== 0) out.push(name);
  return out.join(', ');
}

const ICMPV4_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'EchoReply',
  3: 'DestinationUnreachable',
  5: 'Redirect',
  8: 'EchoRequest',
  11: 'TimeExceeded',
};
const ICMPV6_TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'DestinationUnreachable',
  2: 'PacketTooBig',
  3: 'TimeExceeded',
  128: 'EchoRequest',
  129: 'EchoReply',
  133: 'RouterSolicitation',
  134: 'RouterAdvertisement',
  135: 'NeighborSolicitation',
  136: 'NeighborAdvertisement',
};

function parseDrop(ev: DropEvent, ctx: FlowParserContext): Flow {
  const flow = baseFlow(ev, ctx, Verdict.DROPPED, ev.reason);
  flow.drop_reason = ev.reason;
  flow.drop_reason_desc = ev.reason;
  flow.traffic_direction = ev.direction === 'ingress' ? TrafficDirection.INGRESS : TrafficDirection.EGRESS;
  // Only policy drops are attributed; a default-deny drop (133) names the policies that made the
  // direction default-deny, a deny drop (181) the deny rules.
  if (ev.reason === 133 || ev.reason === 181)
    attributeEvent(flow, ev, ctx, ev.direction, ev.reason === 181 ? 'denied' : 'default-deny');
  return flow;
}

function parseTrace(ev: TraceEvent, ctx: FlowParserContext): Flow {
  const flow = baseFlow(ev, ctx, Verdict.FORWARDED, ev.observationPoint);
  flow.trace_observation_point = ev.observationPoint === 0 ? TraceObservationPoint.TO_ENDPOINT : ev.observationPoint;
  if (ev.ctState !== 0) flow.trace_reason = ev.ctState;
  flow.is_reply = ev.isReply ? IS_REPLY : NOT_REPLY;
  if (ev.isReply) flow.reply = true;
  // The packet leaves the pod (egress) unless it is a reply, and the other way round.
  const sourceIsLocal = flow.source?.ID === ev.endpointId && ev.endpointId !== 0;
  flow.traffic_direction = sourceIsLocal !== ev.isReply ? TrafficDirection.EGRESS : TrafficDirection.INGRESS;
  return flow;
}

function parsePolicyVerdict(ev: PolicyVerdictEvent, ctx: FlowParserContext): Flow {
  const verdict =
    ev.verdict < 0
      ? Verdict.DROPPED
      : ev.verdict > 0
        ? Verdict.REDIRECTED
        : ev.isAudit
          ? Verdict.AUDIT
          : Verdict.FORWARDED;
  const flow = baseFlow(ev, ctx, verdict, 0);
  flow.traffic_direction = ev.direction === 'ingress' ? TrafficDirection.INGRESS : TrafficDirection.EGRESS;
  flow.policy_match_type = ev.matchType;
  flow.is_reply = NOT_REPLY;
  if (ev.authType !== 0) flow.auth_type = ev.authType;
  if (ev.verdict < 0) {
    flow.drop_reason = -ev.verdict;
    flow.drop_reason_desc = -ev.verdict;
    attributeEvent(flow, ev, ctx, ev.direction, -ev.verdict === 181 ? 'denied' : 'default-deny');
  } else {
    if (ev.verdict > 0) flow.proxy_port = ev.verdict;
    attributeEvent(flow, ev, ctx, ev.direction, 'allowed');
  }
  return flow;
}

function baseFlow(ev: DatapathEvent, ctx: FlowParserContext, verdict: number, subType: number): Flow {
  const en = ctx.enrichment;
  const flow: Flow = {
    time: ctx.monoToWall(ev.monoNs),
    uuid: ctx.uuid(),
    verdict,
    IP: { source: ev.srcIp, destination: ev.dstIp, ipVersion: ev.ipVersion === 6 ? IPVersion.IPv6 : IPVersion.IPv4 },
    l4: layer4(ev),
    source: endpointFor(ev.srcIp, ev.srcIdentity, en),
    destination: endpointFor(ev.dstIp, ev.dstIdentity, en),
    Type: FlowType.L3_L4,
    node_name: ctx.nodeName,
    event_type: eventType(ev.kind, subType),
    Summary: l4Summary(ev.protocol, ev.tcpFlags, ev.icmpType),
  };
  if (ev.ipVersion === 0) {
    // A frame the datapath drops for not being IPv4 (139): it reports no addresses, only the type.
    flow.IP = undefined;
    flow.l4 = undefined;
    flow.Summary =
      ev.etherType === 0x86dd ? 'IPv6' : `EtherType 0x${(ev.etherType ?? 0).toString(16).padStart(4, '0')}`;
  }
  if (ev.ifindex !== 0) {
    const name = en.interfaceName(ev.ifindex);
    flow.interface = networkInterface(ev.ifindex, name);
  }
  addNames(flow, ev.srcIp, ev.dstIp, en);
  if (ev.protocol === 6 || ev.protocol === 17) {
    const svc = en.serviceByAddress(ev.dstIp, ev.dstPort);
    if (svc !== undefined) flow.destination_service = { name: svc.name, namespace: svc.namespace };
  }
  return flow;
}

function layer4(ev: DatapathEvent): Layer4 | undefined {
  switch (ev.protocol) {
    case 6:
      return { TCP: { source_port: ev.srcPort, destination_port: ev.dstPort, flags: tcpFlags(ev.tcpFlags & 0xff) } };
    case 17:
      return { UDP: ports(ev.srcPort, ev.dstPort) };
    case 132:
      return { SCTP: ports(ev.srcPort, ev.dstPort) };
    case 1:
      return { ICMPv4: { type: ev.icmpType, code: ev.icmpCode } };
    case 58:
      return { ICMPv6: { type: ev.icmpType, code: ev.icmpCode } };
    default:
      return undefined;
  }
}

function ports(src: number, dst: number): { source_port: number; destination_port: number } {
  return { source_port: src, destination_port: dst };
}

function endpointFor(ip: string, eventIdentity: number, en: FlowEnrichment): Endpoint {
  const local = en.endpointByIp(ip);
  if (local !== undefined) {
    const identity = eventIdentity !== 0 ? eventIdentity : local.identity;
    if (identity === local.identity) {
      let cached = LOCAL_ENDPOINTS.get(local);
      if (cached === undefined) {
        cached = localEndpoint(local, identity);
        LOCAL_ENDPOINTS.set(local, cached);
      }
      return cached;
    }
    return localEndpoint(local, identity);
  }
  const labels = en.identityLabels(eventIdentity);
  const cached = REMOTE_ENDPOINTS.get(eventIdentity);
  if (cached !== undefined && cached.source === labels) return cached.endpoint;
  const ep: Endpoint = { identity: eventIdentity };
  if (labels !== undefined) ep.labels = labels as string[];
  else if (RESERVED_IDENTITY_NAMES[eventIdentity] !== undefined)
    ep.labels = [`reserved:${RESERVED_IDENTITY_NAMES[eventIdentity]}`];
  if (REMOTE_ENDPOINTS.size > 65536) REMOTE_ENDPOINTS.clear();
  REMOTE_ENDPOINTS.set(eventIdentity, { source: labels, endpoint: ep });
  return ep;
}

// Flows are immutable once built, so parts that repeat from flow to flow are built once and
// shared: endpoints (per EndpointInfo object, which the agent replaces on change; per identity and
// label set for remote peers), event types, interfaces, TCP flag sets and is_reply.
const LOCAL_ENDPOINTS = new WeakMap<EndpointInfo, Endpoint>();
const REMOTE_ENDPOINTS = new Map<number, { source: readonly string[] | undefined; endpoint: Endpoint }>();
const EVENT_TYPES = new Map<number, { type: number; sub_type: number }>();
const INTERFACES = new Map<number, { index: number; name?: string }>();
const TCP_FLAG_SETS: NonNullable<NonNullable<Layer4['TCP']>['flags']>[] = [];
const IS_REPLY = { value: true };
const NOT_REPLY = { value: false };

function localEndpoint(local: EndpointInfo, identity: number): Endpoint {
  // Pods on other nodes come back with id 0: they have names but no local endpoint ID.
  const ep: Endpoint =
    local.id !== 0
      ? {
          ID: local.id,
          identity,
          namespace: local.namespace,
          labels: local.labels as string[],
          pod_name: local.podName,
        }
      : { identity, namespace: local.namespace, labels: local.labels as string[], pod_name: local.podName };
  if (local.clusterName) ep.cluster_name = local.clusterName;
  if (local.workloads.length > 0) ep.workloads = local.workloads as Endpoint['workloads'];
  return ep;
}

function eventType(type: number, subType: number): { type: number; sub_type: number } {
  const key = type * 65536 + subType;
  let et = EVENT_TYPES.get(key);
  if (et === undefined) {
    et = { type, sub_type: subType };
    EVENT_TYPES.set(key, et);
  }
  return et;
}

function networkInterface(index: number, name: string | undefined): { index: number; name?: string } {
  const cached = INTERFACES.get(index);
  if (cached !== undefined && cached.name === name) return cached;
  const itf = name === undefined ? { index } : { index, name };
  if (INTERFACES.size > 65536) INTERFACES.clear();
  INTERFACES.set(index, itf);
  return itf;
}

function tcpFlags(f: number): NonNullable<NonNullable<Layer4['TCP']>['flags']> {
  let flags = TCP_FLAG_SETS[f];
  if (flags === undefined) {
    flags = {};
    if (f & 0x01) flags.FIN = true;
    if (f & 0x02) flags.SYN = true;
    if (f & 0x04) flags.RST = true;
    if (f & 0x08) flags.PSH = true;
    if (f & 0x10) flags.ACK = true;
    if (f & 0x20) flags.URG = true;
    if (f & 0x40) flags.ECE = true;
    if (f & 0x80) flags.CWR = true;
    TCP_FLAG_SETS[f] = flags;
  }
  return flags;
}

function addNames(flow: Flow, srcIp: string, dstIp: string, en: FlowEnrichment): void {
  const s = en.namesByIp(srcIp);
  if (s !== undefined && s.length > 0) flow.source_names = s as string[];
  const d = en.namesByIp(dstIp);
  if (d !== undefined && d.length > 0) flow.destination_names = d as string[];
}

function attributeEvent(
  flow: Flow,
  ev: DropEvent | PolicyVerdictEvent,
  ctx: FlowParserContext,
  direction: PolicyDirection,
  outcome: PolicyOutcome,
): void {
  const remote = direction === 'ingress' ? ev.srcIdentity : ev.dstIdentity;
  attribute(flow, ctx.enrichment, ev.endpointId, direction, remote, ev.protocol, ev.dstPort, outcome);
}

function attribute(
  flow: Flow,
  en: FlowEnrichment,
  endpointId: number,
  direction: PolicyDirection,
  remoteIdentity: number,
  protocol: number,
  port: number,
  outcome: PolicyOutcome,
): void {
  const refs = en.policyAttribution({ endpointId, direction, remoteIdentity, protocol, port, outcome });
  if (refs.length === 0) return;
  setAttribution(flow, direction, outcome, refs.map(toPolicy));
}

function setAttribution(flow: Flow, direction: PolicyDirection, outcome: PolicyOutcome, policies: Policy[]): void {
  if (outcome === 'allowed') {
    if (direction === 'ingress') flow.ingress_allowed_by = policies;
    else flow.egress_allowed_by = policies;
  } else if (direction === 'ingress') flow.ingress_denied_by = policies;
  else flow.egress_denied_by = policies;
}

function toPolicy(ref: PolicyRef): Policy {
  const p: Policy = { name: ref.name, kind: ref.kind };
  if (ref.namespace !== '') p.namespace = ref.namespace;
  return p;
}

/** A uuid source: a random 64-bit prefix fixed per parser plus a counter; unique, and cheap per flow. */
export function uuidSource(randomHex: string): () => string {
  const p = randomHex.padEnd(20, '0');
  const prefix = `${p.slice(0, 8)}-${p.slice(8, 12)}-4${p.slice(13, 16)}-a${p.slice(17, 20)}-`;
  let n = 0;
  return () => {
    n++;
    return prefix + n.toString(16).padStart(12, '0');
  };
}
