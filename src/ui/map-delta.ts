// What a browser is sent of the map each second: only what changed enough to see. Cards are sent
// in full once; the card list (id and column) only when it changed; an edge when it is new, when
// its state changes, or when a count it shows moves past two significant digits (1,234 -> 1,300),
// and removed edges by id. At 2,000 cards and 6,000 edges a steady map costs the browser a few
// updates a second, not a redraw of everything. Pure.
import type { Card, MapEdge, MapSnapshot } from './flow-aggregator.js';
import type { MapEvent } from './ui-api-types.js';

export interface MapView {
  readonly cards: Set<string>;
  cardList: string;
  readonly edges: Map<string, string>;
}

export function newMapView(): MapView {
  return { cards: new Set(), cardList: '', edges: new Map() };
}

/** The event that brings `view` (updated in place) up to `s`. */
export function mapDelta(view: MapView, s: MapSnapshot): MapEvent {
  const isFull = view.edges.size === 0 && view.cardList === '';
  const newCards: Card[] = [];
  for (const card of s.cards)
    if (!view.cards.has(card.id)) {
      view.cards.add(card.id);
      newCards.push(card);
    }
  const list = s.cards.map((x) => [x.id, x.column] as const);
  const listKey = list.map(([id, col]) => `${id}\u0000${col}`).join('\u0001');
  const cardsChanged = listKey !== view.cardList;
  view.cardList = listKey;
  const edges: MapEdge[] = [];
  const live = new Set<string>();
  for (const e of s.edges) {
    live.add(e.id);
    const sig = edgeSignature(e);
    if (view.edges.get(e.id) === sig) continue;
    view.edges.set(e.id, sig);
    edges.push(e);
  }
  const removedEdges: string[] = [];
  for (const id of view.edges.keys())
    if (!live.has(id)) {
      view.edges.delete(id);
      removedEdges.push(id);
    }
  return {
    atMs: s.atMs,
    windowSeconds: s.windowSeconds,
    namespaces: s.namespaces,
    flowsInWindow: s.flowsInWindow,
    full: isFull,
    newCards,
    ...(cardsChanged || isFull ? { cards: list } : {}),
    edges,
    removedEdges,
  };
}

/** Two significant digits: the precision a label on a map is read at. */
export function roughly(n: number): number {
  if (n < 100) return Math.round(n);
  const scale = 10 ** (Math.floor(Math.log10(n)) - 1);
  return Math.round(n / scale) * scale;
}

function edgeSignature(e: MapEdge): string {
  const v = e.verdicts;
  let sig = `${e.state}|${roughly(e.flows)}|${roughly(v.dropped)}|${roughly(v.audit)}`;
  const h = e.http;
  if (h !== undefined)
    sig += `|${roughly(h.requestsPerSecond * 10)}|${Math.round(h.errorRate * 100)}|${roughly(h.p50Ms ?? 0)}|${roughly(h.p95Ms ?? 0)}`;
  return sig;
}
