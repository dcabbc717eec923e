// `membrane observe --input-file` on a large file: time, lines/min and peak RSS of a streamed
// replay with `--all --verdict DROPPED -o jsonpb`, through the CLI's own replayInputFile() and
// FlowPrinter (output counted, not kept). The baseline splits the same file into lines and
// JSON.parses each one, so the ratio shows what decoding, filtering and printing cost.
// Run: npx tsc -p . && node dist/bench/replay.bench.js [--quick]
// (--quick: 64 MiB instead of 1 GiB). Appends a section to bench/results/hubble.md.
import {
  createReadStream,
  createWriteStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFilters, replayInputFile } from '../src/cli/commands/observe.js';
import { readLines } from '../src/hubble/observer/flow-replay.js';
import { FlowPrinter } from '../src/hubble/printer/flow-printer.js';

const quick = process.argv.includes('--quick');
const TARGET_BYTES = quick ? 64 * 1024 * 1024 : 1024 * 1024 * 1024;
const RESULTS = new URL('../../bench/results/hubble.md', import.meta.url).pathname;
const SAMPLE = new URL('../../test/golden/hubble/observe-jsonpb.txt', import.meta.url).pathname;

await main();

async function main(): Promise<void> {
  const loadStart = loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
  const dir = mkdtempSync(join(tmpdir(), 'mbr-replay-bench-'));
  try {
    const file = join(dir, 'flows.json');
    const { lines, dropped } = await writeFlowFile(file, TARGET_BYTES);
    const bytes = statSync(file).size;

    // Candidate first, so the peak RSS below is the replay's own (the baseline holds less).
    const rssBefore = process.memoryUsage().rss;
    const t0 = process.hrtime.bigint();
    const { whitelist, blacklist } = buildFilters([['verdict', 'DROPPED']]);
    const printer = new FlowPrinter({ format: 'jsonpb' });
    let matched = 0;
    let outBytes = 0;
    for await (const r of replayInputFile(file, { number: 0, first: false, whitelist, blacklist })) {
      if (r.flow !== undefined) matched++;
      outBytes += printer.write(r).length;
    }
    const replaySec = Number(process.hrtime.bigint() - t0) / 1e9;
    const peakRssMiB = process.resourceUsage().maxRSS / 1024;
    if (matched !== dropped) throw new Error(`replay matched ${matched} flows, the file holds ${dropped} DROPPED`);

    const t1 = process.hrtime.bigint();
    let parsed = 0;
    for await (const l of readLines(createReadStream(file, { highWaterMark: 256 * 1024 }), file)) {
      if (l !== '') {
        JSON.parse(l);
        parsed++;
      }
    }
    const baseSec = Number(process.hrtime.bigint() - t1) / 1e9;
    if (parsed !== lines) throw new Error(`baseline read ${parsed} lines, wrote ${lines}`);

    const perMin = (n: number, s: number) => `${(((n / s) * 60) / 1e6).toFixed(2)}M lines/min`;
    const result = [
      `replay --all --verdict DROPPED -o jsonpb  file ${(bytes / 2 ** 20).toFixed(0)} MiB, ${lines} lines, ${matched} flows matched, ${(outBytes / 2 ** 20).toFixed(0)} MiB out`,
      `  membrane ${replaySec.toFixed(1)} s  ${perMin(lines, replaySec)}  peak RSS ${peakRssMiB.toFixed(0)} MiB (${(rssBefore / 2 ** 20).toFixed(0)} MiB before)`,
      `  baseline(split lines + JSON.parse) ${baseSec.toFixed(1)} s  ${perMin(lines, baseSec)}  ratio ${(baseSec / replaySec).toFixed(2)}  n=1`,
    ];
    for (const l of result) console.log(l);
    const md = [
      '',
      `## observe --input-file replay${quick ? ' (--quick)' : ''}`,
      '',
      `Command: \`npx tsc -p . && node dist/bench/replay.bench.js${quick ? ' --quick' : ''}\``,
      '',
      `Date: ${new Date().toISOString()}  `,
      `Node: ${process.version}  `,
      `CPU: ${cpus()[0]?.model ?? 'unknown CPU'} x ${cpus().length}, load average ${loadStart} at the start, ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')} at the end`,
      '',
      '```',
      ...result,
      '```',
      '',
      'The file repeats the 11 flows and 1 lost-event record of test/golden/hubble/observe-jsonpb.txt',
      '(2 of the flows are DROPPED); it is written to a temporary directory and deleted after. The',
      'replay streams it (readLines over a 256 KiB read stream), so peak RSS does not grow with the',
      'file; the goal is at least 1M lines/min on one core. Output is formatted but not written.',
      '',
    ];
    writeFileSync(RESULTS, readFileSync(RESULTS, 'utf8').trimEnd() + '\n' + md.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes copies of the sample lines until the file reaches `target` bytes. */
async function writeFlowFile(file: string, target: number): Promise<{ lines: number; dropped: number }> {
  const sample = readFileSync(SAMPLE, 'utf8').trim().split('\n');
  const droppedPerCopy = sample.filter((l) => JSON.parse(l).flow?.verdict === 'DROPPED').length;
  const block = `${sample.join('\n')}\n`;
  const copiesPerChunk = Math.max(1, Math.floor((4 * 1024 * 1024) / block.length));
  const chunk = block.repeat(copiesPerChunk);
  const out = createWriteStream(file);
  let written = 0;
  let copies = 0;
  while (written < target) {
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    written += Buffer.byteLength(chunk);
    copies += copiesPerChunk;
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { lines: copies * sample.length, dropped: copies * droppedPerCopy };
}
