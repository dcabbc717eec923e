// The agent in a running lab: killing it changes nothing on the wire, a restarted agent has the
// same state, an established connection lives through both; a bad policy file changes nothing.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openLabStore } from '../../src/lab/lab-etcd.js';
import { nodeDir } from '../../src/lab/lab-paths.js';
import { isAlive } from '../../src/lab/pod-process.js';
import { type Probe, runProbes } from '../../src/lab/probes.js';
import { labUp, UNDERLAY_PREFIX } from '../../src/lab/topology.js';
import { ENDPOINTS_PREFIX, IDENTITY_VALUES_PREFIX, nodeKey } from '../../src/store/cluster-resources.js';
import { LAB_TOOLS, MEMBRANE, MINI_WORLD, REPO, testLab } from '../lab/lab-fixture.js';
import { requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';

const PROBE = (from: string): Probe => ({ from, to: 'alpha/web', port: 8080, kind: 'http', path: '/' });

function membrane(env: NodeJS.ProcessEnv, ...args: string[]) {
  const r = spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// A client holding one TCP connection to the web pod; each stdin line sends GET /<line> on it.
const CLIENT = `const s=require('net').connect(8080,process.argv[1]);
process.stdin.on('data',d=>{for(const l of d.toString().split('\\n'))if(l)s.write('GET /'+l+' HTTP/1.1\\r\\nHost: w\\r\\n\\r\\n')});
s.on('data',d=>process.stdout.write(d));s.on('close',()=>{process.stdout.write('\\nCLOSED\\n');process.exit(0)});`;

describe('membrane agent in the lab', () => {
  for (const store of ['embedded', 'etcd'] as const)
    it(`keeps traffic and an established connection through a kill and a restart, with the same state (${store} store)`, async (t) => {
      if (!requireRoot(t, 'runs a lab', store === 'etcd' ? [...LAB_TOOLS, 'etcd'] : LAB_TOOLS)) return;
      const { lab, env, stateDir } = testLab(t);
      const state = await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO, store });
      const web = state.pods.find((p) => p.name === 'web')!;
      // A policy that decides: web takes ingress only from client, on its port named "http"
      // (8080 in the Pod manifest; the name reaches the agent through the CNI runtime args).
      const policy = join(stateDir, `${lab}-web.yaml`);
      writeFileSync(
        policy,
        'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web-from-client, namespace: alpha}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: http, protocol: TCP}]}]\n',
      );
      assert.equal(membrane(env, 'apply', '-f', policy).code, 0);
      const verdicts = async () =>
        (await runProbes(state, [PROBE('alpha/client'), PROBE('alpha/other')])).map((r) => r.outcome);
      await until(async () => (await verdicts()).join() === 'forwarded,dropped', {
        timeoutMs: 5000,
        what: 'policy enforced',
      });
      // The drop shows up as a flow on web's node, with the policy that made ingress default-deny.
      const flows = membrane(
        env,
        'observe',
        '--server',
        `unix://${join(nodeDir(lab, 'n2'), 'hubble.sock')}`,
        '--verdict',
        'DROPPED',
        '--last',
        '1',
        '-o',
        'json',
      );
      const line = JSON.parse(flows.out.split('\n')[0]);
      const flow = line.flow ?? line;
      assert.deepEqual(
        [flow.verdict, flow.drop_reason_desc, flow.source.pod_name, flow.destination.pod_name, flow.ingress_denied_by],
        [
          'DROPPED',
          'POLICY_DENIED',
          'other',
          'web',
          [{ name: 'web-from-client', namespace: 'alpha', kind: 'CiliumNetworkPolicy' }],
        ],
      );
      const before = JSON.parse(membrane(env, 'endpoint', 'list', '-o', 'json').out);

      const conn = spawn(
        process.execPath,
        [MEMBRANE, 'lab', 'exec', 'alpha/client', '--', process.execPath, '-e', CLIENT, web.ip],
        {
          env,
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      );
      t.after(() => conn.kill('SIGKILL'));
      let got = '';
      conn.stdout.on('data', (d) => {
        got += d;
      });
      const ask = async (path: string) => {
        conn.stdin.write(`${path}\n`);
        await until(() => got.includes(`"path":"/${path}"`), { timeoutMs: 5000, what: `answer to /${path}` });
      };
      await ask('before');
      // Steady load through the kill and the restart: new connections policy allows, one after
      // another (bounded in count and time), none may fail; and after each, a request on the
      // established connection, which must answer throughout (it also keeps the connection from
      // idling past the server's 5 s keep-alive while the lab restarts the agents).
      let loading = true;
      const outcomes: string[] = [];
      const load = (async () => {
        const deadline = Date.now() + 120_000;
        while (loading && outcomes.length < 2000 && Date.now() < deadline) {
          outcomes.push(...(await runProbes(state, [PROBE('alpha/client')])).map((r) => r.outcome));
          await ask(`load-${outcomes.length}`);
        }
      })();

      // Kill both agents: nothing about the pods' network may change.
      for (const n of ['n1', 'n2']) {
        const pid = Number(readFileSync(join(nodeDir(lab, n), 'agent.pid'), 'utf8'));
        process.kill(pid, 'SIGKILL');
        await until(() => !isAlive(pid), { what: `agent ${n} gone` });
      }
      await ask('agent-dead');
      assert.deepEqual(await verdicts(), ['forwarded', 'dropped'], 'enforcement unchanged while the agents are down');

      await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO });
      await ask('agent-back');
      // A restarted agent's endpoints and identity holds are on its new lease (the node key's),
      // none left on the old one, which expires.
      const cluster = await openLabStore(lab, UNDERLAY_PREFIX);
      try {
        for (const n of ['n1', 'n2']) {
          const lease = (await cluster.get(nodeKey(n)))!.lease;
          const holds = (await cluster.list(IDENTITY_VALUES_PREFIX)).items.filter((kv) => kv.key.endsWith(`/${n}`));
          const eps = (await cluster.list(`${ENDPOINTS_PREFIX}${n}/`)).items;
          assert.ok(holds.length > 0 && eps.length > 0, `node ${n} holds identities and has endpoints`);
          assert.deepEqual([...new Set([...holds, ...eps].map((kv) => kv.lease))], [lease], `node ${n}'s keys`);
        }
      } finally {
        await cluster.close();
      }
      loading = false;
      await load;
      assert.ok(outcomes.length >= 3, `${outcomes.length} connections under load`);
      assert.deepEqual(
        outcomes.filter((o) => o !== 'forwarded'),
        [],
        `every allowed connection of ${outcomes.length} went through`,
      );
      // The restarted agents found their maps right: they wrote no policy or ipcache entry.
      for (const n of ['n1', 'n2']) {
        const status = JSON.parse(membrane(env, 'status', '--node', n, '-o', 'json').out);
        assert.deepEqual(
          [status.reconciler.policyEntriesWritten, status.reconciler.ipcacheEntriesWritten, status.reconciler.failures],
          [0, 0, 0],
          `node ${n} after its restart`,
        );
      }
      assert.doesNotMatch(got, /CLOSED/);
      const after = JSON.parse(membrane(env, 'endpoint', 'list', '-o', 'json').out);
      assert.deepEqual(after, before, 'the restarted agents hold the same endpoints');
      assert.deepEqual(await verdicts(), ['forwarded', 'dropped'], 'enforcement unchanged after the restart');
    });

  it('rejects a policy file with one bad document whole; the running policy stays as it was', async (t) => {
    if (!requireRoot(t, 'runs a lab', LAB_TOOLS)) return;
    const { lab, env, stateDir } = testLab(t);
    await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO });
    const good = join(stateDir, `${lab}-good.yaml`);
    const bad = join(stateDir, `${lab}-bad.yaml`);
    const doc = (name: string) =>
      `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: ${name}, namespace: alpha}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n`;
    writeFileSync(good, doc('web-from-client'));
    const badPort = `${doc('web-bad-port')}    toPorts:\n    - ports:\n      - {port: "99999", protocol: TCP}\n`;
    writeFileSync(bad, `${doc('web-from-other')}---\n${badPort}`);
    t.after(() => spawnSync('rm', ['-f', good, bad]));
    const applied = membrane(env, 'apply', '-f', good);
    assert.equal(applied.code, 0, applied.err);
    const before = membrane(env, 'policy', 'get').out;
    const r = membrane(env, 'apply', '-f', bad);
    assert.equal(r.code, 1);
    assert.match(r.err, /toPorts\[0\]\.ports\[0\]\.port.*99999/);
    assert.equal(membrane(env, 'policy', 'get').out, before);
    // Revisions are the cluster store's: a policy change takes the next one.
    const appliedAt = Number(/web-from-client[\s\S]*Revision: (\d+)\n$/.exec(before)?.[1]);
    assert.ok(appliedAt > 0, before);
    const deleted = membrane(env, 'delete', '-f', good);
    const deletedAt = Number(
      /^ciliumnetworkpolicy alpha\/web-from-client deleted\nRevision: (\d+)\n$/.exec(deleted.out)?.[1],
    );
    assert.ok(deletedAt > appliedAt, deleted.out);
    assert.equal(membrane(env, 'policy', 'get').out, `[]\nRevision: ${deletedAt}\n`);
  });
});
