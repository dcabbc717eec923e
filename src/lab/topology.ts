// `lab up`: the underlay (a bridge in its own netns), one netns per node running that node's
// agent, the outside "world" host, and the world's pods, each created through the CNI plugin the
// way a container runtime calls it. Every step checks what is already there, so `up` is
// idempotent; anything it leaves half-done, `lab down` removes.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '../agent/api-client.js';
import { readManifestText } from '../cli/manifest-files.js';
import { CniExecutor, type ConfList } from '../cni/cni-executor.js';
import { namespaceKey, serviceKey } from '../store/cluster-resources.js';
import { inNetns, sh, shIdempotent } from './host-commands.js';
import { ensureEtcdCluster, type LabStoreKind, labAgentStoreArgs, labStoreKind, openLabStore } from './lab-etcd.js';
import {
  agentSocket,
  bpffsDir,
  checkLabName,
  labDir,
  netnsPath,
  nodeDir,
  nodeNetns,
  podNetns,
  relaySocket,
  underlayNetns,
  worldNetns,
} from './lab-paths.js';
import type { LabNode, LabPod, LabState } from './lab-state.js';
import { readLabState, writeLabState } from './lab-state.js';
import { ensureLabUi, type LabUiOptions } from './lab-ui.js';
import { isAlive, startPodProcess } from './pod-process.js';
import { expandVars, parseWorld, type World, type WorldPod, worldSecretPuts } from './world.js';

export interface LabUpOptions {
  readonly lab: string;
  readonly worldFiles: readonly string[];
  readonly nodes?: number;
  /** The repository root: bin/ for the CLI and the CNI plugin, lab/ for the demo servers. */
  readonly repoRoot: string;
  readonly log?: (line: string) => void;
  /** The cluster store: embedded (default) or a 3-member etcd cluster in the lab (lab-etcd.ts). */
  readonly store?: LabStoreKind;
  /** More `agent run` flags for every node (tests shorten leases and the identity GC this way). */
  readonly agentArgs?: readonly string[];
  /** Start the web UI in the host netns (`membrane lab up` does, on 127.0.0.1:12000). */
  readonly ui?: LabUiOptions;
}

/** Every node's pod CIDR is a block of this pool, claimed through the store. */
export const POD_CIDR_POOL = '10.201.0.0/16';

export const UNDERLAY_PREFIX = '172.30.0';
export const WORLD_IP = `${UNDERLAY_PREFIX}.100`;
/** Every agent serves Hubble metrics on its node's underlay address at this port. */
export const METRICS_PORT = 9965;

export function nodePlan(count: number): Array<{ name: string; ip: string; podCIDR: string }> {
  return Array.from({ length: count }, (_, i) => ({
    name: `n${i + 1}`,
    ip: `${UNDERLAY_PREFIX}.${11 + i}`,
    podCIDR: `10.201.${i + 1}.0/24`,
  }));
}

export async function labUp(o: LabUpOptions): Promise<LabState> {
  const bad = checkLabName(o.lab);
  if (bad) throw Object.assign(new Error(`lab name: ${bad}`), { code: 'MBR_LAB_NAME' });
  const log = o.log ?? (() => undefined);
  const world = parseWorld(o.worldFiles.map((file) => ({ file, text: readManifestText(file) })));
  const dir = labDir(o.lab);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  await ensureBpffs(o.lab);

  const plan = nodePlan(o.nodes ?? 2);
  log(`underlay ${underlayNetns(o.lab)} with ${plan.length} nodes and the world host`);
  await ensureUnderlay(o.lab, plan);
  const had = readLabState(o.lab);
  const storeKind = o.store ?? (had ? labStoreKind(o.lab) : 'embedded');
  if (had && storeKind !== labStoreKind(o.lab))
    throw Object.assign(
      new Error(`lab ${o.lab} runs on the ${labStoreKind(o.lab)} store, not ${storeKind}: lab down first`),
      {
        code: 'MBR_LAB_STORE',
      },
    );
  if (storeKind === 'etcd') {
    log('etcd cluster of 3 members on the underlay');
    await ensureEtcdCluster(o.lab, UNDERLAY_PREFIX, (ns, port, ip) => attachToUnderlay(o.lab, ns, port, ip, []));
  }
  const store = await openLabStore(o.lab, UNDERLAY_PREFIX);
  try {
    await store.txn({
      compare: [],
      success: [
        ...world.namespaces.map((ns) => ({
          type: 'put' as const,
          key: namespaceKey(ns.name),
          value: JSON.stringify(ns),
        })),
        // The world's Services, stored as `membrane apply` stores them (ClusterService).
        ...world.services.map((s) => ({
          type: 'put' as const,
          key: serviceKey(s.spec),
          value: JSON.stringify({ namespace: s.spec.namespace, name: s.spec.name, source: s.source, doc: s.doc }),
        })),
        ...worldSecretPuts(world),
      ],
    });
  } finally {
    await store.close();
  }

  const nodes: LabNode[] = plan.map((n) => ({
    ...n,
    netns: nodeNetns(o.lab, n.name),
    metricsAddress: `${n.ip}:${METRICS_PORT}`,
  }));
  await Promise.all(nodes.map((n) => ensureAgent(o, n, log)));

  const previous = readLabState(o.lab);
  const podPlan = world.pods.map((p, i) => ({ p, node: p.nodeName ?? nodes[i % nodes.length].name }));
  for (const { node } of podPlan)
    if (!nodes.some((n) => n.name === node))
      throw Object.assign(
        new Error(`world: spec.nodeName: expected one of ${nodes.map((n) => n.name).join(', ')}, got "${node}"`),
        {
          code: 'MBR_WORLD_INVALID',
        },
      );
  // DNS pods first, so their address is known when the rest start.
  podPlan.sort((a, b) => Number(isDns(b.p)) - Number(isDns(a.p)));
  log(`${podPlan.length} pods through the CNI plugin`);
  const wired = await mapLimit(podPlan, 4, ({ p, node }) => wirePod(o, nodes.find((n) => n.name === node)!, p));

  const dns = wired.find((w) => isDns(w.p));
  const dnsIp = dns?.ip ?? '';
  writeDnsFiles(o.lab, world, wired, dnsIp);

  const worldPid = await ensureWorldHost(o, world, previous);
  await ensureRelay(o, nodes);
  const pods: LabPod[] = [];
  for (const w of wired) {
    const prev = previous?.pods.find((x) => x.namespace === w.p.namespace && x.name === w.p.name);
    const pid = prev && prev.ip === w.ip && isAlive(prev.pid) ? prev.pid : startWorkload(o, w, dnsIp);
    pods.push({
      namespace: w.p.namespace,
      name: w.p.name,
      node: w.node.name,
      ip: w.ip,
      netns: podNetns(o.lab, w.p.namespace, w.p.name),
      containerId: w.containerId,
      labels: w.p.labels,
      ports: w.p.ports,
      pid,
    });
  }
  const state: LabState = {
    lab: o.lab,
    nodes,
    world: { ip: WORLD_IP, netns: worldNetns(o.lab), hosts: world.externalHosts, pid: worldPid },
    pods,
    dnsIp,
    worldFiles: o.worldFiles,
    store: storeKind,
  };
  writeLabState(state);
  log('waiting for the pods to listen on their ports');
  await waitListening(state);
  if (o.ui) log(`UI on ${await ensureLabUi(o.lab, o.repoRoot, o.ui)}`);
  return state;
}

/** The conflist every node's pods are created with: membrane-cni, then the reference plugins. */
export function nodeConfList(lab: string, node: LabNode): ConfList {
  return {
    cniVersion: '1.0.0',
    name: 'membrane',
    plugins: [
      {
        type: 'membrane-cni',
        agentSocket: agentSocket(lab, node.name),
        ipam: { podCIDR: node.podCIDR, dataDir: join(nodeDir(lab, node.name), 'ipam') },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: false },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
    ],
  };
}

export function podExecutor(o: { lab: string; repoRoot: string }, node: LabNode): CniExecutor {
  return new CniExecutor({
    cniPath: [join(o.repoRoot, 'bin'), '/usr/lib/cni'],
    cacheDir: join(nodeDir(o.lab, node.name), 'cni-cache'),
    wrap: inNetns(netnsPath(node.netns), []),
  });
}

export function containerIdFor(lab: string, namespace: string, pod: string): string {
  return createHash('sha256').update(`${lab}/${namespace}/${pod}`).digest('hex').slice(0, 32);
}

interface WiredPod {
  readonly p: WorldPod;
  readonly node: LabNode;
  readonly ip: string;
  readonly containerId: string;
}

function isDns(p: WorldPod): boolean {
  return p.labels['k8s-app'] === 'kube-dns';
}

async function ensureBpffs(lab: string): Promise<void> {
  const fsType = await sh(['stat', '-f', '-c', '%T', '/sys/fs/bpf']).catch(() => '');
  if (fsType.trim() !== 'bpf_fs') await sh(['mount', '-t', 'bpf', 'bpf', '/sys/fs/bpf']).catch(() => undefined);
  mkdirSync(bpffsDir(lab), { recursive: true });
}

async function ensureNetns(name: string): Promise<void> {
  if (!existsSync(netnsPath(name))) await shIdempotent(['ip', 'netns', 'add', name]);
}

async function ensureUnderlay(lab: string, plan: ReturnType<typeof nodePlan>): Promise<void> {
  const ul = underlayNetns(lab);
  await ensureNetns(ul);
  await shIdempotent(['ip', '-n', ul, 'link', 'add', 'mbr-br', 'type', 'bridge']);
  await sh(['ip', '-n', ul, 'link', 'set', 'mbr-br', 'up']);
  await sh(['ip', '-n', ul, 'link', 'set', 'lo', 'up']);
  const attach = (ns: string, port: string, ip: string, routes: Array<[string, string]>) =>
    attachToUnderlay(lab, ns, port, ip, routes);
  for (const n of plan) {
    const ns = nodeNetns(lab, n.name);
    await attach(
      ns,
      `mbr-${n.name}`,
      n.ip,
      plan.filter((o) => o !== n).map((o) => [o.podCIDR, o.ip]),
    );
    await sh(inNetns(netnsPath(ns), ['sysctl', '-qw', 'net.ipv4.ip_forward=1']));
  }
  await attach(
    worldNetns(lab),
    'mbr-world',
    WORLD_IP,
    plan.map((n) => [n.podCIDR, n.ip]),
  );
}

/** A netns on the underlay bridge: veth `port` (underlay side) to its eth0 with `ip`/24. */
async function attachToUnderlay(
  lab: string,
  ns: string,
  port: string,
  ip: string,
  routes: ReadonlyArray<[string, string]>,
): Promise<void> {
  const ul = underlayNetns(lab);
  await ensureNetns(ns);
  const have = await sh(['ip', '-n', ul, 'link', 'show', port]).catch(() => '');
  if (!have) {
    await sh(['ip', '-n', ul, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await sh(['ip', '-n', ul, 'link', 'set', port, 'master', 'mbr-br', 'up']);
  }
  await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  await sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
  await shIdempotent(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  for (const [dst, via] of routes) await sh(['ip', '-n', ns, 'route', 'replace', dst, 'via', via]);
}

async function ensureAgent(o: LabUpOptions, n: LabNode, log: (l: string) => void): Promise<void> {
  const socket = agentSocket(o.lab, n.name);
  const client = new AgentClient(socket, 2000);
  if (
    existsSync(socket) &&
    (await client.get('/v1/healthz').then(
      () => true,
      () => false,
    ))
  )
    return;
  mkdirSync(nodeDir(o.lab, n.name), { recursive: true });
  log(`agent for node ${n.name} in ${n.netns}`);
  startPodProcess({
    netnsPath: netnsPath(n.netns),
    resolvConf: undefined,
    argv: [
      process.execPath,
      join(o.repoRoot, 'bin/membrane'),
      'agent',
      'run',
      '--lab',
      o.lab,
      '--node',
      n.name,
      '--pod-cidr',
      n.podCIDR,
      '--node-ip',
      n.ip,
      '--hubble-metrics-server',
      n.metricsAddress,
      '--cluster-pool-ipv4-cidr',
      POD_CIDR_POOL,
      ...labAgentStoreArgs(o.lab),
      ...(o.agentArgs ?? []),
    ],
    env: {},
    logFile: join(nodeDir(o.lab, n.name), 'agent.log'),
    cwd: o.repoRoot,
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (
      existsSync(socket) &&
      (await client.get('/v1/healthz').then(
        () => true,
        () => false,
      ))
    )
      return;
    if (Date.now() > deadline) {
      const tail = readTail(join(nodeDir(o.lab, n.name), 'agent.log'));
      throw Object.assign(new Error(`agent for node ${n.name} did not come up within 15 s: ${tail}`), {
        code: 'MBR_LAB_AGENT',
      });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function wirePod(o: LabUpOptions, node: LabNode, p: WorldPod): Promise<WiredPod> {
  const ns = podNetns(o.lab, p.namespace, p.name);
  const containerId = containerIdFor(o.lab, p.namespace, p.name);
  await ensureNetns(ns);
  const ex = podExecutor(o, node);
  const list = nodeConfList(o.lab, node);
  const rt = {
    containerId,
    netns: netnsPath(ns),
    ifname: 'eth0',
    args: { K8S_POD_NAMESPACE: p.namespace, K8S_POD_NAME: p.name },
    confArgs: {
      cni: {
        labels: Object.entries(p.labels).map(([key, value]) => ({ key, value })),
        ports: p.ports.map((x) => ({
          ...(x.name ? { name: x.name } : {}),
          containerPort: x.containerPort,
          protocol: x.protocol,
        })),
      },
    },
  };
  let result = ex.cachedResult(list, rt);
  if (result) {
    // Already wired by an earlier `up`: keep it if CHECK of our plugin passes, else redo it.
    const ours: ConfList = { ...list, plugins: [list.plugins[0]] };
    const okNow = await ex.check(ours, rt).then(
      () => true,
      () => false,
    );
    if (!okNow) {
      await ex.del(list, rt).catch(() => undefined);
      result = undefined;
    }
  }
  if (!result) result = await ex.add(list, rt);
  const ip = (result.ips ?? [])[0]?.address.split('/')[0] ?? '';
  return { p, node, ip, containerId };
}

function writeDnsFiles(lab: string, world: World, wired: readonly WiredPod[], dnsIp: string): void {
  const lines = [`# written by membrane lab up`, `${WORLD_IP} ${world.externalHosts.join(' ')}`];
  for (const w of wired)
    lines.push(`${w.ip} ${w.p.name}.${w.p.namespace}.pod.cluster.local ${w.p.name}.${w.p.namespace}`);
  writeFileSync(join(labDir(lab), 'dns-hosts'), `${lines.join('\n')}\n`);
  // Pods resolve through the kube-dns ClusterIP when the world defines it (load-balanced to the DNS pod).
  const kubeDns = world.services.find((s) => s.spec.namespace === 'kube-system' && s.spec.name === 'kube-dns');
  const resolver = kubeDns?.spec.clusterIP ?? dnsIp;
  writeFileSync(
    join(labDir(lab), 'resolv.conf'),
    dnsIp ? `nameserver ${resolver}\nsearch pod.cluster.local\noptions timeout:1 attempts:2\n` : '',
  );
}

async function ensureWorldHost(o: LabUpOptions, world: World, previous: LabState | undefined): Promise<number> {
  if (previous && isAlive(previous.world.pid)) return previous.world.pid;
  return startPodProcess({
    netnsPath: netnsPath(worldNetns(o.lab)),
    resolvConf: undefined,
    argv: [process.execPath, join(o.repoRoot, 'lab/servers/demo-server.mjs'), '--http', '80,443'],
    env: { POD_NAME: world.externalHosts[0] ?? 'world', POD_NAMESPACE: 'world' },
    logFile: join(labDir(o.lab), 'logs', 'world.log'),
    cwd: o.repoRoot,
  });
}

/**
 * The flow relay, merging every node's flows; it runs in the underlay netns so `lab down` stops
 * it with everything else (it only uses unix sockets).
 */
async function ensureRelay(o: LabUpOptions, nodes: readonly LabNode[]): Promise<void> {
  const socket = relaySocket(o.lab);
  const pidFile = join(labDir(o.lab), 'relay.pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
  if (pid && isAlive(pid) && existsSync(socket)) return;
  const started = startPodProcess({
    netnsPath: netnsPath(underlayNetns(o.lab)),
    resolvConf: undefined,
    argv: [
      process.execPath,
      join(o.repoRoot, 'bin/membrane'),
      'relay',
      '--listen-address',
      `unix://${socket}`,
      // Every agent serves the same peers (from the store): the relay asks the next when one goes.
      '--peer-service',
      nodes.map((n) => `unix://${join(nodeDir(o.lab, n.name), 'hubble.sock')}`).join(','),
      '--retry-timeout',
      '1s',
    ],
    env: {},
    logFile: join(labDir(o.lab), 'logs', 'relay.log'),
    cwd: o.repoRoot,
  });
  writeFileSync(pidFile, String(started));
}

function startWorkload(o: LabUpOptions, w: WiredPod, dnsIp: string): number {
  const env: Record<string, string> = {
    ...w.p.env,
    POD_NAME: w.p.name,
    POD_NAMESPACE: w.p.namespace,
    POD_IP: w.ip,
    LAB_DNS_HOSTS: join(labDir(o.lab), 'dns-hosts'),
    LAB_ROOT: o.repoRoot,
  };
  const argv = expandVars(w.p.command, env);
  if (argv[0] === 'node') argv[0] = process.execPath;
  return startPodProcess({
    netnsPath: netnsPath(podNetns(o.lab, w.p.namespace, w.p.name)),
    resolvConf: dnsIp ? join(labDir(o.lab), 'resolv.conf') : undefined,
    argv,
    env,
    logFile: join(labDir(o.lab), 'logs', `${w.p.namespace}-${w.p.name}.log`),
    cwd: o.repoRoot,
  });
}

/** Polls `ss` in each pod until every declared port listens (bounded: 20 s for the lab). */
async function waitListening(state: LabState): Promise<void> {
  const deadline = Date.now() + 20_000;
  const pending = [...state.pods.filter((p) => p.ports.length > 0)];
  const worldPending = [80, 443];
  while (pending.length > 0 || worldPending.length > 0) {
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i];
      const out = await sh(inNetns(netnsPath(p.netns), ['ss', '-Hlntu'])).catch(() => '');
      if (p.ports.every((port) => new RegExp(`:${port.containerPort}\\s`).test(out))) pending.splice(i, 1);
    }
    if (worldPending.length > 0) {
      const out = await sh(inNetns(netnsPath(state.world.netns), ['ss', '-Hlnt'])).catch(() => '');
      if (worldPending.every((port) => new RegExp(`:${port}\\s`).test(out))) worldPending.length = 0;
    }
    if (pending.length === 0 && worldPending.length === 0 && (await dnsAnswers(state))) return;
    if (Date.now() > deadline) {
      const names = pending.map((p) => `${p.namespace}/${p.name}`).join(', ');
      throw Object.assign(
        new Error(`pods not listening after 20 s: ${names || 'world host'} (see ${labDir(state.lab)}/logs)`),
        {
          code: 'MBR_LAB_PODS',
        },
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** dnsmasq binds its port before it reads the hosts file: ready is when it answers a lab name. */
async function dnsAnswers(state: LabState): Promise<boolean> {
  const dns = state.pods.find((p) => p.ip === state.dnsIp);
  if (!dns) return true;
  const probe = state.pods.find((p) => p !== dns) ?? dns;
  const argv = ['dig', '+short', '+time=1', '+tries=1', `@${state.dnsIp}`, `${probe.name}.${probe.namespace}`];
  const out = await sh(inNetns(netnsPath(dns.netns), argv)).catch(() => '');
  return out.trim() === probe.ip;
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  // DNS pods were sorted first: wire them before the rest so ordering stays predictable.
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '(no log)';
  }
}
