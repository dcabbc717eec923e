import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { observerClient } from '../../src/hubble/api/grpc-clients.js';
import type { FlowsResponse } from '../../src/hubble/flow/flow.js';
import { wallFromMono } from '../../src/hubble/flow/parser.js';
import { startHubbleNode } from '../../src/hubble/hubble-node.js';
import { until } from '../support/until.js';
import { dropDefaultDeny, enrichment, T0 } from './fixtures.js';

describe('hubble node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-hb-node-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves flows over gRPC on a socket and TCP, counts them in metrics and exports them', async () => {
    const node = await startHubbleNode({
      nodeName: 'node-1',
      enrichment,
      monoToWall: (m) => wallFromMono(T0, m),
      listen: [`unix://${join(dir, 'hubble.sock')}`, '127.0.0.1:0'],
      metrics: ['drop'],
      metricsAddress: '127.0.0.1:0',
      export: { filePath: join(dir, 'flows.json') },
    });
    try {
      node.observer.ingestEvent(dropDefaultDeny);
      for (const addr of node.addresses) {
        const client = observerClient(addr);
        const got = await new Promise<FlowsResponse[]>((resolve, reject) => {
          const out: FlowsResponse[] = [];
          const call = client.GetFlows({ number: 5 }) as grpc.ClientReadableStream<FlowsResponse>;
          call.on('data', (d) => out.push(d));
          call.on('error', reject);
          call.on('end', () => resolve(out));
        });
        client.close();
        assert.equal(got.length, 1);
        assert.equal(got[0]!.flow?.drop_reason_desc, 133);
      }
      const text = await (await fetch(`http://${node.metricsAddress}/metrics`)).text();
      assert.match(text, /^hubble_drop_total\{reason="POLICY_DENIED",protocol="TCP"\} 1$/m);
    } finally {
      await node.stop();
    }
    const exported = await until(() => readFileSync(join(dir, 'flows.json'), 'utf8'), { what: 'exported flow' });
    assert.equal(JSON.parse(exported).flow.drop_reason_desc, 'POLICY_DENIED');
  });
});
