// The seam between the node proxy's framework and each L7 protocol's handler.
//
// The framework (src/proxy/*.ts) owns what is common to every protocol: the transparent listeners
// the datapath hands redirected connections to, the source identity read from the datapath's maps,
// the L7 policies per redirect (pushed by the agent as diffs), the upstream sockets (marked so the
// datapath neither redirects them again nor applies the L3/L4 verdict twice) and the access log
// that becomes L7 flows. A handler (src/proxy/http/, src/proxy/kafka/) owns one protocol's framing
// and rule matching, and nothing else. DNS has its own UDP/TCP server (src/proxy/dns/) over
// `TransparentUdp`.
import type { Socket } from 'node:net';
import type { L7Record } from '../hubble/flow/parser.js';
import type { TrafficDirection } from '../policy/map-state-types.js';
import type { L7Policy } from '../policy/policy-engine.js';

/** The connection as the client sent it: the destination is the original one (getsockname). */
export interface OriginalTuple {
  readonly srcIp: string;
  readonly srcPort: number;
  readonly dstIp: string;
  readonly dstPort: number;
}

/** What the framework gives a handler for one redirected connection. */
export interface L7ConnectionContext {
  readonly tuple: OriginalTuple;
  /** The local endpoint the proxy acts for: the client's (egress) or the server's (ingress). */
  readonly endpointId: number;
  readonly direction: TrafficDirection;
  readonly srcIdentity: number;
  readonly dstIdentity: number;
  /**
   * The L7 policies of this redirect that apply to the peer (its identity is in remoteIdentities,
   * or remoteIdentities holds 0), current at each call: rules can change while a connection is
   * open, and each request is decided against the rules of its own time. Empty = deny all.
   * Rules of different policies are OR-ed.
   */
  policies(): readonly L7Policy[];
  /** The upstream connection to the original destination, marked for the datapath. */
  connectUpstream(): Promise<Socket>;
  /** One access record (a request or a response) that becomes an L7 flow. */
  log(rec: L7Record): void;
}

/** A TCP protocol handler: takes over the client socket for the life of the connection. */
export interface TcpL7Handler {
  readonly parser: 'http' | 'kafka' | 'dns';
  handle(client: Socket, ctx: L7ConnectionContext): void;
}

export interface UdpAddress {
  readonly ip: string;
  readonly port: number;
}

/** A transparent UDP socket: receives datagrams for any destination, replies from any source. */
export interface TransparentUdp {
  onMessage(cb: (data: Buffer, src: UdpAddress, originalDst: UdpAddress) => void): void;
  /** Sends data to `to` with `from` as its source address (the server the client asked). */
  send(data: Buffer, from: UdpAddress, to: UdpAddress): Promise<void>;
  close(): void;
}

/** An upstream UDP socket of the proxy: sends from the node's address with the from-proxy mark. */
export interface MarkedUdp {
  onMessage(cb: (data: Buffer, src: UdpAddress) => void): void;
  send(data: Buffer, to: UdpAddress): Promise<void>;
  close(): void;
}

/** One datagram flow as the framework resolves it from the datapath's maps. */
export interface L7DatagramFlow {
  /** The local endpoint the proxy acts for: the client's (egress) or the server's (ingress). */
  readonly endpointId: number;
  readonly srcIdentity: number;
  readonly dstIdentity: number;
  /** As L7ConnectionContext.policies: current at each call; empty = deny. */
  policies(): readonly L7Policy[];
}

/** What the framework gives a UDP server (DNS) for its proxy port. */
export interface L7DatagramContext {
  readonly direction: TrafficDirection;
  /** The endpoint and identities of a redirected datagram; undefined: not an endpoint of this node (deny). */
  resolve(src: UdpAddress, originalDst: UdpAddress): L7DatagramFlow | undefined;
  /** An upstream socket whose datagrams carry this source identity in their mark. */
  upstream(srcIdentity: number): MarkedUdp;
  log(rec: L7Record): void;
}

/**
 * A UDP protocol server (src/proxy/dns/): the framework opens the transparent socket of each of
 * its proxy ports (what the datapath redirects arrives there with its original destination) and
 * hands it over with the context; the server answers with `udp.send(data, originalDst, src)`.
 */
export interface UdpL7Server {
  readonly parser: 'dns';
  start(udp: TransparentUdp, ctx: L7DatagramContext): void;
}
