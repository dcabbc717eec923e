// Every seed policy on real traffic in the demo world: applied alone, it lets its allowed
// connections deliver the server's bytes, its denied ones deliver none, and the HTTP requests its L7
// rules refuse are answered `403 Access denied` by the node's proxy. One lab serves the
// whole suite (bringing the 22-pod demo world up once per policy would take minutes); each case
// removes its policy again, and the suite's lab is torn down in `after` even on failure.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/api-client.js';
import type { AgentStatus } from '../../src/agent/api-types.js';
import { readSeedDocs } from '../../src/cli/commands/lab-demo.js';
import { agentSocket } from '../../src/lab/lab-paths.js';
import type { LabState } from '../../src/lab/lab-state.js';
import { describeProbe, runProbes } from '../../src/lab/probes.js';
import { SEED_CASES } from '../../src/lab/seed-probes.js';
import { labDown } from '../../src/lab/teardown.js';
import { labUp } from '../../src/lab/topology.js';
import { privilegeGap, requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { LAB_TOOLS, REPO } from './lab-fixture.js';

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
    });
  }
});
