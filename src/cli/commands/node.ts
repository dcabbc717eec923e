// `membrane node list`: every node of the cluster as the store holds it (a node is there while
// its agent keeps its lease alive), in `cilium node list`'s columns.
import type { Command } from 'commander';
import type { ClusterNode } from '../../store/cluster-resources.js';
import { addTargetOptions, resolveTargets, wantsJson } from '../agent-target.js';
import { renderTable } from '../table.js';

export function registerNode(program: Command): void {
  const group = program.command('node').description('Nodes of the cluster');
  addTargetOptions(
    group
      .command('list')
      .description('List the nodes the cluster store holds')
      .option('-o, --output <format>', 'output format: table or json'),
  ).action(async (o) => {
    // Nodes live in the cluster store: any one agent answers for all.
    const [t] = resolveTargets(o);
    const nodes = await t.client.get<ClusterNode[]>('/v1/node');
    if (wantsJson(o)) {
      process.stdout.write(`${JSON.stringify(nodes, null, 2)}\n`);
      return;
    }
    process.stdout.write(formatNodeList(nodes, t.node));
  });
}

/** `cilium node list`'s table; Source is "local" for the node that answered, "kvstore" otherwise. */
export function formatNodeList(nodes: readonly ClusterNode[], self: string): string {
  return renderTable(
    ['Name', 'IPv4 Address', 'Endpoint CIDR', 'IPv6 Address', 'Endpoint CIDR', 'Source', 'Health'],
    [...nodes]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((n) => [
        n.name,
        n.ipv4 || '<nil>',
        n.podCIDR || '<nil>',
        '<nil>',
        '<nil>',
        n.name === self ? 'local' : 'kvstore',
        n.health ?? 'unknown',
      ]),
  );
}
