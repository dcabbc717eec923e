// Which agent(s) a CLI command talks to: --lab/--node pick a lab node's socket, --host a socket
// path directly (Cilium's -H). Without --node, list commands ask every node of the lab.
import { existsSync, readdirSync } from 'node:fs';
import type { Command } from 'commander';
import { AgentClient } from '../agent/api-client.js';
import { agentSocket, checkLabName, DEFAULT_LAB, labDir } from '../lab/lab-paths.js';
import { CliError } from './errors.js';

export interface TargetOptions {
  lab?: string;
  node?: string;
  host?: string;
}

export interface AgentTarget {
  readonly node: string;
  readonly client: AgentClient;
}

export function addTargetOptions(cmd: Command): Command {
  return cmd
    .option('--lab <name>', 'lab whose agents to ask (default $MEMBRANE_LAB or "lab")')
    .option('--node <name>', 'node whose agent to ask (default: every node of the lab)')
    .option('-H, --host <socket>', 'agent API socket path (overrides --lab and --node)');
}

export function resolveTargets(o: TargetOptions): AgentTarget[] {
  if (o.host) return [{ node: o.host, client: new AgentClient(o.host) }];
  const lab = o.lab ?? process.env.MEMBRANE_LAB ?? DEFAULT_LAB;
  const bad = checkLabName(lab);
  if (bad) throw new CliError('MBR_LAB_NAME', `--lab: ${bad}`, 2);
  const nodes = o.node ? [o.node] : listNodes(lab);
  if (nodes.length === 0)
    throw new CliError('MBR_NO_AGENT', `lab "${lab}" has no nodes: run "membrane lab up" first (or pass -H SOCKET)`);
  return nodes.map((node) => {
    const socket = agentSocket(lab, node);
    if (!existsSync(socket))
      throw new CliError('MBR_NO_AGENT', `no agent for node "${node}" of lab "${lab}" (no socket at ${socket})`);
    return { node, client: new AgentClient(socket) };
  });
}

export function listNodes(lab: string): string[] {
  try {
    return readdirSync(`${labDir(lab)}/nodes`).sort();
  } catch {
    return [];
  }
}

export function wantsJson(o: { output?: string }): boolean {
  if (o.output === undefined || o.output === 'table') return false;
  if (o.output === 'json') return true;
  throw new CliError('MBR_USAGE', `-o/--output: expected json or table, got "${o.output}"`, 2);
}
