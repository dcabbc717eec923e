// `membrane service list|get`: load-balanced services as the agent realizes them, columns as
// `cilium service list` prints them (ID, Frontend, Service Type, Backend with its state). IDs are
// per node (pass --node to pick one; the default is the first node).
import type { Command } from 'commander';
import type { LbFrontendView } from '../../lb/lb-table.js';
import { protocolName } from '../../lb/lb-table.js';
import { addTargetOptions, resolveTargets, wantsJson } from '../agent-target.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { renderTable } from '../table.js';

export function registerService(program: Command): void {
  const group = program.command('service').description('Load-balanced services');
  addTargetOptions(
    group.command('list').description('List services').option('-o, --output <format>', 'output format: table or json'),
  ).action(async (o) => {
    const [t] = resolveTargets(o);
    const list = await t.client.get<LbFrontendView[]>('/v1/service');
    if (wantsJson(o)) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else process.stdout.write(formatServiceList(list));
  });
  addTargetOptions(
    group
      .command('get')
      .description('Show one service frontend')
      .argument('<id>', 'service ID')
      .option('-o, --output <format>', 'output format: table or json (the default)'),
  ).action(async (id: string, o) => {
    if (!/^\d+$/.test(id))
      throw new CliError('MBR_CLI_USAGE', `id: expected a numeric service ID, got "${id}"`, EXIT_USAGE);
    const [t] = resolveTargets(o);
    const f = (await t.client.get<LbFrontendView[]>('/v1/service')).find((x) => x.id === Number(id));
    if (!f) throw new CliError('MBR_NOT_FOUND', `service ${id} not found on node ${t.node}`);
    if (o.output === 'table') process.stdout.write(formatServiceList([f]));
    else process.stdout.write(`${JSON.stringify(serviceModel(f), null, 2)}\n`);
  });
}

export function formatServiceList(list: readonly LbFrontendView[]): string {
  return renderTable(
    ['ID', 'Frontend', 'Service Type', 'Backend'],
    list.map((f) => [
      String(f.id),
      `${f.frontend.address}:${f.frontend.port}/${protocolName(f.frontend.protocol)}`,
      f.type,
      f.backends.length === 0
        ? ''
        : f.backends.map((b, i) => `${i + 1} => ${b.address}:${b.port}/${protocolName(b.protocol)} (${b.state})`),
    ]),
  );
}

/** `cilium service get` prints the service's spec and status; this is its shape here. */
function serviceModel(f: LbFrontendView): unknown {
  return {
    spec: {
      id: f.id,
      'frontend-address': {
        ip: f.frontend.address,
        port: f.frontend.port,
        protocol: protocolName(f.frontend.protocol),
      },
      'backend-addresses': f.backends.map((b) => ({ ip: b.address, port: b.port, state: b.state, id: b.id })),
      flags: {
        type: f.type,
        name: f.service.name,
        namespace: f.service.namespace,
        trafficPolicy: f.trafficPolicy,
        sessionAffinity: f.affinityTimeoutSeconds > 0,
        sessionAffinityTimeoutSeconds: f.affinityTimeoutSeconds,
      },
      'lb-algorithm': f.algorithm,
      port: f.service.port,
    },
  };
}
