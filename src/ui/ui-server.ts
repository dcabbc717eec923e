// `membrane ui`'s server: the built web app (static files, nothing from a CDN) and its API, on one
// HTTP port. Flows come in once (RelayFeed, or `ingest` for the benchmark and tests) and go to
// the map aggregator and the table's ring; the browser gets aggregates and pages, never the
// stream:
//   GET /api/events?ns=..&<filters>   Server-Sent Events: `map` (what changed in cards and edges,
//                                     every mapMs: see map-delta.ts),
//                                     `rows` (newest matching rows, at most rowsPerBatch per
//                                     rowsMs), `status` (the relay connection)
//   GET /api/flows?before=SEQ&limit=N&<filters>   older rows, newest first
//   GET /api/flow?seq=SEQ             one flow as jsonpb, its row, and for a drop the policy and
//                                     the smallest allowing rule
//   GET /api/export?format=jsonpb|csv&<filters>   every matching flow still in the ring
//   GET /api/policies?card=ID         the policies selecting a card, with their rules
//   GET /api/status
import { readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { stringify } from 'yaml';
import { AgentClient } from '../agent/api-client.js';
import type { PolicySet } from '../agent/api-types.js';
import type { Flow } from '../hubble/flow/flow.js';
import { FlowPrinter } from '../hubble/printer/flow-printer.js';
import { type Label, makeLabelSet } from '../identity/labels.js';
import { selectorMatches } from '../policy/label-selector.js';
import { parsePolicyObject } from '../policy/policy-parser.js';
import { smallestAllowRule } from './allow-rule.js';
import { FlowAggregator, type MapSnapshot } from './flow-aggregator.js';
import { FlowRing, type FlowRow, flowRow } from './flow-table.js';
import { type MapView, mapDelta, newMapView } from './map-delta.js';
import { type FeedState, RelayFeed } from './relay-feed.js';
import { compileUiFilter, UiFilterError } from './ui-filters.js';

export const DEFAULT_UI_PORT = 12000;

export interface UiServerOptions {
  /** The relay (or an agent): host:port or unix:///path. Without one, flows come from ingest(). */
  readonly server?: string;
  /**
   * An agent's API socket, for the policy view and traces. `{node}` in it stands for a node's name:
   * a trace asks the agent of the node that saw the flow (an agent resolves policy for its own
   * endpoints only).
   */
  readonly agentSocket?: string;
  /** The built web app (index.html and assets/). */
  readonly webRoot: string;
  readonly windowSeconds?: number;
  readonly ringCapacity?: number;
  readonly mapMs?: number;
  readonly rowsMs?: number;
  readonly rowsPerBatch?: number;
  readonly nowMs?: () => number;
}

export class UiServer {
  readonly aggregator: FlowAggregator;
  readonly ring: FlowRing;
  private readonly http: Server;
  private readonly feed: RelayFeed | undefined;
  private readonly agents = new Map<string, AgentClient>();
  private readonly clients = new Set<EventClient>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly nowMs: () => number;
  private snapshots = new Map<string, { atMs: number; snap: MapSnapshot }>();

  constructor(private readonly opts: UiServerOptions) {
    this.nowMs = opts.nowMs ?? Date.now;
    this.aggregator = new FlowAggregator({ windowSeconds: opts.windowSeconds ?? 60 });
    this.ring = new FlowRing(opts.ringCapacity ?? 16_384);
    if (opts.server !== undefined)
      this.feed = new RelayFeed({
        server: opts.server,
        onFlow: (f) => this.ingest(f),
        onState: (s) => this.broadcastStatus(s),
      });
    this.http = createServer((req, res) => {
      this.route(req, res).catch((e: Error) => {
        if (!res.headersSent) sendJson(res, e instanceof UiFilterError ? 400 : 500, { error: e.message });
        else res.end();
      });
    });
  }

  /** One flow into the map and the table. */
  ingest(f: Flow): void {
    this.aggregator.ingest(f, this.nowMs());
    this.ring.push(f);
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.feed?.start();
    this.timers.push(setInterval(() => this.tickMap(), this.opts.mapMs ?? 1000));
    this.timers.push(setInterval(() => this.tickRows(), this.opts.rowsMs ?? 500));
    const a = this.http.address() as AddressInfo;
    return `http://${host}:${a.port}`;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.feed?.close();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  status(): Record<string, unknown> {
    return {
      relay: this.feed?.state ?? { connected: true, server: 'ingest', nodes: {} },
      ring: { capacity: this.ring.capacity, newestSeq: this.ring.newestSeq, oldestSeq: this.ring.oldestSeq },
      windowSeconds: this.aggregator.windowSeconds,
      clients: this.clients.size,
      policyView: this.opts.agentSocket !== undefined,
    };
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://ui');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'only GET' });
    switch (url.pathname) {
      case '/api/status':
        return sendJson(res, 200, this.status());
      case '/api/events':
        return this.events(url.searchParams, req, res);
      case '/api/flows':
        return this.flows(url.searchParams, res);
      case '/api/flow':
        return this.flow(url.searchParams, res);
      case '/api/export':
        return this.export(url.searchParams, res);
      case '/api/policies':
        return this.policies(url.searchParams, res);
      default:
        if (url.pathname.startsWith('/api/')) return sendJson(res, 404, { error: `no API ${url.pathname}` });
        return this.static(url.pathname, res);
    }
  }

  private events(params: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const filter = compileUiFilter(params, this.nowMs());
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const c: EventClient = {
      res,
      match: filter.match,
      namespaces: filter.namespaces,
      lastSeq: this.ring.newestSeq,
      map: newMapView(),
      wantsRows: params.get('rows') !== '0',
    };
    this.clients.add(c);
    req.on('close', () => this.clients.delete(c));
    // The table starts with the newest matching rows already in the ring.
    if (c.wantsRows) {
      const page = this.ring.query({ match: c.match, limit: this.opts.rowsPerBatch ?? 200, scanLimit: 20_000 });
      send(c, 'rows', { rows: page.rows, newestSeq: page.newestSeq, truncated: page.truncated, initial: true });
    }
    send(c, 'status', this.status());
    this.sendMap(c);
  }

  private tickMap(): void {
    for (const c of this.clients) this.sendMap(c);
    this.snapshots.clear();
  }

  private sendMap(c: EventClient): void {
    const now = this.nowMs();
    const key = c.namespaces.join(',');
    let cached = this.snapshots.get(key);
    if (cached === undefined) {
      cached = { atMs: now, snap: this.aggregator.snapshot(now, { namespaces: c.namespaces }) };
      this.snapshots.set(key, cached);
    }
    send(c, 'map', mapDelta(c.map, cached.snap));
  }

  private tickRows(): void {
    const newest = this.ring.newestSeq;
    for (const c of this.clients) {
      if (!c.wantsRows || c.lastSeq >= newest) continue;
      const page = this.ring.query({
        match: c.match,
        after: c.lastSeq,
        limit: this.opts.rowsPerBatch ?? 200,
        scanLimit: 20_000,
      });
      c.lastSeq = newest;
      if (page.rows.length > 0)
        send(c, 'rows', { rows: page.rows, newestSeq: newest, truncated: page.truncated, initial: false });
    }
  }

  private broadcastStatus(s: FeedState): void {
    for (const c of this.clients) send(c, 'status', { ...this.status(), relay: s });
  }

  private flows(params: URLSearchParams, res: ServerResponse): void {
    const filter = compileUiFilter(params, this.nowMs());
    const before = params.has('before') ? Number(params.get('before')) : undefined;
    const limit = Math.min(1000, Math.max(1, Number(params.get('limit') ?? 200)));
    const page = this.ring.query({ match: filter.match, before, limit, scanLimit: 200_000 });
    sendJson(res, 200, page);
  }

  private async flow(params: URLSearchParams, res: ServerResponse): Promise<void> {
    const seq = Number(params.get('seq'));
    const f = this.ring.get(seq);
    if (f === undefined) return sendJson(res, 404, { error: `flow ${seq} is no longer in the ring` });
    const row: FlowRow = flowRow(seq, f);
    const jsonpb = JSON.parse(new FlowPrinter({ format: 'jsonpb' }).write({ flow: f, node_name: f.node_name }));
    const isDrop = f.verdict === 2;
    const allow = isDrop ? smallestAllowRule(f) : undefined;
    let trace: unknown;
    if (isDrop && this.opts.agentSocket !== undefined)
      trace = await this.trace(f).catch((e: Error) => ({ error: `the agent could not trace this flow: ${e.message}` }));
    sendJson(res, 200, { row, jsonpb, ...(allow ? { allowRule: allow } : {}), ...(trace ? { trace } : {}) });
  }

  private async trace(f: Flow): Promise<unknown> {
    const peer = (ep: Flow['source'], ip: string | undefined) =>
      ep?.namespace && ep.pod_name ? `${ep.namespace}/${ep.pod_name}` : (ip ?? '');
    const l4 = f.l4;
    const ports = l4?.TCP ?? l4?.UDP ?? l4?.SCTP;
    const q = new URLSearchParams({
      src: peer(f.source, f.IP?.source),
      dst: peer(f.destination, f.IP?.destination),
      dport: String(ports?.destination_port ?? 0),
      protocol: l4?.UDP ? 'UDP' : l4?.SCTP ? 'SCTP' : 'TCP',
    });
    return this.agent(f.node_name).get(`/v1/policy/trace?${q}`);
  }

  /** The agent of `node` (or of the node of the newest flow) when the socket names nodes. */
  private agent(node: string | undefined): AgentClient {
    const template = this.opts.agentSocket!;
    const name = node ?? this.ring.get(this.ring.newestSeq)?.node_name ?? '';
    const path = template.replaceAll('{node}', name);
    let c = this.agents.get(path);
    if (c === undefined) {
      c = new AgentClient(path, 5000);
      this.agents.set(path, c);
    }
    return c;
  }

  private export(params: URLSearchParams, res: ServerResponse) {
    const filter = compileUiFilter(params, this.nowMs());
    const format = params.get('format') ?? 'jsonpb';
    if (format !== 'jsonpb' && format !== 'csv')
      return sendJson(res, 400, { error: `format: expected jsonpb or csv, got ${JSON.stringify(format)}` });
    const stamp = new Date(this.nowMs()).toISOString().replace(/[:.]/g, '-');
    res.writeHead(200, {
      'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
      'content-disposition': `attachment; filename="flows-${stamp}.${format === 'csv' ? 'csv' : 'json'}"`,
      'cache-control': 'no-store',
    });
    const printer = new FlowPrinter({ format: 'jsonpb' });
    let chunk = '';
    if (format === 'csv') chunk = `${CSV_COLUMNS.join(',')}\n`;
    let seq = 0;
    for (const f of this.ring.select(filter.match)) {
      chunk += format === 'csv' ? csvLine(flowRow(++seq, f)) : printer.write({ flow: f, node_name: f.node_name });
      if (chunk.length > 64 * 1024) {
        res.write(chunk);
        chunk = '';
      }
    }
    res.end(chunk);
  }

  private async policies(params: URLSearchParams, res: ServerResponse): Promise<void> {
    const id = params.get('card') ?? '';
    const card = this.aggregator.card(id);
    if (card === undefined)
      return sendJson(res, 404, { error: `card ${JSON.stringify(id)} has no flows in the window` });
    if (this.opts.agentSocket === undefined)
      return sendJson(res, 503, { error: 'no agent to ask: start membrane ui with --agent-socket' });
    // Policies are cluster-wide: any agent has them all.
    const set = await this.agent(undefined).get<PolicySet>('/v1/policy');
    const labels = makeLabelSet(card.labels.map(parseLabel));
    const out: unknown[] = [];
    for (const p of set.policies) {
      let selecting: string[] = [];
      try {
        const parsed = parsePolicyObject(p.doc, p.source);
        for (const pol of parsed.policies)
          for (const rule of pol.rules)
            if (!rule.isNodeRule && selectorMatches(rule.subject, labels)) {
              if (rule.ingress !== undefined) selecting.push('ingress');
              if (rule.egress !== undefined) selecting.push('egress');
            }
      } catch {
        continue;
      }
      selecting = [...new Set(selecting)];
      if (selecting.length === 0) continue;
      out.push({
        kind: p.kind,
        namespace: p.namespace,
        name: p.name,
        revision: p.revision,
        directions: selecting,
        yaml: stringify(p.doc),
      });
    }
    sendJson(res, 200, { card, policies: out });
  }

  private static(pathname: string, res: ServerResponse) {
    const root = normalize(this.opts.webRoot);
    const rel = pathname === '/' ? 'index.html' : decodeURIComponent(pathname).replace(/^\/+/, '');
    const file = normalize(join(root, rel));
    if (!file.startsWith(root + sep) && file !== root) return sendJson(res, 403, { error: 'outside the web root' });
    let body: Buffer;
    try {
      if (!statSync(file).isFile()) throw new Error('not a file');
      body = readFileSync(file);
    } catch {
      // The app routes on the client: unknown paths get the page (assets do not).
      if (rel.startsWith('assets/')) return sendJson(res, 404, { error: `no file ${pathname}` });
      try {
        body = readFileSync(join(root, 'index.html'));
      } catch {
        return sendJson(res, 500, { error: `the web app is not built (no ${root}/index.html): run npm run build` });
      }
      return sendBody(res, 'text/html; charset=utf-8', body, 'no-store');
    }
    const type = CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
    sendBody(res, type, body, rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-store');
  }
}

interface EventClient {
  readonly res: ServerResponse;
  readonly match: (f: Flow) => boolean;
  readonly namespaces: string[];
  /** What this browser was last sent of the map. */
  readonly map: MapView;
  readonly wantsRows: boolean;
  lastSeq: number;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export const CSV_COLUMNS = [
  'time',
  'node',
  'source_namespace',
  'source_pod',
  'source_ip',
  'source_port',
  'source_identity',
  'destination_namespace',
  'destination_pod',
  'destination_ip',
  'destination_port',
  'destination_identity',
  'destination_names',
  'protocol',
  'type',
  'l7',
  'direction',
  'verdict',
  'drop_reason',
  'tcp_flags',
  'policy',
];

function csvLine(r: FlowRow): string {
  const cells = [
    new Date(r.timeMs).toISOString(),
    r.node,
    r.source.namespace ?? '',
    r.source.pod ?? '',
    r.source.ip ?? '',
    r.source.port ?? '',
    r.source.identity,
    r.destination.namespace ?? '',
    r.destination.pod ?? '',
    r.destination.ip ?? '',
    r.destination.port ?? '',
    r.destination.identity,
    (r.destination.names ?? []).join(' '),
    r.protocol,
    r.type,
    r.l7,
    r.direction,
    r.verdict,
    r.dropReason,
    r.tcpFlags,
    r.policy,
  ];
  return `${cells.map(csvCell).join(',')}\n`;
}

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function parseLabel(text: string): Label {
  const colon = text.indexOf(':');
  const source = colon < 0 ? 'unspec' : text.slice(0, colon);
  const rest = colon < 0 ? text : text.slice(colon + 1);
  const eq = rest.indexOf('=');
  return eq < 0 ? { source, key: rest, value: '' } : { source, key: rest.slice(0, eq), value: rest.slice(eq + 1) };
}

function send(c: EventClient, event: string, data: unknown): void {
  // A browser that does not keep up loses updates rather than growing the server's buffers.
  if (c.res.writableLength > 4 << 20) return;
  c.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

function sendBody(res: ServerResponse, type: string, body: Buffer, cache: string): void {
  res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': cache });
  res.end(body);
}
