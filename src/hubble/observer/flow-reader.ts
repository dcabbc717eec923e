// GetFlows over a ring: where to start (first / last N / since / follow), when to stop (number,
// until, end of ring unless following), filters, field masks and lost-event reporting. Pure: the
// server drives it and does the waiting and the writing.
import type { FlowPredicate } from '../filters/flow-filter.js';
import {
  compareTimestamps,
  type Flow,
  type FlowsResponse,
  type LostEvent,
  LostEventSource,
  type Timestamp,
} from '../flow/flow.js';
import type { Ring } from '../ring.js';

/** Events lost before they reached the ring, stored in it in order with the flows. */
export class LostRecord {
  constructor(
    readonly source: number,
    readonly count: number,
    readonly time: Timestamp,
  ) {}
}

export type RingEntry = Flow | LostRecord;

export interface FlowsQuery {
  number?: number;
  first?: boolean;
  follow?: boolean;
  since?: Timestamp;
  until?: Timestamp;
  fieldMask?: readonly string[];
}

export class FlowsQueryError extends Error {
  readonly code = 'MBR_FLOWS_REQUEST_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'FlowsQueryError';
  }
}

export type ReadStep = FlowsResponse | 'wait' | 'done';

/**
 * Reads one GetFlows answer off the ring. next() returns a response, 'wait' (caught up while
 * following) or 'done'.
 */
export class FlowReader {
  private pos: number;
  private sent = 0;
  private readonly limit: number;
  private readonly since: Timestamp | undefined;
  private readonly until: Timestamp | undefined;
  private readonly follow: boolean;
  private readonly mask: ((f: Flow) => Flow) | undefined;

  constructor(
    private readonly ring: Ring<RingEntry>,
    private readonly match: FlowPredicate,
    private readonly nodeName: string,
    q: FlowsQuery,
  ) {
    if (q.first && q.follow) throw new FlowsQueryError('first is incompatible with follow');
    this.follow = q.follow === true;
    this.since = q.since;
    this.until = q.until;
    const n = q.number ?? 0;
    // "last N while following" streams N old flows then everything new; the limit only bounds
    // non-follow and first-N reads.
    this.limit = n > 0 && (q.first || !this.follow) ? n : Number.POSITIVE_INFINITY;
    this.mask = q.fieldMask !== undefined && q.fieldMask.length > 0 ? compileFieldMask(q.fieldMask) : undefined;
    if (q.first || q.since !== undefined) this.pos = ring.oldest;
    else if (n > 0) this.pos = this.startForLast(n);
    else if (this.follow) this.pos = ring.written;
    else this.pos = ring.oldest;
  }

  /** Where the reader stands; the server waits on the ring for this position. */
  get position(): number {
    return this.pos;
  }

  next(): ReadStep {
    for (;;) {
      if (this.sent >= this.limit) return 'done';
      const ring = this.ring;
      if (this.pos >= ring.written) return this.follow ? 'wait' : 'done';
      if (this.pos < ring.oldest) {
        const lost = ring.oldest - this.pos;
        this.pos = ring.oldest;
        return lostResponse(LostEventSource.HUBBLE_RING_BUFFER, lost, this.nodeName, undefined);
      }
      const e = ring.at(this.pos)!;
      this.pos++;
      if (e instanceof LostRecord) return lostResponse(e.source, e.count, this.nodeName, e.time);
      if (this.since !== undefined && compareTimestamps(e.time, this.since) < 0) continue;
      if (this.until !== undefined && compareTimestamps(e.time, this.until) > 0) {
        // Flows are in time order: nothing later can be inside the window.
        return 'done';
      }
      if (!this.match(e)) continue;
      this.sent++;
      return {
        flow: this.mask === undefined ? e : this.mask(e),
        node_name: e.node_name ?? this.nodeName,
        time: e.time,
      };
    }
  }

  /** The position from which N matching flows remain, counted back from the newest. */
  private startForLast(n: number): number {
    const ring = this.ring;
    let found = 0;
    let pos = ring.written;
    while (pos > ring.oldest && found < n) {
      pos--;
      const e = ring.at(pos)!;
      if (e instanceof LostRecord) continue;
      if (this.since !== undefined && compareTimestamps(e.time, this.since) < 0) break;
      if (this.until !== undefined && compareTimestamps(e.time, this.until) > 0) continue;
      if (this.match(e)) found++;
    }
    return pos;
  }
}

export function lostResponse(
  source: number,
  count: number,
  nodeName: string,
  time: Timestamp | undefined,
): FlowsResponse {
  const lost: LostEvent = { source, num_events_lost: count };
  const r: FlowsResponse = { lost_events: lost, node_name: nodeName };
  if (time !== undefined) r.time = time;
  return r;
}

/** field_mask paths ("source.pod_name", "verdict") -> a function that copies only those fields. */
export function compileFieldMask(paths: readonly string[]): (f: Flow) => Flow {
  type Tree = Map<string, Tree | true>;
  const tree: Tree = new Map();
  for (const p of paths) {
    const parts = p.split('.');
    let node = tree;
    for (let i = 0; i < parts.length; i++) {
      const key = parts[i]!;
      if (i === parts.length - 1) node.set(key, true);
      else {
        let next = node.get(key);
        if (next === true) break;
        if (next === undefined) {
          next = new Map();
          node.set(key, next);
        }
        node = next;
      }
    }
  }
  const copy = (src: Record<string, unknown>, t: Tree): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, sub] of t) {
      const v = src[k];
      if (v === undefined) continue;
      out[k] =
        sub === true || typeof v !== 'object' || v === null || Array.isArray(v)
          ? v
          : copy(v as Record<string, unknown>, sub);
    }
    return out;
  };
  return (f) => copy(f as Record<string, unknown>, tree) as Flow;
}
