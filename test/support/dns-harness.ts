// A DNS proxy on loopback with everything real but the redirect: dnsmasq as the pod's DNS
// server, the agent (policy engine + FQDN state, built as `membrane agent run` builds them) over
// a datapath that keeps its maps in memory, and the proxy reached directly on a UDP and a TCP
// port (the framework's transparent sockets are the only part replaced: the "original
// destination" of every query is the dnsmasq server). Tests and bench/dns.bench.ts use it.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent } from '../../src/agent/agent.js';
import type { Endpoint } from '../../src/agent/api-types.js';
import { BpfDatapathPort } from '../../src/agent/bpf-datapath-port.js';
import { createAgentFqdn, type FqdnManager } from '../../src/agent/fqdn-manager.js';
import type { DatapathPort } from '../../src/agent/subsystem-ports.js';
import type { FqdnSink } from '../../src/fqdn/fqdn-sink.js';
import type { L7Record } from '../../src/hubble/flow/parser.js';
import {
  type DnsDatagramContext,
  DnsProxy,
  type DnsProxyOptions,
  type DnsQueryContext,
  type DnsUpstreamUdp,
} from '../../src/proxy/dns/dns-proxy.js';
import type { L7ConnectionContext, TransparentUdp, UdpAddress } from '../../src/proxy/l7-handler.js';
import { EmbeddedStore } from '../../src/store/embedded-store.js';
import { MemoryDatapath } from './memory-datapath.js';
import { until } from './until.js';

const run = promisify(execFile);

/** The real BPF datapath at pinDir; attach is skipped (the harness's endpoint has no veth). */
export function bpfPortWithoutAttach(pinDir: string): DatapathPort {
  const p = new BpfDatapathPort(pinDir);
  return {
    health: () => p.health(),
    attachEndpoint: async (_ep: Endpoint) => undefined,
    detachEndpoint: async (_ep: Endpoint) => undefined,
    updateIpcache: (c) => p.updateIpcache(c),
    applyPolicies: (d) => p.applyPolicies(d),
    dumpPolicy: (id) => p.dumpPolicy(id),
    dumpIpcache: () => p.dumpIpcache(),
    dumpCt: () => p.dumpCt(),
    onEvent: (l) => p.onEvent(l),
    enableServices: (o) => p.enableServices(o),
    applyLb: (d, m) => p.applyLb(d, m),
    dumpLb: () => p.dumpLb(),
    lbMaglevTable: (id) => p.lbMaglevTable(id),
    lostEvents: () => p.lostEvents(),
    close: () => p.close(),
  };
}

export interface DnsmasqOptions {
  /** hosts-file lines: "IP NAME". */
  readonly hosts: readonly string[];
  /** --cname=ALIAS,TARGET pairs. */
  readonly cnames?: ReadonlyArray<readonly [string, string]>;
  readonly ttlSeconds?: number;
}

export interface Dnsmasq {
  readonly server: UdpAddress;
  stop(): Promise<void>;
}

/** dnsmasq on 127.0.0.1 at a free port, answering from a hosts file; ready once it answers. */
export async function startDnsmasq(dir: string, o: DnsmasqOptions): Promise<Dnsmasq> {
  const hostsFile = join(dir, 'hosts');
  writeFileSync(hostsFile, `${o.hosts.join('\n')}\n`);
  // The port is free for UDP when picked, but another process may hold it for TCP (or take it
  // meanwhile): dnsmasq then exits at once, and the next port is tried.
  for (let attempt = 0; ; attempt++) {
    const started = await spawnDnsmasq(hostsFile, await freeUdpPort(), o);
    if (started !== 'port in use') return started;
    if (attempt === 9) throw new Error('dnsmasq: no free port after 10 attempts');
  }
}

async function spawnDnsmasq(hostsFile: string, port: number, o: DnsmasqOptions): Promise<Dnsmasq | 'port in use'> {
  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--bind-interfaces',
    '--listen-address=127.0.0.1',
    `--port=${port}`,
    `--addn-hosts=${hostsFile}`,
    `--local-ttl=${o.ttlSeconds ?? 30}`,
    '--cache-size=0',
    '--pid-file=',
    ...(process.getuid?.() === 0 ? ['--user=root', '--group=root'] : []),
    ...(o.cnames ?? []).map(([a, t]) => `--cname=${a},${t}`),
  ];
  const child: ChildProcess = spawn('dnsmasq', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const probe = o.hosts[0]!.split(/\s+/)[1]!;
  const answers = async (): Promise<boolean> => {
    const r = await run('dig', ['+short', '+time=1', '+tries=1', '-p', String(port), '@127.0.0.1', probe]).catch(
      () => ({ stdout: '' }),
    );
    return r.stdout.trim() !== '';
  };
  try {
    await until(async () => child.exitCode !== null || (await answers()), {
      timeoutMs: 10_000,
      what: 'dnsmasq answers',
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  if (child.exitCode !== null) {
    if (/Address already in use/.test(stderr)) return 'port in use';
    throw new Error(`dnsmasq exited with ${child.exitCode}: ${stderr}`);
  }
  return {
    server: { ip: '127.0.0.1', port },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A UDP socket on loopback standing in for the framework's transparent one. */
export class LoopbackUdp implements TransparentUdp {
  readonly #sock: UdpSocket;
  readonly #originalDst: UdpAddress;
  #handedOver = false;
  constructor(sock: UdpSocket, originalDst: UdpAddress) {
    this.#sock = sock;
    this.#originalDst = originalDst;
  }
  static async bind(port: number, originalDst: UdpAddress): Promise<LoopbackUdp> {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, '127.0.0.1', () => resolve());
    });
    return new LoopbackUdp(sock, originalDst);
  }
  get port(): number {
    return this.#sock.address().port;
  }
  onMessage(cb: (data: Buffer, src: UdpAddress, originalDst: UdpAddress) => void): void {
    this.#sock.on('message', (msg, rinfo) => cb(msg, { ip: rinfo.address, port: rinfo.port }, this.#originalDst));
  }
  send(data: Buffer, _from: UdpAddress, to: UdpAddress): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#sock.send(data, to.port, to.ip, (err) => (err ? reject(err) : resolve())),
    );
  }
  /**
   * The same port for a restarted proxy. On a node the datapath drops what arrives while no proxy
   * socket exists (the client retries); a loopback port with no socket would answer ICMP port
   * unreachable instead, which clients treat as a hard failure. So the socket stays, and the
   * datagrams of the gap wait in it for the new proxy.
   */
  handOver(): LoopbackUdp {
    this.#handedOver = true;
    this.#sock.removeAllListeners('message');
    return new LoopbackUdp(this.#sock, this.#originalDst);
  }
  close(): void {
    if (this.#handedOver) return;
    try {
      this.#sock.close();
    } catch {
      // closed already
    }
  }
}

/** An upstream socket on loopback (the framework's is marked; nothing here reads marks). */
class LoopbackUpstream implements DnsUpstreamUdp {
  readonly #sock = createSocket('udp4');
  onMessage(cb: (data: Buffer, src: UdpAddress) => void): void {
    this.#sock.on('message', (msg, r) => cb(msg, { ip: r.address, port: r.port }));
  }
  send(data: Buffer, to: UdpAddress): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#sock.send(data, to.port, to.ip, (err) => (err ? reject(err) : resolve())),
    );
  }
  close(): void {
    try {
      this.#sock.close();
    } catch {
      // closed already
    }
  }
}

/** The world the harness runs: one client endpoint whose egress DNS is policed. */
export const CLIENT = { name: 'client', ip: '10.201.1.10', labels: { app: 'client' } };

/** The policy: DNS allowed for `dnsPatterns` through the proxy, egress to `fqdnPatterns` on 443. */
export function dnsPolicy(dnsPatterns: readonly string[], fqdnPatterns: readonly string[]): Record<string, unknown> {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'client-dns', namespace: 'shop' },
    spec: {
      endpointSelector: { matchLabels: CLIENT.labels },
      egress: [
        {
          toEntities: ['all'],
          toPorts: [
            {
              ports: [
                { port: '53', protocol: 'UDP' },
                { port: '53', protocol: 'TCP' },
              ],
              rules: { dns: dnsPatterns.map((p) => ({ matchPattern: p })) },
            },
          ],
        },
        {
          toFQDNs: fqdnPatterns.map((p) => ({ matchPattern: p })),
          toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }],
        },
      ],
    },
  };
}

export interface DnsHarness {
  readonly dir: string;
  readonly agent: Agent;
  /** The in-memory maps (unused when a datapath was given). */
  readonly dp: MemoryDatapath;
  /** The datapath the agent writes: the given one, or dp. */
  readonly datapath: DatapathPort;
  readonly fqdn: FqdnManager;
  readonly endpointId: number;
  readonly dns: Dnsmasq;
  readonly records: L7Record[];
  proxy: DnsProxy;
  /** The proxy's UDP and TCP ports (stable across restartProxy). */
  readonly udpPort: number;
  readonly tcpPort: number;
  /** Closes the proxy and its sockets and starts a new one on the same ports. */
  restartProxy(): Promise<void>;
  /** Restarts the agent (and its FQDN state) from its state directory. */
  restartAgent(): Promise<void>;
  /** The ipcache identity of an IP, undefined when absent. */
  ipcache(ip: string): number | undefined;
  stop(): Promise<void>;
}

export interface DnsHarnessOptions extends DnsmasqOptions {
  readonly dnsPatterns: readonly string[];
  readonly fqdnPatterns: readonly string[];
  readonly minTtlSeconds?: number;
  /** A real datapath (the BPF maps) instead of the in-memory one. */
  readonly datapath?: DatapathPort;
  readonly proxy?: Partial<DnsProxyOptions>;
  /** Wraps the agent's sink (to time it in the bench). */
  readonly wrapSink?: (sink: FqdnSink) => FqdnSink;
  /** Keep no access records (the bench). */
  readonly noRecords?: boolean;
}

export async function startDnsHarness(o: DnsHarnessOptions): Promise<DnsHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-dns-'));
  const stores: EmbeddedStore[] = [];
  const dns = await startDnsmasq(dir, o);
  const dp = new MemoryDatapath();
  const datapath: DatapathPort = o.datapath ?? dp;
  const records: L7Record[] = [];

  const makeAgent = async (): Promise<{ agent: Agent; fqdn: FqdnManager }> => {
    const store = EmbeddedStore.open(join(dir, 'cluster'));
    stores.push(store);
    let self: Agent | undefined;
    const fqdn = createAgentFqdn({
      stateDir: join(dir, 'node'),
      dumpCt: () => datapath.dumpCt(),
      owner: () => self,
      ...(o.minTtlSeconds !== undefined ? { minTtlSeconds: o.minTtlSeconds } : {}),
    });
    const agent = new Agent({
      lab: 'test',
      node: 'n1',
      stateDir: join(dir, 'node'),
      podCIDR: '10.201.1.0/24',
      nodeIp: '172.30.0.11',
      store,
      datapath,
      fqdn,
    });
    self = agent;
    await agent.start();
    return { agent, fqdn };
  };
  let { agent, fqdn } = await makeAgent();
  const ep = await agent.registerEndpoint({
    containerId: 'c-client',
    ifname: 'eth0',
    netns: '',
    hostIfname: 'mbr-client',
    hostIfindex: 0,
    hostMac: '',
    podMac: '',
    ipv4: CLIENT.ip,
    podName: CLIENT.name,
    namespace: 'shop',
    labels: CLIENT.labels,
  });
  await agent.applyPolicies([dnsPolicy(o.dnsPatterns, o.fqdnPatterns)], 'client-dns.yaml');

  // The framework pushes each redirect's rules when they change; the policies are fixed here, so
  // they are read once (engine.l7Policies walks every partition of the endpoint's map state,
  // which grows with each toFQDNs address).
  const dnsPolicies = agent.engine.l7Policies(ep.id).filter((p) => p.parser === 'dns' && p.direction === 'egress');
  const ctx = (): DnsQueryContext => ({
    endpointId: ep.id,
    srcIdentity: ep.identity,
    dstIdentity: 2,
    policies: () => dnsPolicies,
    log: (rec) => {
      if (!o.noRecords) records.push(rec);
    },
  });
  const sink: FqdnSink = { observe: (obs) => fqdn.observe(obs) };
  const makeProxy = () => new DnsProxy({ sink: o.wrapSink ? o.wrapSink(sink) : sink, ...o.proxy });
  // The framework's datagram context: every datagram is the client endpoint's, upstream sockets
  // are plain loopback sockets (no mark needed without a datapath).
  const datagrams: DnsDatagramContext = {
    resolve: () => {
      const { log: _log, ...flow } = ctx();
      return flow;
    },
    upstream: () => new LoopbackUpstream(),
    log: (rec) => {
      if (!o.noRecords) records.push(rec);
    },
  };

  let proxy = makeProxy();
  let udp = await LoopbackUdp.bind(0, dns.server);
  const udpPort = udp.port;
  proxy.start(udp, datagrams);
  const sockets = new Set<Socket>();
  const tcpServer: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const c = ctx();
    const lctx: L7ConnectionContext = {
      ...c,
      tuple: {
        srcIp: client.remoteAddress ?? '',
        srcPort: client.remotePort ?? 0,
        dstIp: dns.server.ip,
        dstPort: dns.server.port,
      },
      direction: 'egress',
      connectUpstream: () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect(dns.server.port, dns.server.ip, () => resolve(s));
          s.once('error', reject);
        }),
    };
    h.proxy.handle(client, lctx);
  });
  await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', () => resolve()));
  const tcpPort = (tcpServer.address() as { port: number }).port;

  const h: DnsHarness = {
    dir,
    get agent() {
      return agent;
    },
    dp,
    datapath,
    get fqdn() {
      return fqdn;
    },
    endpointId: ep.id,
    dns,
    records,
    proxy,
    udpPort,
    tcpPort,
    async restartProxy() {
      const next = udp.handOver();
      h.proxy.close();
      udp.close();
      proxy = makeProxy();
      h.proxy = proxy;
      udp = next;
      proxy.start(udp, datagrams);
    },
    async restartAgent() {
      await fqdn.stop();
      await agent.stop();
      ({ agent, fqdn } = await makeAgent());
    },
    ipcache: (ip) => dp.ipcache.get(`${ip}/32`),
    async stop() {
      h.proxy.close();
      udp.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tcpServer.close(() => resolve()));
      await fqdn.stop();
      await agent.stop();
      for (const s of stores) await s.close();
      await dns.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  const port = s.address().port;
  s.close();
  return port;
}
