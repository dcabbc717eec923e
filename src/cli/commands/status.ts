// `membrane status`: health of each agent subsystem, one block per node.
import type { Command } from 'commander';
import type { AgentStatus, Endpoint } from '../../agent/api-types.js';
import { FIRST_GLOBAL_IDENTITY, MAX_GLOBAL_IDENTITY } from '../../store/cluster-resources.js';
import { addTargetOptions, resolveTargets, wantsJson } from '../agent-target.js';

export function registerStatus(program: Command): void {
  addTargetOptions(
    program
      .command('status')
      .description("Show the agent's health, subsystem by subsystem")
      .option('--verbose', 'show every subsystem in detail')
      .option('-o, --output <format>', 'output format: table or json', 'table'),
  ).action(async (o) => {
    const targets = resolveTargets(o);
    const all = await Promise.all(
      targets.map(async (t) => ({
        status: await t.client.get<AgentStatus>('/v1/status'),
        endpoints: o.verbose ? await t.client.get<Endpoint[]>('/v1/endpoint') : [],
      })),
    );
    if (wantsJson(o)) {
      process.stdout.write(`${JSON.stringify(all.length === 1 ? all[0].status : all.map((a) => a.status), null, 2)}\n`);
      return;
    }
    process.stdout.write(all.map((a) => formatStatus(a.status, a.endpoints, Boolean(o.verbose))).join('\n'));
  });
}

export function formatStatus(s: AgentStatus, endpoints: readonly Endpoint[], verbose: boolean): string {
  const row = (k: string, v: string) => `${`${k}:`.padEnd(26)}${v}\n`;
  const sub = (name: string) => s.subsystems.find((x) => x.name === name);
  const health = (name: string) => {
    const h = sub(name);
    return h ? `${h.state}   ${h.message}` : 'unknown';
  };
  const counts = { Ok: 0, Degraded: 0, Failure: 0, Disabled: 0 };
  for (const x of s.subsystems) counts[x.state]++;
  const size = 2 ** (32 - Number(s.podCIDR.split('/')[1] ?? 32)) - 3;
  let out = '';
  out += row('Node', `${s.node} (lab ${s.lab})`);
  out += row('KVStore', health('store'));
  out += row('Membrane', `Ok   ${s.version} (up since ${s.startedAt})`);
  out += row('Policy engine', health('policy'));
  out += row('Datapath', health('datapath'));
  // Services are load-balanced in eBPF (ClusterIP, NodePort, socket LB): there is no kube-proxy.
  const svc = sub('services');
  if (svc) out += row('KubeProxyReplacement', `${svc.state === 'Disabled' ? 'False' : 'True'}   [${svc.message}]`);
  out += row('Reconciler', health('reconciler'));
  const r = s.reconciler;
  out += row(
    'Map writes',
    `${r.policyEntriesWritten} policy entries, ${r.ipcacheEntriesWritten} ipcache entries, ${r.lbEntriesWritten ?? 0} LB entries from ${r.storeEvents} store events, ${r.failures} failures since start`,
  );
  if (s.proxy) out += row('Proxy Status', formatProxyStatus(s.proxy));
  out += row('IPAM', `IPv4: ${s.endpoints}/${size} allocated from ${s.podCIDR}`);
  out += row('Endpoints', `${s.endpoints} local`);
  out += row('Identities', `${s.identities} known`);
  out += row('Policy revision', String(s.policyRevision));
  out += row('Global Identity Range', `min ${FIRST_GLOBAL_IDENTITY}, max ${MAX_GLOBAL_IDENTITY}`);
  out += row(
    'Modules Health',
    `Stopped(${counts.Disabled}) Degraded(${counts.Degraded + counts.Failure}) OK(${counts.Ok})`,
  );
  if (verbose) {
    out += 'Allocated addresses:\n';
    for (const e of endpoints) out += `  ${e.ipv4.padEnd(16)}${e.namespace}/${e.podName} (endpoint ${e.id})\n`;
  }
  return out;
}

/** Cilium's "Proxy Status" line: health, the proxy's process, redirects and its counters. */
function formatProxyStatus(p: NonNullable<AgentStatus['proxy']>): string {
  const up = p.workers > 0;
  const proc = p.process ? `, pid ${p.process.pid}${p.process.restarts ? `, ${p.process.restarts} restarts` : ''}` : '';
  return `${up ? 'OK' : 'Failure (not connected: L7-redirected flows fail closed)'}${proc}, ${p.workers} workers, ${p.redirects} redirects active, ${p.connections} connections (${p.activeConnections} open), ${p.denials} denials`;
}
