// `membrane agent run`: wires the agent to its stores, the policy engine and the datapath, serves
// the API, and stops cleanly on SIGTERM/SIGINT (the datapath stays pinned and keeps enforcing).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openPinnedMap } from '../datapath/datapath.js';
import type { DatapathEvent } from '../datapath/event-types.js';
import { wallFromMono } from '../hubble/flow/parser.js';
import { type HubbleNode, type HubbleNodeOptions, startHubbleNode } from '../hubble/hubble-node.js';
import type { FlowObserver } from '../hubble/observer/flow-observer.js';
import { StaticPeers } from '../hubble/observer/peer-source.js';
import { ClusterStore } from '../store/cluster-store.js';
import { Agent } from './agent.js';
import { serveAgentApi } from './api-server.js';
import { AgentFlowEnrichment } from './flow-enrichment.js';
import { loadDatapathPort, loadPolicyPort } from './port-loader.js';

export interface AgentRunOptions {
  readonly lab: string;
  readonly node: string;
  readonly stateDir: string;
  readonly clusterDir: string;
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
}

/** How often the datapath's lost-event counter is read. */
const LOST_POLL_MS = 1000;

export async function runAgent(o: AgentRunOptions): Promise<void> {
  mkdirSync(o.stateDir, { recursive: true });
  const cluster = new ClusterStore(o.clusterDir);
  const policy = await loadPolicyPort(cluster);
  const datapath = await loadDatapathPort({ lab: o.lab, node: o.node, pinDir: o.bpffs });
  const agent = new Agent({
    lab: o.lab,
    node: o.node,
    stateDir: o.stateDir,
    podCIDR: o.podCIDR,
    nodeIp: o.nodeIp,
    cluster,
    policy,
    datapath,
  });
  // The node's flow pipeline, built the one way tests build it too: datapath events become
  // flows (enriched from the agent) in a ring, served by the Observer API on a unix socket next
  // to the agent's, counted by the metrics endpoint and written by the exporter. Peers are every
  // node's flow server, for the relay: sockets sit side by side under the lab's nodes/.
  const peers = new StaticPeers();
  const known = new Set<string>();
  const refreshPeers = () => {
    for (const n of cluster.nodes())
      if (!known.has(n.name)) {
        known.add(n.name);
        peers.set(n.name, `unix://${join(dirname(o.stateDir), n.name, 'hubble.sock')}`);
      }
  };
  refreshPeers();
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
  const stopLost = feedDatapathLosses(hubble.observer, o.bpffs);
  try {
    await agent.start();
  } catch (err) {
    stopLost();
    offEvents();
    await hubble.stop();
    throw err;
  }
  const server = await serveAgentApi(agent, o.socket);
  const peerTimer = setInterval(refreshPeers, 1000);
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
  clearInterval(peerTimer);
  stopLost();
  offEvents();
  await hubble.stop();
  await agent.stop();
  rmSync(o.socket, { force: true });
  rmSync(join(o.stateDir, 'agent.pid'), { force: true });
}

/**
 * ADAPTER, until the DatapathPort reports losses itself (a `lostEvents(): LostEvents[]` that
 * BpfDatapathPort answers from Datapath.lostEvents()): reads the datapath's pinned lost-event
 * counter (mbr_lost: one u64 per CPU, summed, as Datapath.lostEvents() reads it) every second and
 * hands what was lost since the last read to the observer, which counts it in
 * hubble_lost_events_total{source="PERF_EVENT_RING_BUFFER"} and puts a LostEvent in the ring.
 * The counter is pinned and outlives the agent, so losses before this agent started are not counted.
 */
export function feedDatapathLosses(observer: FlowObserver, pinDir: string): () => void {
  let map: ReturnType<typeof openPinnedMap>;
  try {
    map = openPinnedMap(pinDir, 'mbr_lost');
  } catch {
    return () => undefined; // no datapath: nothing can be lost.
  }
  const read = (): number => {
    const v = map.lookup(Buffer.alloc(4));
    let count = 0;
    if (v)
      for (let off = 0; off + 8 <= v.length; off += 8) count += v.readUInt32LE(off) + v.readUInt32LE(off + 4) * 2 ** 32;
    return count;
  };
  let seen = read();
  const timer = setInterval(() => {
    const now = read();
    if (now > seen) observer.recordLost({ source: 'datapath-ring', count: now - seen });
    seen = now;
  }, LOST_POLL_MS).unref();
  return () => {
    clearInterval(timer);
    map.close();
  };
}
