// The node's Observer and Peer gRPC services (observer.Observer, peer.Peer) over a FlowObserver,
// on TCP (default :4244) and/or a unix socket.
import type protobuf from 'protobufjs';
import { VERSION } from '../../version.js';
import { encodeFlowsResponse } from '../api/flow-encoder.js';
import { protoType } from '../api/proto-root.js';
import { compileFlowFilters, type FlowFilter } from '../filters/flow-filter.js';
import type { Timestamp } from '../flow/flow.js';
import type { FlowObserver } from './flow-observer.js';
import { FlowReader, FlowsQueryError } from './flow-reader.js';
import { GrpcError, GrpcServer, GrpcStatus, type ServerCall } from './grpc-wire.js';
import type { PeerSource } from './peer-source.js';

export const DEFAULT_SERVER_ADDRESS = '0.0.0.0:4244';
export const DEFAULT_SOCKET_PATH = '/var/run/membrane/hubble.sock';

export interface ObserverServerOptions {
  readonly observer: FlowObserver;
  readonly peers?: PeerSource;
  /** Messages per DATA write on GetFlows. */
  readonly batch?: number;
}

export interface GetFlowsRequest {
  number?: number;
  first?: boolean;
  follow?: boolean;
  blacklist?: FlowFilter[];
  whitelist?: FlowFilter[];
  since?: Timestamp;
  until?: Timestamp;
  field_mask?: { paths?: string[] };
  experimental?: { field_mask?: { paths?: string[] } };
}

export class ObserverServer {
  private readonly grpc: GrpcServer;
  private readonly observer: FlowObserver;
  private readonly types = {
    getFlowsRequest: protoType('observer.GetFlowsRequest'),
    serverStatusResponse: protoType('observer.ServerStatusResponse'),
    getNodesResponse: protoType('observer.GetNodesResponse'),
    getNamespacesResponse: protoType('observer.GetNamespacesResponse'),
    changeNotification: protoType('peer.ChangeNotification'),
  };

  constructor(private readonly opts: ObserverServerOptions) {
    this.observer = opts.observer;
    this.grpc = new GrpcServer(opts.batch ?? 256);
    this.grpc.handle('/observer.Observer/GetFlows', (c) => this.getFlows(c));
    this.grpc.handle('/observer.Observer/ServerStatus', async (c) =>
      c.send(encode(this.types.serverStatusResponse, this.status())),
    );
    this.grpc.handle('/observer.Observer/GetNodes', async (c) =>
      c.send(encode(this.types.getNodesResponse, { nodes: [this.node()] })),
    );
    this.grpc.handle('/observer.Observer/GetNamespaces', async (c) =>
      c.send(
        encode(this.types.getNamespacesResponse, {
          namespaces: this.observer.namespaces().map((namespace) => ({ namespace })),
        }),
      ),
    );
    // No agent or debug events are produced; a follower just waits until it cancels.
    const noEvents = async (c: ServerCall) => {
      if (c.cancelled) return;
      await new Promise<void>((resolve) => c.onCancel(resolve));
    };
    this.grpc.handle('/observer.Observer/GetAgentEvents', noEvents);
    this.grpc.handle('/observer.Observer/GetDebugEvents', noEvents);
    this.grpc.handle('/peer.Peer/Notify', (c) => this.notify(c));
    // grpc.health.v1.Health/Check, answered SERVING (field 1 = 1): `hubble status` asks it first.
    this.grpc.handle('/grpc.health.v1.Health/Check', async (c) => c.send(Uint8Array.of(0x08, 0x01)));
  }

  listen(address: string): Promise<string> {
    return this.grpc.listen(address);
  }

  close(): Promise<void> {
    return this.grpc.close();
  }

  listenAddresses(): readonly string[] {
    return this.grpc.boundAddresses;
  }

  status(): Record<string, unknown> {
    const o = this.observer;
    return {
      num_flows: o.ring.length,
      max_flows: o.ring.capacity,
      seen_flows: o.seenFlows,
      uptime_ns: o.uptimeNs(),
      version: `membrane ${VERSION}`,
      flows_rate: o.flowsRate(),
    };
  }

  node(): Record<string, unknown> {
    const o = this.observer;
    return {
      name: o.nodeName,
      version: `membrane ${VERSION}`,
      address: this.grpc.boundAddresses[0] ?? '',
      state: 1,
      uptime_ns: o.uptimeNs(),
      num_flows: o.ring.length,
      max_flows: o.ring.capacity,
      seen_flows: o.seenFlows,
    };
  }

  private async getFlows(call: ServerCall): Promise<void> {
    const req = this.types.getFlowsRequest.toObject(this.types.getFlowsRequest.decode(call.request), {
      longs: Number,
      defaults: false,
    }) as GetFlowsRequest;
    let reader: FlowReader;
    try {
      const match = compileFlowFilters(req.whitelist, req.blacklist);
      reader = new FlowReader(this.observer.ring, match, this.observer.nodeName, {
        number: req.number,
        first: req.first,
        follow: req.follow,
        since: req.since,
        until: req.until,
        fieldMask: req.field_mask?.paths ?? req.experimental?.field_mask?.paths,
      });
    } catch (err) {
      if (err instanceof FlowsQueryError || (err as { code?: string }).code === 'MBR_FILTER_INVALID')
        throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, (err as Error).message);
      throw err;
    }
    const ring = this.observer.ring;
    let cancelWait: (() => void) | undefined;
    call.onCancel(() => cancelWait?.());
    for (;;) {
      if (call.cancelled) return;
      const step = reader.next();
      if (step === 'done') return;
      if (step === 'wait') {
        await call.flush();
        if (call.cancelled) return;
        await new Promise<void>((resolve) => {
          cancelWait = resolve;
          void ring.waitFor(reader.position).then(resolve);
        });
        cancelWait = undefined;
        continue;
      }
      if (step.lost_events?.source === 3) this.observer.readerLost(step.lost_events.num_events_lost ?? 0);
      call.send(encodeFlowsResponse(step));
    }
  }

  private async notify(call: ServerCall): Promise<void> {
    const peers = this.opts.peers;
    const type = this.types.changeNotification;
    if (peers === undefined) {
      call.send(encode(type, { name: this.observer.nodeName, address: this.grpc.boundAddresses[0] ?? '', type: 1 }));
      await call.flush();
      await new Promise<void>((resolve) => call.onCancel(resolve));
      return;
    }
    let wake: (() => void) | undefined;
    const queue: Record<string, unknown>[] = [];
    const unsubscribe = peers.subscribe((change) => {
      queue.push(change as unknown as Record<string, unknown>);
      wake?.();
    });
    call.onCancel(() => wake?.());
    try {
      while (!call.cancelled) {
        while (queue.length > 0) call.send(encode(type, queue.shift()!));
        await call.flush();
        if (call.cancelled) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (queue.length > 0 || call.cancelled) resolve();
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
    }
  }
}

function encode(type: protobuf.Type, obj: Record<string, unknown>): Uint8Array {
  return type.encode(obj as unknown as protobuf.Message).finish();
}
