// The node's flow pipeline: datapath events and L7 records are parsed into flows and written to
// the ring; lost events from the datapath and the event queue go into the ring in order with the
// flows, so every reader sees them. Metrics and the exporter subscribe with onFlow.
import type { DatapathEvent, LostEvents } from '../../monitor/event-types.js';
import { type Flow, LostEventSource, type Timestamp } from '../flow/flow.js';
import { type FlowParserContext, type L7Record, parseDatapathEvent, parseL7Record } from '../flow/parser.js';
import { Ring } from '../ring.js';
import { LostRecord, type RingEntry } from './flow-reader.js';

export interface FlowObserverOptions {
  readonly parser: FlowParserContext;
  readonly capacity?: number;
  /** Wall clock for lost-event times and uptime, in ms since the epoch. */
  readonly nowMs?: () => number;
}

/** Hubble sends lost-event notices at most this often per source. */
export const LOST_EVENT_INTERVAL_MS = 1000;

export type FlowListener = (flow: Flow) => void;
export type LostListener = (source: number, count: number) => void;

export class FlowObserver {
  readonly ring: Ring<RingEntry>;
  readonly nodeName: string;
  readonly startedMs: number;
  private readonly parser: FlowParserContext;
  private readonly nowMs: () => number;
  private readonly flowListeners: FlowListener[] = [];
  private readonly lostListeners: LostListener[] = [];
  private seen = 0;
  /** Per lost-event source: when a LostRecord last went into the ring, and what is held back since. */
  private readonly lostSentMs = new Map<number, number>();
  private readonly lostPending = new Map<number, number>();

  constructor(opts: FlowObserverOptions) {
    this.ring = new Ring<RingEntry>(opts.capacity);
    this.parser = opts.parser;
    this.nodeName = opts.parser.nodeName;
    this.nowMs = opts.nowMs ?? Date.now;
    this.startedMs = this.nowMs();
  }

  onFlow(l: FlowListener): void {
    this.flowListeners.push(l);
  }

  onLost(l: LostListener): void {
    this.lostListeners.push(l);
  }

  ingestEvent(ev: DatapathEvent): Flow {
    const f = parseDatapathEvent(ev, this.parser);
    this.ingestFlow(f);
    return f;
  }

  ingestL7(rec: L7Record): Flow {
    const f = parseL7Record(rec, this.parser);
    this.ingestFlow(f);
    return f;
  }

  ingestFlow(f: Flow): void {
    if (this.lostPending.size > 0) this.flushLost(false);
    this.seen++;
    this.ring.push(f);
    for (const l of this.flowListeners) l(f);
  }

  /**
   * Losses reach the ring at most once per second per source (Hubble's LostEventSendInterval):
   * counts in between are added up and written with the next flow or flushLost() after the
   * interval. Metrics count every loss at once.
   */
  recordLost(lost: LostEvents): void {
    if (lost.count <= 0) return;
    const source =
      lost.source === 'datapath-ring' ? LostEventSource.PERF_EVENT_RING_BUFFER : LostEventSource.OBSERVER_EVENTS_QUEUE;
    for (const l of this.lostListeners) l(source, lost.count);
    this.lostPending.set(source, (this.lostPending.get(source) ?? 0) + lost.count);
    this.flushLost(false);
  }

  /** Writes held-back losses whose interval has passed (all of them when `force`). */
  flushLost(force: boolean): void {
    const now = this.nowMs();
    for (const [source, count] of this.lostPending) {
      const last = this.lostSentMs.get(source);
      if (!force && last !== undefined && now - last < LOST_EVENT_INTERVAL_MS) continue;
      this.ring.push(new LostRecord(source, count, this.now()));
      this.lostSentMs.set(source, now);
      this.lostPending.delete(source);
    }
  }

  /** A reader overran: counted by metrics, reported to that reader only. */
  readerLost(count: number): void {
    for (const l of this.lostListeners) l(LostEventSource.HUBBLE_RING_BUFFER, count);
  }

  get seenFlows(): number {
    return this.seen;
  }

  now(): Timestamp {
    const ms = this.nowMs();
    return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
  }

  uptimeNs(): number {
    return (this.nowMs() - this.startedMs) * 1e6;
  }

  /** Flows per second over the last minute of flows in the ring. */
  flowsRate(): number {
    const cutoffSec = this.nowMs() / 1000 - 60;
    let n = 0;
    for (let pos = this.ring.written - 1; pos >= this.ring.oldest; pos--) {
      const e = this.ring.at(pos)!;
      if (e instanceof LostRecord) continue;
      if ((e.time?.seconds ?? 0) < cutoffSec) break;
      n++;
    }
    return n / 60;
  }

  /** Namespaces of flows currently in the ring, sorted. */
  namespaces(): string[] {
    const set = new Set<string>();
    for (let pos = this.ring.oldest; pos < this.ring.written; pos++) {
      const e = this.ring.at(pos)!;
      if (e instanceof LostRecord) continue;
      if (e.source?.namespace) set.add(e.source.namespace);
      if (e.destination?.namespace) set.add(e.destination.namespace);
    }
    return [...set].sort();
  }
}
