// `membrane proxy`: run the node's L7 proxy (src/proxy/). The agent starts and supervises it.
import { join } from 'node:path';
import type { Command } from 'commander';
import { proxySocket } from '../../agent/proxy-supervisor.js';
import { agentSocket, bpffsDir, DEFAULT_LAB, nodeDir } from '../../lab/lab-paths.js';
import { runProxy } from '../../proxy/run-proxy.js';
import { CliError, EXIT_USAGE } from '../errors.js';

export function registerProxy(program: Command): void {
  const group = program.command('proxy').description("Run the node's L7 proxy");
  group
    .command('run')
    .description('Run the proxy in the foreground (in the node network namespace)')
    .option('--lab <name>', 'lab this node belongs to', DEFAULT_LAB)
    .requiredOption('--node <name>', 'name of this node')
    .option('--state-dir <dir>', 'where the proxy keeps its last rule set')
    .option('--agent-socket <path>', "the agent's proxy socket")
    .option('--bpffs <dir>', "the node's datapath pin directory")
    .option('--workers <n>', 'worker processes (default: one per core)')
    .action(async (o) => {
      const workers = o.workers === undefined ? undefined : Number(o.workers);
      if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 256))
        throw new CliError('MBR_CLI_USAGE', `--workers: expected an integer 1..256, got "${o.workers}"`, EXIT_USAGE);
      await runProxy({
        stateDir: o.stateDir ?? join(nodeDir(o.lab, o.node), 'proxy'),
        agentSocket: o.agentSocket ?? proxySocket(agentSocket(o.lab, o.node)),
        pinDir: o.bpffs ?? `${bpffsDir(o.lab)}/${o.node}`,
        ...(workers ? { workers } : {}),
      });
    });
}
