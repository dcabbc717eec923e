// The relay: finds the nodes' flow servers through the Peer service, fans every Observer call out
// to them and merges the answers. GetFlows streams are merged in time order through a sort buffer
// (flushed when it holds `sortBufferSize` responses or every `drainMs`), interleaved with
// node_status events when nodes connect or become unavailable. A node that fails is retried every
// `retryMs`, and followers get its flows again once it is back; nothing needs a restart.
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { VERSION } from '../../version.js';
import { type FlowApiClient, observerClient, peerClient } from '../api/grpc-clients.js';
import { protoType } from '../api/proto-root.js';
import { compileFlowFilters } from '../filters/flow-filter.js';
import { compareTimestamps, type FlowsResponse, type Timestamp } from '../flow/flow.js';
import { GrpcError, GrpcServer, GrpcStatus, type ServerCall } from '../observer/grpc-wire.js';
import type { GetFlowsRequest } from '../observer/observer-server.js';

export const DEFAULT_RELAY_ADDRESS = '0.0.0.0:4245';

/** How long after a peer service's first answer the nodes it did not announce are dropped. */
const PEER_SWEEP_MS = 1000;

export const NodeState = { UNKNOWN: 0, CONNECTED: 1, UNAVAILABLE: 2, GONE: 3, ERROR: 4 } as const;

export interface RelayOptions {
  /**
   * Where to ask peer.Peer/Notify: an agent's socket or address, or several separated by commas
   * (every agent serves the same peers, from the cluster store): when one stops answering, the
   * relay asks the next, as hubble-relay does through the hubble-peer Service.
   */
  readonly peerService: string;
  readonly retryMs?: number;
  readonly sortBufferSize?: number;
  readonly drainMs?: number;
  readonly nowMs?: () => number;
}

interface NodeConn {
  readonly name: string;
  address: string;
  client: FlowApiClient;
  state: number;
  status?: Record<string, unknown>;
}

export class Relay {
  private readonly grpc = new GrpcServer(256);
  private readonly nodes = new Map<string, NodeConn>();
  private readonly retryMs: number;
  private readonly sortBufferSize: number;
  private readonly drainMs: number;
  private readonly nowMs: () => number;
  private readonly startedMs: number;
  private peerCall: grpc.ClientReadableStream<unknown> | undefined;
  private peerConn: FlowApiClient | undefined;
  /** Which of the peer services is asked (index into the comma-separated list). */
  private peerIndex = 0;
  private timers = new Set<NodeJS.Timeout>();
  private closed = false;
  private readonly changeListeners = new Set<() => void>();
  private readonly types = {
    request: protoType('observer.GetFlowsRequest'),
    response: protoType('observer.GetFlowsResponse'),
    status: protoType('observer.ServerStatusResponse'),
    nodes: protoType('observer.GetNodesResponse'),
    namespaces: protoType('observer.GetNamespacesResponse'),
  };

  constructor(private readonly opts: RelayOptions) {
    this.retryMs = opts.retryMs ?? 30_000;
    this.sortBufferSize = opts.sortBufferSize ?? 100;
    this.drainMs = opts.drainMs ?? 1000;
    this.nowMs = opts.nowMs ?? Date.now;
    this.startedMs = this.nowMs();
    this.grpc.handle('/observer.Observer/GetFlows', (c) => this.getFlows(c));
    this.grpc.handle('/observer.Observer/ServerStatus', async (c) =>
      c.send(encode(this.types.status, await this.status())),
    );
    this.grpc.handle('/observer.Observer/GetNodes', async (c) =>
      c.send(encode(this.types.nodes, await this.nodeList())),
    );
    this.grpc.handle('/observer.Observer/GetNamespaces', async (c) =>
      c.send(encode(this.types.namespaces, await this.namespaces())),
    );
    this.grpc.handle('/grpc.health.v1.Health/Check', async (c) => c.send(Uint8Array.of(0x08, 0x01)));
  }

  /** Starts peer discovery; call listen() to serve. */
  start(): void {
    this.watchPeers();
    this.every(this.retryMs, () => void this.refreshAll());
  }

  listen(address: string): Promise<string> {
    return this.grpc.listen(address);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
    this.peerCall?.cancel();
    this.peerConn?.close();
    for (const n of this.nodes.values()) n.client.close();
    await this.grpc.close();
  }

  /** Node names by state, for tests and status. */
  nodeStates(): Record<string, number> {
    return Object.fromEntries([...this.nodes.values()].map((n) => [n.name, n.state]));
  }

  private watchPeers(): void {
    if (this.closed) return;
    const services = this.opts.peerService
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    this.peerConn ??= peerClient(services[this.peerIndex % services.length] ?? '', reconnectOptions(this.retryMs));
    const call = this.peerConn.Notify({}) as grpc.ClientReadableStream<{ name: string; address: string; type: number }>;
    this.peerCall = call;
    // A peer service announces every current peer first: once it has, a node it did not
    // announce left while the relay was asking another one (or none).
    const announced = new Set<string>();
    let sweep: NodeJS.Timeout | undefined;
    call.on('data', (c) => {
      if (c.type === 2) this.removeNode(c.name);
      else {
        announced.add(c.name);
        this.upsertNode(c.name, c.address);
      }
      if (sweep === undefined) {
        sweep = setTimeout(() => {
          this.timers.delete(sweep!);
          if (this.peerCall !== call) return;
          for (const name of [...this.nodes.keys()]) if (!announced.has(name)) this.removeNode(name);
        }, PEER_SWEEP_MS);
        this.timers.add(sweep);
      }
    });
    const again = () => {
      if (this.peerCall !== call || this.closed) return;
      this.peerCall = undefined;
      // The next peer service at once; a full round of them failing waits retryMs.
      this.peerConn?.close();
      this.peerConn = undefined;
      this.peerIndex++;
      const delay = this.peerIndex % services.length === 0 ? this.retryMs : 0;
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.watchPeers();
      }, delay);
      this.timers.add(t);
    };
    call.on('error', again);
    call.on('end', again);
  }

  private upsertNode(name: string, address: string): void {
    const existing = this.nodes.get(name);
    if (existing !== undefined && existing.address === address) return;
    existing?.client.close();
    const node: NodeConn = {
      name,
      address,
      client: observerClient(address, reconnectOptions(this.retryMs)),
      state: NodeState.UNKNOWN,
    };
    this.nodes.set(name, node);
    void this.refresh(node).then(() => this.changed());
  }

  private removeNode(name: string): void {
    const n = this.nodes.get(name);
    if (n === undefined) return;
    n.state = NodeState.GONE;
    n.client.close();
    this.nodes.delete(name);
    this.changed();
  }

  private changed(): void {
    for (const l of this.changeListeners) l();
  }

  private async refreshAll(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => this.refresh(n)));
    this.changed();
  }

  private async refresh(node: NodeConn): Promise<void> {
    try {
      node.status = await unary(node.client, 'ServerStatus', Math.min(this.retryMs, 5000));
      node.state = NodeState.CONNECTED;
    } catch {
      node.status = undefined;
      if (node.state !== NodeState.GONE) node.state = NodeState.UNAVAILABLE;
    }
  }

  private async status(): Promise<Record<string, unknown>> {
    await this.refreshAll();
    const up = [...this.nodes.values()].filter((n) => n.state === NodeState.CONNECTED);
    const down = [...this.nodes.values()].filter((n) => n.state !== NodeState.CONNECTED);
    const sum = (k: string) => up.reduce((a, n) => a + Number(n.status?.[k] ?? 0), 0);
    return {
      num_flows: sum('num_flows'),
      max_flows: sum('max_flows'),
      seen_flows: sum('seen_flows'),
      uptime_ns: Math.max((this.nowMs() - this.startedMs) * 1e6, ...up.map((n) => Number(n.status?.uptime_ns ?? 0))),
      num_connected_nodes: { value: up.length },
      num_unavailable_nodes: { value: down.length },
      unavailable_nodes: down.map((n) => n.name).sort(),
      version: `membrane ${VERSION}`,
      flows_rate: sum('flows_rate'),
    };
  }

  private async nodeList(): Promise<Record<string, unknown>> {
    await this.refreshAll();
    return {
      nodes: [...this.nodes.values()].map((n) => ({
        name: n.name,
        version: n.status?.version ?? '',
        address: n.address,
        state: n.state,
        uptime_ns: n.status?.uptime_ns ?? 0,
        num_flows: n.status?.num_flows ?? 0,
        max_flows: n.status?.max_flows ?? 0,
        seen_flows: n.status?.seen_flows ?? 0,
      })),
    };
  }

  private async namespaces(): Promise<Record<string, unknown>> {
    const seen = new Map<string, { cluster?: string; namespace?: string }>();
    await Promise.all(
      [...this.nodes.values()]
        .filter((n) => n.state === NodeState.CONNECTED)
        .map(async (n) => {
          try {
            const r = await unary<{ namespaces?: { cluster?: string; namespace?: string }[] }>(
              n.client,
              'GetNamespaces',
              5000,
            );
            for (const ns of r.namespaces ?? []) seen.set(`${ns.cluster ?? ''}/${ns.namespace ?? ''}`, ns);
          } catch {
            // An unavailable node contributes nothing; its state says why.
          }
        }),
    );
    return { namespaces: [...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v) };
  }

  private async getFlows(call: ServerCall): Promise<void> {
    const req = this.types.request.toObject(this.types.request.decode(call.request), {
      longs: Number,
      defaults: false,
    }) as GetFlowsRequest;
    try {
      compileFlowFilters(req.whitelist, req.blacklist);
    } catch (err) {
      throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, (err as Error).message);
    }
    if (req.first && req.follow) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'first is incompatible with follow');
    await this.refreshAll();
    const follow = req.follow === true;
    const encodeResponse = (r: FlowsResponse) => this.types.response.encode(r as unknown as protobuf.Message).finish();
    const buffer: FlowsResponse[] = [];
    const streams = new Map<string, grpc.ClientReadableStream<FlowsResponse>>();
    const lastSeen = new Map<string, Timestamp>();
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const drain = (all: boolean) => {
      if (buffer.length === 0) return;
      buffer.sort((a, b) => compareTimestamps(timeOf(a), timeOf(b)));
      const n = all ? buffer.length : buffer.length - this.sortBufferSize;
      for (const r of buffer.splice(0, Math.max(0, n))) call.send(encodeResponse(r));
      void call.flush();
    };
    const status = (state: number, names: string[], message = '') => {
      if (names.length === 0) return;
      drain(true);
      call.send(
        encodeResponse({
          node_status:
            message === ''
              ? { state_change: state, node_names: names }
              : { state_change: state, node_names: names, message },
          time: nowTimestamp(this.nowMs()),
        }),
      );
      void call.flush();
    };
    const maybeDone = () => {
      if (!follow && streams.size === 0) {
        drain(true);
        finish();
      }
    };
    const open = (node: NodeConn, reconnect: boolean) => {
      const since = lastSeen.get(node.name);
      // After a reconnect, ask for what the node recorded since its last flow we passed on.
      const nodeReq: GetFlowsRequest =
        reconnect && since !== undefined ? { ...req, number: 0, since: nextNanosecond(since) } : req;
      const s = node.client.GetFlows(nodeReq) as grpc.ClientReadableStream<FlowsResponse>;
      streams.set(node.name, s);
      if (reconnect) s.once('metadata', () => status(NodeState.CONNECTED, [node.name]));
      s.on('data', (r: FlowsResponse) => {
        if (r.flow?.time !== undefined) lastSeen.set(node.name, r.flow.time);
        buffer.push(r);
        if (buffer.length > this.sortBufferSize) drain(false);
      });
      s.on('error', (e: Error & { code?: number; details?: string }) => {
        if (streams.get(node.name) !== s) return;
        streams.delete(node.name);
        if (call.cancelled) return;
        node.state = e.code === GrpcStatus.INVALID_ARGUMENT ? NodeState.ERROR : NodeState.UNAVAILABLE;
        status(node.state, [node.name], e.details ?? e.message);
        maybeDone();
      });
      s.on('end', () => {
        if (streams.get(node.name) !== s) return;
        streams.delete(node.name);
        maybeDone();
      });
    };
    const nodes = [...this.nodes.values()];
    status(
      NodeState.CONNECTED,
      nodes.filter((n) => n.state === NodeState.CONNECTED).map((n) => n.name),
    );
    status(
      NodeState.UNAVAILABLE,
      nodes.filter((n) => n.state !== NodeState.CONNECTED).map((n) => n.name),
    );
    for (const n of nodes) if (n.state === NodeState.CONNECTED) open(n, false);
    const timers: NodeJS.Timeout[] = [];
    let onChange: (() => void) | undefined;
    if (follow) {
      timers.push(setInterval(() => drain(true), this.drainMs));
      // Nodes that come back (or join) while following are streamed again.
      onChange = () => {
        for (const n of this.nodes.values()) if (n.state === NodeState.CONNECTED && !streams.has(n.name)) open(n, true);
        for (const [name, s] of streams)
          if (!this.nodes.has(name)) {
            streams.delete(name);
            s.cancel();
            status(NodeState.GONE, [name]);
          }
      };
      this.changeListeners.add(onChange);
    }
    call.onCancel(() => finish());
    maybeDone();
    await finished;
    for (const t of timers) clearInterval(t);
    if (onChange !== undefined) this.changeListeners.delete(onChange);
    for (const s of streams.values()) s.cancel();
    if (!call.cancelled) await call.flush();
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    this.timers.add(t);
  }
}

function reconnectOptions(retryMs: number): grpc.ChannelOptions {
  return {
    'grpc.initial_reconnect_backoff_ms': Math.min(retryMs, 1000),
    'grpc.max_reconnect_backoff_ms': retryMs,
  };
}

function timeOf(r: FlowsResponse): Timestamp | undefined {
  return r.flow?.time ?? r.time;
}

function nextNanosecond(t: Timestamp): Timestamp {
  const nanos = (t.nanos ?? 0) + 1;
  return nanos >= 1e9 ? { seconds: Number(t.seconds) + 1, nanos: 0 } : { seconds: Number(t.seconds), nanos };
}

function nowTimestamp(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

function unary<T = Record<string, unknown>>(client: FlowApiClient, method: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) =>
    (client[method] as (r: object, o: object, cb: (e: Error | null, v: T) => void) => void)(
      {},
      { deadline: new Date(Date.now() + timeoutMs) },
      (e, v) => (e ? reject(e) : resolve(v)),
    ),
  );
}

function encode(type: protobuf.Type, obj: Record<string, unknown>): Uint8Array {
  return type.encode(obj as unknown as protobuf.Message).finish();
}
