// The UI server's one input: a following GetFlows call to the relay (or an agent), through the
// same grpc-js client `membrane observe` uses. When the call fails or ends, the feed says so and
// calls again after `retryMs`, asking for what it missed since the last flow it got.
import type * as grpc from '@grpc/grpc-js';
import { type FlowApiClient, observerClient } from '../hubble/api/grpc-clients.js';
import type { Flow, FlowsResponse, Timestamp } from '../hubble/flow/flow.js';

export interface FeedState {
  readonly connected: boolean;
  readonly server: string;
  /** When the state last changed (ms since the epoch). */
  readonly sinceMs: number;
  readonly error?: string;
  /** Node name -> last node_status state (NODE_CONNECTED, NODE_UNAVAILABLE, ...). */
  readonly nodes: Readonly<Record<string, string>>;
  readonly flowsReceived: number;
  readonly lostEvents: number;
}

export interface RelayFeedOptions {
  readonly server: string;
  readonly onFlow: (f: Flow) => void;
  readonly onState?: (s: FeedState) => void;
  /** Flows of history asked for on the first call. */
  readonly initialFlows?: number;
  readonly retryMs?: number;
}

const NODE_STATES = ['UNKNOWN_NODE_STATE', 'NODE_CONNECTED', 'NODE_UNAVAILABLE', 'NODE_GONE', 'NODE_ERROR'];

export class RelayFeed {
  private client: FlowApiClient | undefined;
  private call: grpc.ClientReadableStream<FlowsResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastSeen: Timestamp | undefined;
  private current: FeedState;
  private flowsReceived = 0;
  private lostEvents = 0;

  constructor(private readonly opts: RelayFeedOptions) {
    this.current = {
      connected: false,
      server: opts.server,
      sinceMs: Date.now(),
      nodes: {},
      flowsReceived: 0,
      lostEvents: 0,
    };
  }

  get state(): FeedState {
    return { ...this.current, flowsReceived: this.flowsReceived, lostEvents: this.lostEvents };
  }

  start(): void {
    this.open();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.call?.cancel();
    this.client?.close();
  }

  private open(): void {
    if (this.closed) return;
    this.client?.close();
    this.client = observerClient(this.opts.server, {
      'grpc.initial_reconnect_backoff_ms': 500,
      'grpc.max_reconnect_backoff_ms': this.opts.retryMs ?? 1000,
    });
    const since = this.lastSeen;
    const request =
      since === undefined
        ? { number: this.opts.initialFlows ?? 2000, follow: true }
        : { number: 0, follow: true, since: nextNanosecond(since) };
    const call = this.client.GetFlows(request) as grpc.ClientReadableStream<FlowsResponse>;
    this.call = call;
    call.once('metadata', () => this.update({ connected: true, error: undefined }));
    call.on('data', (r: FlowsResponse) => {
      if (r.flow !== undefined) {
        if (r.flow.time !== undefined) this.lastSeen = r.flow.time;
        if (r.flow.node_name === undefined && r.node_name !== undefined) r.flow.node_name = r.node_name;
        this.flowsReceived++;
        this.opts.onFlow(r.flow);
      } else if (r.node_status !== undefined) {
        const nodes = { ...this.current.nodes };
        for (const n of r.node_status.node_names ?? [])
          nodes[n] = NODE_STATES[r.node_status.state_change ?? 0] ?? 'UNKNOWN_NODE_STATE';
        this.update({ nodes });
      } else if (r.lost_events !== undefined) {
        this.lostEvents += r.lost_events.num_events_lost ?? 0;
      }
    });
    const retry = (error: string) => {
      if (this.call !== call || this.closed) return;
      this.call = undefined;
      this.update({ connected: false, error });
      this.timer = setTimeout(() => this.open(), this.opts.retryMs ?? 1000);
    };
    call.on('error', (e: Error & { details?: string }) => retry(e.details ?? e.message));
    call.on('end', () => retry('the flow server ended the stream'));
  }

  private update(change: Partial<FeedState>): void {
    const wasConnected = this.current.connected;
    this.current = { ...this.current, ...change };
    if (change.connected !== undefined && change.connected !== wasConnected)
      this.current = { ...this.current, sinceMs: Date.now() };
    this.opts.onState?.(this.state);
  }
}

function nextNanosecond(t: Timestamp): Timestamp {
  const nanos = (t.nanos ?? 0) + 1;
  return nanos >= 1e9 ? { seconds: Number(t.seconds) + 1, nanos: 0 } : { seconds: Number(t.seconds), nanos };
}
