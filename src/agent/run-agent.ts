// `membrane agent run`: wires the agent to its stores, the policy engine and the datapath, serves
// the API, and stops cleanly on SIGTERM/SIGINT (the datapath stays pinned and keeps enforcing).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { wallFromMono } from '../hubble/flow/parser.js';
import { type HubbleNode, type HubbleNodeOptions, startHubbleNode } from '../hubble/hubble-node.js';
import type { FlowObserver } from '../hubble/observer/flow-observer.js';
import { StaticPeers } from '../hubble/observer/peer-source.js';
import type { DatapathEvent } from '../monitor/event-types.js';
import { NODES_PREFIX } from '../store/cluster-resources.js';
import type { ClusterStore } from '../store/cluster-store.js';
import { openClusterStore, type StoreSpec } from '../store/open-store.js';
import { Agent, type AgentOptions } from './agent.js';
import { serveAgentApi } from './api-server.js';
import { AgentFlowEnrichment } from './flow-enrichment.js';
import { createAgentFqdn } from './fqdn-manager.js';
import { pipelineTraceFromEnv } from './pipeline-trace.js';
import { loadDatapathPort } from './port-loader.js';
import { ProxyLink } from './proxy-link.js';
import { deviceWithAddress, ProxySupervisor, proxySocket } from './proxy-supervisor.js';
import type { DatapathPort } from './subsystem-ports.js';

export interface AgentRunOptions {
  readonly lab: string;
  readonly node: string;
  readonly stateDir: string;
  /** The cluster store (`--kvstore`, `--kvstore-opt`; the embedded one in the lab's directory by default). */
  readonly store: StoreSpec;
  /** Lease TTL, cluster pool and identity GC settings (`--node-lease-ttl`, `--cluster-pool-*`, `--identity-gc-*`). */
  readonly cluster?: Pick<AgentOptions, 'nodeLeaseTtlSeconds' | 'podCidrPool' | 'identityGc'>;
  readonly socket: string;
  readonly podCIDR: string;
  readonly nodeIp: string;
  readonly bpffs: string;
  /** Hubble metric option strings (`--hubble-metrics`); none disables metrics. */
  readonly hubbleMetrics: readonly string[];
  /** host:port for /metrics (`--hubble-metrics-server`); '' disables metrics. */
  readonly hubbleMetricsServer: string;
  /** `--hubble-export-file-*`; undefined when no file path is set. */
  readonly hubbleExport?: HubbleNodeOptions['export'];
  /** false: no node proxy is started (L7-redirected flows then fail closed). Default true. */
  readonly proxy?: boolean;
}

/** How often the datapath's lost-event counter is read. */
const LOST_POLL_MS = 1000;

export async function runAgent(o: AgentRunOptions): Promise<void> {
  mkdirSync(o.stateDir, { recursive: true });
  const store = await openClusterStore(o.store);
  const datapath = await loadDatapathPort({ lab: o.lab, node: o.node, pinDir: o.bpffs });
  // toFQDNs: the FQDN cache, persisted next to the endpoints; the DNS proxy's FqdnSink.
  let self: Agent | undefined;
  const fqdn = createAgentFqdn({ stateDir: o.stateDir, dumpCt: () => datapath.dumpCt(), owner: () => self });
  const agent = new Agent({
    fqdn,
    lab: o.lab,
    node: o.node,
    stateDir: o.stateDir,
    podCIDR: o.podCIDR,
    nodeIp: o.nodeIp,
    store,
    datapath,
    trace: pipelineTraceFromEnv(),
    ...o.cluster,
  });
  self = agent;
  // The node's flow pipeline, built the one way tests build it too: datapath events become
  // flows (enriched from the agent) in a ring, served by the Observer API on a unix socket next
  // to the agent's, counted by the metrics endpoint and written by the exporter. Peers are every
  // node's flow server, for the relay: sockets sit side by side under the lab's nodes/.
  const peers = new StaticPeers();
  const bootNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  const boot = { seconds: Number(bootNs / 1_000_000_000n), nanos: Number(bootNs % 1_000_000_000n) };
  const metricsOn = o.hubbleMetricsServer !== '' && o.hubbleMetrics.length > 0;
  const hubble: HubbleNode = await startHubbleNode({
    nodeName: o.node,
    enrichment: new AgentFlowEnrichment(agent),
    // process.hrtime is CLOCK_MONOTONIC on Linux, the clock bpf_ktime_get_ns reads.
    monoToWall: (monoNs) => wallFromMono(boot, monoNs),
    listen: [`unix://${join(o.stateDir, 'hubble.sock')}`],
    peers,
    metrics: metricsOn ? o.hubbleMetrics : [],
    ...(metricsOn ? { metricsAddress: o.hubbleMetricsServer } : {}),
    ...(o.hubbleExport ? { export: o.hubbleExport } : {}),
  });
  const offEvents = datapath.onEvent((ev) => hubble.observer.ingestEvent(ev as DatapathEvent));
  const stopLost = feedDatapathLosses(hubble.observer, datapath);
  try {
    await agent.start();
  } catch (err) {
    stopLost();
    offEvents();
    await hubble.stop();
    throw err;
  }
  fqdn.start();
  // The node's L7 proxy: its rules and access records over proxy.sock, the process kept running
  // (and adopted across agent restarts), the underlay program for redirects from other nodes.
  const proxyLink = await ProxyLink.serve(agent, proxySocket(o.socket), (rec) => {
    hubble.observer.ingestL7(rec);
    agent.emitL7(rec);
  });
  const underlay = deviceWithAddress(o.nodeIp);
  // Without them L7 redirects of other nodes' traffic, or of a SYN on a tuple in TIME_WAIT, fail
  // closed; everything else works: an agent that cannot attach them still runs.
  const attachL7 = async (what: string, attach: () => Promise<void> | undefined) => {
    try {
      await attach();
    } catch (err) {
      process.stderr.write(`membrane agent: ${what}: ${(err as Error).message}\n`);
    }
  };
  if (underlay) await attachL7(`underlay program on ${underlay}`, () => datapath.attachUnderlay?.(underlay));
  await attachL7('proxy listener lookup (sk_lookup)', () => datapath.attachProxyLookup?.());
  const proxy =
    o.proxy === false
      ? undefined
      : new ProxySupervisor({
          lab: o.lab,
          node: o.node,
          stateDir: join(o.stateDir, 'proxy'),
          agentSocket: proxySocket(o.socket),
          pinDir: o.bpffs,
          bin: process.argv[1],
        });
  agent.attachProxy({ status: () => ({ ...proxyLink.status(), ...(proxy ? { process: proxy.status() } : {}) }) });
  const server = await serveAgentApi(agent, o.socket);
  const peerWatch = await watchPeers(
    store,
    peers,
    (name) => `unix://${join(dirname(o.stateDir), name, 'hubble.sock')}`,
  );
  writeFileSync(join(o.stateDir, 'agent.pid'), String(process.pid));
  process.stderr.write(
    `membrane agent: node ${o.node} of lab ${o.lab} serving on ${o.socket}${hubble.metricsAddress ? `, metrics on ${hubble.metricsAddress}` : ''}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  server.close();
  proxy?.stop();
  proxyLink.close();
  peerWatch.close();
  stopLost();
  offEvents();
  await hubble.stop();
  await fqdn.stop();
  await agent.stop();
  await store.close();
  rmSync(o.socket, { force: true });
  rmSync(join(o.stateDir, 'agent.pid'), { force: true });
}

/**
 * Reads the datapath's lost-event count every second and hands what was lost since the last
 * read to the observer, which counts it in hubble_lost_events_total{source="PERF_EVENT_RING_BUFFER"}
 * and puts a LostEvent in the ring. The counter is pinned and outlives the agent, so losses
 * before this agent started are not counted.
 */
export function feedDatapathLosses(observer: FlowObserver, datapath: DatapathPort): () => void {
  let seen = datapath.lostEvents();
  const timer = setInterval(() => {
    const now = datapath.lostEvents();
    if (now > seen) observer.recordLost({ source: 'datapath-ring', count: now - seen });
    seen = now;
  }, LOST_POLL_MS).unref();
  return () => clearInterval(timer);
}

/** Every node of the store is a Hubble peer, from the node keys' list and watch. */
async function watchPeers(
  store: ClusterStore,
  peers: StaticPeers,
  address: (node: string) => string,
): Promise<{ close(): void }> {
  const listed = await store.list(NODES_PREFIX);
  for (const kv of listed.items) {
    const name = kv.key.slice(NODES_PREFIX.length);
    peers.set(name, address(name));
  }
  return store.watch(NODES_PREFIX, listed.revision, {
    onEvents: (events) => {
      for (const e of events) {
        const name = e.key.slice(NODES_PREFIX.length);
        if (e.type === 'put') peers.set(name, address(name));
        else peers.delete(name);
      }
    },
  });
}
