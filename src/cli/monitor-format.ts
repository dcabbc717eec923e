// One line per datapath event, in the shape of Cilium's `monitor` output. Pure.
import type { L7Record } from '../hubble/flow/parser.js';
import { TRACE_POINT_NAMES } from '../hubble/printer/flow-printer.js';
import { type DatapathEvent, EventKind } from '../monitor/event-types.js';

export const DROP_REASONS: Readonly<Record<number, string>> = {
  133: 'Policy denied',
  134: 'Invalid packet',
  135: 'CT: Truncated or invalid header',
  137: 'CT: Unknown L4 protocol',
  138: 'CT: Can not create entry from packet',
  139: 'Unsupported L3 protocol',
  142: 'Unknown L4 protocol',
  178: 'Socket lookup failed',
  179: 'Socket assign failed',
  180: 'Proxy redirection not supported for protocol',
  181: 'Policy denied by denylist',
  189: 'Authentication required',
};

const MATCH: Readonly<Record<number, string>> = {
  0: 'none',
  1: 'L3-Only',
  2: 'L3-L4',
  3: 'L4-Only',
  4: 'all',
  5: 'L3-Proto',
  6: 'Proto-Only',
};

const CT_STATES = ['unknown', 'new', 'established', 'reply', 'related', 'reopened'];

export type MonitorType = 'drop' | 'trace' | 'policy-verdict' | 'l7';

/** What the agent's monitor stream carries for one access record of the node's L7 proxy. */
export interface L7MonitorEvent {
  readonly type: 'l7';
  readonly record: L7Record;
  readonly srcLabels: readonly string[];
  readonly dstLabels: readonly string[];
}

/**
 * `cilium monitor -t l7`'s line for an access record: the client and server endpoints (the local
 * one's ID, 0 for a peer elsewhere) with their labels, the identities client->server, the verdict,
 * then `METHOD URL => CODE` (0 on a request).
 */
export function formatL7Line(e: L7MonitorEvent): string {
  const r = e.record;
  const isResponse = r.type === 'response';
  // The record's source is the sender of this message: the server for a response.
  const client = isResponse
    ? { id: r.direction === 'egress' ? r.endpointId : 0, identity: r.dstIdentity, labels: e.dstLabels }
    : { id: r.direction === 'egress' ? r.endpointId : 0, identity: r.srcIdentity, labels: e.srcLabels };
  const server = isResponse
    ? { id: r.direction === 'ingress' ? r.endpointId : 0, identity: r.srcIdentity, labels: e.srcLabels }
    : { id: r.direction === 'ingress' ? r.endpointId : 0, identity: r.dstIdentity, labels: e.dstLabels };
  const proto = r.http ? 'http' : r.dns ? 'dns' : 'unknown';
  const ends = isResponse
    ? `to ${client.id} ([${client.labels.join(' ')}]) from ${server.id} ([${server.labels.join(' ')}])`
    : `from ${client.id} ([${client.labels.join(' ')}]) to ${server.id} ([${server.labels.join(' ')}])`;
  const verdict = r.verdict === 'forwarded' ? 'Forwarded' : r.verdict === 'denied' ? 'Denied' : 'Error';
  let line = `${isResponse ? '->' : '<-'} ${isResponse ? 'Response' : 'Request'} ${proto} ${ends}, identity ${client.identity}->${server.identity}, verdict ${verdict}`;
  if (r.http) line += ` ${r.http.method} ${r.http.url} => ${isResponse ? (r.http.code ?? 0) : 0}`;
  else if (r.dns) line += ` DNS ${isResponse ? 'Answer' : 'Query'} ${r.dns.query}`;
  return line;
}

export function eventType(e: DatapathEvent): MonitorType {
  return e.kind === EventKind.drop ? 'drop' : e.kind === EventKind.trace ? 'trace' : 'policy-verdict';
}

export function formatMonitorLine(e: DatapathEvent, names: (id: number) => string = String): string {
  const tuple =
    e.ipVersion === 0
      ? `EtherType 0x${(e.etherType ?? 0).toString(16).padStart(4, '0')}, ${e.length} bytes`
      : `${addr(e.srcIp, e.srcPort, e.protocol)} -> ${addr(e.dstIp, e.dstPort, e.protocol)} ${l4(e)}`;
  switch (e.kind) {
    case EventKind.drop:
      // Endpoint IDs are per node; the direction says whether the endpoint sent or received it.
      return `xx drop (${DROP_REASONS[e.reason] ?? `reason ${e.reason}`}) ${e.direction === 'egress' ? 'from' : 'to'} endpoint ${e.endpointId}, ifindex ${e.ifindex}, identity ${names(e.srcIdentity)}->${names(e.dstIdentity)}: ${tuple}`;
    case EventKind.trace:
      return `-> ${TRACE_POINT_NAMES[e.observationPoint] ?? `point ${e.observationPoint}`} endpoint ${e.endpointId} identity ${names(e.srcIdentity)}->${names(e.dstIdentity)} state ${CT_STATES[e.ctState] ?? e.ctState} ifindex ${e.ifindex}: ${tuple}`;
    default: {
      const remote = e.direction === 'ingress' ? e.srcIdentity : e.dstIdentity;
      const action = e.verdict === 0 ? 'allow' : e.verdict > 0 ? 'redirect' : e.isAudit ? 'audit' : 'deny';
      const auth = e.authType === 0 ? 'disabled' : e.authType === 1 ? 'spire' : 'always-fail';
      return `Policy verdict log: local EP ID ${e.endpointId}, remote ID ${names(remote)}, proto ${e.protocol}, ${e.direction}, action ${action}, auth: ${auth}, match ${MATCH[e.matchType] ?? e.matchType}, ${tuple}`;
    }
  }
}

function addr(ip: string, port: number, proto: number): string {
  if (proto !== 6 && proto !== 17 && proto !== 132) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function l4(e: DatapathEvent): string {
  if (e.protocol === 6) {
    const flags = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'].filter((_, i) => e.tcpFlags & (1 << i));
    return `tcp ${flags.join(', ')}`.trim();
  }
  if (e.protocol === 17) return 'udp';
  if (e.protocol === 1)
    return `icmp EchoRequest`.replace(
      'EchoRequest',
      e.icmpType === 0 ? 'EchoReply' : e.icmpType === 8 ? 'EchoRequest' : `type ${e.icmpType}`,
    );
  return `proto ${e.protocol}`;
}
