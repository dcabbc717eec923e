// bench/dns: queries through the DNS proxy against the same queries straight to the server,
// paired and interleaved in one run, with dnsperf (Debian) as the client and dnsmasq as the
// server, on loopback (test/support/dns-harness.ts: the agent's FQDN state and policy engine are
// real; as root the agent writes the real BPF maps (mbr_ipcache, the endpoint's policy map),
// otherwise maps in memory).
//   npx tsc -p . && node dist/bench/dns.bench.js [--quick]
// Workloads: "allowed" (one allowed name, its IPs known: no ipcache change) and "new IPs" (a fresh
// allowed name per query, each with its own address: every answer waits for an ipcache write).
// Per round and workload: latency at a fixed 1,000 q/s, then throughput (100 queries in flight),
// direct then through the proxy.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureBpffs, removePinDir } from '../src/datapath/bpffs.js';
import type { FqdnSink } from '../src/fqdn/fqdn-sink.js';
import { bpfPortWithoutAttach, type DnsHarness, startDnsHarness } from '../test/support/dns-harness.js';

const run = promisify(execFile);
const QUICK = process.argv.includes('--quick');
const ROUNDS = QUICK ? 1 : 3;
const SECONDS = QUICK ? 2 : 3;
const RATE = 1000;
/** Fresh names per round: the 1,000 q/s phase, and the throughput phase (capped by -n 1). */
const FRESH_LATENCY = RATE * SECONDS;
const FRESH_THROUGHPUT = QUICK ? 10_000 : 20_000;

interface PerfResult {
  readonly qps: number;
  readonly completed: number;
  readonly lost: number;
  readonly latenciesMs: number[];
}

async function dnsperf(port: number, file: string, o: { rate?: number; once?: boolean }): Promise<PerfResult> {
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(SECONDS), '-t', '2', '-v', '-q', '100'];
  if (o.rate) args.push('-Q', String(o.rate));
  if (o.once) args.push('-n', '1');
  const { stdout } = await run('dnsperf', args, { maxBuffer: 256 * 1024 * 1024 });
  const lat: number[] = [];
  for (const m of stdout.matchAll(/^> (\S+) \S+ \S+ ([\d.]+)$/gm))
    if (m[1] === 'NOERROR') lat.push(Number(m[2]) * 1000);
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? Number.NaN);
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    latenciesMs: lat.sort((a, b) => a - b),
  };
}

function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(xs: readonly number[]): number {
  return pct(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

async function main(): Promise<void> {
  const totalFresh = ROUNDS * 2 * (FRESH_LATENCY + FRESH_THROUGHPUT);
  const fresh = Array.from({ length: totalFresh }, (_, i) => ({
    name: `n${i}.fresh.stripe.com`,
    ip: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
  }));
  const sinkMs: number[] = [];
  // As root, the agent writes the real BPF maps (pinned under a directory of this run).
  const isRoot = process.getuid?.() === 0;
  const pinRoot = `/sys/fs/bpf/membrane/mbr-bench-dns-${process.pid}`;
  if (isRoot) ensureBpffs();
  const h: DnsHarness = await startDnsHarness({
    ...(isRoot ? { datapath: bpfPortWithoutAttach(`${pinRoot}/n1`) } : {}),
    hosts: ['10.200.0.1 api.stripe.com', '10.200.0.2 api.stripe.com', ...fresh.map((f) => `${f.ip} ${f.name}`)],
    ttlSeconds: 300,
    dnsPatterns: ['*.stripe.com', '**.stripe.com'],
    fqdnPatterns: ['**.stripe.com'],
    noRecords: true,
    wrapSink: (sink: FqdnSink): FqdnSink => ({
      async observe(obs) {
        const t0 = performance.now();
        await sink.observe(obs);
        sinkMs.push(performance.now() - t0);
      },
    }),
  });
  try {
    const allowedFile = join(h.dir, 'allowed.txt');
    writeFileSync(allowedFile, 'api.stripe.com A\n');
    let next = 0;
    const freshFile = (n: number): string => {
      const f = join(h.dir, `fresh-${next}.txt`);
      writeFileSync(
        f,
        `${fresh
          .slice(next, next + n)
          .map((x) => `${x.name} A`)
          .join('\n')}\n`,
      );
      next += n;
      return f;
    };
    // Check both paths give the same answer before timing.
    const dig = async (port: number) =>
      (await run('dig', ['+short', '-p', String(port), '@127.0.0.1', 'api.stripe.com'])).stdout
        .split('\n')
        .sort()
        .join(',');
    if ((await dig(h.dns.server.port)) !== (await dig(h.udpPort)))
      throw new Error('proxy and server answer differently');

    type Key = 'allowed' | 'new IPs';
    const rows: Record<Key, { direct: PerfResult[]; proxy: PerfResult[]; dTput: PerfResult[]; pTput: PerfResult[] }> = {
      allowed: { direct: [], proxy: [], dTput: [], pTput: [] },
      'new IPs': { direct: [], proxy: [], dTput: [], pTput: [] },
    };
    const sinkByWorkload: Record<Key, number[]> = { allowed: [], 'new IPs': [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const w of ['allowed', 'new IPs'] as const) {
        const lf = w === 'allowed' ? allowedFile : freshFile(FRESH_LATENCY);
        const tf = w === 'allowed' ? allowedFile : freshFile(FRESH_THROUGHPUT);
        const once = w !== 'allowed';
        // Paired: the same file straight to the server, then through the proxy.
        rows[w].direct.push(await dnsperf(h.dns.server.port, lf, { rate: RATE, once }));
        const s0 = sinkMs.length;
        rows[w].proxy.push(await dnsperf(h.udpPort, lf, { rate: RATE, once }));
        sinkByWorkload[w].push(...sinkMs.slice(s0));
        rows[w].dTput.push(await dnsperf(h.dns.server.port, tf, { once }));
        rows[w].pTput.push(await dnsperf(h.udpPort, tf, { once }));
        console.log(
          `round ${r + 1} ${w}: direct ${rows[w].dTput.at(-1)!.qps.toFixed(0)} q/s, proxy ${rows[w].pTput.at(-1)!.qps.toFixed(0)} q/s`,
        );
      }
    }

    const lines: string[] = [];
    const all = (xs: PerfResult[]) => xs.flatMap((x) => x.latenciesMs).sort((a, b) => a - b);
    lines.push('| workload | path | q/s (max, median of rounds) | p50 ms at 1,000 q/s | p99 ms | p99.9 ms | lost |');
    lines.push('| --- | --- | --- | --- | --- | --- | --- |');
    const summary: string[] = [];
    for (const w of ['allowed', 'new IPs'] as const) {
      const d = rows[w];
      const dl = all(d.direct);
      const pl = all(d.proxy);
      const lost = (xs: PerfResult[]) => xs.reduce((n, x) => n + x.lost, 0);
      lines.push(
        `| ${w} | direct | ${median(d.dTput.map((x) => x.qps)).toFixed(0)} | ${pct(dl, 50).toFixed(3)} | ${pct(dl, 99).toFixed(3)} | ${pct(dl, 99.9).toFixed(3)} | ${lost([...d.direct, ...d.dTput])} |`,
      );
      lines.push(
        `| ${w} | proxy | ${median(d.pTput.map((x) => x.qps)).toFixed(0)} | ${pct(pl, 50).toFixed(3)} | ${pct(pl, 99).toFixed(3)} | ${pct(pl, 99.9).toFixed(3)} | ${lost([...d.proxy, ...d.pTput])} |`,
      );
      const ratios = d.pTput.map((p, i) => p.qps / d.dTput[i]!.qps);
      summary.push(
        `- ${w}: throughput proxy/direct per round ${ratios.map((x) => x.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(2)}; goal ≥ 0.5); added p99 at 1,000 q/s ${(pct(pl, 99) - pct(dl, 99)).toFixed(3)} ms (goal ≤ 1 ms), added p50 ${(pct(pl, 50) - pct(dl, 50)).toFixed(3)} ms`,
      );
    }
    const s = [...sinkByWorkload['new IPs']].sort((a, b) => a - b);
    summary.push(
      `- answer → ipcache updated (FqdnSink.observe, new IPs at 1,000 q/s): p50 ${pct(s, 50).toFixed(3)} ms, p99 ${pct(s, 99).toFixed(3)} ms, max ${pct(s, 100).toFixed(3)} ms (n=${s.length}); answers released on the 100 ms response-max-delay instead: ${h.proxy.stats.responseDelayExceeded}`,
    );
    summary.push(
      `- proxy counters: ${Object.entries(h.proxy.stats)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const md = [
      '# bench/dns',
      '',
      `Command: \`node dist/bench/dns.bench.js\`${QUICK ? ' --quick' : ''}`,
      `Date: ${new Date().toISOString()}`,
      `Node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'CPU'}, load ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
      '',
      `dnsperf 2.10 against dnsmasq on 127.0.0.1, straight (direct) and through the DNS proxy (UDP), paired`,
      `per round, ${ROUNDS} rounds of ${SECONDS} s per measure. Latency at a fixed ${RATE} q/s; throughput with`,
      '100 queries in flight. "new IPs": every query is a name never asked before with its own address,',
      'so every answer waits for the agent to put the address into the ipcache (engine.updateFqdn, the',
      `ipcache diff, the map write${isRoot ? ' into the pinned BPF maps' : '; maps in memory in this run'}) before it is released.`,
      '',
      ...lines,
      '',
      ...summary,
      '',
      "How to read it: dnsperf, dnsmasq and the proxy share the machine's cores with whatever else runs",
      '(the load average is above). The direct p99 shows how much of a p99 is scheduling; the proxy is',
      'one Node process, so a pause of its event loop (GC, a burst of ipcache writes) delays every answer',
      'in flight. "new IPs" pays the policy engine\'s cost per new address (a CIDR identity, the',
      "selector cache, the endpoint's map state) inside the agent's pipeline before each answer.",
      '',
    ].join('\n');
    console.log(md);
    if (QUICK) console.log('--quick: results not written');
    else writeFileSync(new URL('../../bench/results/dns.md', import.meta.url), md);
  } finally {
    await h.stop();
    if (isRoot) removePinDir(pinRoot);
  }
}

await main();
