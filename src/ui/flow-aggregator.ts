// The service map, aggregated on the server: flows in, cards (one per workload, plus world, host,
// kube-dns and FQDN names) and edges (per source card, destination card, protocol and port) out,
// with flow counts by verdict and, for HTTP, request rate, error rate and p50/p95 latency over a
// sliding window of whole seconds. Pure: the caller passes the clock. Ingest is O(1) per flow;
// the window's totals are kept running (a second's deltas are subtracted when it leaves the
// window), so a snapshot costs O(edges), not O(flows).
import {
  type Endpoint,
  type Flow,
  L7FlowType,
  RESERVED_IDENTITY_NAMES,
  TrafficDirection,
  Verdict,
} from '../hubble/flow/flow.js';

export type CardKind = 'workload' | 'kube-dns' | 'world' | 'fqdn' | 'host' | 'remote-node' | 'reserved' | 'ip';

/** Hubble UI's columns: from-world, the selected namespaces, other namespaces, to-world. */
export type CardColumn = 'from-world' | 'namespace' | 'other' | 'to-world';

/** The `membrane observe` filter flag (without --from-/--to-) that selects a card's flows. */
export interface CardMatch {
  readonly flag: 'label' | 'identity' | 'fqdn' | 'ip';
  readonly value: string;
}

export interface Card {
  readonly id: string;
  readonly kind: CardKind;
  readonly name: string;
  readonly namespace?: string;
  readonly labels: readonly string[];
  readonly identity?: number;
  readonly match: CardMatch;
}

export interface VerdictCounts {
  forwarded: number;
  dropped: number;
  audit: number;
  redirected: number;
  error: number;
  other: number;
}

export interface HttpEdgeStats {
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly errors: number;
  /** Responses with status >= 500 over responses, 0..1. */
  readonly errorRate: number;
  readonly p50Ms?: number;
  readonly p95Ms?: number;
}

export interface MapEdge {
  readonly id: string;
  readonly source: string;
  readonly target: string;
  /** TCP, UDP, SCTP, ICMPv4, ICMPv6 or ANY. */
  readonly protocol: string;
  /** Destination port; the ICMP type for ICMP; 0 when none. */
  readonly port: number;
  readonly flows: number;
  readonly verdicts: VerdictCounts;
  /** 'dropped' when every flow was dropped, 'mixed' when some were, else 'forwarded'. */
  readonly state: 'forwarded' | 'dropped' | 'mixed';
  readonly http?: HttpEdgeStats;
}

export interface MapCard extends Card {
  readonly column: CardColumn;
}

export interface MapSnapshot {
  readonly windowSeconds: number;
  readonly atMs: number;
  readonly cards: readonly MapCard[];
  readonly edges: readonly MapEdge[];
  /** Namespaces seen in the window (for the namespace selector). */
  readonly namespaces: readonly string[];
  /** Flows counted in the window, over every namespace. */
  readonly flowsInWindow: number;
}

export interface AggregatorOptions {
  readonly windowSeconds?: number;
}

/** Snapshot restricted to edges touching these namespaces; empty = every namespace. */
export interface SnapshotQuery {
  readonly namespaces?: readonly string[];
}

export class FlowAggregator {
  readonly windowSeconds: number;
  private readonly edges = new Map<string, EdgeState>();
  private readonly cards = new Map<string, Card>();
  private readonly podCards = new Map<number, Card>();
  /** One entry per second still in the window: the counts it added, to subtract when it leaves. */
  private readonly seconds = new Map<number, SecondCounts>();
  /** Edges by their index in a second's rows; freed indexes are reused. */
  private readonly byIndex: (EdgeState | undefined)[] = [];
  private readonly freeIndexes: number[] = [];
  private newestSecond = 0;
  private inWindow = 0;

  constructor(opts: AggregatorOptions = {}) {
    this.windowSeconds = opts.windowSeconds ?? 60;
  }

  /** Counts one flow at its own time (clamped to now); flows older than the window are ignored. */
  ingest(flow: Flow, nowMs: number): void {
    const nowSecond = Math.floor(nowMs / 1000);
    this.advance(nowSecond);
    const flowSecond = Math.min(nowSecond, Number(flow.time?.seconds ?? nowSecond));
    if (flowSecond <= nowSecond - this.windowSeconds) return;
    const isResponse = flow.l7?.type === L7FlowType.RESPONSE;
    // Replies would draw every connection twice, once backwards: only L7 responses count (for
    // errors and latency), on the edge of their request.
    if (!isResponse && (flow.is_reply?.value === true || flow.reply === true)) return;
    const src = flow.source;
    const dst = flow.destination;
    if (src === undefined && dst === undefined) return;
    // One packet is reported where the source sends it (egress) and where the destination takes
    // it (ingress). An edge counts the observation that decides: every drop, and a forward at the
    // destination's ingress when the destination is a pod (which has one); else at egress. So a
    // connection forwarded by its source and dropped by its destination is a dropped edge.
    if (
      !isResponse &&
      flow.verdict !== Verdict.DROPPED &&
      flow.traffic_direction === TrafficDirection.EGRESS &&
      dst?.namespace !== undefined &&
      dst.namespace !== '' &&
      (dst.identity ?? 0) >= 256 &&
      (dst.identity ?? 0) < 1 << 24
    )
      return;
    const from = isResponse ? this.cardOf(dst, flow.IP?.destination, flow.destination_names) : undefined;
    const srcCard = from ?? this.cardOf(src, flow.IP?.source, flow.source_names);
    const dstCard = isResponse
      ? this.cardOf(src, flow.IP?.source, flow.source_names)
      : this.cardOf(dst, flow.IP?.destination, flow.destination_names);
    const { protocol, port } = l4Of(flow, isResponse);
    const key = `${srcCard.id}|${dstCard.id}|${protocol}|${port}`;
    let edge = this.edges.get(key);
    if (edge === undefined) {
      const index = this.freeIndexes.pop() ?? this.byIndex.length;
      edge = newEdge(key, srcCard.id, dstCard.id, protocol, port, index);
      this.edges.set(key, edge);
      this.byIndex[index] = edge;
    }
    let bucket = this.seconds.get(flowSecond);
    if (bucket === undefined) {
      bucket = new SecondCounts(this.byIndex.length);
      this.seconds.set(flowSecond, bucket);
    }
    const row = bucket.row(edge.index);
    const counts = bucket.counts;
    const http = flow.l7?.http;
    if (http !== undefined) {
      if (isResponse) {
        counts[row + RESPONSES]!++;
        edge.responses++;
        if ((http.code ?? 0) >= 500) {
          counts[row + ERRORS]!++;
          edge.errors++;
        }
        const latencyNs = flow.l7?.latency_ns ?? 0;
        if (latencyNs > 0) {
          const bin = latencyBin(latencyNs);
          const k = edge.index * LATENCY_BINS + bin;
          bucket.latency ??= new Map();
          bucket.latency.set(k, (bucket.latency.get(k) ?? 0) + 1);
          edge.latency[bin]!++;
        }
        return;
      }
      if (flow.l7?.type === L7FlowType.REQUEST) {
        counts[row + REQUESTS]!++;
        edge.requests++;
      }
    }
    const v = verdictSlot(flow.verdict ?? 0);
    counts[row + v]!++;
    edge.verdicts[v]!++;
    edge.flows++;
    this.inWindow++;
  }

  /** Cards and edges with flows in the window at `nowMs`. */
  snapshot(nowMs: number, q: SnapshotQuery = {}): MapSnapshot {
    this.advance(Math.floor(nowMs / 1000));
    const selected = q.namespaces !== undefined && q.namespaces.length > 0 ? new Set(q.namespaces) : undefined;
    const namespaces = new Set<string>();
    const edges: MapEdge[] = [];
    const used = new Map<string, { asSource: boolean; asTarget: boolean }>();
    for (const e of this.edges.values()) {
      if (e.flows === 0 && e.requests === 0 && e.responses === 0) continue;
      const s = this.cards.get(e.source)!;
      const t = this.cards.get(e.target)!;
      if (s.namespace !== undefined) namespaces.add(s.namespace);
      if (t.namespace !== undefined) namespaces.add(t.namespace);
      if (selected !== undefined && !selected.has(s.namespace ?? '') && !selected.has(t.namespace ?? '')) continue;
      edges.push(edgeView(e, this.windowSeconds));
      mark(used, e.source).asSource = true;
      mark(used, e.target).asTarget = true;
    }
    const cards: MapCard[] = [];
    for (const [id, role] of used) {
      const c = this.cards.get(id)!;
      cards.push({ ...c, column: columnOf(c, role, selected) });
    }
    cards.sort(compareCards);
    edges.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return {
      windowSeconds: this.windowSeconds,
      atMs: nowMs,
      cards,
      edges,
      namespaces: [...namespaces].sort(),
      flowsInWindow: this.inWindow,
    };
  }

  card(id: string): Card | undefined {
    return this.cards.get(id);
  }

  /** Subtracts every second that has left the window; forgets edges and cards left empty. */
  private advance(nowSecond: number): void {
    if (nowSecond <= this.newestSecond) return;
    this.newestSecond = nowSecond;
    const oldest = nowSecond - this.windowSeconds;
    let removed = false;
    for (const [second, bucket] of this.seconds) {
      if (second > oldest) continue;
      const c = bucket.counts;
      for (const index of bucket.touched) {
        // An edge is forgotten only once its totals are zero, so its rows in live seconds are
        // zero too; a reused index's row holds the new edge's counts alone.
        const edge = this.byIndex[index];
        if (edge === undefined) continue;
        const row = index * ROW;
        for (let i = 0; i < SLOTS; i++) {
          edge.verdicts[i]! -= c[row + i]!;
          edge.flows -= c[row + i]!;
          this.inWindow -= c[row + i]!;
        }
        edge.requests -= c[row + REQUESTS]!;
        edge.responses -= c[row + RESPONSES]!;
        edge.errors -= c[row + ERRORS]!;
      }
      if (bucket.latency !== undefined)
        for (const [k, n] of bucket.latency) {
          const edge = this.byIndex[Math.floor(k / LATENCY_BINS)];
          if (edge !== undefined) edge.latency[k % LATENCY_BINS]! -= n;
        }
      this.seconds.delete(second);
      removed = true;
    }
    if (!removed) return;
    const live = new Set<string>();
    for (const [key, e] of this.edges) {
      if (e.flows === 0 && e.requests === 0 && e.responses === 0) {
        this.edges.delete(key);
        this.byIndex[e.index] = undefined;
        this.freeIndexes.push(e.index);
      } else {
        live.add(e.source);
        live.add(e.target);
      }
    }
    for (const [id, c] of this.cards)
      if (!live.has(id)) {
        this.cards.delete(id);
        if (c.kind === 'workload' || c.kind === 'kube-dns') this.podCards.delete(c.identity ?? -1);
      }
  }

  private cardOf(ep: Endpoint | undefined, ip: string | undefined, names: readonly string[] | undefined): Card {
    const identity = ep?.identity ?? 0;
    if (identity >= 256 && identity < 1 << 24 && ep?.namespace) {
      const cached = this.podCards.get(identity);
      if (cached !== undefined) return cached;
      const c = this.intern(workloadCard(ep, identity));
      this.podCards.set(identity, c);
      return c;
    }
    return this.intern(otherCard(ep, identity, ip, names));
  }

  private intern(c: Card): Card {
    const existing = this.cards.get(c.id);
    if (existing !== undefined) return existing;
    this.cards.set(c.id, c);
    return c;
  }
}

/** The card of a pod endpoint: its namespace and app (app, k8s-app, app.kubernetes.io/name labels, workload, pod). */
export function workloadCard(ep: Endpoint, identity: number): Card {
  const labels = ep.labels ?? [];
  const ns = ep.namespace!;
  const app = labelValue(labels, APP_KEYS);
  const name = app?.value ?? ep.workloads?.[0]?.name ?? ep.pod_name ?? `identity-${identity}`;
  const isDns = labels.some((l) => l === 'k8s:k8s-app=kube-dns');
  const match: CardMatch =
    app !== undefined
      ? { flag: 'label', value: `${app.label},k8s:io.kubernetes.pod.namespace=${ns}` }
      : { flag: 'identity', value: String(identity) };
  return {
    id: `${ns}/${name}`,
    kind: isDns ? 'kube-dns' : 'workload',
    name,
    namespace: ns,
    labels,
    identity,
    match,
  };
}

export function columnOf(
  c: Card,
  role: { asSource: boolean; asTarget: boolean },
  selected: ReadonlySet<string> | undefined,
): CardColumn {
  if (c.kind === 'world' || c.kind === 'fqdn' || c.kind === 'ip') return role.asTarget ? 'to-world' : 'from-world';
  if (c.namespace === undefined) return 'other';
  return selected === undefined || selected.has(c.namespace) ? 'namespace' : 'other';
}

const APP_KEYS = ['app', 'k8s-app', 'app.kubernetes.io/name', 'name'];

function labelValue(labels: readonly string[], keys: readonly string[]): { label: string; value: string } | undefined {
  for (const key of keys)
    for (const l of labels) {
      const colon = l.indexOf(':');
      const eq = l.indexOf('=');
      if (eq < 0 || l.slice(colon + 1, eq) !== key) continue;
      return { label: l, value: l.slice(eq + 1) };
    }
  return undefined;
}

function otherCard(
  ep: Endpoint | undefined,
  identity: number,
  ip: string | undefined,
  names: readonly string[] | undefined,
): Card {
  const labels = ep?.labels ?? [];
  const reserved = RESERVED_IDENTITY_NAMES[identity];
  const isWorld = reserved === 'world' || reserved === 'world-ipv4' || reserved === 'world-ipv6' || identity >= 1 << 24;
  const fqdn = names?.[0];
  if (fqdn !== undefined && (isWorld || identity === 0))
    return { id: `fqdn:${fqdn}`, kind: 'fqdn', name: fqdn, labels, match: { flag: 'fqdn', value: fqdn } };
  if (isWorld)
    return { id: 'world', kind: 'world', name: 'world', labels, match: { flag: 'identity', value: 'world' } };
  if (reserved === 'host')
    return { id: 'host', kind: 'host', name: 'host', labels, match: { flag: 'identity', value: 'host' } };
  if (reserved === 'remote-node')
    return {
      id: 'remote-node',
      kind: 'remote-node',
      name: 'remote-node',
      labels,
      match: { flag: 'identity', value: 'remote-node' },
    };
  if (reserved !== undefined)
    return { id: reserved, kind: 'reserved', name: reserved, labels, match: { flag: 'identity', value: reserved } };
  if (ep?.namespace && ep.pod_name)
    return {
      id: `${ep.namespace}/${ep.pod_name}`,
      kind: 'workload',
      name: ep.pod_name,
      namespace: ep.namespace,
      labels,
      match: { flag: 'label', value: `k8s:io.kubernetes.pod.namespace=${ep.namespace}` },
    };
  const addr = ip ?? 'unknown';
  return { id: `ip:${addr}`, kind: 'ip', name: addr, labels, match: { flag: 'ip', value: addr } };
}

interface EdgeState {
  readonly id: string;
  /** Its row in each second's counts. */
  readonly index: number;
  readonly source: string;
  readonly target: string;
  readonly protocol: string;
  readonly port: number;
  flows: number;
  readonly verdicts: Int32Array;
  requests: number;
  responses: number;
  errors: number;
  readonly latency: Int32Array;
}

// Verdict slots: forwarded, dropped, audit, redirected, error, other; then a second's row adds
// requests, responses and errors.
const SLOTS = 6;
const REQUESTS = SLOTS;
const RESPONSES = SLOTS + 1;
const ERRORS = SLOTS + 2;
const ROW = SLOTS + 3;

/**
 * One second's counts: a row of ROW integers per edge index (typed arrays, not an object per edge
 * and second: at 6,000 edges and 60 seconds that is 360,000 objects), the indexes it touched, and
 * latency bins by index * LATENCY_BINS + bin.
 */
class SecondCounts {
  counts: Int32Array;
  private seen: Uint8Array;
  readonly touched: number[] = [];
  latency: Map<number, number> | undefined;

  constructor(edges: number) {
    const capacity = Math.max(64, edges);
    this.counts = new Int32Array(capacity * ROW);
    this.seen = new Uint8Array(capacity);
  }

  /** The offset of `index`'s row, grown into when needed. */
  row(index: number): number {
    if (index >= this.seen.length) {
      const capacity = Math.max(index + 1, this.seen.length * 2);
      const counts = new Int32Array(capacity * ROW);
      counts.set(this.counts);
      this.counts = counts;
      const seen = new Uint8Array(capacity);
      seen.set(this.seen);
      this.seen = seen;
    }
    if (this.seen[index] === 0) {
      this.seen[index] = 1;
      this.touched.push(index);
    }
    return index * ROW;
  }
}
function verdictSlot(v: number): number {
  switch (v) {
    case Verdict.FORWARDED:
      return 0;
    case Verdict.DROPPED:
      return 1;
    case Verdict.AUDIT:
      return 2;
    case Verdict.REDIRECTED:
      return 3;
    case Verdict.ERROR:
      return 4;
    default:
      return 5;
  }
}

// Latency bins: 4 per doubling from 1 µs (2^10 ns) to ~2^37 ns (137 s); a bin's value is its
// geometric middle, so a percentile is within ~9% of the true value.
const BINS_PER_DOUBLING = 4;
const MIN_LOG2 = 10;
const LATENCY_BINS = (37 - MIN_LOG2) * BINS_PER_DOUBLING;

export function latencyBin(ns: number): number {
  const b = Math.floor((Math.log2(Math.max(ns, 1)) - MIN_LOG2) * BINS_PER_DOUBLING);
  return Math.max(0, Math.min(LATENCY_BINS - 1, b));
}

export function latencyBinMs(bin: number): number {
  return 2 ** (MIN_LOG2 + (bin + 0.5) / BINS_PER_DOUBLING) / 1e6;
}

function newEdge(id: string, source: string, target: string, protocol: string, port: number, index: number): EdgeState {
  return {
    id,
    index,
    source,
    target,
    protocol,
    port,
    flows: 0,
    verdicts: new Int32Array(SLOTS),
    requests: 0,
    responses: 0,
    errors: 0,
    latency: new Int32Array(LATENCY_BINS),
  };
}

function l4Of(flow: Flow, isResponse: boolean): { protocol: string; port: number } {
  const l4 = flow.l4;
  const pick = (p: { source_port?: number; destination_port?: number }) =>
    (isResponse ? p.source_port : p.destination_port) ?? 0;
  if (l4?.TCP) return { protocol: 'TCP', port: pick(l4.TCP) };
  if (l4?.UDP) return { protocol: 'UDP', port: pick(l4.UDP) };
  if (l4?.SCTP) return { protocol: 'SCTP', port: pick(l4.SCTP) };
  if (l4?.ICMPv4) return { protocol: 'ICMPv4', port: l4.ICMPv4.type ?? 0 };
  if (l4?.ICMPv6) return { protocol: 'ICMPv6', port: l4.ICMPv6.type ?? 0 };
  return { protocol: 'ANY', port: 0 };
}

function edgeView(e: EdgeState, windowSeconds: number): MapEdge {
  const v = e.verdicts;
  const verdicts: VerdictCounts = {
    forwarded: v[0]!,
    dropped: v[1]!,
    audit: v[2]!,
    redirected: v[3]!,
    error: v[4]!,
    other: v[5]!,
  };
  const state = verdicts.dropped === 0 ? 'forwarded' : verdicts.dropped === e.flows ? 'dropped' : 'mixed';
  const view: MapEdge = {
    id: e.id,
    source: e.source,
    target: e.target,
    protocol: e.protocol,
    port: e.port,
    flows: e.flows,
    verdicts,
    state,
  };
  if (e.requests === 0 && e.responses === 0) return view;
  const answered = percentiles(e.latency);
  return {
    ...view,
    http: {
      requests: e.requests,
      requestsPerSecond: e.requests / windowSeconds,
      errors: e.errors,
      errorRate: e.responses === 0 ? 0 : e.errors / e.responses,
      ...answered,
    },
  };
}

function percentiles(hist: Int32Array): { p50Ms?: number; p95Ms?: number } {
  let total = 0;
  for (const n of hist) total += n;
  if (total === 0) return {};
  const at = (q: number) => {
    const rank = Math.ceil(q * total);
    let seen = 0;
    for (let i = 0; i < hist.length; i++) {
      seen += hist[i]!;
      if (seen >= rank) return latencyBinMs(i);
    }
    return latencyBinMs(hist.length - 1);
  };
  return { p50Ms: at(0.5), p95Ms: at(0.95) };
}

function mark(m: Map<string, { asSource: boolean; asTarget: boolean }>, id: string) {
  let r = m.get(id);
  if (r === undefined) {
    r = { asSource: false, asTarget: false };
    m.set(id, r);
  }
  return r;
}

function compareCards(a: Card, b: Card): number {
  const na = a.namespace ?? '';
  const nb = b.namespace ?? '';
  if (na !== nb) return na < nb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
