// The agents' flow pipeline in a real two-node lab: flows observed on the client's node name the
// remote server without a local endpoint ID, and a real Prometheus scrapes every node's metrics
// address and sees a policy drop counted. One lab serves both tests; it, Prometheus and its
// storage are removed in `after` even when a test fails.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/api-client.js';
import type { AgentStatus, Endpoint } from '../../src/agent/api-types.js';
import { agentSocket, nodeDir, worldNetns } from '../../src/lab/lab-paths.js';
import type { LabState } from '../../src/lab/lab-state.js';
import { labDown } from '../../src/lab/teardown.js';
import { labUp } from '../../src/lab/topology.js';
import { privilegeGap, requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { LAB_TOOLS, MEMBRANE, MINI_WORLD, REPO } from './lab-fixture.js';

const TOOLS = [...LAB_TOOLS, 'prometheus'];
/** Prometheus listens on the world host's loopback: inside the lab, reachable from nowhere else. */
const PROMETHEUS = '127.0.0.1:9090';

/** web admits only app=other: the client's connections are dropped by default deny (POLICY_DENIED). */
const WEB_ONLY_FROM_OTHER = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'web-only-from-other', namespace: 'alpha' },
  spec: {
    podSelector: { matchLabels: { app: 'web' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'other' } } }] }],
  },
};

interface JsonFlow {
  node_name?: string;
  IP?: { source: string; destination: string };
  source?: { ID?: number; identity?: number; namespace?: string; pod_name?: string };
  destination?: { ID?: number; identity?: number; namespace?: string; pod_name?: string };
}

describe('hubble in the lab', () => {
  const lab = `t${randomBytes(3).toString('hex')}`;
  const env = { ...process.env, MEMBRANE_LAB: lab };
  let state: LabState | undefined;
  let prometheus: ChildProcess | undefined;
  const promDir = mkdtempSync(join(tmpdir(), 'mbr-prometheus-'));
  const membrane = (...args: string[]) => {
    const r = spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env, timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const pod = (name: string) => state!.pods.find((p) => p.namespace === 'alpha' && p.name === name)!;
  /** One HTTP attempt from the client pod; true when the server answered. */
  const connect = (to: string) =>
    membrane('lab', 'exec', 'alpha/client', '--', 'curl', '-s', '-m', '1', `http://${to}:8080/`).code === 0;

  before(async () => {
    if (privilegeGap(TOOLS) !== undefined) return;
    state = await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO });
  });
  after(async () => {
    if (prometheus?.exitCode === null) {
      const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await exited;
    }
    rmSync(promDir, { recursive: true, force: true });
    await labDown(lab);
  });

  it("names a pod on another node by identity and pod name, without the other node's endpoint ID", async (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath', TOOLS)) return;
    const client = pod('client');
    const web = pod('web');
    assert.equal(client.node, 'n1');
    assert.equal(web.node, 'n2');
    assert.ok(connect(web.ip), 'the client reaches web with no policy');
    const eps = JSON.parse(membrane('endpoint', 'list', '-o', 'json').out) as Array<Endpoint & { node: string }>;
    const clientEp = eps.find((e) => e.podName === 'client')!;
    const webEp = eps.find((e) => e.podName === 'web')!;
    // Flows seen on n1, the client's node, through its own flow server.
    const hubbleSock = `unix://${join(nodeDir(lab, 'n1'), 'hubble.sock')}`;
    const flow = await until(
      () =>
        membrane('observe', '--server', hubbleSock, '--last', '200', '-o', 'json')
          .out.split('\n')
          .filter((l) => l !== '')
          .map((l) => {
            const o = JSON.parse(l) as { flow?: JsonFlow } & JsonFlow;
            return o.flow ?? o;
          })
          .find((f) => f.IP?.source === client.ip && f.IP?.destination === web.ip),
      { timeoutMs: 10_000, intervalMs: 250, what: `a flow ${client.ip} -> ${web.ip} on n1` },
    );
    assert.equal(flow.node_name, 'n1');
    assert.deepEqual(
      {
        sourceId: flow.source?.ID,
        sourcePod: flow.source?.pod_name,
        destinationId: flow.destination?.ID,
        destinationIdentity: flow.destination?.identity,
        destinationNamespace: flow.destination?.namespace,
        destinationPod: flow.destination?.pod_name,
      },
      {
        sourceId: clientEp.id,
        sourcePod: 'client',
        destinationId: undefined,
        destinationIdentity: webEp.identity,
        destinationNamespace: 'alpha',
        destinationPod: 'web',
      },
    );
  });

  it('is scraped by Prometheus on every node, which sees policy drops counted and rising', async (t) => {
    if (!requireRoot(t, 'runs a lab with the eBPF datapath and Prometheus', TOOLS)) return;
    const s = state!;
    // lab status shows each node's metrics address, the one lab state records.
    const status = membrane('lab', 'status');
    assert.match(status.out, /^NODE +IPv4 +POD CIDR +METRICS +NETNS$/m);
    for (const n of s.nodes) {
      assert.equal(n.metricsAddress, `${n.ip}:9965`);
      assert.match(status.out, new RegExp(`^${n.name} +${n.ip.replaceAll('.', '\\.')} +\\S+ +${n.ip}:9965 `, 'm'));
    }

    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: membrane',
      '    static_configs:',
      `      - targets: [${s.nodes.map((n) => `'${n.metricsAddress}'`).join(', ')}]`,
      '',
    ].join('\n');
    writeFileSync(join(promDir, 'prometheus.yml'), config);
    const log = openSync(join(promDir, 'prometheus.log'), 'a');
    prometheus = spawn(
      'ip',
      [
        'netns',
        'exec',
        worldNetns(lab),
        'prometheus',
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        `--web.listen-address=${PROMETHEUS}`,
      ],
      { stdio: ['ignore', log, log] },
    );
    const query = (q: string) => {
      const out = execFileSync(
        'ip',
        [
          'netns',
          'exec',
          worldNetns(lab),
          'curl',
          '-sf',
          '-G',
          '--data-urlencode',
          `query=${q}`,
          `http://${PROMETHEUS}/api/v1/query`,
        ],
        { encoding: 'utf8' },
      );
      return JSON.parse(out) as {
        status: string;
        data: { result: Array<{ metric: object; value: [number, string] }> };
      };
    };
    const value = (q: string) => {
      const r = query(q).data.result;
      return r.length === 0 ? 0 : Number(r[0]!.value[1]);
    };

    // Every node's target up: each agent serves /metrics on its underlay address.
    await until(() => value('sum(up{job="membrane"})') === s.nodes.length, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: `Prometheus scraping ${s.nodes.map((n) => n.metricsAddress).join(', ')}`,
    });

    const agents = s.nodes.map((n) => new AgentClient(agentSocket(lab, n.name)));
    const realized = async () => {
      const all = await Promise.all(agents.map((c) => c.get<AgentStatus>('/v1/status')));
      return all.every((x) => x.realizedPolicyRevision === x.policyRevision);
    };
    await agents[0]!.put('/v1/policy', { docs: [WEB_ONLY_FROM_OTHER], source: 'web-only-from-other.yaml' });
    await until(realized, { timeoutMs: 5000, what: 'policy realized on every node' });

    const flowsQuery = 'sum(hubble_flows_processed_total)';
    const dropsQuery = 'sum(hubble_drop_total{reason="POLICY_DENIED"})';
    assert.equal(connect(pod('web').ip), false, 'policy denies the client');
    const first = await until(
      () => {
        const drops = value(dropsQuery);
        const flows = value(flowsQuery);
        return drops > 0 && flows > 0 ? { drops, flows } : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250, what: 'hubble_drop_total{reason="POLICY_DENIED"} > 0 in Prometheus' },
    );
    assert.equal(connect(pod('web').ip), false, 'policy still denies the client');
    await until(() => value(dropsQuery) > first.drops && value(flowsQuery) > first.flows, {
      timeoutMs: 15_000,
      intervalMs: 250,
      what: 'drops and processed flows rising after a second denied connection',
    });
    t.diagnostic(`GET /api/v1/query?query=hubble_drop_total: ${JSON.stringify(query('hubble_drop_total'))}`);
  });
});
