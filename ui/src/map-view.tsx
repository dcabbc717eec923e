// The service map: one cytoscape node per card, one edge per (source, destination, protocol,
// port). Cards sit in Hubble UI's columns (from-world, selected namespaces, other namespaces,
// to-world) at positions computed here, so no layout algorithm runs on updates; each update is
// one batch that adds, removes and changes only what differs from the last map.
import cytoscape, { type Core, type ElementDefinition } from 'cytoscape';
import { useEffect, useRef } from 'preact/hooks';
import type { Card, CardColumn, MapEdge, MapEvent } from '../../src/ui/ui-api-types.js';

export interface MapSelection {
  readonly kind: 'card' | 'edge';
  readonly id: string;
}

/**
 * The browser's copy of the map, brought up to date by each map event (applyMapEvent), and what
 * changed since the map view last drew it: several events may arrive between two renders, and
 * each carries only its own changes.
 */
export interface MapModel {
  cards: ReadonlyArray<readonly [string, CardColumn]>;
  readonly edges: Map<string, MapEdge>;
  namespaces: readonly string[];
  flowsInWindow: number;
  windowSeconds: number;
  last: MapEvent | undefined;
  /** Redraw everything (a full event arrived). */
  isAllDirty: boolean;
  isCardsDirty: boolean;
  /** Edges added, changed or removed since the last draw. */
  readonly dirtyEdges: Set<string>;
}

export function newMapModel(): MapModel {
  return {
    cards: [],
    edges: new Map(),
    namespaces: [],
    flowsInWindow: 0,
    windowSeconds: 0,
    last: undefined,
    isAllDirty: false,
    isCardsDirty: false,
    dirtyEdges: new Set(),
  };
}

export function applyMapEvent(m: MapModel, e: MapEvent): void {
  if (e.full) {
    m.edges.clear();
    m.dirtyEdges.clear();
    m.isAllDirty = true;
  }
  for (const x of e.edges) {
    m.edges.set(x.id, x);
    if (!m.isAllDirty) m.dirtyEdges.add(x.id);
  }
  for (const id of e.removedEdges) {
    m.edges.delete(id);
    if (!m.isAllDirty) m.dirtyEdges.add(id);
  }
  if (e.cards !== undefined) {
    m.cards = e.cards;
    m.isCardsDirty = true;
  }
  m.namespaces = e.namespaces;
  m.flowsInWindow = e.flowsInWindow;
  m.windowSeconds = e.windowSeconds;
  m.last = e;
}

/** Above this many edges, labels show only on the selected edge and edges are drawn straight. */
const LARGE_EDGES = 800;

interface Props {
  readonly model: MapModel;
  readonly version: number;
  readonly cards: ReadonlyMap<string, Card>;
  readonly selection: MapSelection | undefined;
  readonly onSelectCard: (id: string) => void;
  readonly onSelectEdge: (edge: MapEdge) => void;
  readonly onClear: () => void;
}

const COLUMNS: readonly CardColumn[] = ['from-world', 'namespace', 'other', 'to-world'];
const CARD_W = 190;
const CARD_H = 46;
const ROW_H = 70;
const COL_GAP = 110;

export function MapView(p: Props) {
  const box = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | undefined>(undefined);
  const edges = useRef(new Map<string, MapEdge>());
  const order = useRef<string[]>([]);
  const focused = useRef(-1);
  const wasLarge = useRef(false);
  const handlers = useRef(p);
  handlers.current = p;

  useEffect(() => {
    const c = cytoscape({
      container: box.current!,
      elements: [],
      layout: { name: 'preset' },
      style: STYLE,
      minZoom: 0.05,
      maxZoom: 3,
      textureOnViewport: true,
      hideEdgesOnViewport: true,
      boxSelectionEnabled: false,
      autoungrabify: true,
      // ?renderer=webgl: cytoscape's WebGL renderer (a preview in 3.31+), measured in bench/ui.bench.ts.
      ...(new URLSearchParams(location.search).get('renderer') === 'webgl'
        ? ({ renderer: { name: 'canvas', webgl: true } } as Record<string, unknown>)
        : {}),
    });
    c.on('tap', 'node', (e) => handlers.current.onSelectCard(e.target.id()));
    c.on('tap', 'edge', (e) => {
      const edge = edges.current.get(e.target.id());
      if (edge !== undefined) handlers.current.onSelectEdge(edge);
    });
    c.on('tap', (e) => {
      if (e.target === c) handlers.current.onClear();
    });
    cy.current = c;
    // The tests and the benchmark read the map through this hook (a canvas has no DOM to query).
    (window as unknown as { __membraneMap: unknown }).__membraneMap = {
      cards: () => c.nodes().map((n) => n.id()),
      edges: () => c.edges().map((e) => ({ ...(edges.current.get(e.id()) ?? {}), classes: e.classes() })),
      point: (id: string) => {
        const el = c.getElementById(id);
        if (el.empty()) return undefined;
        const pos = el.isEdge() ? el.renderedMidpoint() : (el as cytoscape.NodeSingular).renderedPosition();
        const r = box.current!.getBoundingClientRect();
        return { x: r.left + pos.x, y: r.top + pos.y };
      },
    };
    const resize = new ResizeObserver(() => c.resize());
    resize.observe(box.current!);
    return () => {
      resize.disconnect();
      c.destroy();
    };
  }, []);

  useEffect(() => {
    const c = cy.current;
    const m = p.model;
    if (c === undefined || m.last === undefined) return;
    const isFirst = c.nodes().length === 0;
    const isLarge = m.edges.size > LARGE_EDGES;
    const isAll = m.isAllDirty;
    const add: ElementDefinition[] = [];
    c.batch(() => {
      if (isAll || m.isCardsDirty) {
        const pos = layout(m.cards, [...m.edges.values()]);
        c.nodes().forEach((n) => {
          if (!pos.has(n.id())) c.remove(n);
        });
        for (const [id] of m.cards) {
          const at = pos.get(id)!;
          const n = c.getElementById(id);
          if (n.empty()) {
            const card = p.cards.get(id);
            add.push({
              group: 'nodes',
              data: { id, label: cardLabel(card, id) },
              position: at,
              classes: card?.kind ?? 'workload',
            });
          } else {
            const old = n.position();
            if (old.x !== at.x || old.y !== at.y) n.position(at);
          }
        }
        // Nodes first: an edge needs both ends.
        if (add.length > 0) c.add(add.splice(0));
      }
      if (isAll)
        c.edges().forEach((e) => {
          if (!m.edges.has(e.id())) c.remove(e);
        });
      if (isLarge !== wasLarge.current) {
        wasLarge.current = isLarge;
        c.edges().forEach((e) => {
          const edge = m.edges.get(e.id());
          e.classes(edgeClasses(edge?.state ?? 'forwarded', isLarge));
        });
      }
      const changed = isAll ? m.edges.keys() : m.dirtyEdges.values();
      for (const id of changed) {
        const e = m.edges.get(id);
        const el = c.getElementById(id);
        if (e === undefined) {
          el.remove();
          continue;
        }
        const label = edgeLabel(e);
        const cls = edgeClasses(e.state, isLarge);
        if (el.empty()) {
          if (c.getElementById(e.source).empty() || c.getElementById(e.target).empty()) continue;
          add.push({
            group: 'edges',
            data: { id, source: e.source, target: e.target, label, w: width(e) },
            classes: cls,
          });
        } else {
          // A large map draws edges at fixed widths without labels: only a change of state (the
          // colour) is worth a restyle there, which keeps a second's update cheap at 6,000 edges.
          if (!isLarge) {
            const w = width(e);
            if (el.data('label') !== label || el.data('w') !== w) el.data({ label, w });
          }
          if (!el.hasClass(e.state)) el.classes(cls);
        }
      }
      if (add.length > 0) c.add(add);
    });
    m.isAllDirty = false;
    m.isCardsDirty = false;
    m.dirtyEdges.clear();
    edges.current = m.edges;
    order.current = m.cards.map(([id]) => id);
    if (isFirst && c.nodes().length > 0) c.fit(undefined, 30);
  }, [p.version]);

  useEffect(() => {
    const c = cy.current;
    if (c === undefined) return;
    c.elements('.selected').removeClass('selected');
    if (p.selection === undefined) return;
    const el = c.getElementById(p.selection.id);
    el.addClass('selected');
    const edge = p.selection.kind === 'edge' ? edges.current.get(p.selection.id) : undefined;
    if (edge !== undefined) el.data('label', edgeLabel(edge));
  }, [p.selection, p.version]);

  const onKey = (e: KeyboardEvent) => {
    const c = cy.current;
    if (c === undefined) return;
    const ids = order.current;
    const move = (d: number) => {
      if (ids.length === 0) return;
      focused.current = (focused.current + d + ids.length) % ids.length;
      const n = c.getElementById(ids[focused.current]!);
      c.elements('.focused').removeClass('focused');
      n.addClass('focused');
      c.animate({ center: { eles: n } }, { duration: 150 });
    };
    if (e.key === 'ArrowDown' || e.key === 'ArrowRight') move(1);
    else if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') move(-1);
    else if (e.key === 'Enter' && focused.current >= 0 && ids[focused.current] !== undefined)
      handlers.current.onSelectCard(ids[focused.current]!);
    else if (e.key === '+' || e.key === '=') c.zoom({ level: c.zoom() * 1.2, renderedPosition: center(c) });
    else if (e.key === '-') c.zoom({ level: c.zoom() / 1.2, renderedPosition: center(c) });
    else if (e.key === '0') c.fit(undefined, 30);
    else return;
    e.preventDefault();
  };

  return (
    <div
      class="map"
      ref={box}
      // biome-ignore lint/a11y/noNoninteractiveTabindex: the map is a canvas driven by the keyboard handler below
      tabIndex={0}
      role="application"
      aria-label="Service map: arrow keys move between cards, Enter filters by the card, + and - zoom, 0 fits"
      onKeyDown={onKey}
    />
  );
}

function center(c: Core) {
  return { x: c.width() / 2, y: c.height() / 2 };
}

/**
 * Column by column (Hubble UI's order). Inside a column, cards go left to right by their depth in
 * the column's own traffic (callers before callees, as far as cycles allow), and each depth wraps
 * into sub-columns so a column of 2,000 cards stays square-ish.
 */
function layout(
  cards: ReadonlyArray<readonly [string, CardColumn]>,
  edges: readonly MapEdge[],
): Map<string, { x: number; y: number }> {
  const out = new Map<string, { x: number; y: number }>();
  const columnOf = new Map(cards);
  const depth = new Map<string, number>();
  for (const [id] of cards) depth.set(id, 0);
  // Longest path from a column's sources, bounded: a cycle stops growing after MAX_DEPTH rounds.
  for (let round = 0; round < MAX_DEPTH; round++) {
    let changed = false;
    for (const e of edges) {
      if (e.source === e.target || columnOf.get(e.source) !== columnOf.get(e.target)) continue;
      const d = depth.get(e.source)! + 1;
      if (d > depth.get(e.target)! && d <= MAX_DEPTH) {
        depth.set(e.target, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  let x = 0;
  for (const col of COLUMNS) {
    const ids = cards.filter(([, c]) => c === col).map(([id]) => id);
    if (ids.length === 0) continue;
    const rows = Math.max(6, Math.ceil(Math.sqrt(ids.length * 2.5)));
    for (let d = 0; d <= MAX_DEPTH; d++) {
      const at = ids.filter((id) => depth.get(id) === d);
      if (at.length === 0) continue;
      at.forEach((id, i) => {
        out.set(id, { x: x + Math.floor(i / rows) * (CARD_W + 130), y: (i % rows) * ROW_H });
      });
      x += Math.ceil(at.length / rows) * (CARD_W + 130);
    }
    x += COL_GAP;
  }
  return out;
}

const MAX_DEPTH = 6;

/** A large map draws edges straight and labels only the selected one. */
function edgeClasses(state: string, isLarge: boolean): string {
  return isLarge ? `${state} straight` : `${state} labelled`;
}

function cardLabel(card: Card | undefined, id: string): string {
  if (card === undefined) return id;
  return card.namespace !== undefined ? `${card.name}\n${card.namespace}` : card.name;
}

function edgeLabel(e: MapEdge): string {
  let s = `${e.protocol}${e.port ? `/${e.port}` : ''} · ${e.flows}`;
  if (e.verdicts.dropped > 0) s += ` (${e.verdicts.dropped} dropped)`;
  if (e.http !== undefined) {
    s += `\n${e.http.requestsPerSecond.toFixed(1)} req/s · ${(e.http.errorRate * 100).toFixed(0)}% err`;
    if (e.http.p95Ms !== undefined) s += ` · p50 ${fmtMs(e.http.p50Ms!)} p95 ${fmtMs(e.http.p95Ms)}`;
  }
  return s;
}

function fmtMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)}ms` : `${Math.round(ms)}ms`;
}

/** In half pixels, so small count changes do not restyle the edge. */
function width(e: MapEdge): number {
  const w = Math.min(8, 1.5 + Math.log10(1 + e.flows)) + (e.verdicts.dropped > 0 ? 1.5 : 0);
  return Math.round(w * 2) / 2;
}

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: 'node',
    style: {
      shape: 'round-rectangle',
      width: CARD_W,
      height: CARD_H,
      'background-color': '#ffffff',
      'border-width': 1.5,
      'border-color': '#868e96',
      label: 'data(label)',
      'text-wrap': 'wrap',
      'text-max-width': `${CARD_W - 12}px`,
      'text-valign': 'center',
      'text-halign': 'center',
      'font-size': 13,
      'font-family': 'system-ui, sans-serif',
      color: '#212529',
      'min-zoomed-font-size': 7,
    },
  },
  { selector: 'node.world, node.fqdn, node.ip', style: { 'background-color': '#e7f5ff', 'border-color': '#1c7ed6' } },
  {
    selector: 'node.host, node.remote-node, node.reserved',
    style: { 'background-color': '#fff9db', 'border-color': '#f08c00' },
  },
  { selector: 'node.kube-dns', style: { 'background-color': '#f3f0ff', 'border-color': '#7048e8' } },
  { selector: 'node.focused', style: { 'border-width': 4, 'border-color': '#1971c2' } },
  { selector: 'node.selected', style: { 'border-width': 4, 'border-color': '#e8590c' } },
  {
    selector: 'edge',
    style: {
      width: 'data(w)',
      'curve-style': 'bezier',
      'target-arrow-shape': 'triangle',
      'line-color': '#69db7c',
      'target-arrow-color': '#69db7c',
      'text-wrap': 'wrap',
      'font-size': 10,
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.85,
      'text-background-padding': '2px',
      color: '#343a40',
      'min-zoomed-font-size': 9,
    },
  },
  { selector: 'edge.labelled, edge.selected', style: { label: 'data(label)' } },
  { selector: 'edge.straight', style: { 'curve-style': 'straight', width: 1.5, 'arrow-scale': 0.8 } },
  { selector: 'edge.straight.dropped, edge.straight.mixed', style: { width: 3 } },
  { selector: 'edge.dropped', style: { 'line-color': '#e03131', 'target-arrow-color': '#e03131' } },
  {
    selector: 'edge.mixed',
    style: { 'line-color': '#e03131', 'target-arrow-color': '#e03131', 'line-style': 'dashed' },
  },
  { selector: 'edge.selected', style: { 'line-color': '#e8590c', 'target-arrow-color': '#e8590c', width: 6 } },
];
