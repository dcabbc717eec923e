// Picks the policy engine and datapath implementations available in this build.
import type { DatapathPort, PolicyPort } from './subsystem-ports.js';
import { NullDatapath, StructuralPolicyPort } from './unavailable-ports.js';

export async function loadPolicyPort(): Promise<PolicyPort> {
  return new StructuralPolicyPort('policy engine not in this build: policies are stored, not enforced');
}

export async function loadDatapathPort(_o: { lab: string; node: string; pinDir: string }): Promise<DatapathPort> {
  return new NullDatapath('eBPF datapath not in this build: traffic is not policed');
}
