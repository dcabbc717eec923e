// Picks the policy engine and datapath implementations for an agent. The engine is pure and
// always there; the datapath needs the BPF object and the native addon, and when it cannot open,
// the agent still runs and says why in \`membrane status\`.
import type { ClusterStore } from '../store/cluster-store.js';
import { BpfDatapathPort } from './bpf-datapath-port.js';
import { EnginePolicyPort } from './engine-policy-port.js';
import type { DatapathPort, PolicyPort } from './subsystem-ports.js';
import { NullDatapath } from './unavailable-ports.js';

export async function loadPolicyPort(cluster: ClusterStore): Promise<PolicyPort> {
  return new EnginePolicyPort(cluster);
}

export async function loadDatapathPort(o: { lab: string; node: string; pinDir: string }): Promise<DatapathPort> {
  try {
    return new BpfDatapathPort(o.pinDir);
  } catch (err) {
    const e = err as Error & { code?: string };
    return new NullDatapath(`eBPF datapath did not open at ${o.pinDir}: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  }
}
