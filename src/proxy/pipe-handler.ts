// Handlers that parse nothing: an allowed connection (some L7 policy applies to it) is piped
// byte for byte to its original destination, an allowed datagram relayed. They stand in for a
// protocol whose parser is not built (the L3/L4 verdict holds, the L7 rules are not applied), and
// the framework's own tests use them; they log no access records (they see no messages).
import type { Socket } from 'node:net';
import type {
  L7ConnectionContext,
  L7DatagramContext,
  TcpL7Handler,
  TransparentUdp,
  UdpL7Server,
} from './l7-handler.js';

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

/** How long a relayed datagram's upstream socket waits for the answer. */
const UDP_ANSWER_TIMEOUT_MS = 5000;

/**
 * The UDP counterpart: each redirected datagram a policy allows is sent on to its original
 * destination from an upstream socket carrying the client's identity in its mark, and the first
 * answer goes back to the client from the address it asked. No parsing, no access records.
 */
export function udpPipeServer(parser: UdpL7Server['parser']): UdpL7Server {
  return {
    parser,
    start(udp: TransparentUdp, ctx: L7DatagramContext): void {
      udp.onMessage((data, src, dst) => {
        const flow = ctx.resolve(src, dst);
        if (!flow || flow.policies().length === 0) return;
        const up = ctx.upstream(flow.srcIdentity);
        const timer = setTimeout(() => up.close(), UDP_ANSWER_TIMEOUT_MS);
        up.onMessage((answer) => {
          clearTimeout(timer);
          up.close();
          udp.send(answer, dst, src).catch(() => undefined);
        });
        up.send(data, dst).catch(() => {
          clearTimeout(timer);
          up.close();
        });
      });
    },
  };
}
