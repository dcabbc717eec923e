import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FlowExporter } from '../../src/hubble/exporter/flow-exporter.js';
import { sampleFlows } from './fixtures.js';

describe('flow exporter', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-hb-export-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes filtered jsonpb lines, rotates by size and keeps maxBackups files', () => {
    const file = join(dir, 'flows.json');
    let now = Date.UTC(2026, 10, 23, 10, 0, 0);
    const ex = new FlowExporter({
      filePath: file,
      maxSizeBytes: 4000,
      maxBackups: 2,
      chunkBytes: 1,
      denylist: [{ verdict: [2] }],
      nowMs: () => (now += 1000),
    });
    const flows = sampleFlows();
    for (let round = 0; round < 10; round++)
      for (const f of flows)
        ex.export({ flow: { ...f, uuid: `r${round}-${f.uuid!.slice(-2)}` }, node_name: 'node-1', time: f.time });
    ex.export({ lost_events: { source: 3, num_events_lost: 1 }, node_name: 'node-1' });
    ex.close();
    assert.equal(ex.exportedCount, 91);

    const files = readdirSync(dir).sort();
    assert.equal(files.length, 3, `active file plus 2 backups, got ${files.join(', ')}`);
    assert.ok(files.includes('flows.json'));
    for (const f of files) assert.ok(statSync(join(dir, f)).size <= 4000, `${f} exceeds the size limit`);
    assert.match(files[0]!, /^flows-2026-11-23T10-\d\d-\d\d\.000\.json$/);

    const lines = files
      .filter((f) => f !== 'flows.json')
      .concat('flows.json')
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').trim().split('\n'))
      .map((l) => JSON.parse(l));
    assert.ok(
      lines.every((l) => l.flow === undefined || l.flow.verdict !== 'DROPPED'),
      'denylisted flows are not exported',
    );
    assert.deepEqual(lines.at(-1), {
      lost_events: { source: 'HUBBLE_RING_BUFFER', num_events_lost: '1' },
      node_name: 'node-1',
    });
    assert.equal(lines.at(-2).flow.uuid, 'r9-0b');
    // Retained lines are the newest, in order, with nothing missing between the files.
    const ids = lines.filter((l) => l.flow).map((l) => l.flow.uuid);
    const all = [...Array(10).keys()].flatMap((r) =>
      ['01', '02', '03', '06', '07', '08', '09', '0a', '0b'].map((n) => `r${r}-${n}`),
    );
    assert.deepEqual(ids, all.slice(all.length - ids.length));
  });

  it('applies a field mask', () => {
    const file = join(dir, 'masked.json');
    const ex = new FlowExporter({ filePath: file, fieldMask: ['verdict', 'source.pod_name'] });
    const f = sampleFlows()[0]!;
    ex.export({ flow: f, node_name: 'node-1', time: f.time });
    ex.close();
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {
      flow: { verdict: 'FORWARDED', source: { pod_name: 'frontend-7d9f' } },
      node_name: 'node-1',
      time: '2026-11-23T10:00:00.001Z',
    });
  });
});
