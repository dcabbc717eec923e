// A handler that parses nothing: an allowed connection (some L7 policy applies to it) is piped
// byte for byte to its original destination. It stands in for a protocol whose parser is not
// built, and is what the framework's own tests use; it logs no access records (it sees no
// messages).
import type { Socket } from 'node:net';
import type { L7ConnectionContext, TcpL7Handler } from './l7-handler.js';

export function pipeHandler(parser: TcpL7Handler['parser']): TcpL7Handler {
  return {
    parser,
    handle(client: Socket, ctx: L7ConnectionContext): void {
      client.pause();
      ctx.connectUpstream().then(
        (upstream) => {
          const close = () => {
            client.destroy();
            upstream.destroy();
          };
          client.once('error', close);
          upstream.once('error', close);
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
        },
        () => client.resetAndDestroy(),
      );
    },
  };
}
