// The subscription to mbr_events: the native pump drains the ring every drainIntervalMs and hands
// each batch to src/monitor's decoder; the decoded events go to every listener. The pump runs only
// while someone listens.
import { decodeEventBatch } from '../monitor/event-codec.js';
import type { DatapathEvent } from '../monitor/event-types.js';
import { nativeBpf, sys } from './native.js';

export type EventListener = (events: DatapathEvent[]) => void;

export class EventRing {
  readonly #ringFd: () => number;
  readonly #drainMs: number;
  #pump: object | undefined;
  #listeners = new Set<EventListener>();

  /** ringFd is asked for only when the pump starts (the map may be closed by then: it throws). */
  constructor(ringFd: () => number, drainIntervalMs: number) {
    this.#ringFd = ringFd;
    this.#drainMs = drainIntervalMs;
  }

  /** Adds a listener, starting the pump for the first one. Returns unsubscribe. */
  subscribe(cb: EventListener): () => void {
    this.#listeners.add(cb);
    if (!this.#pump) this.#pump = this.#open();
    return () => {
      this.#listeners.delete(cb);
      if (this.#listeners.size === 0) this.close();
    };
  }

  /** Drains the ring now (tests, shutdown). */
  drain(): void {
    if (this.#pump) nativeBpf().ringDrain(this.#pump);
  }

  close(): void {
    if (this.#pump) nativeBpf().ringClose(this.#pump);
    this.#pump = undefined;
  }

  #open(): object {
    const n = nativeBpf();
    return sys('open event ring', () =>
      n.ringOpen(
        this.#ringFd(),
        (buf, count) => {
          const events = decodeEventBatch(buf, count);
          for (const l of this.#listeners) l(events);
        },
        { intervalMs: this.#drainMs, maxBatch: 4096 },
      ),
    );
  }
}
