// The UI benchmark's synthetic cluster: 2,000 workloads in 20 namespaces, each calling 3 others
// (6,000 pod edges), one in ten also calling an external FQDN, one edge in 30 denied by policy,
// one in 4 carrying HTTP (requests and responses with latency). A pool of prebuilt flows is
// replayed at the target rate with fresh timestamps, so producing a flow costs next to nothing
// and the measurement is of the consumer.
import type { Endpoint, Flow } from '../src/hubble/flow/flow.js';

export const WORKLOADS = 2000;
export const NAMESPACES = 20;

export function flowPool(): Flow[] {
  const pods: Endpoint[] = [];
  for (let i = 0; i < WORKLOADS; i++) {
    const ns = `ns-${String(i % NAMESPACES).padStart(2, '0')}`;
    const app = `app-${String(i).padStart(4, '0')}`;
    pods.push({
      identity: 1000 + i,
      namespace: ns,
      pod_name: `${app}-5d8f7`,
      labels: [`k8s:app=${app}`, `k8s:io.kubernetes.pod.namespace=${ns}`],
    });
  }
  const pool: Flow[] = [];
  let edge = 0;
  for (let i = 0; i < WORKLOADS; i++) {
    const peers = [(i * 7 + 1) % WORKLOADS, (i * 13 + 5) % WORKLOADS, (i * 31 + 11) % WORKLOADS];
    for (const j of peers) {
      const isDenied = edge % 30 === 0;
      const isHttp = !isDenied && edge % 4 === 1;
      const port = 8000 + (j % 50);
      edge++;
      pool.push(l4(pods[i]!, pods[j]!, port, isDenied ? 2 : 1));
      if (isHttp) {
        pool.push(http(pods[i]!, pods[j]!, port, false, 200, 0));
        pool.push(http(pods[i]!, pods[j]!, port, true, edge % 10 === 0 ? 503 : 200, (1 + (edge % 40)) * 1e6));
      }
    }
    if (i % 10 === 0) {
      const f = l4(pods[i]!, { identity: 2, labels: ['reserved:world'] }, 443, 1);
      f.destination_names = [`api-${i % 50}.example.com`];
      pool.push(f);
    }
  }
  return pool;
}

function l4(src: Endpoint, dst: Endpoint, port: number, verdict: number): Flow {
  return {
    time: { seconds: 0, nanos: 0 },
    verdict,
    ...(verdict === 2
      ? {
          drop_reason_desc: 133,
          ingress_denied_by: [{ name: 'default-deny', namespace: dst.namespace, kind: 'NetworkPolicy' }],
        }
      : {}),
    IP: {
      source: `10.1.${(src.identity ?? 0) >> 8}.${(src.identity ?? 0) & 255}`,
      destination: '10.2.0.1',
      ipVersion: 1,
    },
    l4: { TCP: { source_port: 40000 + (port % 1000), destination_port: port, flags: { SYN: true } } },
    source: src,
    destination: dst,
    Type: 1,
    node_name: `node-${(src.identity ?? 0) % 4}`,
    event_type: { type: verdict === 2 ? 1 : 4 },
    traffic_direction: dst.namespace ? 1 : 2,
    is_reply: { value: false },
  };
}

function http(
  client: Endpoint,
  server: Endpoint,
  port: number,
  isResponse: boolean,
  code: number,
  latencyNs: number,
): Flow {
  return {
    time: { seconds: 0, nanos: 0 },
    verdict: 1,
    IP: { source: '10.1.0.1', destination: '10.2.0.1', ipVersion: 1 },
    l4: {
      TCP: isResponse ? { source_port: port, destination_port: 40000 } : { source_port: 40000, destination_port: port },
    },
    source: isResponse ? server : client,
    destination: isResponse ? client : server,
    Type: 2,
    node_name: 'node-0',
    event_type: { type: 129 },
    traffic_direction: 1,
    is_reply: { value: isResponse },
    l7: isResponse
      ? { type: 2, latency_ns: latencyNs, http: { code, method: 'GET', url: '/api' } }
      : { type: 1, http: { method: 'GET', url: '/api' } },
    Summary: isResponse ? `HTTP/1.1 ${code}` : 'HTTP/1.1 GET /api',
  };
}

/**
 * Calls `emit` every 10 ms with the flows due for `ratePerSecond` (never more than 50 ms worth at
 * once: a producer that falls behind skips rather than bursts); returns stop and the count emitted.
 */
export function paced(pool: readonly Flow[], ratePerSecond: number, emit: (batch: Flow[]) => void) {
  const start = performance.now();
  let sent = 0;
  let emitted = 0;
  let next = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - start) / 1000) * ratePerSecond);
    const n = Math.min(due - sent, ratePerSecond / 20);
    if (n <= 0) return;
    const nowMs = Date.now();
    const seconds = Math.floor(nowMs / 1000);
    const nanos = (nowMs % 1000) * 1e6;
    const batch: Flow[] = new Array(n);
    for (let k = 0; k < n; k++) {
      const f = pool[next]!;
      next = next + 1 === pool.length ? 0 : next + 1;
      f.time = { seconds, nanos };
      batch[k] = f;
    }
    // Behind by more than 50 ms: drop the backlog rather than burst (the rate is what was sent).
    sent = Math.max(sent + n, due - ratePerSecond / 20);
    emitted += n;
    emit(batch);
  }, 10);
  return { stop: () => clearInterval(timer), emitted: () => emitted };
}
