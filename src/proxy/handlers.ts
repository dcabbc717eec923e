// The one registry of L7 protocol handlers the node's proxy dispatches to, by the parser of the
// redirect's rules. A protocol plugs in with one line here.
import type { TcpL7Handler } from './l7-handler.js';
import { pipeHandler } from './pipe-handler.js';

export function builtinTcpHandlers(): TcpL7Handler[] {
  return [
    // src/proxy/http/ replaces this line with its handler; until then allowed HTTP connections
    // are piped unparsed (the L3/L4 verdict still holds).
    pipeHandler('http'),
  ];
}

export class HandlerRegistry {
  #tcp = new Map<TcpL7Handler['parser'], TcpL7Handler>();

  constructor(handlers: readonly TcpL7Handler[]) {
    for (const h of handlers) {
      if (this.#tcp.has(h.parser)) throw new Error(`proxy handlers: two handlers for parser ${h.parser}`);
      this.#tcp.set(h.parser, h);
    }
  }

  tcp(parser: string): TcpL7Handler | undefined {
    return this.#tcp.get(parser as TcpL7Handler['parser']);
  }
}
