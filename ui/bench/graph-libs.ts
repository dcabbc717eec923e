// bench/ui.bench.ts's graph-library comparison: the same map (2,000 cards, 6,000 edges in a grid
// of columns) drawn by cytoscape (canvas, or its WebGL preview) or by sigma + graphology (WebGL),
// with 300 edges changing colour and 100 changing width every second, as a live map does.
// ?lib=cytoscape|cytoscape-webgl|sigma. Not part of the app.
import cytoscape from 'cytoscape';
import Graph from 'graphology';
import Sigma from 'sigma';

const CARDS = 2000;
const lib = new URLSearchParams(location.search).get('lib') ?? 'cytoscape';
const box = document.getElementById('graph')!;
const pos = (i: number) => ({ x: Math.floor(i / 50) * 260, y: (i % 50) * 70 });
const edges: [string, number, number][] = [];
for (let i = 0; i < CARDS; i++)
  for (const j of [(i * 7 + 1) % CARDS, (i * 13 + 5) % CARDS, (i * 31 + 11) % CARDS])
    edges.push([`e${edges.length}`, i, j]);

let tick = 0;
const pick = (n: number, salt: number) =>
  Array.from({ length: n }, (_, k) => edges[(tick * 977 + k * 131 + salt) % edges.length]!);

if (lib === 'sigma') {
  const g = new Graph({ multi: true });
  for (let i = 0; i < CARDS; i++) g.addNode(`n${i}`, { ...pos(i), size: 6, label: `app-${i}`, color: '#868e96' });
  for (const [id, s, t] of edges) g.addEdgeWithKey(id, `n${s}`, `n${t}`, { size: 1, color: '#69db7c' });
  new Sigma(g, box);
  setInterval(() => {
    tick++;
    for (const [id] of pick(300, 1)) g.setEdgeAttribute(id, 'color', tick % 2 ? '#e03131' : '#69db7c');
    for (const [id] of pick(100, 7)) g.setEdgeAttribute(id, 'size', 1 + (tick % 3));
  }, 1000);
} else {
  const cy = cytoscape({
    container: box,
    layout: { name: 'preset' },
    elements: [
      ...Array.from({ length: CARDS }, (_, i) => ({
        group: 'nodes' as const,
        data: { id: `n${i}`, label: `app-${i}` },
        position: pos(i),
      })),
      ...edges.map(([id, s, t]) => ({ group: 'edges' as const, data: { id, source: `n${s}`, target: `n${t}` } })),
    ],
    style: [
      {
        selector: 'node',
        style: {
          shape: 'round-rectangle',
          width: 190,
          height: 46,
          'background-color': '#fff',
          'border-width': 1.5,
          label: 'data(label)',
          'min-zoomed-font-size': 7,
        },
      },
      {
        selector: 'edge',
        style: { 'curve-style': 'straight', width: 1.5, 'line-color': '#69db7c', 'target-arrow-shape': 'triangle' },
      },
      { selector: 'edge.red', style: { 'line-color': '#e03131', width: 3 } },
    ],
    textureOnViewport: true,
    hideEdgesOnViewport: true,
    ...(lib === 'cytoscape-webgl' ? ({ renderer: { name: 'canvas', webgl: true } } as Record<string, unknown>) : {}),
  });
  cy.fit();
  setInterval(() => {
    tick++;
    cy.batch(() => {
      for (const [id] of pick(300, 1)) cy.getElementById(id).toggleClass('red', tick % 2 === 1);
      for (const [id] of pick(100, 7)) cy.getElementById(id).toggleClass('red');
    });
  }, 1000);
}
(globalThis as unknown as { __graphReady: boolean }).__graphReady = true;
