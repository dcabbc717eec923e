// The UI under 100k flows/s from 2,000 workloads, measured in the real browser (Debian's chromium,
// headless, through playwright-core): frame time p95 and long tasks while the map and the table
// update, browser heap over a bounded soak, and the server's CPU per 100k flows/s. The candidate
// is the page on the server's aggregates (/api/events); the baseline is the same page fed every
// raw flow and aggregating in the browser (?feed=raw), in alternating rounds of the same run.
// A second part sends the flows through the real relay path (node Observer gRPC server -> Relay
// -> the UI server's GetFlows feed) and reports the UI server's CPU there.
// Run: npx tsc -p . && npm run build:ui && node dist/bench/ui.bench.js
//   (UI_BENCH_RATE=flows/s, default 100000; UI_BENCH_SOAK_S, default 100)
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CDPSession, Page } from 'playwright-core';
import { chromiumMissing, type HeadlessBrowser, launchChromium } from '../test/ui/browser.js';

const RATE = Number(process.env.UI_BENCH_RATE ?? 100_000);
const ROUND_S = Number(process.env.UI_BENCH_ROUND_S ?? 15);
const WARMUP_S = 4;
const SOAK_S = Number(process.env.UI_BENCH_SOAK_S ?? 100);
const RESULTS = new URL('../../bench/results/ui.md', import.meta.url).pathname;
const SERVER = new URL('./ui-bench-server.js', import.meta.url).pathname;

interface Stats {
  cpuUs: number;
  rssBytes: number;
  [k: string]: number;
}

interface PhaseResult {
  frameP50: number;
  frameP95: number;
  frameMax: number;
  frames: number;
  longTasks: number;
  longTaskMs: number;
  serverCores: number;
  flowsPerSecond: number;
  browserFlowsPerSecond?: number;
  edges: number;
  cards: number;
  heapMiB: number;
}

async function main(): Promise<void> {
  const missing = chromiumMissing();
  if (missing !== undefined) throw new Error(`ui.bench: ${missing}`);
  const loadStart = loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'mbr-ui-bench-'));
  let browser: HeadlessBrowser | undefined;
  try {
    const ingest = await start(children, ['ingest', String(RATE)]);
    browser = await launchChromium();
    await browser.context.addInitScript(PERF_PROBE);

    const agg: PhaseResult[] = [];
    const raw: PhaseResult[] = [];
    for (let round = 0; round < 2; round++) {
      agg.push(await phase(browser, ingest, 'agg', ingest.ready.url as string));
      raw.push(
        await phase(
          browser,
          ingest,
          'raw',
          `${ingest.ready.url}/?feed=raw&raw=${encodeURIComponent(ingest.ready.raw as string)}`,
        ),
      );
    }
    const soak = await soakPhase(browser, ingest);

    const cluster = await start(children, ['cluster', String(RATE), dir]);
    const relayUi = await start(children, ['relay-ui', cluster.ready.relay as string]);
    const relay = await relayPhase(browser, cluster, relayUi);

    for (const c of children.splice(0)) c.kill('SIGTERM');
    const libs = await graphLibs(browser, dir);

    const md = report({ agg, raw, soak, relay, libs, loadStart, poolFlows: ingest.ready.poolFlows as number });
    writeFileSync(RESULTS, md);
    process.stdout.write(md);
  } finally {
    await browser?.close();
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Child {
  readonly proc: ChildProcess;
  readonly ready: Record<string, unknown>;
  stats(): Promise<Stats>;
  phase(p: string): void;
}

async function start(children: ChildProcess[], args: string[]): Promise<Child> {
  const proc = fork(SERVER, args, {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    execArgv: ['--max-semi-space-size=32'],
  });
  children.push(proc);
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /READY (.*)\n/.exec(buf);
      if (m) resolve(JSON.parse(m[1]!));
    });
    proc.once('exit', (code) => reject(new Error(`ui-bench-server ${args[0]} exited with ${code}`)));
  });
  return {
    proc,
    ready,
    stats: () =>
      new Promise((resolve) => {
        proc.once('message', (m: { stats: Stats }) => resolve(m.stats));
        proc.send({ cmd: 'stats' });
      }),
    phase: (p) => proc.send({ cmd: 'phase', phase: p }),
  };
}

/** One round: a fresh tab, warm-up, then ROUND_S seconds measured. */
async function phase(b: HeadlessBrowser, server: Child, which: 'agg' | 'raw', url: string): Promise<PhaseResult> {
  server.phase(which);
  const page = await b.context.newPage();
  const cdp = await b.context.newCDPSession(page);
  await cdp.send('Performance.enable');
  try {
    await page.goto(url);
    await sleep(WARMUP_S * 1000);
    return await measure(page, cdp, server, which === 'agg' ? 'ingested' : 'rawSent', ROUND_S);
  } finally {
    server.phase('idle');
    await page.close();
  }
}

async function measure(
  page: Page,
  cdp: CDPSession,
  server: Child,
  counter: string,
  seconds: number,
): Promise<PhaseResult> {
  await page.evaluate(() => (globalThis as unknown as { __perfReset(): void }).__perfReset());
  const rawBefore = await rawFlows(page);
  const s0 = await server.stats();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const s1 = await server.stats();
  const elapsed = (performance.now() - t0) / 1000;
  const perf = await page.evaluate(() =>
    (globalThis as unknown as { __perfRead(): { frames: number[]; long: number[] } }).__perfRead(),
  );
  const map = await page.evaluate(() => {
    const m = (globalThis as unknown as { __membraneMap?: { cards(): string[]; edges(): unknown[] } }).__membraneMap;
    return m === undefined ? { cards: 0, edges: 0 } : { cards: m.cards().length, edges: m.edges().length };
  });
  const rawAfter = await rawFlows(page);
  const heap = await heapMiB(cdp);
  const frames = [...perf.frames].sort((a, b) => a - b);
  const flows = (s1[counter]! - s0[counter]!) / elapsed;
  return {
    frameP50: pct(frames, 0.5),
    frameP95: pct(frames, 0.95),
    frameMax: frames[frames.length - 1] ?? 0,
    frames: frames.length,
    longTasks: perf.long.length,
    longTaskMs: perf.long.reduce((a, x) => a + x, 0),
    serverCores: (s1.cpuUs - s0.cpuUs) / 1e6 / elapsed,
    flowsPerSecond: flows,
    ...(rawAfter !== undefined && rawBefore !== undefined
      ? { browserFlowsPerSecond: (rawAfter - rawBefore) / elapsed }
      : {}),
    edges: map.edges,
    cards: map.cards,
    heapMiB: heap,
  };
}

/** The aggregated page for SOAK_S seconds: heap after a forced GC every 10 s, frames throughout. */
async function soakPhase(b: HeadlessBrowser, server: Child) {
  server.phase('agg');
  const page = await b.context.newPage();
  const cdp = await b.context.newCDPSession(page);
  await cdp.send('Performance.enable');
  try {
    await page.goto(server.ready.url as string);
    await sleep(WARMUP_S * 1000);
    await page.evaluate(() => (globalThis as unknown as { __perfReset(): void }).__perfReset());
    const s0 = await server.stats();
    const heap: number[] = [];
    const rss: number[] = [];
    const t0 = performance.now();
    for (let t = 0; t < SOAK_S; t += 10) {
      await sleep(10_000);
      heap.push(await heapMiB(cdp));
      rss.push((await server.stats()).rssBytes / 2 ** 20);
    }
    const s1 = await server.stats();
    const elapsed = (performance.now() - t0) / 1000;
    const perf = await page.evaluate(() =>
      (globalThis as unknown as { __perfRead(): { frames: number[]; long: number[] } }).__perfRead(),
    );
    const frames = [...perf.frames].sort((a, c) => a - c);
    return {
      seconds: elapsed,
      heap,
      rss,
      frameP95: pct(frames, 0.95),
      longTasks: perf.long.length,
      longTaskMs: perf.long.reduce((a, x) => a + x, 0),
      serverCores: (s1.cpuUs - s0.cpuUs) / 1e6 / elapsed,
      flowsPerSecond: (s1.ingested! - s0.ingested!) / elapsed,
    };
  } finally {
    server.phase('idle');
    await page.close();
  }
}

const LIBS = ['cytoscape', 'cytoscape-webgl', 'sigma'] as const;

/** ui/bench/graph-libs.html, built here with vite, each library in 2 alternating rounds. */
async function graphLibs(b: HeadlessBrowser, dir: string) {
  const out = join(dir, 'graph-libs');
  const { build } = await import('vite');
  await build({
    configFile: false,
    root: new URL('../../ui/bench', import.meta.url).pathname,
    base: './',
    logLevel: 'warn',
    build: {
      outDir: out,
      emptyOutDir: true,
      rollupOptions: { input: join(new URL('../../ui/bench', import.meta.url).pathname, 'graph-libs.html') },
    },
  });
  const server = createServer((req, res) => {
    const path = join(out, new URL(req.url ?? '/', 'http://x').pathname);
    if (!path.startsWith(out)) return void res.writeHead(403).end();
    try {
      const body = readFileSync(path);
      res.writeHead(200, { 'content-type': path.endsWith('.js') ? 'text/javascript' : 'text/html' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graph-libs.html`;
  const results = new Map<string, { p50: number; p95: number; longTasks: number; longTaskMs: number }[]>();
  try {
    for (let round = 0; round < 2; round++)
      for (const lib of LIBS) {
        const page = await b.context.newPage();
        try {
          await page.goto(`${url}?lib=${lib}`);
          await page.waitForFunction(
            () => (globalThis as unknown as { __graphReady?: boolean }).__graphReady === true,
            undefined,
            {
              timeout: 60_000,
            },
          );
          await sleep(WARMUP_S * 1000);
          await page.evaluate(() => (globalThis as unknown as { __perfReset(): void }).__perfReset());
          await sleep(10_000);
          const perf = await page.evaluate(() =>
            (globalThis as unknown as { __perfRead(): { frames: number[]; long: number[] } }).__perfRead(),
          );
          const frames = [...perf.frames].sort((x, y) => x - y);
          const list = results.get(lib) ?? [];
          list.push({
            p50: pct(frames, 0.5),
            p95: pct(frames, 0.95),
            longTasks: perf.long.length,
            longTaskMs: perf.long.reduce((a, x) => a + x, 0),
          });
          results.set(lib, list);
        } finally {
          await page.close();
        }
      }
  } finally {
    server.close();
  }
  return results;
}

async function relayPhase(b: HeadlessBrowser, cluster: Child, ui: Child) {
  const page = await b.context.newPage();
  try {
    await page.goto(ui.ready.url as string);
    cluster.phase('run');
    await sleep(WARMUP_S * 1000);
    const c0 = await cluster.stats();
    const u0 = await ui.stats();
    const t0 = performance.now();
    await sleep(ROUND_S * 1000);
    const c1 = await cluster.stats();
    const u1 = await ui.stats();
    const elapsed = (performance.now() - t0) / 1000;
    return {
      emittedPerSecond: (c1.emitted! - c0.emitted!) / elapsed,
      receivedPerSecond: (u1.received! - u0.received!) / elapsed,
      uiCores: (u1.cpuUs - u0.cpuUs) / 1e6 / elapsed,
      nodeAndRelayCores: (c1.cpuUs - c0.cpuUs) / 1e6 / elapsed,
    };
  } finally {
    cluster.phase('idle');
    await page.close();
  }
}

function report(r: {
  agg: PhaseResult[];
  raw: PhaseResult[];
  soak: Awaited<ReturnType<typeof soakPhase>>;
  relay: Awaited<ReturnType<typeof relayPhase>>;
  libs: Awaited<ReturnType<typeof graphLibs>>;
  loadStart: string;
  poolFlows: number;
}): string {
  const loadEnd = loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
  const f = (x: number, d = 1) => x.toFixed(d);
  const row = (name: string, p: PhaseResult, i: number) =>
    `| ${name} ${i + 1} | ${f(p.frameP50)} | ${f(p.frameP95)} | ${f(p.frameMax)} | ${p.longTasks} (${f(p.longTaskMs, 0)} ms) | ${f(p.flowsPerSecond / 1000, 0)}k${p.browserFlowsPerSecond !== undefined ? ` (browser got ${f(p.browserFlowsPerSecond / 1000, 0)}k)` : ''} | ${f(p.serverCores, 2)} | ${p.cards} / ${p.edges} | ${f(p.heapMiB)} |`;
  const per100k = (cores: number, rate: number) => (rate > 0 ? (cores * 100_000) / rate : Number.NaN);
  const s = r.soak;
  return `# bench/ui

Command: \`npx tsc -p . && npm run build:ui && node dist/bench/ui.bench.js\`

Date: ${new Date().toISOString()}  
Node: ${process.version}  
CPU: ${cpus()[0]?.model ?? '?'} x ${cpus().length}, shared with other work: load average ${r.loadStart} at the start, ${loadEnd} at the end (figures are noisy)  
Browser: Debian's chromium, headless, --disable-gpu (software rendering), 1280x720, driven by playwright-core

Workload: ${RATE / 1000}k flows/s from 2,000 workloads in 20 namespaces (6,000 pod edges, 200 to FQDNs, 1 in 30 denied,
1 in 4 with HTTP requests and responses), a pool of ${r.poolFlows} prebuilt flows replayed with fresh timestamps.

## Server aggregation (candidate) vs raw flows to the browser (baseline), alternating rounds

Flows enter the UI server through \`UiServer.ingest\` (its ingestion path: aggregator + table ring),
in a process of their own whose CPU is measured; the page gets the map every second and at most
200 table rows every 500 ms. The baseline is the same page with \`?feed=raw\`: every flow as JSON
over Server-Sent Events (serialised ahead, so the sender costs little), aggregated in the browser
by the same FlowAggregator. Each round: a fresh tab, ${WARMUP_S} s warm-up, ${ROUND_S} s measured.

| round | frame p50 ms | frame p95 ms | frame max ms | long tasks | flows/s in | server cores | cards / edges drawn | JS heap MiB |
|---|---|---|---|---|---|---|---|---|
${r.agg.map((p, i) => row('aggregated', p, i)).join('\n')}
${r.raw.map((p, i) => row('raw', p, i)).join('\n')}

Server CPU per 100k flows/s (ingestion path, aggregated rounds): ${r.agg.map((p) => f(per100k(p.serverCores, p.flowsPerSecond), 2)).join(', ')} cores (goal <= 0.5).

## Soak: aggregated page for ${f(s.seconds, 0)} s (the issue's 10 minutes, scaled down)

JS heap after a forced GC, every 10 s (MiB): ${s.heap.map((x) => f(x)).join(', ')}  
UI server RSS, every 10 s (MiB): ${s.rss.map((x) => f(x, 0)).join(', ')}  
Frame p95 over the soak: ${f(s.frameP95)} ms; long tasks: ${s.longTasks} (${f(s.longTaskMs, 0)} ms in total)  
Flows in: ${f(s.flowsPerSecond / 1000, 0)}k/s; server: ${f(s.serverCores, 2)} cores = ${f(per100k(s.serverCores, s.flowsPerSecond), 2)} cores per 100k flows/s

## Through the real relay path

A node (FlowObserver + its Observer gRPC server) fed at ${RATE / 1000}k flows/s, the real Relay in front of it (both in one
process), and the UI server reading the relay with its GetFlows follow feed (grpc-js client, protobufjs decoding), in a
process of its own, with the aggregated page open. ${ROUND_S} s measured.

| emitted flows/s | received by the UI server flows/s | UI server cores | per 100k flows/s | node + relay cores |
|---|---|---|---|---|
| ${f(r.relay.emittedPerSecond / 1000, 0)}k | ${f(r.relay.receivedPerSecond / 1000, 0)}k | ${f(r.relay.uiCores, 2)} | ${f(per100k(r.relay.uiCores, r.relay.receivedPerSecond), 2)} | ${f(r.relay.nodeAndRelayCores, 2)} |

## Graph libraries: 2,000 cards and 6,000 edges, 400 edges restyled per second

\`ui/bench/graph-libs.html\` (not part of the app): the same grid drawn by each library, 300 edges changing colour and 100
changing width every second; ${WARMUP_S} s warm-up, 10 s measured, 2 alternating rounds. WebGL here is chromium's software
implementation (SwiftShader): --disable-gpu, as in CI.

| library | frame p50 ms | frame p95 ms | long tasks |
|---|---|---|---|
${[...r.libs.entries()].flatMap(([lib, rounds]) => rounds.map((x, i) => `| ${lib} ${i + 1} | ${f(x.p50)} | ${f(x.p95)} | ${x.longTasks} (${f(x.longTaskMs, 0)} ms) |`)).join('\n')}
`;
}

const PERF_PROBE = `
(() => {
  const p = { frames: [], long: [], last: 0 };
  const loop = (t) => { if (p.last) p.frames.push(t - p.last); p.last = t; requestAnimationFrame(loop); };
  requestAnimationFrame(loop);
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) p.long.push(e.duration); })
      .observe({ entryTypes: ['longtask'] });
  } catch {}
  globalThis.__perfReset = () => { p.frames = []; p.long = []; p.last = 0; };
  globalThis.__perfRead = () => ({ frames: p.frames, long: p.long });
})();
`;

async function rawFlows(page: Page): Promise<number | undefined> {
  return page.evaluate(() => (globalThis as unknown as { __rawFlows?: number }).__rawFlows);
}

async function heapMiB(cdp: CDPSession): Promise<number> {
  await cdp.send('HeapProfiler.collectGarbage');
  const m = (await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
  return (m.metrics.find((x) => x.name === 'JSHeapUsedSize')?.value ?? 0) / 2 ** 20;
}

function pct(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

await main();
