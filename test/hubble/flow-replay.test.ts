// `membrane observe --input-file`: the whole input streamed (no ring of 65535 in between),
// --first/--last/--all over all of it, and bad lines rejected with their line number.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeFlowLine, readLines, replayFlows } from '../../src/hubble/observer/flow-replay.js';
import { MEMBRANE_BIN as BIN, runMembrane } from '../support/membrane-cli.js';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(args: string[], stdin?: string): Promise<Run> {
  return runMembrane(args, stdin);
}

/** Flow n: uuid counter n, DROPPED when n is a multiple of 10, else FORWARDED. */
function flowLine(n: number): string {
  const flow = {
    time: new Date(Date.UTC(2026, 10, 23, 10) + n).toISOString(),
    uuid: `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
    verdict: n % 10 === 0 ? 'DROPPED' : 'FORWARDED',
    IP: { source: '10.1.0.11', destination: '10.1.0.12', ipVersion: 'IPv4' },
    l4: { TCP: { source_port: 40000 + (n % 1000), destination_port: 8080 } },
    node_name: 'node-1',
  };
  return JSON.stringify({ flow, node_name: 'node-1', time: flow.time });
}

const counters = (out: string) =>
  out
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => Number.parseInt(JSON.parse(l).flow.uuid.slice(-12), 16));

// More flows than the largest ring (65535): a replay through a ring kept only the last 65535.
const TOTAL = 70_000;

describe('membrane observe --input-file streams the whole input', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mbr-replay-'));
    file = join(dir, 'flows.json');
    const lines: string[] = [];
    for (let n = 1; n <= TOTAL; n++) lines.push(flowLine(n));
    writeFileSync(file, `${lines.join('\n')}\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints every flow with --all', async () => {
    const r = await run(['observe', '--input-file', file, '--all', '-o', 'jsonpb']);
    assert.equal(r.err, '');
    assert.equal(r.code, 0);
    const got = counters(r.out);
    assert.equal(got.length, TOTAL);
    assert.equal(got[0], 1);
    assert.equal(got[TOTAL - 1], TOTAL);
  });

  it('returns the first flows of the file with --first', async () => {
    const r = await run(['observe', '--input-file', file, '--first', '3', '-o', 'jsonpb']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(counters(r.out), [1, 2, 3]);
  });

  it('returns the last matching flows of the file with --last and a filter', async () => {
    const r = await run(['observe', '--input-file', file, '--last', '2', '--verdict', 'DROPPED', '-o', 'jsonpb']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(counters(r.out), [TOTAL - 10, TOTAL]);
  });

  it('counts every match over the whole file with --all and a filter', async () => {
    const r = await run(['observe', '--input-file', file, '--all', '--verdict', 'DROPPED', '-o', 'jsonpb']);
    assert.equal(r.code, 0, r.err);
    assert.equal(counters(r.out).length, TOTAL / 10);
  });

  it('reads stdin with "-"', async () => {
    const r = await run(
      ['observe', '--input-file', '-', '--all', '-o', 'jsonpb'],
      `${flowLine(1)}\n\n${flowLine(2)}\r\n${flowLine(3)}`,
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(counters(r.out), [1, 2, 3]);
  });

  it('stops reading stdin after --first N matches, without waiting for the end of the input', async () => {
    const p = spawn(process.execPath, [BIN, 'observe', '--input-file', '-', '--first', '1', '-o', 'jsonpb']);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stdin.write(`${flowLine(7)}\n`);
    // stdin stays open: a reader that slurps the whole input never returns.
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        p.kill();
        reject(new Error('observe --first 1 did not exit while stdin was still open'));
      }, 10_000);
      p.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    p.stdin.destroy();
    assert.equal(code, 0);
    assert.deepEqual(counters(out), [7]);
  });

  it('stops quietly when the reader of its output goes away (| head)', async () => {
    const p = spawn(process.execPath, [BIN, 'observe', '--input-file', file, '--all', '-o', 'jsonpb']);
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.stdout.once('data', () => p.stdout.destroy());
    const code = await new Promise((resolve) => p.on('close', resolve));
    assert.equal(err, '');
    assert.equal(code, 0);
  });

  it('rejects --last above 1000000 like hubble', async () => {
    const r = await run(['observe', '--input-file', file, '--last', '1000001']);
    assert.equal(r.code, 2);
    assert.equal(r.err, 'membrane: --last: expected at most 1000000 with --input-file, got 1000001\n');
  });
});

const BAD_LINES: { name: string; line: string; message: string }[] = [
  { name: 'null', line: 'null', message: 'expected a JSON object per line (a GetFlowsResponse or a Flow), got null' },
  { name: 'a number', line: '5', message: 'expected a JSON object per line (a GetFlowsResponse or a Flow), got 5' },
  { name: 'true', line: 'true', message: 'expected a JSON object per line (a GetFlowsResponse or a Flow), got true' },
  { name: 'a string', line: '"x"', message: 'expected a JSON object per line (a GetFlowsResponse or a Flow), got "x"' },
  {
    name: 'an array',
    line: '[1]',
    message: 'expected a JSON object per line (a GetFlowsResponse or a Flow), got an array',
  },
  {
    name: 'a flow that is not an object',
    line: '{"flow":5}',
    message: 'flow: expected a JSON object for Flow, got 5',
  },
  {
    name: 'a key named constructor',
    line: '{"flow":{"constructor":{"verdict":"DROPPED"}}}',
    message: '',
  },
  { name: 'a key named __proto__', line: '{"__proto__":{"verdict":"DROPPED"}}', message: '' },
  { name: 'an enum name constructor', line: '{"flow":{"verdict":"constructor"}}', message: '' },
  {
    name: 'a port of 1e20',
    line: '{"flow":{"l4":{"TCP":{"source_port":1e20}}}}',
    message: 'flow.l4.TCP.source_port: expected a uint32 0-4294967295, got 100000000000000000000',
  },
  {
    name: 'a port above 65535',
    line: '{"flow":{"l4":{"UDP":{"destination_port":65536}}}}',
    message: 'flow.l4.UDP.destination_port: expected a port 0-65535, got 65536',
  },
  {
    name: 'a negative port',
    line: '{"flow":{"l4":{"TCP":{"source_port":-1}}}}',
    message: 'flow.l4.TCP.source_port: expected a uint32 0-4294967295, got -1',
  },
  {
    name: 'a fractional port',
    line: '{"flow":{"l4":{"TCP":{"source_port":80.5}}}}',
    message: 'flow.l4.TCP.source_port: expected an integer, got 80.5',
  },
  {
    name: 'an enum number out of int32',
    line: '{"flow":{"verdict":1e12}}',
    message:
      'flow.verdict: expected one of VERDICT_UNKNOWN, FORWARDED, DROPPED, ERROR, AUDIT, REDIRECTED, TRACED, TRANSLATED, got 1000000000000',
  },
  {
    name: 'an int64 beyond 2^53',
    line: '{"flow":{"socket_cookie":"18446744073709551615"}}',
    message: 'flow.socket_cookie: expected a uint64 0-9007199254740991, got "18446744073709551615"',
  },
];

describe('replay line decoding', () => {
  for (const c of BAD_LINES) {
    if (c.message === '')
      it(`reads a line with ${c.name} as data, not as a prototype member`, () => {
        const r = decodeFlowLine(c.line, 'f.json:3');
        assert.equal(typeof r, 'object');
        assert.notEqual(r?.flow?.verdict, 2, 'a key outside the schema must not set a field');
      });
    else
      it(`rejects a line with ${c.name}, naming the line`, () =>
        assert.throws(() => decodeFlowLine(c.line, 'f.json:3'), {
          code: 'MBR_FLOW_JSON_INVALID',
          message: `f.json:3: ${c.message}`,
        }));
  }

  it('skips a bad line with a warning naming it, as hubble does, and replays the rest', async () => {
    const r = await run(
      ['observe', '--input-file', '-', '--all', '-o', 'jsonpb'],
      `${flowLine(1)}\nnull\n${flowLine(2)}\n`,
    );
    assert.equal(r.code, 0);
    assert.deepEqual(counters(r.out), [1, 2]);
    assert.equal(
      r.err,
      'membrane: stdin:2: expected a JSON object per line (a GetFlowsResponse or a Flow), got null; line skipped\n',
    );
  });

  it('splits chunks into lines across chunk boundaries and rejects an over-long line', async () => {
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.from('ab');
      yield Buffer.from('c\nde');
      yield Buffer.from('f\r\n\ng');
    }
    const got: string[] = [];
    for await (const l of readLines(chunks(), 'x')) got.push(l);
    assert.deepEqual(got, ['abc', 'def', '', 'g']);
    await assert.rejects(
      async () => {
        for await (const _ of readLines(chunks(), 'x', 2));
      },
      { message: 'x:1: expected a line of at most 2 bytes, got a longer one' },
    );
  });

  it('stops pulling lines once --first N have matched', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<string> {
      for (let n = 1; ; n++) {
        pulled++;
        yield flowLine(n);
      }
    }
    const out = [];
    for await (const r of replayFlows(endless(), 'x', (f) => f.verdict === 2, { number: 2, first: true }))
      out.push(r.flow?.uuid);
    assert.equal(out.length, 2);
    assert.equal(pulled, 20);
  });
});
