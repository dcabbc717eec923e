// Everything flow observability runs on one node, wired together for the agent: the pipeline
// (FlowObserver), the Observer/Peer gRPC server on a unix socket and TCP, the metrics endpoint and
// the exporter. The agent feeds it datapath events, L7 records and losses, and stops it on exit.
import { randomBytes } from 'node:crypto';
import { FlowExporter } from './exporter/flow-exporter.js';
import type { FlowFilter } from './filters/flow-filter.js';
import type { FlowEnrichment } from './flow/enrichment.js';
import type { Timestamp } from './flow/flow.js';
import { uuidSource } from './flow/parser.js';
import { HubbleMetrics } from './metrics/hubble-metrics.js';
import { MetricsServer } from './metrics/metrics-server.js';
import { FlowObserver } from './observer/flow-observer.js';
import { ObserverServer } from './observer/observer-server.js';
import type { PeerSource } from './observer/peer-source.js';

export interface HubbleNodeOptions {
  readonly nodeName: string;
  readonly enrichment: FlowEnrichment;
  readonly monoToWall: (monoNs: number) => Timestamp;
  /** Ring capacity, 2^n - 1 (default 4095). */
  readonly capacity?: number;
  /** Where to serve the Observer API: "unix:///var/run/membrane/hubble.sock", "0.0.0.0:4244". */
  readonly listen?: readonly string[];
  readonly peers?: PeerSource;
  /** Hubble metric option strings ("drop", "dns:query;ignoreAAAA", ...); none disables metrics. */
  readonly metrics?: readonly string[];
  /** host:port for /metrics (default 0.0.0.0:9965 when metrics are on). */
  readonly metricsAddress?: string;
  readonly export?: {
    readonly filePath: string;
    readonly maxSizeBytes?: number;
    readonly maxBackups?: number;
    readonly allowlist?: FlowFilter[];
    readonly denylist?: FlowFilter[];
    readonly fieldMask?: readonly string[];
  };
}

export interface HubbleNode {
  readonly observer: FlowObserver;
  /** Addresses the Observer API and the metrics endpoint are bound to. */
  readonly addresses: readonly string[];
  readonly metricsAddress: string | undefined;
  stop(): Promise<void>;
}

export async function startHubbleNode(opts: HubbleNodeOptions): Promise<HubbleNode> {
  const observer = new FlowObserver({
    capacity: opts.capacity,
    parser: {
      nodeName: opts.nodeName,
      enrichment: opts.enrichment,
      monoToWall: opts.monoToWall,
      uuid: uuidSource(randomBytes(10).toString('hex')),
    },
  });
  const stops: (() => Promise<void> | void)[] = [];
  try {
    let metricsAddress: string | undefined;
    if (opts.metrics !== undefined && opts.metrics.length > 0) {
      const metrics = new HubbleMetrics(opts.metrics);
      observer.onFlow((f) => metrics.processFlow(f));
      observer.onLost((s, n) => metrics.processLost(s, n));
      const server = new MetricsServer(metrics.registry);
      metricsAddress = await server.listen(opts.metricsAddress ?? '0.0.0.0:9965');
      stops.push(() => server.close());
    }
    if (opts.export !== undefined) {
      const exporter = new FlowExporter(opts.export);
      observer.onFlow((f) => exporter.export({ flow: f, node_name: f.node_name, time: f.time }));
      const timer = setInterval(() => exporter.flush(), 1000);
      timer.unref();
      stops.push(() => {
        clearInterval(timer);
        exporter.close();
      });
    }
    const server = new ObserverServer({ observer, peers: opts.peers });
    stops.push(() => server.close());
    const addresses: string[] = [];
    for (const a of opts.listen ?? []) addresses.push(await server.listen(a));
    return {
      observer,
      addresses,
      metricsAddress,
      stop: async () => {
        for (const s of stops.reverse()) await s();
      },
    };
  } catch (err) {
    for (const s of stops.reverse()) await s();
    throw err;
  }
}
