// `membrane agent run`: wires the agent to its stores, the policy engine and the datapath, serves
// the API, and stops cleanly on SIGTERM/SIGINT (the datapath stays pinned and keeps enforcing).
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DatapathEvent } from '../datapath/event-types.js';
import { wallFromMono } from '../hubble/flow/parser.js';
import { FlowObserver } from '../hubble/observer/flow-observer.js';
import { ObserverServer } from '../hubble/observer/observer-server.js';
import { type PeerSource, StaticPeers } from '../hubble/observer/peer-source.js';
import { ClusterStore } from '../store/cluster-store.js';
import { Agent } from './agent.js';
import { serveAgentApi } from './api-server.js';
import { AgentFlowEnrichment } from './flow-enrichment.js';
import { loadDatapathPort, loadPolicyPort } from './port-loader.js';
import type { DatapathPort } from './subsystem-ports.js';

export interface AgentRunOptions {
  readonly lab: string;
  readonly node: string;
  readonly stateDir: string;
  readonly clusterDir: string;
  readonly socket: string;
  readonly podCIDR: string;
  readonly nodeIp: string;
  readonly bpffs: string;
}

/**
 * The node's flow pipeline: datapath events become flows (enriched from the agent) in a ring,
 * served by the Hubble Observer API on a unix socket next to the agent's.
 */
export async function serveHubble(
  agent: Agent,
  datapath: DatapathPort,
  socket: string,
  peers: PeerSource,
): Promise<ObserverServer> {
  const bootNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  const boot = { seconds: Number(bootNs / 1_000_000_000n), nanos: Number(bootNs % 1_000_000_000n) };
  const observer = new FlowObserver({
    parser: {
      nodeName: agent.opts.node,
      enrichment: new AgentFlowEnrichment(agent),
      // process.hrtime is CLOCK_MONOTONIC on Linux, the clock bpf_ktime_get_ns reads.
      monoToWall: (monoNs) => wallFromMono(boot, monoNs),
      uuid: () => randomUUID(),
    },
  });
  datapath.onEvent((ev) => observer.ingestEvent(ev as DatapathEvent));
  rmSync(socket, { force: true });
  const server = new ObserverServer({ observer, peers });
  await server.listen(`unix://${socket}`);
  return server;
}

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
  await agent.start();
  const server = await serveAgentApi(agent, o.socket);
  // Every node's flow server, for the relay: sockets sit side by side under the lab's nodes/.
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
  const peerTimer = setInterval(refreshPeers, 1000);
  const hubble = await serveHubble(agent, datapath, join(o.stateDir, 'hubble.sock'), peers);
  writeFileSync(join(o.stateDir, 'agent.pid'), String(process.pid));
  process.stderr.write(`membrane agent: node ${o.node} of lab ${o.lab} serving on ${o.socket}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  server.close();
  clearInterval(peerTimer);
  await hubble.close();
  await agent.stop();
  rmSync(o.socket, { force: true });
  rmSync(join(o.stateDir, 'agent.pid'), { force: true });
}
