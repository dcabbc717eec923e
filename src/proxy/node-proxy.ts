// The node's L7 proxy framework: a transparent listener per TCP proxy port, and for each
// connection the datapath hands it (bpf/lib/proxy.h) the original tuple (getsockname), the
// endpoint and identities (DatapathView over the pinned maps), the redirect's L7 policies
// (L7Rules, pushed by the agent) and the handler of the redirect's parser. No handler, an
// unknown endpoint or no policy: the connection is reset (fail closed) and counted as a denial.
// Upstream connections carry the from-proxy mark; towards another node they bind to the client's
// address so the remote node's ipcache gives the client's identity.
//
//   const proxy = await NodeProxy.start({ pinDir, rules, handlers, log });
//   proxy.stats(); await proxy.close();
import type { Server, Socket } from 'node:net';
import { openPinnedMap } from '../datapath/bpf-object.js';
import type { L7Record } from '../hubble/flow/parser.js';
import type { TrafficDirection } from '../policy/map-state-types.js';
import { defaultProxyPort } from '../policy/policy-engine.js';
import type { L7Parser } from '../policy/policy-rule.js';
import { type ConnectionIdentity, DatapathView } from './datapath-view.js';
import { HandlerRegistry } from './handlers.js';
import type {
  L7ConnectionContext,
  L7DatagramContext,
  OriginalTuple,
  TcpL7Handler,
  TransparentUdp,
  UdpL7Server,
} from './l7-handler.js';
import type { L7Rules } from './l7-rules.js';
import { fromProxyMark } from './proxy-marks.js';
import { connectMarked, listenTransparent, openMarkedUdp, openTransparentUdp, socketPair } from './proxy-sockets.js';

export interface ProxyPort {
  readonly port: number;
  readonly parser: L7Parser;
  readonly direction: TrafficDirection;
}

/** The UDP proxy ports (DNS) the policy engine hands out (defaultProxyPort). */
export function udpProxyPorts(): ProxyPort[] {
  return (['ingress', 'egress'] as const).map((direction) => ({
    port: defaultProxyPort('dns', direction),
    parser: 'dns',
    direction,
  }));
}

/** The TCP proxy ports the policy engine hands out (defaultProxyPort). */
export function tcpProxyPorts(): ProxyPort[] {
  return (['http', 'kafka'] as const).flatMap((parser) =>
    (['ingress', 'egress'] as const).map((direction) => ({
      port: defaultProxyPort(parser, direction),
      parser,
      direction,
    })),
  );
}

export interface NodeProxyOptions {
  /** The network namespace the listeners and upstream sockets live in ('' = this process's). */
  readonly netns?: string;
  /** The node's datapath pin directory (its maps give identities). */
  readonly pinDir: string;
  readonly rules: L7Rules;
  readonly handlers: readonly TcpL7Handler[];
  /** UDP servers (DNS); each gets the transparent socket of its parser's proxy ports. */
  readonly udpServers?: readonly UdpL7Server[];
  readonly ports?: readonly ProxyPort[];
  readonly udpPorts?: readonly ProxyPort[];
  /** Access records (L7 flows). */
  readonly log?: (rec: L7Record) => void;
  readonly upstreamTimeoutMs?: number;
}

export interface ProxyStats {
  /** Connections accepted since start. */
  readonly connections: number;
  readonly activeConnections: number;
  /** Connections refused whole (no policy, handler or endpoint) and requests a handler denied. */
  readonly denials: number;
  readonly upstreamFailures: number;
  readonly ports: readonly number[];
}

export class NodeProxy {
  #o: NodeProxyOptions;
  #view: DatapathView;
  #registry: HandlerRegistry;
  #servers: Server[] = [];
  #udp: TransparentUdp[] = [];
  #clients = new Set<Socket>();
  #upstreams = new Set<Socket>();
  #connections = 0;
  #denials = 0;
  #upstreamFailures = 0;
  #ports: readonly ProxyPort[];

  private constructor(o: NodeProxyOptions, view: DatapathView) {
    this.#o = o;
    this.#view = view;
    this.#registry = new HandlerRegistry(o.handlers, o.udpServers ?? []);
    this.#ports = o.ports ?? tcpProxyPorts();
  }

  static async start(o: NodeProxyOptions): Promise<NodeProxy> {
    const proxy = new NodeProxy(o, DatapathView.open(o.pinDir));
    try {
      // The listeners go into the datapath's socket map too (mbr_proxy_lookup answers with them
      // when the stack looks a listener up itself); a closed socket leaves the map on its own.
      const socks = openPinnedMap(o.pinDir, 'mbr_proxy_socks');
      try {
        for (const p of proxy.#ports) {
          const { server, fd } = await listenTransparent({ netns: o.netns, port: p.port }, (s) => proxy.#accept(s, p));
          proxy.#servers.push(server);
          const key = Buffer.alloc(4);
          key.writeUInt32LE(p.port);
          const value = Buffer.alloc(8);
          value.writeBigUInt64LE(BigInt(fd));
          socks.update(key, value);
        }
      } finally {
        socks.close();
      }
      for (const p of o.udpPorts ?? udpProxyPorts()) {
        const server = proxy.#registry.udp(p.parser);
        if (!server) continue;
        const udp = openTransparentUdp({ netns: o.netns, port: p.port });
        proxy.#udp.push(udp);
        server.start(udp, proxy.#datagramContext(p));
      }
    } catch (err) {
      await proxy.close();
      throw err;
    }
    return proxy;
  }

  stats(): ProxyStats {
    return {
      connections: this.#connections,
      activeConnections: this.#clients.size,
      denials: this.#denials,
      upstreamFailures: this.#upstreamFailures,
      ports: this.#ports.map((p) => p.port),
    };
  }

  /** Counts a denial a handler decided (a request refused by L7 policy). */
  countDenial(): void {
    this.#denials++;
  }

  /** Stops listening and cuts every proxied connection (server.close waits for them otherwise). */
  async close(): Promise<void> {
    const closed = this.#servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    this.#servers = [];
    for (const s of [...this.#clients, ...this.#upstreams]) s.destroy();
    for (const u of this.#udp) u.close();
    this.#udp = [];
    await Promise.all(closed);
    this.#view.close();
  }

  #accept(client: Socket, p: ProxyPort): void {
    this.#track(client);
    const tuple: OriginalTuple = {
      srcIp: client.remoteAddress ?? '',
      srcPort: client.remotePort ?? 0,
      dstIp: client.localAddress ?? '',
      dstPort: client.localPort ?? 0,
    };
    const ids = this.#view.resolve(tuple, p.direction);
    if (!ids) {
      this.#deny(client);
      return;
    }
    this.#dispatch(client, tuple, p.direction, ids);
  }

  #track(client: Socket): void {
    this.#connections++;
    this.#clients.add(client);
    client.once('close', () => this.#clients.delete(client));
    client.on('error', () => client.destroy());
  }

  /**
   * Hands a connection to the handler of its redirect's parser; no policy or handler: deny.
   * `upstreamMark`: which proxy's mark its upstream carries (the direction, but for a chained one).
   */
  #dispatch(
    client: Socket,
    tuple: OriginalTuple,
    direction: TrafficDirection,
    ids: ConnectionIdentity,
    upstreamMark: TrafficDirection = direction,
  ): void {
    const remote = direction === 'egress' ? ids.dstIdentity : ids.srcIdentity;
    const policies = () => this.#o.rules.policiesFor(ids.endpointId, direction, 6, tuple.dstPort, remote);
    const first = policies()[0];
    const handler = first && this.#registry.tcp(first.parser);
    if (!handler) {
      this.#deny(client);
      return;
    }
    const ctx: L7ConnectionContext = {
      tuple,
      endpointId: ids.endpointId,
      direction,
      srcIdentity: ids.srcIdentity,
      dstIdentity: ids.dstIdentity,
      policies,
      connectUpstream: () => this.#connectUpstream(tuple, direction, ids.srcIdentity, upstreamMark),
      log: (rec) => {
        if (rec.verdict === 'denied' && rec.type === 'request') this.#denials++;
        this.#o.log?.(rec);
      },
    };
    handler.handle(client, ctx);
  }

  #datagramContext(p: ProxyPort): L7DatagramContext {
    return {
      direction: p.direction,
      resolve: (src, dst) => {
        const ids = this.#view.resolve(
          { srcIp: src.ip, srcPort: src.port, dstIp: dst.ip, dstPort: dst.port },
          p.direction,
          17,
        );
        if (!ids) return undefined;
        const remote = p.direction === 'egress' ? ids.dstIdentity : ids.srcIdentity;
        return { ...ids, policies: () => this.#o.rules.policiesFor(ids.endpointId, p.direction, 17, dst.port, remote) };
      },
      upstream: (srcIdentity) => openMarkedUdp({ netns: this.#o.netns, mark: fromProxyMark(p.direction, srcIdentity) }),
      log: (rec) => {
        if (rec.verdict === 'denied' && rec.type === 'request') this.#denials++;
        this.#o.log?.(rec);
      },
    };
  }

  #deny(client: Socket): void {
    this.#denials++;
    client.resetAndDestroy();
  }

  async #connectUpstream(
    t: OriginalTuple,
    direction: TrafficDirection,
    srcIdentity: number,
    markDirection: TrafficDirection = direction,
  ): Promise<Socket> {
    const local = this.#view.isLocalEndpoint(t.dstIp);
    if (direction === 'egress' && local) {
      // A pod of this node with ingress L7 rules for this client: the proxy's upstream never
      // passes a hook that could redirect it, so the server's ingress handler takes it here,
      // over an in-process socket pair, before its own upstream goes out.
      const ids = this.#view.resolve(t, 'ingress');
      if (ids && this.#o.rules.policiesFor(ids.endpointId, 'ingress', 6, t.dstPort, srcIdentity).length > 0) {
        const [mine, theirs] = socketPair();
        this.#track(theirs);
        // Its upstream carries the egress mark: mbr_to_pod still applies the server's L3/L4
        // ingress verdict, which no hook applied yet on this path.
        this.#dispatch(theirs, t, 'ingress', ids, 'egress');
        return mine;
      }
    }
    // Off-node destinations see the client's own address (their ipcache gives its identity);
    // endpoints of this node get the node's address and the identity in the mark.
    const transparent = direction === 'egress' && !local;
    try {
      const s = await connectMarked({
        netns: this.#o.netns,
        dstIp: t.dstIp,
        dstPort: t.dstPort,
        ...(transparent ? { srcIp: t.srcIp } : {}),
        mark: fromProxyMark(markDirection, srcIdentity),
        timeoutMs: this.#o.upstreamTimeoutMs,
      });
      this.#upstreams.add(s);
      s.once('close', () => this.#upstreams.delete(s));
      return s;
    } catch (err) {
      this.#upstreamFailures++;
      throw err;
    }
  }
}
