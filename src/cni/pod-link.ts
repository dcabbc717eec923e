// The pod's wiring, done with iproute2 in the runtime's (node's) network namespace and, through
// nsenter, in the pod's: a veth pair (host side mbr-<hash>, pod side CNI_IFNAME), the pod's /32
// address, a default route through the node's gateway address, and a /32 route back on the host.
// The gateway address lives on the node's loopback (this kernel build has no dummy links), so
// the kernel answers the pod's ARP for it from the host veth without proxy ARP. IPv6 is off on
// both ends (the datapath is IPv4-only).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { CniCode, CniError } from './cni-error.js';

const run = promisify(execFile);

export const ROUTER_LINK = 'lo';

export interface PodLinkSpec {
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  readonly ip: string;
  readonly gateway: string;
  readonly mtu: number;
}

export interface PodLink {
  readonly hostIfname: string;
  readonly hostMac: string;
  readonly hostIfindex: number;
  readonly podMac: string;
}

/** Host-side interface name: stable for (container, ifname), at most 15 characters. */
export function hostIfnameFor(containerId: string, ifname: string): string {
  return `mbr-${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11)}`;
}

/**
 * What ADD checks before it changes anything: CNI_NETNS exists (else code 3, "container unknown
 * or does not exist": nothing was made, so the runtime need not DEL) and is a network namespace
 * (else code 4, an invalid CNI_NETNS), and CNI_IFNAME is free inside it (code 4). Read-only.
 */
export async function validatePodNetns(netns: string, ifname: string): Promise<void> {
  assertNetns(netns);
  if (await linkExistsIn(netns, ifname))
    throw new CniError(CniCode.invalidEnvironment, `CNI_IFNAME: ${ifname} already exists in ${netns}`);
}

/** CNI_NETNS names an existing nsfs file (a /run/netns bind mount or /proc/<pid>/ns/net). */
export function assertNetns(netns: string): void {
  let type: number;
  try {
    type = statfsSync(netns).type;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new CniError(CniCode.unknownContainer, `CNI_NETNS: ${netns} does not exist`);
    throw new CniError(CniCode.invalidEnvironment, `CNI_NETNS: cannot read ${netns}: ${(err as Error).message}`);
  }
  if (type !== NSFS_MAGIC && type !== PROC_SUPER_MAGIC)
    throw new CniError(
      CniCode.invalidEnvironment,
      `CNI_NETNS: expected a network namespace (nsfs), got a file on a filesystem of type 0x${type.toString(16)}: ${netns}`,
    );
}

// statfs(2) f_type of a namespace file; older kernels report procfs for /proc/<pid>/ns/net.
const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

/** Callers run validatePodNetns first: this one changes the node. */
export async function createPodLink(spec: PodLinkSpec): Promise<PodLink> {
  const host = hostIfnameFor(spec.containerId, spec.ifname);
  await ip([
    'link',
    'add',
    host,
    'mtu',
    String(spec.mtu),
    'type',
    'veth',
    'peer',
    'name',
    spec.ifname,
    'netns',
    spec.netns,
  ]);
  try {
    await disableIpv6(spec.netns, host, spec.ifname);
    await ipBatchIn(spec.netns, [
      'link set lo up',
      `link set ${spec.ifname} up`,
      `addr add ${spec.ip}/32 dev ${spec.ifname}`,
      `route add ${spec.gateway}/32 dev ${spec.ifname} scope link`,
      `route add default via ${spec.gateway} dev ${spec.ifname}`,
    ]);
    await ip(['link', 'set', host, 'up']);
    await ip(['route', 'replace', `${spec.ip}/32`, 'dev', host, 'scope', 'link']);
    const hostInfo = await linkInfo([], host);
    const podInfo = await linkInfo(['nsenter', `--net=${spec.netns}`], spec.ifname);
    return { hostIfname: host, hostMac: hostInfo.mac, hostIfindex: hostInfo.ifindex, podMac: podInfo.mac };
  } catch (err) {
    await ip(['link', 'del', host]).catch(() => undefined);
    throw err;
  }
}

/** Removes the host side (the kernel removes its peer); nothing there is not an error. */
export async function deletePodLink(containerId: string, ifname: string, podIp: string | undefined): Promise<void> {
  const host = hostIfnameFor(containerId, ifname);
  if (podIp) await ip(['route', 'del', `${podIp}/32`, 'dev', host]).catch(() => undefined);
  try {
    await ip(['link', 'del', host]);
  } catch (err) {
    if (!/Cannot find device|does not exist/.test((err as Error).message)) throw err;
  }
}

/** CHECK: everything ADD made is still there; throws naming the first thing missing. */
export async function checkPodLink(spec: PodLinkSpec): Promise<void> {
  const host = hostIfnameFor(spec.containerId, spec.ifname);
  const fail = (what: string) => new CniError(CniCode.checkFailed, what);
  let hostInfo: LinkInfo;
  try {
    hostInfo = await linkInfo([], host);
  } catch {
    throw fail(`host interface ${host} is missing`);
  }
  if (!hostInfo.up) throw fail(`host interface ${host} is down`);
  const routes = await run('ip', ['-4', 'route', 'show', `${spec.ip}/32`]);
  if (!routes.stdout.includes(`dev ${host}`)) throw fail(`route ${spec.ip}/32 dev ${host} is missing`);
  const wrap = ['nsenter', `--net=${spec.netns}`];
  let podInfo: LinkInfo;
  try {
    podInfo = await linkInfo(wrap, spec.ifname);
  } catch {
    throw fail(`interface ${spec.ifname} is missing in ${spec.netns}`);
  }
  if (!podInfo.addresses.includes(`${spec.ip}/32`))
    throw fail(`interface ${spec.ifname} in ${spec.netns} does not have ${spec.ip}/32`);
  const def = await run(wrap[0], [...wrap.slice(1), 'ip', '-4', 'route', 'show', 'default']);
  if (!def.stdout.includes(`via ${spec.gateway}`))
    throw fail(`default route via ${spec.gateway} is missing in ${spec.netns}`);
}

/** What ensureRouter changed on the node, so a failed ADD can undo exactly that. */
export interface RouterChanges {
  readonly addedGateway: boolean;
  readonly enabledForwarding: boolean;
}

// /proc/sys/net belongs to the reader's network namespace: this is the node's.
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/** The node side of pod routing: the gateway address on loopback and IPv4 forwarding on. */
export async function ensureRouter(gateway: string): Promise<RouterChanges> {
  const addrs = await run('ip', ['-j', 'addr', 'show', 'dev', ROUTER_LINK]).catch(() => undefined);
  const has = addrs?.stdout.includes(`"local":"${gateway}"`) ?? false;
  let addedGateway = false;
  if (!has)
    addedGateway = await ip(['addr', 'add', `${gateway}/32`, 'dev', ROUTER_LINK]).then(() => true, ignoreExists);
  // Loopback up is left up on rollback: every node has it up, and it cannot be put back
  // exactly (bringing it up adds 127.0.0.1/8).
  await ip(['link', 'set', ROUTER_LINK, 'up']);
  const enabledForwarding = readFileSync(IP_FORWARD, 'utf8').trim() !== '1';
  if (enabledForwarding) writeFileSync(IP_FORWARD, '1');
  return { addedGateway, enabledForwarding };
}

/**
 * Undoes what one failed ADD's ensureRouter changed, unless another pod relies on it. The
 * gateway address and forwarding are shared by every pod of the CIDR: they go only when no
 * reservation is left (isNeeded). Every ADD reserves its address before it calls ensureRouter,
 * so checking again after the removal closes the race with a concurrent first ADD: either its
 * reservation is seen here and the state is put back, or its ensureRouter runs after the removal.
 */
export async function releaseRouter(gateway: string, changes: RouterChanges, isNeeded: () => boolean): Promise<void> {
  const { addedGateway, enabledForwarding } = changes;
  if ((!addedGateway && !enabledForwarding) || isNeeded()) return;
  if (addedGateway) await ip(['addr', 'del', `${gateway}/32`, 'dev', ROUTER_LINK]).catch(() => undefined);
  if (enabledForwarding) writeFileSync(IP_FORWARD, '0');
  if (isNeeded()) await ensureRouter(gateway);
}

/**
 * The datapath enforces IPv4 only and drops every other L3 protocol (reason 139), so IPv6 is
 * switched off on both ends of the pair before they come up: no link-local address, no router or
 * neighbour solicitations that would show as drops. A kernel without IPv6 needs nothing.
 */
async function disableIpv6(netns: string, host: string, ifname: string): Promise<void> {
  if (!existsSync('/proc/sys/net/ipv6')) return;
  writeFileSync(`/proc/sys/net/ipv6/conf/${host}/disable_ipv6`, '1');
  const keys = ['all', 'default', ifname].map((i) => `net.ipv6.conf.${i}.disable_ipv6=1`);
  try {
    await run('nsenter', [`--net=${netns}`, 'sysctl', '-qw', ...keys]);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new CniError(CniCode.ioFailure, `disable IPv6 in ${netns}: ${(e.stderr ?? e.message).trim()}`);
  }
}

interface LinkInfo {
  readonly ifindex: number;
  readonly mac: string;
  readonly up: boolean;
  readonly addresses: readonly string[];
}

async function linkInfo(wrap: readonly string[], name: string): Promise<LinkInfo> {
  const argv = [...wrap, 'ip', '-j', 'addr', 'show', 'dev', name];
  const { stdout } = await run(argv[0], argv.slice(1));
  const [l] = JSON.parse(stdout) as Array<{
    ifindex: number;
    address: string;
    flags: string[];
    addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
  }>;
  return {
    ifindex: l.ifindex,
    mac: l.address,
    up: l.flags.includes('UP'),
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

async function linkExistsIn(netns: string, name: string): Promise<boolean> {
  try {
    await run('nsenter', [`--net=${netns}`, 'ip', 'link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

async function ip(args: readonly string[]): Promise<void> {
  try {
    await run('ip', args as string[]);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new CniError(CniCode.ioFailure, `ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

async function ipBatchIn(netns: string, lines: readonly string[]): Promise<void> {
  const child = execFile('nsenter', [`--net=${netns}`, 'ip', '-batch', '-']);
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  child.stdin?.end(`${lines.join('\n')}\n`);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new CniError(CniCode.ioFailure, `configure ${netns}: ${stderr.trim()}`);
}

function ignoreExists(err: Error): false {
  if (!/File exists|already/.test(err.message)) throw err;
  return false;
}
