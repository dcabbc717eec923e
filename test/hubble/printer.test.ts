// Printer goldens per output format (UPDATE_GOLDEN=1 rewrites them), plus the time formats.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { FlowsResponse } from '../../src/hubble/flow/flow.js';
import { FlowPrinter, formatTime, OUTPUT_FORMATS, type PrinterOptions } from '../../src/hubble/printer/flow-printer.js';
import { sampleFlows, T0 } from './fixtures.js';

const GOLDEN_DIR = new URL('../../../test/golden/hubble/', import.meta.url).pathname;

export function responses(): FlowsResponse[] {
  const rs: FlowsResponse[] = sampleFlows().map((flow) => ({ flow, node_name: flow.node_name, time: flow.time }));
  rs.splice(5, 0, { lost_events: { source: 3, num_events_lost: 13 }, node_name: 'node-1', time: T0 });
  return rs;
}

function render(opts: PrinterOptions): string {
  const p = new FlowPrinter(opts);
  let out = '';
  for (const r of responses()) out += p.write(r);
  return out + p.end();
}

function checkGolden(name: string, got: string): void {
  const file = `${GOLDEN_DIR}${name}`;
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(file, got);
    if (process.env.UPDATE_GOLDEN !== '1') assert.fail(`wrote missing golden ${file}; review and commit it`);
  }
  assert.equal(got, readFileSync(file, 'utf8'));
}

describe('flow printer', () => {
  for (const format of OUTPUT_FORMATS)
    it(`prints the sample flows as ${format} like the golden file`, () =>
      checkGolden(`observe-${format}.txt`, render({ format, utc: true })));

  it('prints node names and policy names in compact output', () =>
    checkGolden(
      'observe-compact-node-policy.txt',
      render({ format: 'compact', utc: true, printNodeName: true, printPolicyNames: true }),
    ));

  it('prints -o json as the GetFlowsResponse, the same as jsonpb', () =>
    assert.equal(render({ format: 'json', utc: true }), render({ format: 'jsonpb', utc: true })));

  it('prints the bare flow and lost event with legacy JSON output like the golden file', () =>
    checkGolden('observe-json-legacy.txt', render({ format: 'json', utc: true, legacyJsonOutput: true })));

  it('prints a table with a NODE column', () =>
    checkGolden('observe-table-node.txt', render({ format: 'table', utc: true, printNodeName: true })));

  it('colours verdicts when asked', () => {
    const p = new FlowPrinter({ format: 'compact', utc: true, color: true });
    assert.match(p.write(responses()[3]!), /\x1b\[31mDROPPED\x1b\[0m/);
  });

  const TIMES: [string, string][] = [
    ['StampMilli', 'Nov 23 10:00:00.001'],
    ['RFC3339', '2026-11-23T10:00:00Z'],
    ['RFC3339Nano', '2026-11-23T10:00:00.0012345Z'],
    ['StampMicro', 'Nov 23 10:00:00.001234'],
    ['Kitchen', '10:00AM'],
    ['2006-01-02 15:04:05.000', '2026-11-23 10:00:00.001'],
  ];
  for (const [layout, want] of TIMES)
    it(`formats time with ${layout}`, () =>
      assert.equal(formatTime({ seconds: T0.seconds, nanos: 1_234_500 }, layout, true), want));

  it('space-pads single-digit days like Go', () =>
    assert.equal(
      formatTime({ seconds: Date.UTC(2026, 7, 8, 5, 27, 17) / 1000, nanos: 430e6 }, 'StampMilli', true),
      'Aug  8 05:27:17.430',
    ));
});
