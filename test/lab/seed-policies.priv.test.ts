// Every seed policy on real traffic in the demo world: applied alone, it lets its allowed
// connections deliver the server's bytes, its denied ones deliver none, and the HTTP requests its L7
// rules refuse are answered `403 Access denied` by the node's proxy. One lab serves the
// whole suite (bringing the 22-pod demo world up once per policy would take minutes); each case
// removes its policy again, and the suite's lab is torn down in `after` even on failure. The Kafka
// seed's L7 decisions are also read back as flows from the relay.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/api-client.js';
import type { AgentStatus } from '../../src/agent/api-types.js';
import { readSeedDocs } from '../../src/cli/commands/lab-demo.js';
import { agentSocket, relaySocket } from '../../src/lab/lab-paths.js';
import type { LabState } from '../../src/lab/lab-state.js';
import { describeProbe, runProbes } from '../../src/lab/probes.js';
import { SEED_CASES } from '../../src/lab/seed-probes.js';
import { labDown } from '../../src/lab/teardown.js';
import { labUp } from '../../src/lab/topology.js';
import { privilegeGap, requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { LAB_TOOLS, MEMBRANE, REPO } from './lab-fixture.js';

const SEEDS = join(REPO, 'lab/seed-policies');

describe('seed policies on real traffic', () => {
  const lab = `t${randomBytes(3).toString('hex')}`;
  let state: LabState | undefined;
  const clients = () => state!.nodes.map((n) => new AgentClient(agentSocket(lab, n.name)));
  const realized = async () => {
    const all = await Promise.all(clients().map((c) => c.get<AgentStatus>('/v1/status')));
    return all.every((s) => s.realizedPolicyRevision === s.policyRevision);
  };

  before(async () => {
    if (privilegeGap(LAB_TOOLS) !== undefined) return;
    state = await labUp({ lab, worldFiles: [join(REPO, 'lab/worlds/demo.yaml')], repoRoot: REPO });
  });
  after(async () => {
    await labDown(lab);
  });

  it('covers every seed policy file', () => {
    const files = [...new Set(readSeedDocs(SEEDS).map((d) => d.file))];
    assert.deepEqual(
      SEED_CASES.map((c) => c.file),
      files,
    );
    for (const c of SEED_CASES) assert.ok(c.allowed.length > 0 && c.denied.length > 0, c.file);
  });

  for (const c of SEED_CASES) {
    it(`${c.file}: allowed connections deliver bytes, denied ones none`, async (t) => {
      if (!requireRoot(t, 'runs the demo lab with the eBPF datapath', LAB_TOOLS)) return;
      const docs = readSeedDocs(SEEDS)
        .filter((d) => d.file === c.file)
        .map((d) => d.doc);
      const [client] = clients();
      await client.put('/v1/policy', { docs, source: c.file });
      t.after(async () => {
        await client.delete('/v1/policy', { docs, source: c.file });
        await until(realized, { timeoutMs: 5000, what: 'policy removed on every node' });
      });
      await until(realized, { timeoutMs: 5000, what: 'policy realized on every node' });
      const probes = [...c.allowed, ...c.denied, ...(c.l7Denied ?? [])];
      const results = await runProbes(state!, probes);
      const got = results.map((r) => `${describeProbe(r.probe)}: ${r.outcome}${r.bytes > 0 ? ' with bytes' : ''}`);
      const want = [
        ...c.allowed.map((p) => `${describeProbe(p)}: forwarded with bytes`),
        ...c.denied.map((p) => `${describeProbe(p)}: dropped`),
        ...(c.l7Denied ?? []).map((p) => `${describeProbe(p)}: denied`),
      ];
      assert.deepEqual(got, want);
      if (c.file === '10-cnp-kafka-order-processor.yaml') await assertKafkaFlows(lab, state!);
    });
  }
});

/**
 * The Kafka handler's records reach the relay as L7 flows: the produce to orders.processed
 * forwarded, the request for payment-events dropped with error 29 and the deciding policy.
 */
async function assertKafkaFlows(lab: string, state: LabState): Promise<void> {
  interface KafkaFlow {
    verdict?: string;
    source?: { pod_name?: string };
    traffic_direction?: string;
    l7?: { type?: string; kafka?: { api_key?: string; topic?: string; error_code?: number } };
    ingress_denied_by?: { name: string }[];
  }
  const flows = () => {
    const r = spawnSync(
      process.execPath,
      [
        MEMBRANE,
        'observe',
        '--server',
        `unix://${relaySocket(lab)}`,
        '--type',
        'l7',
        '--protocol',
        'kafka',
        '--last',
        '500',
        '-o',
        'json',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{"flow"'))
      .map((l) => (JSON.parse(l) as { flow: KafkaFlow }).flow);
  };
  const seen = await until(
    () => {
      const fs = flows();
      const produced = fs.some(
        (f) =>
          f.verdict === 'FORWARDED' && f.l7?.kafka?.api_key === 'produce' && f.l7.kafka.topic === 'orders.processed',
      );
      // order-processor's request at the broker's ingress (seed 06 refuses order-client at its egress).
      const denied = fs.find(
        (f) =>
          f.verdict === 'DROPPED' &&
          f.source?.pod_name === 'order-processor' &&
          f.traffic_direction === 'INGRESS' &&
          f.l7?.type === 'REQUEST' &&
          f.l7.kafka?.topic === 'payment-events',
      );
      return produced && denied ? denied : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 500, what: 'Kafka L7 flows at the relay' },
  );
  assert.equal(seen.l7?.kafka?.error_code, 29);
  assert.deepEqual(
    seen.ingress_denied_by?.map((p) => p.name),
    ['kafka-order-processor'],
  );
  // Hubble's kafka metric counts the refused request where it was decided, scraped from the agents.
  const refused = (text: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('hubble_kafka_requests_total{') && l.includes('topic="payment-events"'))
      .filter((l) => l.includes('error_code="29"') && l.includes('reporter="server"'))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  await until(
    () => {
      const total = state.nodes.reduce((n, node) => {
        const r = spawnSync(
          'ip',
          ['netns', 'exec', node.netns, 'curl', '-s', '--max-time', '5', `http://${node.metricsAddress}/metrics`],
          { encoding: 'utf8', timeout: 10_000 },
        );
        return n + refused(r.stdout ?? '');
      }, 0);
      return total >= 1 ? total : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 500, what: 'hubble_kafka_requests_total with error_code 29 on an agent' },
  );
}
