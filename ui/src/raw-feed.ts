// The benchmark's baseline (bench/ui.bench.ts): the same page fed every raw flow, aggregated in the
// browser with the server's own aggregator, as a UI without server-side aggregation would work.
// Only used when the page is opened with ?feed=raw&raw=<url of a stream of JSON flow batches>.
import type { Flow } from '../../src/hubble/flow/flow.js';
import { FlowAggregator } from '../../src/ui/flow-aggregator.js';
import type { Card, FlowRow, MapEvent } from '../../src/ui/ui-api-types.js';

const VERDICTS = ['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'ERROR', 'AUDIT', 'REDIRECTED', 'TRACED', 'TRANSLATED'];

export function rawFeedUrl(): string | undefined {
  const p = new URLSearchParams(location.search);
  return p.get('feed') === 'raw' ? (p.get('raw') ?? undefined) : undefined;
}

export function openRawFeed(
  url: string,
  onMap: (m: MapEvent) => void,
  onRows: (rows: FlowRow[]) => void,
  onOpen: () => void,
): () => void {
  const agg = new FlowAggregator();
  const sent = new Set<string>();
  let seq = 0;
  let rows: FlowRow[] = [];
  const es = new EventSource(url);
  es.onopen = onOpen;
  es.addEventListener('flows', (e) => {
    // {t: seconds, flows}: the sender stamps a batch once (its flows are serialised ahead).
    const batch = JSON.parse((e as MessageEvent).data) as { t: number; flows: Flow[] };
    const flows = batch.flows;
    const now = Date.now();
    const time = { seconds: batch.t, nanos: 0 };
    for (const f of flows) {
      f.time = time;
      agg.ingest(f, now);
    }
    const tail = flows.slice(-200).reverse();
    rows = tail
      .map((f) => row(++seq, f))
      .concat(rows)
      .slice(0, 5000);
    (window as unknown as { __rawFlows: number }).__rawFlows =
      ((window as unknown as { __rawFlows?: number }).__rawFlows ?? 0) + flows.length;
  });
  const timer = window.setInterval(() => {
    const s = agg.snapshot(Date.now());
    const newCards: Card[] = [];
    for (const c of s.cards)
      if (!sent.has(c.id)) {
        sent.add(c.id);
        newCards.push(c);
      }
    // Everything, every second: the browser diffs it (as a UI without server deltas would).
    onMap({
      atMs: s.atMs,
      windowSeconds: s.windowSeconds,
      namespaces: s.namespaces,
      flowsInWindow: s.flowsInWindow,
      full: true,
      newCards,
      cards: s.cards.map((c) => [c.id, c.column] as const),
      edges: s.edges,
      removedEdges: [],
    });
    onRows(rows);
  }, 1000);
  return () => {
    clearInterval(timer);
    es.close();
  };
}

function row(seq: number, f: Flow): FlowRow {
  const ports = f.l4?.TCP ?? f.l4?.UDP;
  const side = (ep: Flow['source'], ip: string | undefined, port: number | undefined) => ({
    ...(ep?.namespace ? { namespace: ep.namespace } : {}),
    ...(ep?.pod_name ? { pod: ep.pod_name } : {}),
    identity: ep?.identity ?? 0,
    ...(ip ? { ip } : {}),
    ...(port ? { port } : {}),
  });
  return {
    seq,
    timeMs: Number(f.time?.seconds ?? 0) * 1000 + Math.floor((f.time?.nanos ?? 0) / 1e6),
    node: f.node_name ?? '',
    source: side(f.source, f.IP?.source, ports?.source_port),
    destination: side(f.destination, f.IP?.destination, ports?.destination_port),
    protocol: f.l4?.TCP ? 'TCP' : f.l4?.UDP ? 'UDP' : '',
    dport: ports?.destination_port ?? 0,
    type: '',
    l7: f.Summary ?? '',
    direction: ['', 'ingress', 'egress'][f.traffic_direction ?? 0] ?? '',
    verdict: VERDICTS[f.verdict ?? 0] ?? '',
    dropReason: '',
    tcpFlags: '',
    policy: '',
    isReply: f.is_reply?.value === true,
    auth: '',
  };
}
