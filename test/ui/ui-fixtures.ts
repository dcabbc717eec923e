// Flows for the UI's tests and benchmark: pods by (namespace, app, identity), and one-line flow
// builders with the fields the datapath and the L7 proxy set.
import type { Endpoint, Flow } from '../../src/hubble/flow/flow.js';

export function pod(namespace: string, app: string, identity: number, podName = `${app}-0`): Endpoint {
  return {
    identity,
    namespace,
    pod_name: podName,
    labels: [`k8s:app=${app}`, `k8s:io.kubernetes.pod.namespace=${namespace}`],
  };
}

export const WORLD: Endpoint = { identity: 2, labels: ['reserved:world'] };
export const HOST: Endpoint = { identity: 1, labels: ['reserved:host'] };

export interface FlowSpec {
  readonly src: Endpoint;
  readonly dst: Endpoint;
  readonly dport?: number;
  readonly udp?: boolean;
  readonly verdict?: number;
  readonly timeMs: number;
  readonly reply?: boolean;
  readonly dstNames?: string[];
  readonly direction?: number;
}

export function l4Flow(s: FlowSpec): Flow {
  const ports = { source_port: 40000, destination_port: s.dport ?? 8080 };
  const f: Flow = {
    time: { seconds: Math.floor(s.timeMs / 1000), nanos: (s.timeMs % 1000) * 1e6 },
    verdict: s.verdict ?? 1,
    IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 1 },
    l4: s.udp ? { UDP: ports } : { TCP: { ...ports, flags: { SYN: true } } },
    source: s.src,
    destination: s.dst,
    Type: 1,
    node_name: 'n1',
    event_type: { type: s.verdict === 2 ? 1 : 4 },
    // By default, where the edge counts it: at the ingress of a pod, at egress towards anything else.
    traffic_direction: s.direction ?? (s.dst.namespace ? 1 : 2),
    is_reply: { value: s.reply === true },
  };
  if (s.verdict === 2) f.drop_reason_desc = 133;
  if (s.dstNames !== undefined) f.destination_names = s.dstNames;
  return f;
}

/** An HTTP request (client -> server) or its response (server -> client, with latency and code). */
export function httpFlow(
  client: Endpoint,
  server: Endpoint,
  timeMs: number,
  response?: { code: number; latencyMs: number },
): Flow {
  const isResponse = response !== undefined;
  return {
    time: { seconds: Math.floor(timeMs / 1000), nanos: (timeMs % 1000) * 1e6 },
    verdict: 1,
    IP: isResponse ? { source: '10.0.0.2', destination: '10.0.0.1' } : { source: '10.0.0.1', destination: '10.0.0.2' },
    l4: {
      TCP: isResponse ? { source_port: 8080, destination_port: 40000 } : { source_port: 40000, destination_port: 8080 },
    },
    source: isResponse ? server : client,
    destination: isResponse ? client : server,
    Type: 2,
    event_type: { type: 129 },
    is_reply: { value: isResponse },
    l7: isResponse
      ? { type: 2, latency_ns: response.latencyMs * 1e6, http: { code: response.code, method: 'GET', url: '/' } }
      : { type: 1, http: { method: 'GET', url: '/' } },
  };
}
