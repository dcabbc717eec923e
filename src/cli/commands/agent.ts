// `membrane agent`: run the node agent.
import type { Command } from 'commander';
import { runAgent } from '../../agent/run-agent.js';
import { splitMetricOptions } from '../../hubble/metrics/metric-options.js';
import { agentSocket, bpffsDir, clusterDir, DEFAULT_LAB, nodeDir } from '../../lab/lab-paths.js';
import { CliError, EXIT_USAGE } from '../errors.js';

/** The metrics every agent serves unless `--hubble-metrics` says otherwise (docs/metrics.md). */
export const DEFAULT_HUBBLE_METRICS =
  'flow drop tcp port-distribution icmp dns:query;ignoreAAAA httpV2:sourceContext=pod;destinationContext=namespace|ip policy flows-to-world';

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
    .option(
      '--hubble-metrics <options>',
      'Hubble metric option strings, separated by spaces or commas (e.g. "drop;sourceContext=pod flow port-distribution"); empty disables metrics',
      DEFAULT_HUBBLE_METRICS,
    )
    .option('--hubble-metrics-server <host:port>', 'where to serve /metrics; empty disables metrics', ':9965')
    .option('--hubble-export-file-path <file>', 'write flows as jsonpb lines to this file (rotated)')
    .option('--hubble-export-file-max-size-mb <mb>', 'rotate the export file at this size', '10')
    .option('--hubble-export-file-max-backups <n>', 'rotated export files to keep', '5')
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
        hubbleMetrics: splitMetricOptions(o.hubbleMetrics),
        hubbleMetricsServer: o.hubbleMetricsServer,
        ...(o.hubbleExportFilePath
          ? {
              hubbleExport: {
                filePath: o.hubbleExportFilePath,
                maxSizeBytes: count(o.hubbleExportFileMaxSizeMb, '--hubble-export-file-max-size-mb', 1) * 2 ** 20,
                maxBackups: count(o.hubbleExportFileMaxBackups, '--hubble-export-file-max-backups', 0),
              },
            }
          : {}),
      });
    });
}

function count(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new CliError('MBR_CLI_USAGE', `${flag}: expected a whole number >= ${min}, got "${text}"`, EXIT_USAGE);
  return n;
}
