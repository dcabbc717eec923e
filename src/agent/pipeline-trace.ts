// Debug tracing of the agent's pipeline, one line per stage with its timing, turned on with
// MEMBRANE_TRACE=agent (a comma-separated list of tracers; `all` turns on every one). Lines go to
// stderr, which the lab keeps in each node's agent log:
//   membrane trace agent: store-event rev=42 keys=1 (policies/v1/CiliumNetworkPolicy/shop/x)
//   membrane trace agent: engine-diff rev=42 endpoints=3 adds=12 deletes=4 ipcache=+0/-0 0.41ms
//   membrane trace agent: map-write rev=42 endpoint=7 adds=4 deletes=1 0.09ms

export type PipelineTrace = (stage: string, fields: Readonly<Record<string, string | number>>) => void;

export function pipelineTraceFromEnv(env: NodeJS.ProcessEnv = process.env): PipelineTrace | undefined {
  const on = (env.MEMBRANE_TRACE ?? '').split(',').map((s) => s.trim());
  if (!on.includes('agent') && !on.includes('all')) return undefined;
  return (stage, fields) => {
    const parts = Object.entries(fields).map(([k, v]) => (k === 'ms' ? `${v}ms` : `${k}=${v}`));
    process.stderr.write(`membrane trace agent: ${stage} ${parts.join(' ')}\n`);
  };
}
