// The one registry of L7 protocol handlers the node's proxy dispatches to, by the parser of the
// redirect's rules: TCP handlers per connection, UDP servers (DNS) per proxy port. A protocol plugs
// in with one line here.
import { createHttpHandler } from './http/http-handler.js';
import type { SecretSource } from './http/http-rules.js';
import type { TcpL7Handler, UdpL7Server } from './l7-handler.js';
import { pipeHandler, udpPipeServer } from './pipe-handler.js';

export interface BuiltinHandlerOptions {
  /** The Secrets headerMatches compare against (the agent sends them over the rule channel). */
  readonly secrets?: SecretSource;
}

export function builtinTcpHandlers(o: BuiltinHandlerOptions = {}): TcpL7Handler[] {
  return [
    createHttpHandler({ secrets: o.secrets }),
    // src/proxy/kafka/ replaces this line with its handler; until then connections a policy
    // allows are piped unparsed (the L3/L4 verdict still holds).
    pipeHandler('kafka'),
  ];
}

/** UDP servers (DNS). */
export function builtinUdpServers(): UdpL7Server[] {
  return [
    // src/proxy/dns/ replaces this line with its server; until then allowed queries are relayed.
    udpPipeServer('dns'),
  ];
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
