// `membrane agent run`: wires the agent to its stores, the policy engine and the datapath, serves
// the API, and stops cleanly on SIGTERM/SIGINT (the datapath stays pinned and keeps enforcing).
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { wallFromMono } from '../hubble/flow/parser.js';
import { FlowObserver } from '../hubble/observer/flow-observer.js';
import { ObserverServer } from '../hubble/observer/observer-server.js';
import { type PeerSource, StaticPeers } from '../hubble/observer/peer-source.js';
import type { DatapathEvent } from '../monitor/event-types.js';
import { NODES_PREFIX } from '../store/cluster-resources.js';
import type { ClusterStore } from '../store/cluster-store.js';
import { EmbeddedStore } from '../store/embedded-store.js';
import { Agent } from './agent.js';
import { serveAgentApi } from './api-server.js';
import { AgentFlowEnrichment } from './flow-enrichment.js';
import { pipelineTraceFromEnv } from './pipeline-trace.js';
import { loadDatapathPort } from './port-loader.js';
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
  const store = EmbeddedStore.open(o.clusterDir);
  const datapath = await loadDatapathPort({ lab: o.lab, node: o.node, pinDir: o.bpffs });
  const agent = new Agent({
    lab: o.lab,
    node: o.node,
    stateDir: o.stateDir,
    podCIDR: o.podCIDR,
    nodeIp: o.nodeIp,
    store,
    datapath,
    trace: pipelineTraceFromEnv(),
  });
  await agent.start();
  const server = await serveAgentApi(agent, o.socket);
  // Every node's flow server, for the relay: sockets sit side by side under the lab's nodes/.
  const peers = new StaticPeers();
  const peerWatch = await watchPeers(
    store,
    peers,
    (name) => `unix://${join(dirname(o.stateDir), name, 'hubble.sock')}`,
  );
  const hubble = await serveHubble(agent, datapath, join(o.stateDir, 'hubble.sock'), peers);
  writeFileSync(join(o.stateDir, 'agent.pid'), String(process.pid));
  process.stderr.write(`membrane agent: node ${o.node} of lab ${o.lab} serving on ${o.socket}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  server.close();
  peerWatch.close();
  await hubble.close();
  await agent.stop();
  await store.close();
  rmSync(o.socket, { force: true });
  rmSync(join(o.stateDir, 'agent.pid'), { force: true });
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
