// `membrane lab`: run the embedded lab: a cluster of network namespaces.
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { etcdMembers } from '../../lab/lab-etcd.js';
import { checkLabName, clusterDir, DEFAULT_LAB, labDir, netnsPath } from '../../lab/lab-paths.js';
import { readLabState } from '../../lab/lab-state.js';
import { podArgv } from '../../lab/pod-process.js';
import { demoWorldFile, repoRoot } from '../../lab/repo-root.js';
import { labDown, labNetns } from '../../lab/teardown.js';
import { labUp, UNDERLAY_PREFIX } from '../../lab/topology.js';
import { wantsJson } from '../agent-target.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { renderTable } from '../table.js';
import { runDemo } from './lab-demo.js';

export function registerLab(program: Command): void {
  const group = program.command('lab').description('Run the embedded lab: a cluster of network namespaces');
  const labOpt = (c: Command) => c.option('--lab <name>', 'lab name (default $MEMBRANE_LAB or "lab")');
  labOpt(
    group
      .command('up')
      .description('Create the lab (idempotent)')
      .option('-f, --file <world...>', 'world manifests (Namespace, Pod); default: the demo world')
      .option('--nodes <n>', 'number of nodes', '2')
      .option('--store <kind>', 'cluster store: embedded (default) or etcd (a 3-member etcd cluster in the lab)')
      .option('--ui-port <port>', 'port of the web UI on 127.0.0.1', '12000')
      .option('--no-ui', 'do not start the web UI'),
  ).action(async (o) => {
    const lab = labName(o);
    const started = Date.now();
    const state = await labUp({
      lab,
      worldFiles: o.file ?? [demoWorldFile()],
      nodes: Number(o.nodes),
      ...(o.store !== undefined ? { store: storeKind(o.store) } : {}),
      repoRoot: repoRoot(),
      log: (l) => process.stderr.write(`lab ${lab}: ${l}\n`),
      ui: o.ui ? { port: uiPort(o.uiPort) } : undefined,
    });
    process.stdout.write(
      `lab ${lab} is up: ${state.nodes.length} nodes, ${state.pods.length} pods (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    );
    if (o.ui) process.stdout.write(`UI: http://127.0.0.1:${uiPort(o.uiPort)}\n`);
  });
  labOpt(group.command('down').description('Remove the lab and everything it created')).action(async (o) => {
    const lab = labName(o);
    const r = await labDown(lab);
    process.stdout.write(
      `lab ${lab} is down: removed ${r.netns.length} network namespaces, stopped ${r.processes} processes\n`,
    );
  });
  labOpt(
    group
      .command('status')
      .description('Show the nodes and pods of the lab')
      .option('-o, --output <format>', 'json or table'),
  ).action((o) => {
    const lab = labName(o);
    const state = readLabState(lab);
    const netns = labNetns(lab);
    if (!state && netns.length === 0) throw new CliError('MBR_LAB_DOWN', `lab ${lab} is not up`);
    if (!state)
      throw new CliError(
        'MBR_LAB_BROKEN',
        `lab ${lab} is half up (${netns.length} network namespaces, no ${labDir(lab)}/lab.json): run "membrane lab down --lab ${lab}"`,
      );
    if (wantsJson(o)) {
      process.stdout.write(`${JSON.stringify(state, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      renderTable(
        ['NODE', 'IPv4', 'POD CIDR', 'METRICS', 'NETNS'],
        state.nodes.map((n) => [n.name, n.ip, n.podCIDR, n.metricsAddress ?? '-', n.netns]),
      ),
    );
    process.stdout.write(`world host ${state.world.ip} (${state.world.hosts.join(', ')}), DNS ${state.dnsIp}\n`);
    process.stdout.write(
      state.store === 'etcd'
        ? `cluster store: etcd, members ${etcdMembers(lab, UNDERLAY_PREFIX)
            .map((m) => `${m.name} ${m.ip} (${m.netns})`)
            .join(', ')}\n\n`
        : `cluster store: embedded, ${clusterDir(lab)}\n\n`,
    );
    process.stdout.write(
      renderTable(
        ['NAMESPACE', 'POD', 'NODE', 'IPv4', 'PORTS', 'LABELS'],
        state.pods.map((p) => [
          p.namespace,
          p.name,
          p.node,
          p.ip,
          p.ports.map((x) => `${x.containerPort}/${x.protocol}`).join(',') || '-',
          Object.entries(p.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
        ]),
      ),
    );
  });
  labOpt(
    group
      .command('exec')
      .description('Run a command inside a lab pod: lab exec NS/POD -- CMD')
      .argument('<pod>', 'NAMESPACE/POD, or "world" for the outside host')
      .argument('<command...>', 'command and arguments (after --)'),
  ).action(async (pod: string, argv: string[], o) => {
    const code = await labExec(labName(o), pod, argv);
    process.exitCode = code;
  });
  labOpt(
    group
      .command('demo')
      .description('Bring the lab up, apply the seed policies in stages and show traffic')
      .option('--policies <dir>', 'seed policy directory'),
  ).action(async (o) => {
    await runDemo(labName(o), o.policies);
  });
}

function storeKind(text: string): 'embedded' | 'etcd' {
  if (text === 'embedded' || text === 'etcd') return text;
  throw new CliError('MBR_CLI_USAGE', `--store: expected embedded or etcd, got "${text}"`, 2);
}

export function labName(o: { lab?: string }): string {
  const lab = o.lab ?? process.env.MEMBRANE_LAB ?? DEFAULT_LAB;
  const bad = checkLabName(lab);
  if (bad) throw new CliError('MBR_LAB_NAME', `--lab: ${bad}`, 2);
  return lab;
}

export async function labExec(lab: string, pod: string, argv: readonly string[]): Promise<number> {
  const state = readLabState(lab);
  if (!state) throw new CliError('MBR_LAB_DOWN', `lab ${lab} is not up`);
  let netns: string;
  let resolv: string | undefined;
  if (pod === 'world') netns = state.world.netns;
  else {
    const [ns, name] = pod.includes('/') ? pod.split('/', 2) : ['default', pod];
    const p = state.pods.find((x) => x.namespace === ns && x.name === name);
    if (!p) throw new CliError('MBR_NO_POD', `no pod ${ns}/${name} in lab ${lab} (see "membrane lab status")`);
    netns = p.netns;
    resolv = state.dnsIp ? `${labDir(lab)}/resolv.conf` : undefined;
  }
  const full = podArgv(netnsPath(netns), resolv, argv);
  const child = spawn(full[0], full.slice(1), { stdio: 'inherit' });
  return await new Promise<number>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
}

function uiPort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new CliError('MBR_CLI_USAGE', `--ui-port: expected a port 1-65535, got ${JSON.stringify(text)}`, EXIT_USAGE);
  return port;
}
