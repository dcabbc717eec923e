// The server side of bench/ui.bench.ts, in its own process so its CPU time is its own. Modes:
//   ingest RATE      a UiServer whose flows arrive through UiServer.ingest (the server's
//                    ingestion path) at RATE flows/s, and a raw stream (the baseline: every flow,
//                    serialised ahead, as JSON batches over Server-Sent Events) on a second port;
//                    the parent picks which one runs with {phase: 'agg' | 'raw' | 'idle'}
//   cluster RATE SOCKDIR   a node (FlowObserver + Observer gRPC server) fed at RATE and the
//                    real Relay in front of it, on unix sockets in SOCKDIR
//   relay-ui SOCK    a UiServer reading the relay at SOCK through its gRPC feed
// It answers {cmd: 'stats'} with its CPU time (µs) and counts, and prints READY {...} once up.
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { InMemoryEnrichment } from '../src/hubble/flow/enrichment.js';
import type { Flow } from '../src/hubble/flow/flow.js';
import { uuidSource, wallFromMono } from '../src/hubble/flow/parser.js';
import { FlowObserver } from '../src/hubble/observer/flow-observer.js';
import { ObserverServer } from '../src/hubble/observer/observer-server.js';
import { StaticPeers } from '../src/hubble/observer/peer-source.js';
import { Relay } from '../src/hubble/relay/relay.js';
import { UiServer } from '../src/ui/ui-server.js';
import { flowPool, paced } from './ui-bench-workload.js';

const [mode, arg1, arg2] = process.argv.slice(2);
const webRoot = new URL('../../dist/ui-web', import.meta.url).pathname;
const stats: Record<string, () => number> = {};
process.on('message', (m: { cmd: string; phase?: string }) => {
  if (m.cmd === 'stats') {
    const cpu = process.cpuUsage();
    const out: Record<string, number> = { cpuUs: cpu.user + cpu.system, rssBytes: process.memoryUsage().rss };
    for (const [k, f] of Object.entries(stats)) out[k] = f();
    process.send!({ stats: out });
  } else if (m.cmd === 'phase') setPhase(m.phase!);
  else if (m.cmd === 'exit') process.exit(0);
});

let setPhase: (p: string) => void = () => {};

if (mode === 'ingest') {
  const rate = Number(arg1);
  const pool = flowPool();
  const ui = new UiServer({ webRoot });
  const url = await ui.listen(0);
  // The baseline: every flow to the browser. Serialised once, ahead (without time: the batch
  // carries it), so the sender's cost stays small and the browser is what is measured.
  const json = pool.map((f) => {
    const { time: _time, ...rest } = f;
    return JSON.stringify(rest);
  });
  const rawClients = new Set<ServerResponse>();
  const raw = createServer((req, res) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'access-control-allow-origin': '*',
      'cache-control': 'no-store',
    });
    rawClients.add(res);
    req.on('close', () => rawClients.delete(res));
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  let gen: ReturnType<typeof paced> | undefined;
  let ingested = 0;
  let rawSent = 0;
  let rawSkipped = 0;
  stats.ingested = () => ingested;
  stats.rawSent = () => rawSent;
  stats.rawSkipped = () => rawSkipped;
  setPhase = (p) => {
    gen?.stop();
    gen = undefined;
    if (p === 'agg')
      gen = paced(pool, rate, (batch) => {
        for (const f of batch) ui.ingest(f);
        ingested += batch.length;
      });
    else if (p === 'raw') {
      let at = 0;
      gen = paced(pool, rate, (batch) => {
        const parts: string[] = new Array(batch.length);
        for (let k = 0; k < batch.length; k++) {
          parts[k] = json[at]!;
          at = at + 1 === json.length ? 0 : at + 1;
        }
        const t = batch[0]!.time!.seconds;
        const frame = `event: flows\ndata: {"t":${t},"flows":[${parts.join(',')}]}\n\n`;
        for (const c of rawClients) {
          // A browser that cannot keep up: the stream would buffer without bound. Count and skip.
          if (c.writableLength > 64 << 20) rawSkipped += batch.length;
          else {
            c.write(frame);
            rawSent += batch.length;
          }
        }
      });
    }
  };
  console.log(
    `READY ${JSON.stringify({ url, raw: `http://127.0.0.1:${(raw.address() as AddressInfo).port}/raw`, poolFlows: pool.length })}`,
  );
} else if (mode === 'cluster') {
  const rate = Number(arg1);
  const dir = arg2!;
  const pool = flowPool();
  const observer = new FlowObserver({
    capacity: 65535,
    parser: {
      nodeName: 'node-0',
      enrichment: new InMemoryEnrichment({}),
      monoToWall: (m) => wallFromMono({ seconds: 0, nanos: 0 }, m),
      uuid: uuidSource('0123456789abcdef0123'),
    },
  });
  const nodeSock = join(dir, 'node.sock');
  const relaySock = join(dir, 'relay.sock');
  const node = new ObserverServer({
    observer,
    peers: new StaticPeers([{ name: 'node-0', address: `unix://${nodeSock}` }]),
  });
  await node.listen(`unix://${nodeSock}`);
  const relay = new Relay({ peerService: `unix://${nodeSock}`, retryMs: 1000 });
  relay.start();
  await relay.listen(`unix://${relaySock}`);
  let emitted = 0;
  stats.emitted = () => emitted;
  let gen: ReturnType<typeof paced> | undefined;
  setPhase = (p) => {
    gen?.stop();
    gen = undefined;
    if (p === 'run')
      gen = paced(pool, rate, (batch) => {
        for (const f of batch) observer.ingestFlow(f as Flow);
        emitted += batch.length;
      });
  };
  console.log(`READY ${JSON.stringify({ relay: `unix://${relaySock}` })}`);
} else if (mode === 'relay-ui') {
  const ui = new UiServer({ webRoot, server: arg1 });
  const url = await ui.listen(0);
  stats.received = () => ui.ring.newestSeq;
  console.log(`READY ${JSON.stringify({ url })}`);
} else {
  console.error(`ui-bench-server: unknown mode ${mode}`);
  process.exit(2);
}
