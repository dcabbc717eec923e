// `membrane ui`: the web UI (a live service map and flow table), like `cilium hubble ui`: serves
// the built app and its API on 127.0.0.1:12000, reading flows from the relay.
import type { Command } from 'commander';
import { repoRoot } from '../../lab/repo-root.js';
import { DEFAULT_UI_PORT, UiServer } from '../../ui/ui-server.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { DEFAULT_RELAY_SERVER } from './observe.js';

export function registerUi(program: Command): void {
  program
    .command('ui')
    .description('Serve the web UI: a live service map and flow table (like `cilium hubble ui`)')
    .option('--port <port>', 'port to serve on', String(DEFAULT_UI_PORT))
    .option('--address <host>', 'address to serve on', '127.0.0.1')
    .option('--server <address>', 'flow server: the relay (host:port or unix:///path)', DEFAULT_RELAY_SERVER)
    .option('--agent-socket <path>', "an agent's API socket, for the policy view and traces ({node}: the node's name)")
    .option('--window <seconds>', 'sliding window of the service map', '60')
    .option('--ring <flows>', 'recent flows kept for the table and export', '16384')
    .action(async (o: Record<string, string>) => {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new CliError(
          'MBR_CLI_USAGE',
          `--port: expected a port 0-65535, got ${JSON.stringify(o.port)}`,
          EXIT_USAGE,
        );
      const window = Number(o.window);
      if (!Number.isInteger(window) || window < 1 || window > 3600)
        throw new CliError(
          'MBR_CLI_USAGE',
          `--window: expected 1-3600 seconds, got ${JSON.stringify(o.window)}`,
          EXIT_USAGE,
        );
      const ring = Number(o.ring);
      if (!Number.isInteger(ring) || ring < 16 || ring > 1 << 22)
        throw new CliError(
          'MBR_CLI_USAGE',
          `--ring: expected 16-4194304 flows, got ${JSON.stringify(o.ring)}`,
          EXIT_USAGE,
        );
      const ui = new UiServer({
        server: o.server,
        agentSocket: o.agentSocket,
        webRoot: `${repoRoot()}/dist/ui-web`,
        windowSeconds: window,
        ringCapacity: ring,
      });
      let url: string;
      try {
        url = await ui.listen(port, o.address);
      } catch (e) {
        throw new CliError('MBR_UI_LISTEN', `listen on ${o.address}:${port}: ${(e as Error).message}`);
      }
      process.stdout.write(`membrane ui: serving on ${url}, flows from ${o.server}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await ui.close();
    });
}
