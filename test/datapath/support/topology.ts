// A node netns with pod netns behind veths, the shape of a real node: the host-side veth
// (mbr-hv<pod>) lives in the node netns, eth0 in the pod's. Addresses 10.240.<n>.2 for pod n, node
// side 10.240.<n>.1, /32 routes, forwarding on. Everything is named mbr-dp-<tag><pid>-* (two runs at once must not share a netns), and remove()
// deletes it all (also killing every process started through spawnIn).
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import type { EndpointAttachment } from '../../../src/datapath/endpoint-attach.js';

export interface Pod {
  readonly name: string;
  readonly netns: string;
  readonly netnsPath: string;
  readonly ip: string;
  /** Host-side veth, in the node netns. */
  readonly hostIf: string;
  /** MACs of the pod's eth0 and of the host-side veth (what the CNI plugin reports). */
  readonly podMac: string;
  readonly hostMac: string;
}

export class Topology {
  readonly tag: string;
  readonly node: string;
  readonly nodePath: string;
  readonly pods = new Map<string, Pod>();
  #children = new Set<ChildProcess>();
  #made: string[] = [];

  constructor(tag: string) {
    this.tag = tag;
    this.node = `mbr-dp-${tag}${process.pid}-h`;
    this.nodePath = `/run/netns/${this.node}`;
  }

  /** Builds the node netns and one pod per name; pod i gets 10.240.<i+1>.2. */
  static create(tag: string, podNames: readonly string[]): Topology {
    const t = new Topology(tag);
    try {
      t.#addNetns(t.node);
      ip('-n', t.node, 'link', 'set', 'lo', 'up');
      sh(t.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      for (const [i, name] of podNames.entries()) t.addPod(name, i + 1);
    } catch (err) {
      t.remove();
      throw err;
    }
    return t;
  }

  addPod(name: string, n: number): Pod {
    const netns = `mbr-dp-${this.tag}${process.pid}-${name}`;
    const hostIf = `mbr-hv${name}`;
    const podIp = `10.240.${n}.2`;
    this.#addNetns(netns);
    ip('-n', netns, 'link', 'set', 'lo', 'up');
    ip('-n', this.node, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
    // As the CNI plugin does: the datapath is IPv4-only and drops IPv6 (139).
    sh(this.node, 'sysctl', '-qw', `net.ipv6.conf.${hostIf}.disable_ipv6=1`);
    sh(netns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.eth0.disable_ipv6=1');
    ip('-n', this.node, 'addr', 'add', `10.240.${n}.1/32`, 'dev', hostIf);
    ip('-n', this.node, 'link', 'set', hostIf, 'up');
    ip('-n', netns, 'addr', 'add', `${podIp}/32`, 'dev', 'eth0');
    ip('-n', netns, 'link', 'set', 'eth0', 'up');
    ip('-n', netns, 'route', 'add', `10.240.${n}.1/32`, 'dev', 'eth0', 'scope', 'link');
    ip('-n', netns, 'route', 'add', 'default', 'via', `10.240.${n}.1`, 'dev', 'eth0');
    ip('-n', this.node, 'route', 'add', `${podIp}/32`, 'dev', hostIf, 'scope', 'link');
    const pod = {
      name,
      netns,
      netnsPath: `/run/netns/${netns}`,
      ip: podIp,
      hostIf,
      podMac: mac(netns, 'eth0'),
      hostMac: mac(this.node, hostIf),
    };
    this.pods.set(name, pod);
    return pod;
  }

  pod(name: string): Pod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name} in topology ${this.tag}`);
    return p;
  }

  /** How a pod attaches as an endpoint: with both MACs (as the agent attaches CNI endpoints, so
   * traffic between such pods takes local delivery) unless macs is false. */
  attachment(name: string, endpointId: number, identity: number, macs = true): EndpointAttachment {
    const p = this.pod(name);
    return {
      endpointId,
      netnsPath: this.nodePath,
      ifname: p.hostIf,
      ipv4: p.ip,
      identity,
      ...(macs ? { podMac: p.podMac, hostMac: p.hostMac } : {}),
    };
  }

  /** The node netns's IP ForwDatagrams counter: packets its IP stack routed. */
  forwardedDatagrams(): number {
    const lines = this.run(this.node, 'cat', ['/proc/net/snmp']).out.split('\n');
    const [names = [], values = []] = lines.filter((l) => l.startsWith('Ip:')).map((l) => l.split(/\s+/));
    return Number(values[names.indexOf('ForwDatagrams')]);
  }

  /** Runs a command in a netns to completion (bounded by timeoutMs). */
  run(netns: string, cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}) {
    const r = spawnSync('nsenter', [`--net=/run/netns/${netns}`, cmd, ...args], {
      input: opts.input,
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 5000,
    });
    return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
  }

  /** Starts a long-running process in a netns; killed by remove(). */
  spawnIn(netns: string, cmd: string, args: readonly string[]): ChildProcess {
    const c = spawn('nsenter', [`--net=/run/netns/${netns}`, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#children.add(c);
    c.on('exit', () => this.#children.delete(c));
    return c;
  }

  remove(): void {
    for (const c of this.#children) c.kill('SIGKILL');
    this.#children.clear();
    for (const ns of this.#made.reverse()) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    this.#made = [];
  }

  #addNetns(name: string): void {
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' }); // a leftover from a killed run
    ip('netns', 'add', name);
    this.#made.push(name);
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function mac(netns: string, ifname: string): string {
  const out = execFileSync('ip', ['-j', '-n', netns, 'link', 'show', ifname], { encoding: 'utf8' });
  return (JSON.parse(out) as { address: string }[])[0].address;
}

function sh(netns: string, cmd: string, ...args: string[]): void {
  execFileSync('nsenter', [`--net=/run/netns/${netns}`, cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}
