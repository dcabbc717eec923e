// `membrane relay`: the cluster-wide flow server (hubble-relay's flags), merging every node's
// flows; nodes are found through the Peer service of a local agent.
import type { Command } from 'commander';
import { DEFAULT_SOCKET_PATH } from '../../hubble/observer/observer-server.js';
import { DEFAULT_RELAY_ADDRESS, Relay } from '../../hubble/relay/relay.js';
import { CliError, EXIT_USAGE } from '../errors.js';

export function registerRelay(program: Command): void {
  program
    .command('relay')
    .description('Run the flow relay: one Observer API for all nodes (like hubble-relay)')
    .option('--listen-address <address>', 'address to serve on (host:port or unix:///path)', DEFAULT_RELAY_ADDRESS)
    .option(
      '--peer-service <address>',
      'where to discover nodes: an agent, or several separated by commas (the next is asked when one stops answering)',
      `unix://${DEFAULT_SOCKET_PATH}`,
    )
    .option('--retry-timeout <duration>', 'how often to retry unavailable nodes', '30s')
    .option('--sort-buffer-len-max <n>', 'flows held back to merge nodes in time order', '100')
    .option('--sort-buffer-drain-timeout <duration>', 'longest a flow waits in the sort buffer', '1s')
    .action(async (opts: Record<string, string>) => {
      const relay = new Relay({
        peerService: opts.peerService!,
        retryMs: durationMs(opts.retryTimeout!, '--retry-timeout'),
        sortBufferSize: Number(opts.sortBufferLenMax),
        drainMs: durationMs(opts.sortBufferDrainTimeout!, '--sort-buffer-drain-timeout'),
      });
      relay.start();
      const bound = await relay.listen(opts.listenAddress!);
      process.stderr.write(`membrane relay: serving on ${bound}, peers from ${opts.peerService}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await relay.close();
    });
}

function durationMs(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (m === null)
    throw new CliError(
      'MBR_CLI_USAGE',
      `${flag}: expected a duration like "500ms", "30s" or "1m", got ${JSON.stringify(text)}`,
      EXIT_USAGE,
    );
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}
