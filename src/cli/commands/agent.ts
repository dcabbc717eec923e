// `membrane agent`: run the node agent.
import type { Command } from 'commander';
import { runAgent } from '../../agent/run-agent.js';
import { splitMetricOptions } from '../../hubble/metrics/metric-options.js';
import { agentSocket, bpffsDir, clusterDir, DEFAULT_LAB, nodeDir } from '../../lab/lab-paths.js';
import { type StoreSpec, StoreSpecError, storeSpecFromOptions } from '../../store/open-store.js';
import { CliError, EXIT_USAGE } from '../errors.js';

/** The metrics every agent serves unless `--hubble-metrics` says otherwise (docs/metrics.md). */
export const DEFAULT_HUBBLE_METRICS =
  'flow drop tcp port-distribution icmp dns:query;ignoreAAAA httpV2:sourceContext=pod;destinationContext=namespace|ip kafka policy flows-to-world';

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
    .option('--cluster-dir <dir>', "the embedded cluster store's directory (default: the lab's)")
    .option('--kvstore <kind>', 'cluster store: embedded or etcd', 'embedded')
    .option(
      '--kvstore-opt <key=value>',
      'cluster store option, repeatable: etcd.config=FILE, etcd.address=URL[,URL], etcd.trusted-ca-file, etcd.cert-file, etcd.key-file',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--cluster-pool-ipv4-cidr <cidr>',
      "the pool every node's pod CIDR is a block of (default: the pod CIDR alone)",
    )
    .option('--cluster-pool-ipv4-mask-size <bits>', "the size of each node's block in the pool", '24')
    .option('--node-lease-ttl <seconds>', "the node key's lease: how long other nodes keep a silent node", '30')
    .option('--identity-gc-interval <seconds>', 'how often the identity GC looks for unheld identities', '10')
    .option('--identity-gc-grace <seconds>', 'how long an identity no node holds is kept before it is freed', '60')
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
        store: kvstore(o.kvstore, o.kvstoreOpt, o.clusterDir ?? clusterDir(o.lab)),
        cluster: {
          nodeLeaseTtlSeconds: count(o.nodeLeaseTtl, '--node-lease-ttl', 2),
          ...(o.clusterPoolIpv4Cidr
            ? {
                podCidrPool: {
                  cidr: o.clusterPoolIpv4Cidr,
                  maskSize: count(o.clusterPoolIpv4MaskSize, '--cluster-pool-ipv4-mask-size', 1),
                },
              }
            : {}),
          identityGc: {
            intervalMs: seconds(o.identityGcInterval, '--identity-gc-interval') * 1000,
            graceMs: seconds(o.identityGcGrace, '--identity-gc-grace') * 1000,
          },
        },
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

function kvstore(kind: string, opts: string[], dir: string): StoreSpec {
  try {
    return storeSpecFromOptions(kind, opts, dir);
  } catch (err) {
    if (err instanceof StoreSpecError) throw new CliError('MBR_CLI_USAGE', err.message, EXIT_USAGE);
    throw err;
  }
}

function seconds(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new CliError('MBR_CLI_USAGE', `${flag}: expected a number of seconds > 0, got "${text}"`, EXIT_USAGE);
  return n;
}

function count(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new CliError('MBR_CLI_USAGE', `${flag}: expected a whole number >= ${min}, got "${text}"`, EXIT_USAGE);
  return n;
}
