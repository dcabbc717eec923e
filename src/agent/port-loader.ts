// Opens the datapath for an agent. It needs the BPF object and the native addon; when it cannot
// open, the agent still runs and says why in `membrane status`.
import { BpfDatapathPort } from './bpf-datapath-port.js';
import type { DatapathPort } from './subsystem-ports.js';
import { NullDatapath } from './unavailable-ports.js';

export async function loadDatapathPort(o: { lab: string; node: string; pinDir: string }): Promise<DatapathPort> {
  try {
    return new BpfDatapathPort(o.pinDir);
  } catch (err) {
    const e = err as Error & { code?: string };
    return new NullDatapath(`eBPF datapath did not open at ${o.pinDir}: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  }
}
