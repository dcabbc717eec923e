// `membrane agent run`: wires the agent to its stores, the policy engine and the datapath, serves
// the API, and stops cleanly on SIGTERM/SIGINT (the datapath stays pinned and keeps enforcing).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterStore } from '../store/cluster-store.js';
import { Agent } from './agent.js';
import { serveAgentApi } from './api-server.js';
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
  writeFileSync(join(o.stateDir, 'agent.pid'), String(process.pid));
  process.stderr.write(`membrane agent: node ${o.node} of lab ${o.lab} serving on ${o.socket}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  server.close();
  await agent.stop();
  rmSync(o.socket, { force: true });
  rmSync(join(o.stateDir, 'agent.pid'), { force: true });
}
