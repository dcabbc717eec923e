// grpc-js clients for the flow API, built from proto/ with the same object shape as the flow
// model (proto field names, enums as numbers, 64-bit integers as numbers).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_FILES, protoDir } from './proto-root.js';

export interface FlowApiClients {
  readonly Observer: grpc.ServiceClientConstructor;
  readonly Peer: grpc.ServiceClientConstructor;
}

let clients: FlowApiClients | undefined;

export function flowApiClients(): FlowApiClients {
  if (clients !== undefined) return clients;
  const def = protoLoader.loadSync(PROTO_FILES, {
    includeDirs: [protoDir()],
    keepCase: true,
    longs: Number,
    enums: Number,
    defaults: false,
    oneofs: false,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    observer: { Observer: grpc.ServiceClientConstructor };
    peer: { Peer: grpc.ServiceClientConstructor };
  };
  clients = { Observer: pkg.observer.Observer, Peer: pkg.peer.Peer };
  return clients;
}

/** "host:port", "unix:///path" or "unix:/path", as hubble's --server takes them. */
export function grpcTarget(server: string): string {
  if (server.startsWith('unix:')) return server;
  if (server.startsWith('/')) return `unix://${server}`;
  return server.replace(/^(?:dns:\/\/\/|http:\/\/)/, '');
}

export type FlowApiClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export function observerClient(server: string, options: grpc.ChannelOptions = {}): FlowApiClient {
  const { Observer } = flowApiClients();
  return new Observer(grpcTarget(server), grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 << 20,
    // A 64 KiB HTTP/2 window makes a flow stream wait for a window update every ~150 flows.
    'grpc-node.flow_control_window': 4 << 20,
    ...options,
  }) as unknown as FlowApiClient;
}

export function peerClient(server: string, options: grpc.ChannelOptions = {}): FlowApiClient {
  const { Peer } = flowApiClients();
  return new Peer(grpcTarget(server), grpc.credentials.createInsecure(), options) as unknown as FlowApiClient;
}
