// `membrane endpoint`: endpoints (pods) as the agents know them, columns as Cilium prints them.
import type { Command } from 'commander';
import type { Endpoint } from '../../agent/api-types.js';
import { addTargetOptions, resolveTargets, wantsJson } from '../agent-target.js';
import { CliError } from '../errors.js';
import { renderTable } from '../table.js';

export function registerEndpoint(program: Command): void {
  const group = program.command('endpoint').description('Manage endpoints (pods)');
  addTargetOptions(
    group.command('list').description('List endpoints').option('-o, --output <format>', 'output format: table or json'),
  ).action(async (o) => {
    const targets = resolveTargets(o);
    const eps = (
      await Promise.all(
        targets.map(async (t) => (await t.client.get<Endpoint[]>('/v1/endpoint')).map((e) => ({ ...e, node: t.node }))),
      )
    ).flat();
    if (wantsJson(o)) {
      process.stdout.write(`${JSON.stringify(eps, null, 2)}\n`);
      return;
    }
    process.stdout.write(formatEndpointList(eps, targets.length > 1));
  });
  addTargetOptions(
    group
      .command('get')
      .description('Show one endpoint')
      .argument('<id>', 'endpoint ID, or NAMESPACE/POD')
      .option('-o, --output <format>', 'output format: json (the default) or table'),
  ).action(async (id: string, o) => {
    const targets = resolveTargets(o);
    for (const t of targets) {
      const eps = await t.client.get<Endpoint[]>('/v1/endpoint');
      const ep = /^\d+$/.test(id)
        ? eps.find((e) => e.id === Number(id))
        : eps.find((e) => `${e.namespace}/${e.podName}` === id);
      if (ep) {
        if (o.output === 'table') process.stdout.write(formatEndpointList([{ ...ep, node: t.node }], false));
        else process.stdout.write(`${JSON.stringify(endpointModel(ep, t.node), null, 2)}\n`);
        return;
      }
    }
    throw new CliError(
      'MBR_NOT_FOUND',
      `endpoint ${id} not found${targets.length > 1 ? ' on any node' : ''} (IDs are per node: pass --node, or use NAMESPACE/POD)`,
    );
  });
}

export function formatEndpointList(eps: ReadonlyArray<Endpoint & { node: string }>, withNode: boolean): string {
  const header = [
    ...(withNode ? ['NODE'] : []),
    'ENDPOINT',
    'POLICY (ingress)\nENFORCEMENT',
    'POLICY (egress)\nENFORCEMENT',
    'IDENTITY',
    'LABELS (source:key[=value])',
    'IPv6',
    'IPv4',
    'STATUS',
  ];
  const rows = eps.map((e) => [
    ...(withNode ? [e.node] : []),
    String(e.id),
    e.policyEnabledIngress ? 'Enabled' : 'Disabled',
    e.policyEnabledEgress ? 'Enabled' : 'Disabled',
    String(e.identity),
    e.identityLabels.filter((l) => !l.includes('io.cilium.k8s.namespace.labels') && !l.includes('policy.cluster')),
    '',
    e.ipv4,
    e.state,
  ]);
  return renderTable(header, rows);
}

/** The endpoint model `endpoint get` prints, shaped like Cilium's (spec/status). */
export function endpointModel(e: Endpoint, node: string): unknown {
  return {
    id: e.id,
    spec: { 'label-configuration': { user: [] } },
    status: {
      state: e.state,
      identity: { id: e.identity, labels: e.identityLabels },
      labels: {
        'security-relevant': e.identityLabels,
        derived: Object.entries(e.labels).map(([k, v]) => `k8s:${k}=${v}`),
      },
      networking: {
        addressing: [{ ipv4: e.ipv4 }],
        'host-mac': e.hostMac,
        mac: e.podMac,
        'interface-name': e.hostIfname,
        'interface-index': e.hostIfindex,
        'container-interface-name': e.ifname,
      },
      'external-identifiers': {
        'container-id': e.containerId,
        'k8s-namespace': e.namespace,
        'k8s-pod-name': e.podName,
        'pod-name': `${e.namespace}/${e.podName}`,
        'netns-path': e.netns,
        node,
      },
      policy: {
        realized: {
          'policy-enabled': policyEnabled(e),
          'policy-revision': e.policyRevision,
        },
        // As Cilium's endpoint status: one entry per port redirected to the node's L7 proxy.
        'proxy-statistics': (e.proxyRedirects ?? []).map((r) => ({
          location: r.direction,
          port: r.port,
          protocol: r.parser,
          'allocated-proxy-port': r.proxyPort,
        })),
      },
      timestamp: e.createdAt,
    },
  };
}

function policyEnabled(e: Endpoint): string {
  if (e.policyEnabledIngress && e.policyEnabledEgress) return 'both';
  if (e.policyEnabledIngress) return 'ingress';
  if (e.policyEnabledEgress) return 'egress';
  return 'none';
}
