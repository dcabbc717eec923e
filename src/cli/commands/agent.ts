// `membrane agent`: run the node agent.
import type { Command } from 'commander';
import { runAgent } from '../../agent/run-agent.js';
import { agentSocket, bpffsDir, clusterDir, DEFAULT_LAB, nodeDir } from '../../lab/lab-paths.js';

export function registerAgent(program: Command): void {
  const group = program.command('agent').description('Run the node agent');
  group
    .command('run')
    .description('Run the agent in the foreground')
    .option('--lab <name>', 'lab this node belongs to', DEFAULT_LAB)
    .requiredOption('--node <name>', 'name of this node')
    .requiredOption('--pod-cidr <cidr>', "this node's pod CIDR")
    .option('--node-ip <ip>', "this node's underlay address", '')
    .option('--state-dir <dir>', 'where the agent keeps its desired state')
    .option('--cluster-dir <dir>', "the lab's shared cluster store")
    .option('--socket <path>', 'API socket path')
    .option('--bpffs <dir>', 'bpffs directory for pinned maps and programs')
    .action(async (o) => {
      await runAgent({
        lab: o.lab,
        node: o.node,
        podCIDR: o.podCidr,
        nodeIp: o.nodeIp,
        stateDir: o.stateDir ?? nodeDir(o.lab, o.node),
        clusterDir: o.clusterDir ?? clusterDir(o.lab),
        socket: o.socket ?? agentSocket(o.lab, o.node),
        bpffs: o.bpffs ?? `${bpffsDir(o.lab)}/${o.node}`,
      });
    });
}
