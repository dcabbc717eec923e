// The lab end to end: up (through the CNI plugin and the agents), traffic between real servers,
// idempotent up, and a down that leaves nothing behind, even after a failed up.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bpffsDir, labDir, netnsPrefix, relaySocket } from '../../src/lab/lab-paths.js';
import { labDown, labNetns } from '../../src/lab/teardown.js';
import { labUp } from '../../src/lab/topology.js';
import { requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { LAB_TOOLS, MEMBRANE, MINI_WORLD, REPO, testLab } from './lab-fixture.js';

function membrane(env: NodeJS.ProcessEnv, ...args: string[]) {
  const r = spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Everything a lab could leave behind, to compare against nothing. */
function leftovers(lab: string): string[] {
  const out: string[] = labNetns(lab).map((n) => `netns ${n}`);
  if (existsSync(bpffsDir(lab))) out.push(`bpffs ${bpffsDir(lab)}`);
  if (existsSync(labDir(lab))) out.push(`state ${labDir(lab)}`);
  const ps = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  // Agents name the lab, pods' netns carry its prefix, etcd members keep their data under its dir.
  for (const line of ps.split('\n'))
    if (line.includes(`--lab ${lab} `) || line.includes(`mbr-${lab}-`) || line.includes(`${labDir(lab)}/`))
      out.push(line.trim());
  return out;
}

describe('membrane lab', () => {
  for (const store of ['embedded', 'etcd'] as const)
    it(`brings up nodes, agents and pods that talk over HTTP and DNS, idempotently, and removes everything (${store} store)`, async (t) => {
      if (
        !requireRoot(
          t,
          'creates network namespaces and runs agents',
          store === 'etcd' ? [...LAB_TOOLS, 'etcd'] : LAB_TOOLS,
        )
      )
        return;
      const { lab, env } = testLab(t);
      const state = await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO, store });
      assert.deepEqual(state.pods.map((p) => `${p.namespace}/${p.name}@${p.node}`).sort(), [
        'alpha/client@n1',
        'alpha/other@n2',
        'alpha/web@n2',
        'kube-system/coredns@n1',
      ]);
      // Cross-node pod to pod through the lab DNS: bytes that arrived, from the server that sent them.
      const r = membrane(
        env,
        'lab',
        'exec',
        'alpha/client',
        '--',
        'curl',
        '-s',
        '-m',
        '5',
        'http://web.alpha:8080/hello',
      );
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(JSON.parse(r.out), {
        pod: 'web',
        namespace: 'alpha',
        port: 8080,
        method: 'GET',
        path: '/hello',
        received: 0,
      });
      // The lab's relay merges both nodes' flows: the client's side on n1, the server's on n2.
      await until(
        () => {
          const o = membrane(env, 'observe', '--server', `unix://${relaySocket(lab)}`, '--last', '50', '-o', 'json');
          const nodes = new Set(
            o.out
              .split('\n')
              .filter((l) => l.includes('"/hello"') || l.includes('8080'))
              .map((l) => (JSON.parse(l).flow ?? JSON.parse(l)).node_name),
          );
          return nodes.has('n1') && nodes.has('n2');
        },
        { timeoutMs: 10_000, intervalMs: 250, what: 'flows from both nodes through the relay' },
      );
      // The outside host, by name.
      const w = membrane(env, 'lab', 'exec', 'alpha/client', '--', 'curl', '-s', '-m', '5', 'http://api.example.com/');
      assert.equal(JSON.parse(w.out).namespace, 'world');

      const eps = JSON.parse(membrane(env, 'endpoint', 'list', '-o', 'json').out) as Array<{
        podName: string;
        node: string;
      }>;
      assert.deepEqual(eps.map((e) => `${e.podName}@${e.node}`).sort(), [
        'client@n1',
        'coredns@n1',
        'other@n2',
        'web@n2',
      ]);

      // The CLI over the agents: health, identities, the connectivity suite.
      const st = JSON.parse(membrane(env, 'status', '--node', 'n1', '-o', 'json').out) as {
        subsystems: Array<{ name: string; state: string }>;
      };
      assert.deepEqual(
        st.subsystems.map((x) => `${x.name}=${x.state}`),
        ['store=Ok', 'endpoints=Ok', 'policy=Ok', 'datapath=Ok', 'fqdn=Ok', 'services=Ok', 'reconciler=Ok'],
      );
      const ids = JSON.parse(membrane(env, 'identity', 'list', '-o', 'json').out) as Array<{
        id: number;
        labels: string[];
      }>;
      assert.ok(ids.some((i) => i.id >= 256 && i.labels.includes('k8s:app=web')));
      const conn = membrane(env, 'connectivity', 'test');
      assert.equal(conn.code, 0, conn.out + conn.err);
      assert.match(conn.out, /✅ All 7 tests \(7 actions\) successful/);
      // The L7 checks: GET allowed through the proxy, DELETE answered 403; their policy removed after.
      assert.match(conn.out, /\[pod-to-pod-l7-allowed\][^\n]*\n {2}✅ forwarded/);
      assert.match(conn.out, /\[pod-to-pod-l7-denied\][^\n]*\n {2}✅ denied, expected denied/);
      assert.doesNotMatch(membrane(env, 'policy', 'get', '-o', 'json').out, /membrane-connectivity-l7/);

      const again = await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO });
      assert.equal(again.store, store, 'a second up keeps the store it was made with');
      assert.deepEqual(
        again.pods.map((p) => [p.name, p.ip, p.pid]),
        state.pods.map((p) => [p.name, p.ip, p.pid]),
        'a second up changes nothing',
      );
      const status = membrane(env, 'lab', 'status');
      assert.match(status.out, /^n1 +172\.30\.0\.11 +10\.201\.1\.0\/24/m);

      const down = membrane(env, 'lab', 'down');
      assert.equal(down.code, 0, down.err);
      assert.deepEqual(leftovers(lab), []);
    });

  it('leaves nothing behind when down follows a failed up', async (t) => {
    if (!requireRoot(t, 'creates network namespaces and runs agents', LAB_TOOLS)) return;
    const { lab } = testLab(t);
    const broken = join(labDir(lab), '..', `${lab}-broken.yaml`);
    writeFileSync(
      broken,
      'apiVersion: v1\nkind: Pod\nmetadata: {name: lost, namespace: alpha}\nspec:\n  nodeName: n9\n  containers:\n  - {name: x, command: [sleep, "60"]}\n',
    );
    t.after(() => execFileSync('rm', ['-f', broken]));
    await assert.rejects(labUp({ lab, worldFiles: [MINI_WORLD, broken], repoRoot: REPO }), {
      code: 'MBR_WORLD_INVALID',
      message: 'world: spec.nodeName: expected one of n1, n2, got "n9"',
    });
    assert.ok(labNetns(lab).length > 0, 'the failed up got as far as creating namespaces');
    await labDown(lab);
    assert.deepEqual(leftovers(lab), []);
    assert.equal(readdirSync('/run/netns').filter((n) => n.startsWith(netnsPrefix(lab))).length, 0);
  });

  it('rejects a lab name that cannot become a netns prefix or a path, in up and in down', async (t) => {
    if (!requireRoot(t, 'runs lab up', LAB_TOOLS)) return;
    await assert.rejects(labUp({ lab: 'Bad-Name', worldFiles: [MINI_WORLD], repoRoot: REPO }), {
      code: 'MBR_LAB_NAME',
      message: 'lab name: expected 1-12 lowercase letters or digits starting with a letter, got "Bad-Name"',
    });
    await assert.rejects(labDown('../..'), {
      code: 'MBR_LAB_NAME',
      message: 'lab name: expected 1-12 lowercase letters or digits starting with a letter, got "../.."',
    });
    const r = membrane(process.env, 'lab', 'down', '--lab', '../x');
    assert.equal(r.code, 2);
    assert.equal(
      r.err,
      'membrane: --lab: expected 1-12 lowercase letters or digits starting with a letter, got "../x"\n',
    );
  });
});
