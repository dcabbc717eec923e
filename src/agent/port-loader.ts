// Opens the datapath for an agent. It needs the BPF object and the native addon; when it cannot
// open, the agent still runs and says why in `membrane status`.
import { isDatapathError } from '../datapath/datapath-error.js';
import { BpfDatapathPort } from './bpf-datapath-port.js';
import type { DatapathPort } from './subsystem-ports.js';
import { NullDatapath } from './unavailable-ports.js';

export async function loadDatapathPort(o: { lab: string; node: string; pinDir: string }): Promise<DatapathPort> {
  try {
    return new BpfDatapathPort(o.pinDir);
  } catch (err) {
    const code = isDatapathError(err) ? `${err.code}: ` : '';
    return new NullDatapath(`eBPF datapath did not open at ${o.pinDir}: ${code}${(err as Error).message}`);
  }
}
