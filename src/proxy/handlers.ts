// The one registry of L7 protocol handlers the node's proxy dispatches to, by the parser of the
// redirect's rules: TCP handlers per connection, UDP servers (DNS) per proxy port. A protocol plugs
// in with one line here.
import type { DnsProxy } from './dns/dns-proxy.js';
import { createHttpHandler } from './http/http-handler.js';
import type { SecretSource } from './http/http-rules.js';
import { KafkaHandler } from './kafka/kafka-handler.js';
import type { TcpL7Handler, UdpL7Server } from './l7-handler.js';
import { udpPipeServer } from './pipe-handler.js';

export interface BuiltinHandlerOptions {
  /** The DNS proxy when the process has one (it needs the FQDN sink). */
  readonly dns?: DnsProxy;
  /** The Secrets headerMatches compare against (the agent sends them over the rule channel). */
  readonly secrets?: SecretSource;
}

export function builtinTcpHandlers(o: BuiltinHandlerOptions = {}): TcpL7Handler[] {
  return [
    createHttpHandler({ secrets: o.secrets }),
    new KafkaHandler(),
    // DNS over TCP (2-byte framing): the DNS proxy when the process has one.
    ...(o.dns ? [o.dns] : []),
  ];
}

/** UDP servers (DNS): the DNS proxy, or (without one) allowed queries relayed unparsed. */
export function builtinUdpServers(dns?: DnsProxy): UdpL7Server[] {
  return [dns ?? udpPipeServer('dns')];
}

export class HandlerRegistry {
  #tcp = new Map<TcpL7Handler['parser'], TcpL7Handler>();
  #udp = new Map<UdpL7Server['parser'], UdpL7Server>();

  constructor(handlers: readonly TcpL7Handler[], udp: readonly UdpL7Server[] = []) {
    for (const h of handlers) {
      if (this.#tcp.has(h.parser)) throw new Error(`proxy handlers: two handlers for parser ${h.parser}`);
      this.#tcp.set(h.parser, h);
    }
    for (const u of udp) {
      if (this.#udp.has(u.parser)) throw new Error(`proxy handlers: two UDP servers for parser ${u.parser}`);
      this.#udp.set(u.parser, u);
    }
  }

  tcp(parser: string): TcpL7Handler | undefined {
    return this.#tcp.get(parser as TcpL7Handler['parser']);
  }

  udp(parser: string): UdpL7Server | undefined {
    return this.#udp.get(parser as UdpL7Server['parser']);
  }
}
