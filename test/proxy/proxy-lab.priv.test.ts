// The node proxy in a running lab, with the real processes: the agent starts the proxy, pushes it
// the L7 rules, and supervises it. A client on n1 whose egress L7 policy covers the web pod's port
// 9090 on n2 goes through n1's proxy (its upstream leaves with the client's own address, so web
// sees the client pod, and its replies are steered back to the proxy's socket at n1's underlay);
// `other` on n2 reaches web through n2's ingress proxy (pod to pod on one node). An agent kill
// cuts nothing; a proxy kill makes the L7 port fail closed while a plain port works; the
// supervisor (or a restarted agent) brings the proxy back with the rules it saved.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { nodeDir } from '../../src/lab/lab-paths.js';
import { isAlive } from '../../src/lab/pod-process.js';
import { labUp } from '../../src/lab/topology.js';
import { LAB_TOOLS, MEMBRANE, MINI_WORLD, REPO, testLab } from '../lab/lab-fixture.js';
import { requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';

function membrane(env: NodeJS.ProcessEnv, ...args: string[]) {
  const r = spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A second server in the web pod: answers GET /WORD with the peer address it sees and WORD. */
const PEER_SERVER = `const srv=require('http').createServer((q,r)=>{r.end('peer '+q.socket.remoteAddress+' '+q.url.slice(1)+'\\n')});
srv.on('connection',()=>console.log('conn'));srv.listen(9090,'0.0.0.0',()=>console.log('listening'));`;

/** A client holding one keep-alive connection to web:9090; each stdin line is a GET /LINE on it. */
const CLIENT = `const s=require('net').connect(9090,process.argv[1]);
process.stdin.on('data',d=>{for(const l of d.toString().split('\\n'))if(l)s.write('GET /'+l+' HTTP/1.1\\r\\nhost: web\\r\\n\\r\\n')});
s.on('data',d=>process.stdout.write(d));
s.on('close',()=>{process.stdout.write('\\nCLOSED\\n');process.exit(0)});`;

const POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-l7, namespace: alpha}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "9090", protocol: TCP}], rules: {http: [{method: GET}]}}]
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-l7, namespace: alpha}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: other}}]
    toPorts: [{ports: [{port: "9090", protocol: TCP}], rules: {http: [{method: GET}]}}]
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "9090", protocol: TCP}, {port: "8080", protocol: TCP}]}]
`;

describe('the node proxy in the lab', () => {
  it('proxies L7 flows across nodes and on one node, fails closed without the proxy and survives an agent restart', async (t) => {
    if (!requireRoot(t, 'runs a lab', LAB_TOOLS)) return;
    const { lab, env, stateDir } = testLab(t);
    const children: ChildProcess[] = [];
    t.after(() => {
      for (const c of children) c.kill('SIGKILL');
    });
    const state = await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO });
    const pod = (name: string) => state.pods.find((p) => p.name === name)!;
    const web = pod('web');
    const exec = (from: string, ...argv: string[]) => membrane(env, 'lab', 'exec', `alpha/${from}`, '--', ...argv);
    const status = (node: string) => JSON.parse(membrane(env, 'status', '--node', node, '-o', 'json').out);

    const server = spawn(process.execPath, [MEMBRANE, 'lab', 'exec', 'alpha/web', '--', 'node', '-e', PEER_SERVER], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(server);
    let serverOut = '';
    server.stdout.on('data', (d) => {
      serverOut += d;
    });
    await until(() => serverOut.includes('listening'), { timeoutMs: 10_000, what: 'peer server in web' });
    const file = join(stateDir, `${lab}-l7.yaml`);
    writeFileSync(file, POLICY);
    t.after(() => spawnSync('rm', ['-f', file]));
    assert.equal(membrane(env, 'apply', '-f', file).code, 0);

    /** GET /WORD on a new connection from `from` to web:9090; the answer or ''. */
    const askL7 = (from: string, word: string) =>
      exec(from, 'curl', '-s', '-m', '2', `http://${web.ip}:9090/${word}`).out;
    const plain = () =>
      exec('client', 'curl', '-s', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${web.ip}:8080/`).out;

    // Cross-node egress: through n1's proxy, the server sees the client pod's own address.
    await until(() => askL7('client', 'one').includes('one'), { timeoutMs: 15_000, what: 'client -> web:9090' });
    assert.match(askL7('client', 'two'), new RegExp(`peer (::ffff:)?${pod('client').ip} two`));
    await until(() => (status('n1').proxy?.connections ?? 0) >= 2, { timeoutMs: 5000, what: "n1's proxy counts it" });
    const n1 = status('n1').proxy;
    assert.ok(n1.workers >= 1 && n1.redirects >= 1, JSON.stringify(n1));
    assert.equal(plain(), '200', 'a port without L7 rules passes on the fast path');

    // Same node, ingress: other -> web on n2 through n2's ingress proxy.
    const n2Before = status('n2').proxy?.connections ?? 0;
    assert.match(askL7('other', 'three'), /three/);
    await until(() => (status('n2').proxy?.connections ?? 0) > n2Before, {
      timeoutMs: 5000,
      what: "n2's proxy counts other -> web",
    });

    // An established proxied connection lives through an agent kill and restart.
    const conn = spawn(
      process.execPath,
      [MEMBRANE, 'lab', 'exec', 'alpha/client', '--', 'node', '-e', CLIENT, web.ip],
      {
        env,
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    children.push(conn);
    let got = '';
    conn.stdout.on('data', (d) => {
      got += d;
    });
    const say = async (line: string) => {
      conn.stdin.write(`${line}\n`);
      await until(() => got.includes(` ${line}\n`), { timeoutMs: 5000, what: `answer to ${line}` });
    };
    await say('before');
    const agentPid = Number(readFileSync(join(nodeDir(lab, 'n1'), 'agent.pid'), 'utf8'));
    process.kill(agentPid, 'SIGKILL');
    await until(() => !isAlive(agentPid), { what: 'agent n1 gone' });
    await say('agent-dead');
    assert.match(askL7('client', 'four'), /four/, 'new L7 connections too, with the agent down');

    // The proxy killed (and no agent to restart it): the L7 port fails closed, nothing reaches
    // the server; the plain port works.
    const proxyPid = Number(readFileSync(join(nodeDir(lab, 'n1'), 'proxy', 'proxy.pid'), 'utf8'));
    process.kill(proxyPid, 'SIGKILL');
    await until(() => !isAlive(proxyPid), { what: 'proxy n1 gone' });
    await until(() => got.includes('CLOSED'), { timeoutMs: 5000, what: "the proxy's connection closes with it" });
    await until(() => askL7('client', 'probe') === '', { timeoutMs: 10_000, what: 'workers gone' });
    const conns = (serverOut.match(/conn/g) ?? []).length;
    assert.equal(askL7('client', 'five'), '', 'the L7 port fails closed');
    assert.equal((serverOut.match(/conn/g) ?? []).length, conns, 'no connection reached the server');
    assert.equal(plain(), '200', 'non-L7 traffic is untouched');

    // The agent back: it starts the proxy, which enforces its saved rules.
    await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO });
    await until(() => askL7('client', 'six').includes('six'), { timeoutMs: 15_000, what: 'proxy back' });

    // Killed under a running agent: the supervisor starts it again.
    const again = Number(readFileSync(join(nodeDir(lab, 'n1'), 'proxy', 'proxy.pid'), 'utf8'));
    process.kill(again, 'SIGKILL');
    await until(() => (status('n1').proxy?.process?.restarts ?? 0) >= 1, {
      timeoutMs: 10_000,
      what: 'supervisor restart',
    });
    await until(() => askL7('client', 'seven').includes('seven'), { timeoutMs: 15_000, what: 'proxy restarted' });
  });
});
