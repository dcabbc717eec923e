// The flow table's server side: a ring of the most recent flows (each with a sequence number the
// browser pages and selects by) and the row the browser shows for one flow. The browser never
// gets the stream: it gets at most `limit` rows per request, the newest matching rows first,
// scanning at most `scanLimit` flows so a filter that matches little cannot stall the server.
import { DROP_REASON_NAMES, type Endpoint, type Flow, RESERVED_IDENTITY_NAMES } from '../hubble/flow/flow.js';
import { flowTypeText, policyNamesText, verdictText } from '../hubble/printer/flow-printer.js';
import type { FlowRow, RowEndpoint, RowPage } from './ui-api-types.js';

export type { FlowRow, RowEndpoint, RowPage };

export interface RowQuery {
  readonly match: (f: Flow) => boolean;
  /** Only flows with seq < before (paging back); default: from the newest. */
  readonly before?: number;
  /** Only flows with seq > after (the live tail since the last batch). */
  readonly after?: number;
  readonly limit: number;
  readonly scanLimit?: number;
}

export class FlowRing {
  private readonly flows: (Flow | undefined)[];
  private next = 1;

  constructor(readonly capacity: number) {
    this.flows = new Array(capacity);
  }

  push(f: Flow): number {
    const seq = this.next++;
    this.flows[seq % this.capacity] = f;
    return seq;
  }

  get newestSeq(): number {
    return this.next - 1;
  }

  get oldestSeq(): number {
    return Math.max(1, this.next - this.capacity);
  }

  get(seq: number): Flow | undefined {
    if (seq < this.oldestSeq || seq > this.newestSeq) return undefined;
    return this.flows[seq % this.capacity];
  }

  /** Newest first. */
  query(q: RowQuery): RowPage {
    const rows: FlowRow[] = [];
    const newest = this.newestSeq;
    const from = Math.min(newest, (q.before ?? newest + 1) - 1);
    const floor = Math.max(this.oldestSeq, (q.after ?? 0) + 1);
    const scanLimit = q.scanLimit ?? Number.POSITIVE_INFINITY;
    let scanned = 0;
    let seq = from;
    for (; seq >= floor && rows.length < q.limit && scanned < scanLimit; seq--) {
      const f = this.flows[seq % this.capacity]!;
      scanned++;
      if (q.match(f)) rows.push(flowRow(seq, f));
    }
    return { rows, newestSeq: newest, scanned, truncated: seq >= floor && rows.length < q.limit };
  }

  /** Every flow matching, oldest first (export). */
  *select(match: (f: Flow) => boolean): Generator<Flow> {
    for (let seq = this.oldestSeq; seq <= this.newestSeq; seq++) {
      const f = this.flows[seq % this.capacity]!;
      if (match(f)) yield f;
    }
  }
}

export function flowRow(seq: number, f: Flow): FlowRow {
  const l4 = f.l4;
  const ports = l4?.TCP ?? l4?.UDP ?? l4?.SCTP;
  const protocol = l4?.TCP
    ? 'TCP'
    : l4?.UDP
      ? 'UDP'
      : l4?.SCTP
        ? 'SCTP'
        : l4?.ICMPv4
          ? 'ICMPv4'
          : l4?.ICMPv6
            ? 'ICMPv6'
            : '';
  const flags = l4?.TCP?.flags;
  const names = policyNamesText(f);
  return {
    seq,
    timeMs: Number(f.time?.seconds ?? 0) * 1000 + Math.floor((f.time?.nanos ?? 0) / 1e6),
    node: f.node_name ?? '',
    source: rowEndpoint(f.source, f.IP?.source, ports?.source_port, f.source_names),
    destination: rowEndpoint(f.destination, f.IP?.destination, ports?.destination_port, f.destination_names),
    protocol,
    dport: ports?.destination_port ?? 0,
    type: flowTypeText(f),
    l7: f.l7 !== undefined ? (f.Summary ?? '') : '',
    direction: ['', 'ingress', 'egress'][f.traffic_direction ?? 0] ?? '',
    verdict: verdictText(f),
    dropReason: f.verdict === 2 ? (DROP_REASON_NAMES[f.drop_reason_desc ?? 0] ?? '') : '',
    tcpFlags:
      flags === undefined
        ? ''
        : Object.entries(flags)
            .filter(([, v]) => v === true)
            .map(([k]) => k)
            .join(','),
    policy: names.startsWith(' BY ') ? names.slice(4) : '',
    isReply: f.is_reply?.value === true,
    auth: f.auth_type === 1 ? 'SPIRE' : f.auth_type === 2 ? 'TEST_ALWAYS_FAIL' : '',
  };
}

function rowEndpoint(
  ep: Endpoint | undefined,
  ip: string | undefined,
  port: number | undefined,
  names: readonly string[] | undefined,
): RowEndpoint {
  const identity = ep?.identity ?? 0;
  return {
    ...(ep?.namespace ? { namespace: ep.namespace } : {}),
    ...(ep?.pod_name ? { pod: ep.pod_name } : {}),
    identity,
    ...(RESERVED_IDENTITY_NAMES[identity] ? { identityName: RESERVED_IDENTITY_NAMES[identity] } : {}),
    ...(ip ? { ip } : {}),
    ...(port ? { port } : {}),
    ...(names !== undefined && names.length > 0 ? { names } : {}),
  };
}
