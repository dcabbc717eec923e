// Hubble's output formats for flows: compact (one line), dict, table, jsonpb (the whole
// GetFlowsResponse) and json, which is jsonpb too unless legacy JSON output is asked for
// (HUBBLE_COMPAT=legacy-json-output: the bare Flow, or the bare LostEvent, as hubble <= 0.10).
// Pure formatting: the caller writes the strings.
import { toProtoJson } from '../api/proto-json.js';
import { protoType } from '../api/proto-root.js';
import {
  DROP_REASON_TEXT,
  type Endpoint,
  type Flow,
  type FlowsResponse,
  type Policy,
  RESERVED_IDENTITY_NAMES,
  type Timestamp,
} from '../flow/flow.js';

export type OutputFormat = 'compact' | 'dict' | 'json' | 'jsonpb' | 'table';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['compact', 'dict', 'json', 'jsonpb', 'table'];

export interface PrinterOptions {
  readonly format: OutputFormat;
  readonly printNodeName?: boolean;
  readonly printPolicyNames?: boolean;
  /** Go-style layout name (StampMilli, RFC3339, RFC3339Nano, ...) or a Go layout string. */
  readonly timeFormat?: string;
  readonly color?: boolean;
  /** `-o json` prints the bare Flow instead of the GetFlowsResponse (hubble's legacy-json-output). */
  readonly legacyJsonOutput?: boolean;
  /** Render times in UTC instead of the local zone (tests and goldens). */
  readonly utc?: boolean;
}

export class FlowPrinter {
  private rows: string[][] = [];
  private count = 0;

  constructor(private readonly opts: PrinterOptions) {}

  /** Text for one response (with its trailing newline), or '' when it only buffers (table). */
  write(r: FlowsResponse): string {
    const o = this.opts;
    if (o.format === 'jsonpb' || (o.format === 'json' && !o.legacyJsonOutput))
      return `${JSON.stringify(toProtoJson(RESPONSE(), r))}\n`;
    if (o.format === 'json') {
      // hubble's legacy printer writes the Flow or the LostEvent alone, and nothing for node status.
      if (r.flow !== undefined) return `${JSON.stringify(toProtoJson(FLOW(), r.flow))}\n`;
      if (r.lost_events !== undefined) return `${JSON.stringify(toProtoJson(LOST_EVENT(), r.lost_events))}\n`;
      return '';
    }
    if (r.flow === undefined) return this.event(r);
    const f = r.flow;
    const time = formatTime(f.time ?? r.time, o.timeFormat ?? 'StampMilli', o.utc === true);
    const [src, dst, arrow] = orderedEndpoints(f);
    const type = flowTypeText(f);
    const verdict = this.paint(verdictText(f), f.verdict ?? 0) + (o.printPolicyNames ? policyNamesText(f) : '');
    const summary = summaryText(f);
    const node = f.node_name ?? r.node_name ?? '';
    if (o.format === 'compact') {
      const nodePart = o.printNodeName ? ` [${node}]` : '';
      return `${time}${nodePart}: ${src.host} ${src.identity} ${arrow} ${dst.host} ${dst.identity} ${type} ${verdict} (${summary})\n`;
    }
    if (o.format === 'dict') {
      const lines = [`  TIMESTAMP: ${time}`];
      if (o.printNodeName) lines.push(`       NODE: ${node}`);
      lines.push(
        `     SOURCE: ${src.host}`,
        `DESTINATION: ${dst.host}`,
        `       TYPE: ${type}`,
        `    VERDICT: ${verdict}`,
        `    SUMMARY: ${summary}`,
      );
      const sep = this.count++ > 0 ? '------------\n' : '';
      return `${sep}${lines.join('\n')}\n`;
    }
    const row = o.printNodeName ? [time, node] : [time];
    row.push(src.host, dst.host, type, verdict, summary);
    this.rows.push(row);
    return '';
  }

  /** Remaining output: the table, aligned like Go's tabwriter with two spaces of padding. */
  end(): string {
    if (this.opts.format !== 'table') return '';
    const header = this.opts.printNodeName
      ? ['TIMESTAMP', 'NODE', 'SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY']
      : ['TIMESTAMP', 'SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY'];
    const out = alignColumns([header, ...this.rows]);
    this.rows = [];
    return out;
  }

  private event(r: FlowsResponse): string {
    const time = formatTime(r.time, this.opts.timeFormat ?? 'StampMilli', this.opts.utc === true);
    if (r.lost_events !== undefined) {
      const l = r.lost_events;
      const cpu = l.cpu?.value !== undefined ? ` CPU(${l.cpu.value})` : '';
      return `${time}${r.node_name ? ` [${r.node_name}]` : ''}: EVENTS LOST: ${LOST_SOURCES[l.source ?? 0]}${cpu} ${l.num_events_lost ?? 0}\n`;
    }
    if (r.node_status !== undefined) {
      const s = r.node_status;
      const msg = s.message ? ` (${s.message})` : '';
      return `${time}: ${NODE_STATES[s.state_change ?? 0]}: ${(s.node_names ?? []).join(', ')}${msg}\n`;
    }
    return '';
  }

  private paint(text: string, verdict: number): string {
    if (!this.opts.color) return text;
    const code = verdict === 1 || verdict === 5 ? 32 : verdict === 2 || verdict === 3 ? 31 : verdict === 4 ? 33 : 0;
    return code === 0 ? text : `\x1b[${code}m${text}\x1b[0m`;
  }
}

let flowType: ReturnType<typeof protoType> | undefined;
let responseType: ReturnType<typeof protoType> | undefined;
let lostEventType: ReturnType<typeof protoType> | undefined;
// Looked up once: a lookup walks the proto root, and a replay prints millions of lines.
const FLOW = () => (flowType ??= protoType('flow.Flow'));
const RESPONSE = () => (responseType ??= protoType('observer.GetFlowsResponse'));
const LOST_EVENT = () => (lostEventType ??= protoType('flow.LostEvent'));

const LOST_SOURCES = [
  'UNKNOWN_LOST_EVENT_SOURCE',
  'PERF_EVENT_RING_BUFFER',
  'OBSERVER_EVENTS_QUEUE',
  'HUBBLE_RING_BUFFER',
];
const NODE_STATES = ['UNKNOWN_NODE_STATE', 'NODE_CONNECTED', 'NODE_UNAVAILABLE', 'NODE_GONE', 'NODE_ERROR'];
const VERDICTS = ['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'ERROR', 'AUDIT', 'REDIRECTED', 'TRACED', 'TRANSLATED'];
const DIRECTIONS = ['TRAFFIC_DIRECTION_UNKNOWN', 'INGRESS', 'EGRESS'];

/** The datapath's trace observation point names, by event sub type. */
export const TRACE_POINT_NAMES = [
  'to-endpoint',
  'to-proxy',
  'to-host',
  'to-stack',
  'to-overlay',
  'from-endpoint',
  'from-proxy',
  'from-host',
  'from-stack',
  'from-overlay',
  'from-network',
  'to-network',
  'from-crypto',
  'to-crypto',
];

export const POLICY_MATCH_NAMES = ['none', 'L3-Only', 'L3-L4', 'L4-Only', 'all', 'L3-Proto', 'Proto-Only'];

interface Side {
  host: string;
  identity: string;
}

/** Source and destination as printed, with the arrow; a reply prints the client first with "<-". */
function orderedEndpoints(f: Flow): [Side, Side, string] {
  const l4 = f.l4;
  const ports = l4?.TCP ?? l4?.UDP ?? l4?.SCTP;
  const src: Side = {
    host: hostText(f.IP?.source ?? '', ports?.source_port ?? 0, f.source, f.source_service, f.source_names),
    identity: identityText(f.source),
  };
  const dst: Side = {
    host: hostText(
      f.IP?.destination ?? '',
      ports?.destination_port ?? 0,
      f.destination,
      f.destination_service,
      f.destination_names,
    ),
    identity: identityText(f.destination),
  };
  if (f.is_reply === undefined) return [src, dst, '<>'];
  if (f.is_reply.value === true) return [dst, src, '<-'];
  return [src, dst, '->'];
}

function hostText(
  ip: string,
  port: number,
  ep: Endpoint | undefined,
  svc: { name?: string; namespace?: string } | undefined,
  names: string[] | undefined,
): string {
  let host = ip;
  if (ep?.pod_name) host = `${ep.namespace ?? ''}/${ep.pod_name}`;
  else if (svc?.name) host = `${svc.namespace ?? ''}/${svc.name}`;
  else if (names !== undefined && names.length > 0) host = names.join(',');
  if (port === 0) return host;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function identityText(ep: Endpoint | undefined): string {
  const id = ep?.identity ?? 0;
  const reserved = RESERVED_IDENTITY_NAMES[id];
  return reserved !== undefined ? `(${reserved})` : `(ID:${id})`;
}

/** "to-endpoint", "Policy denied", "policy-verdict:L3-L4 INGRESS", "http-request", "dns-response proxy". */
export function flowTypeText(f: Flow): string {
  const l7 = f.l7;
  if (l7 !== undefined) {
    const kind =
      l7.http !== undefined ? 'http' : l7.dns !== undefined ? 'dns' : l7.kafka !== undefined ? 'kafka' : 'l7';
    const t = ['unknown', 'request', 'response', 'sample'][l7.type ?? 0] ?? 'unknown';
    const source = l7.dns?.observation_source ? ` ${l7.dns.observation_source}` : '';
    return `${kind}-${t}${source}`;
  }
  const et = f.event_type;
  switch (et?.type) {
    case 4:
      return TRACE_POINT_NAMES[et.sub_type ?? 0] ?? `trace-${et.sub_type}`;
    case 1:
      return DROP_REASON_TEXT[et.sub_type ?? 0] ?? `unknown drop reason ${et.sub_type}`;
    case 5: {
      const dir = DIRECTIONS[f.traffic_direction ?? 0];
      const match = f.verdict === 2 ? 'none' : (POLICY_MATCH_NAMES[f.policy_match_type ?? 0] ?? 'none');
      return `policy-verdict:${match} ${dir}`;
    }
    case 3:
      return 'debug-capture';
    case 7:
      return 'trace-sock';
    default:
      return 'UNKNOWN';
  }
}

export function verdictText(f: Flow): string {
  if (f.event_type?.type === 5) {
    if (f.verdict === 1 || f.verdict === 5) return 'ALLOWED';
    if (f.verdict === 2) return 'DENIED';
    if (f.verdict === 4) return 'AUDITED';
  }
  return VERDICTS[f.verdict ?? 0] ?? String(f.verdict);
}

/** " BY ns/name (Kind), ..." from the attribution on the flow's decided direction. */
export function policyNamesText(f: Flow): string {
  const ingress = f.traffic_direction === 1;
  const denied = f.verdict === 2;
  let ps: Policy[] | undefined;
  if (denied) ps = ingress ? f.ingress_denied_by : f.egress_denied_by;
  else ps = ingress ? f.ingress_allowed_by : f.egress_allowed_by;
  if (ps === undefined || ps.length === 0) return '';
  return ` BY ${ps.map((p) => `${p.namespace ? `${p.namespace}/` : ''}${p.name} (${p.kind ?? 'Policy'})`).join(', ')}`;
}

function summaryText(f: Flow): string {
  let s = f.Summary ?? '';
  if (f.auth_type === 1) s += '; Auth: SPIRE';
  else if (f.auth_type === 2) s += '; Auth: TEST_ALWAYS_FAIL';
  return s;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const LAYOUTS: Readonly<Record<string, string>> = {
  StampMilli: 'Jan _2 15:04:05.000',
  Stamp: 'Jan _2 15:04:05',
  StampMicro: 'Jan _2 15:04:05.000000',
  StampNano: 'Jan _2 15:04:05.000000000',
  RFC3339: '2006-01-02T15:04:05Z07:00',
  RFC3339Milli: '2006-01-02T15:04:05.000Z07:00',
  RFC3339Micro: '2006-01-02T15:04:05.000000Z07:00',
  RFC3339Nano: '2006-01-02T15:04:05.999999999Z07:00',
  DateTime: '2006-01-02 15:04:05',
  Kitchen: '3:04PM',
};

export const TIME_FORMATS = Object.keys(LAYOUTS);

/** Formats a timestamp with a Go layout (or one of Go's layout names), in local time or UTC. */
export function formatTime(t: Timestamp | undefined, layout: string, utc: boolean): string {
  const seconds = Number(t?.seconds ?? 0);
  const nanos = t?.nanos ?? 0;
  const d = new Date(seconds * 1000);
  const offsetMin = utc ? 0 : -d.getTimezoneOffset();
  const local = new Date(d.getTime() + offsetMin * 60_000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const tz =
    offsetMin === 0
      ? 'Z'
      : `${offsetMin > 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offsetMin) / 60))}:${pad(Math.abs(offsetMin) % 60)}`;
  const fmt = LAYOUTS[layout] ?? layout;
  const tokens: [string, () => string][] = [
    ['2006', () => String(local.getUTCFullYear())],
    ['Z07:00', () => tz],
    ['.999999999', () => (nanos === 0 ? '' : `.${pad(nanos, 9).replace(/0+$/, '')}`)],
    ['.000000000', () => `.${pad(nanos, 9)}`],
    ['.000000', () => `.${pad(Math.floor(nanos / 1000), 6)}`],
    ['.000', () => `.${pad(Math.floor(nanos / 1e6), 3)}`],
    ['Jan', () => MONTHS[local.getUTCMonth()]!],
    ['_2', () => String(local.getUTCDate()).padStart(2, ' ')],
    ['01', () => pad(local.getUTCMonth() + 1)],
    ['02', () => pad(local.getUTCDate())],
    ['15', () => pad(local.getUTCHours())],
    ['3', () => String(local.getUTCHours() % 12 || 12)],
    ['04', () => pad(local.getUTCMinutes())],
    ['05', () => pad(local.getUTCSeconds())],
    ['PM', () => (local.getUTCHours() >= 12 ? 'PM' : 'AM')],
  ];
  let out = '';
  let i = 0;
  outer: while (i < fmt.length) {
    for (const [tok, fn] of tokens) {
      if (fmt.startsWith(tok, i)) {
        out += fn();
        i += tok.length;
        continue outer;
      }
    }
    out += fmt[i];
    i++;
  }
  return out;
}

/** Columns padded to the widest cell plus two spaces; the last column is not padded. */
export function alignColumns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows)
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visibleLength(c));
    });
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - visibleLength(c) + 2))).join(''))
    .map((l) => `${l}\n`)
    .join('');
}

function visibleLength(s: string): number {
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}
