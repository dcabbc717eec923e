// HTTP policy through the node proxy on real traffic in a lab: the agent's redirect hands the
// policed port to `membrane proxy run`, whose HTTP handler decides each request. The client on n1
// reaches web on n2 through n1's egress proxy (across nodes); `other` reaches web on n2 through n2's
// ingress proxy (same node). Real clients (curl, nghttp, @grpc/grpc-js) against servers that log
// every request they see, so "denied" means answered by the proxy and never seen by the server.
// Bodies (8 MiB up, a slow chunked upload, 6 MiB down) are checked by length and SHA-256 at the
// far end; a WebSocket upgrade becomes a byte pipe through the proxy once the server says 101.
// The flows (`membrane observe --type l7 ...`) and the agent's Hubble http metrics count them.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { nodeDir, worldNetns } from '../../src/lab/lab-paths.js';
import { labUp } from '../../src/lab/topology.js';
import { LAB_TOOLS, MEMBRANE, MINI_WORLD, REPO, testLab } from '../lab/lab-fixture.js';
import { requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';

const SECRET_VALUE = 's3cr3t-token-value';

/** Deterministic bytes the server sends for `/big-<n>` and the test checks (no short period). */
const PATTERN = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >>> 8) + (i >>> 16)) & 255;
  return b;
};

/** Every request each server sees, one JSON line: {port, method, url, headers} (sessions for h2). */
const SERVERS = `
const { createRequire } = require('node:module');
const req = createRequire(${JSON.stringify(`${REPO}/package.json`)});
const log = (o) => console.log(JSON.stringify(o));
const pattern = ${PATTERN.toString()};
const web = require('node:http').createServer((q, r) => {
  log({ port: 9090, method: q.method, url: q.url, headers: q.headers });
  const h = require('node:crypto').createHash('sha256');
  let len = 0;
  q.on('data', (d) => { h.update(d); len += d.length; });
  q.on('end', () => {
    if (len > 0) log({ bodyOf: q.url, len, sha: h.digest('hex') });
    const big = /\\/big-(\\d+)$/.exec(q.url);
    r.end(big ? pattern(Number(big[1])) : 'served ' + q.method + ' ' + q.url + '\\n');
  });
});
// A WebSocket-style upgrade: 101, a greeting, then every chunk echoed back with a prefix.
web.on('upgrade', (q, sock) => {
  log({ port: 9090, method: q.method, url: q.url, upgrade: q.headers.upgrade });
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nupgrade: websocket\\r\\nconnection: Upgrade\\r\\n\\r\\nhello\\n');
  sock.on('data', (d) => sock.write('echo:' + d));
  sock.on('error', () => {});
});
web.listen(9090, '0.0.0.0', () => log({ listening: 9090 }));
const h2 = require('node:http2').createServer();
h2.on('session', () => log({ port: 9091, session: true }));
h2.on('stream', (s, h) => {
  log({ port: 9091, method: h[':method'], url: h[':path'] });
  s.respond({ ':status': 200 });
  s.end('h2 ' + h[':path']);
});
h2.listen(9091, '0.0.0.0', () => log({ listening: 9091 }));
const grpc = req('@grpc/grpc-js');
const id = (x) => x;
const m = (p) => ({ path: p, requestStream: false, responseStream: false, requestSerialize: id,
  requestDeserialize: id, responseSerialize: id, responseDeserialize: id });
const g = new grpc.Server();
const call = (name) => (c, cb) => { log({ port: 9092, method: 'POST', url: '/demo.Payments/' + name }); cb(null, Buffer.from(name)); };
g.addService({ Get: m('/demo.Payments/Get'), Delete: m('/demo.Payments/Delete') }, { Get: call('Get'), Delete: call('Delete') });
g.bindAsync('0.0.0.0:9092', grpc.ServerCredentials.createInsecure(), () => log({ listening: 9092 }));
`;

/** A gRPC client: Get then Delete on one channel; prints {method, code} per call. */
const GRPC_CLIENT = `
const { createRequire } = require('node:module');
const grpc = createRequire(${JSON.stringify(`${REPO}/package.json`)})('@grpc/grpc-js');
const id = (x) => x;
const m = (p) => ({ path: p, requestStream: false, responseStream: false, requestSerialize: id,
  requestDeserialize: id, responseSerialize: id, responseDeserialize: id });
const C = grpc.makeGenericClientConstructor({ Get: m('/demo.Payments/Get'), Delete: m('/demo.Payments/Delete') });
const c = new C(process.argv[1] + ':9092', grpc.credentials.createInsecure());
const out = (method, e, v) => console.log(JSON.stringify({ method, code: e ? e.code : 0, value: v ? v.toString() : '' }));
c.Get(Buffer.from('x'), { deadline: Date.now() + 3000 }, (e, v) => {
  out('Get', e, v);
  c.Delete(Buffer.from('x'), { deadline: Date.now() + 3000 }, (e2, v2) => { out('Delete', e2, v2); process.exit(0); });
});
`;

/** Writes argv[2] (JSON string) on one connection to argv[1]:9090; prints what came back until 2 s of quiet or close. */
const RAW_CLIENT = `
const s = require('node:net').connect(9090, process.argv[1]);
let got = '';
let t;
const done = () => { process.stdout.write(got); process.exit(0); };
const arm = () => { clearTimeout(t); t = setTimeout(done, 2000); };
s.on('connect', () => { s.write(JSON.parse(process.argv[2])); arm(); });
s.on('data', (d) => { got += d; arm(); });
s.on('close', done);
s.on('error', done);
`;

/**
 * Bodies and upgrades against argv[2]:9090, printing one JSON line:
 * `post <bytes> <chunks> <pauseMs>` sends random bytes in that many writes (chunked when more than
 * one), pausing between them; `get <n>` reads `/big-<n>`; `ws` sends an allowed GET, then upgrades
 * on the same connection and exchanges bytes both ways.
 */
const BODY_CLIENT = `
const [mode, ip, a, b, c] = process.argv.slice(1);
const crypto = require('node:crypto');
const http = require('node:http');
const out = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
setTimeout(() => out({ timeout: true }), 20000);
const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const collect = (res) => {
  const parts = [];
  res.on('data', (d) => parts.push(d));
  res.on('end', () => { const all = Buffer.concat(parts); out({ status: res.statusCode, len: all.length, sha: sha(all), text: all.length < 100 ? all.toString() : '' }); });
};
if (mode === 'post') {
  const body = crypto.randomBytes(Number(a));
  const chunks = Number(b);
  const headers = chunks === 1 ? { 'content-length': body.length } : {};
  const q = http.request({ host: ip, port: 9090, method: 'POST', path: '/api/v1/payments', headers }, (res) => collect(res));
  q.on('error', (e) => out({ error: e.message }));
  console.log(JSON.stringify({ sent: body.length, sha: sha(body) }));
  const step = Math.ceil(body.length / chunks);
  let i = 0;
  const next = () => {
    q.write(body.subarray(i * step, (i + 1) * step));
    if (++i < chunks) setTimeout(next, Number(c)); else q.end();
  };
  next();
} else if (mode === 'get') {
  http.get({ host: ip, port: 9090, path: '/api/v1/payments/big-' + a }, collect).on('error', (e) => out({ error: e.message }));
} else {
  const s = require('node:net').connect(9090, ip);
  let got = '';
  let phase = 0;
  s.on('connect', () => s.write('GET /api/v1/payments/before-ws HTTP/1.1\\r\\nhost: web\\r\\n\\r\\n'));
  s.on('data', (d) => {
    got += d;
    if (phase === 0 && got.includes('served GET /api/v1/payments/before-ws\\n')) {
      phase = 1;
      got = '';
      s.write('GET /api/v1/payments/ws HTTP/1.1\\r\\nhost: web\\r\\nconnection: Upgrade\\r\\nupgrade: websocket\\r\\n' +
        'sec-websocket-version: 13\\r\\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n');
    } else if (phase === 1 && got.includes('hello\\n')) {
      phase = 2;
      s.write('ping-from-client\\n');
    } else if (phase === 2 && got.includes('echo:ping-from-client\\n')) {
      out({ status: got.slice(9, 12), got });
    }
  });
  s.on('close', () => out({ closed: true, phase, got }));
  s.on('error', (e) => out({ error: e.message, phase, got }));
}
`;

const POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-l7, namespace: alpha}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "9090", protocol: TCP}, {port: "9091", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: "/api/v1/payments/.*"}
        - {method: POST, path: "/api/v1/payments$"}
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: "/demo.Payments/Get"}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-l7, namespace: alpha}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: other}}]
    toPorts:
    - ports: [{port: "9090", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: "/api/v1/payments/.*"}
        - method: GET
          path: "/hm"
          headerMatches:
          - {name: X-Added, value: "yes", mismatch: ADD}
          - {name: X-Token, secret: {name: api-token}, mismatch: REPLACE}
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "9090", protocol: TCP}, {port: "9091", protocol: TCP}, {port: "9092", protocol: TCP}]}]
---
apiVersion: v1
kind: Secret
metadata: {name: api-token, namespace: alpha}
stringData: {token: ${SECRET_VALUE}}
`;

interface Seen {
  port?: number;
  method?: string;
  url?: string;
  session?: boolean;
  listening?: number;
  headers?: Record<string, string>;
}

interface L7Flow {
  verdict?: string;
  Type?: string;
  l7?: { type?: string; latency_ns?: number; http?: { code?: number; method?: string; url?: string } };
  egress_allowed_by?: Array<{ name: string }>;
  egress_denied_by?: Array<{ name: string }>;
  ingress_allowed_by?: Array<{ name: string }>;
  ingress_denied_by?: Array<{ name: string }>;
}

describe('HTTP policy through the node proxy in a lab', () => {
  it('allows, denies, edits and records HTTP/1.1, WebSocket upgrades, large and slow bodies, HTTP/2 and gRPC on real traffic', async (t) => {
    if (!requireRoot(t, 'runs a lab', [...LAB_TOOLS, 'nghttp'])) return;
    const { lab, env, stateDir } = testLab(t);
    const children: ChildProcess[] = [];
    t.after(() => {
      for (const c of children) c.kill('SIGKILL');
    });
    const membrane = (...args: string[]) => {
      const r = spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env, timeout: 60_000 });
      return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
    };
    const state = await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO });
    const pod = (name: string) => state.pods.find((p) => p.name === name)!;
    const web = pod('web');
    assert.equal(pod('client').node, 'n1');
    assert.equal(web.node, 'n2');
    assert.equal(pod('other').node, 'n2');
    const exec = (from: string, ...argv: string[]) => membrane('lab', 'exec', `alpha/${from}`, '--', ...argv);

    const serverFile = join(stateDir, `${lab}-servers.cjs`);
    writeFileSync(serverFile, SERVERS);
    const server = spawn(process.execPath, [MEMBRANE, 'lab', 'exec', 'alpha/web', '--', 'node', serverFile], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(server);
    let serverOut = '';
    server.stdout.on('data', (d) => {
      serverOut += d;
    });
    const seen = (): Seen[] =>
      serverOut
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Seen);
    const requests = () => seen().filter((s) => s.method !== undefined);
    await until(() => seen().filter((s) => s.listening).length === 3, { timeoutMs: 15_000, what: 'servers in web' });

    const policyFile = join(stateDir, `${lab}-l7-http.yaml`);
    writeFileSync(policyFile, POLICY);
    const applied = membrane('apply', '-f', policyFile);
    assert.equal(applied.code, 0, applied.err);
    assert.doesNotMatch(membrane('policy', 'get', '-o', 'json').out, new RegExp(SECRET_VALUE), 'policy get hides it');

    /**
     * The server's log is read through a pipe: an allowed request sent last and seen by the server
     * means every earlier one that reached it is in the log too.
     */
    let markers = 0;
    const settle = async (from = 'client') => {
      const url = `/api/v1/payments/marker-${++markers}`;
      assert.equal(curl(from, 'GET', url).status, '200');
      await until(() => requests().some((r) => r.url === url), { timeoutMs: 5000, what: `${url} in the server's log` });
      return `GET ${url}`;
    };
    const curl = (from: string, method: string, path: string, ...extra: string[]) => {
      const r = exec(
        from,
        'curl',
        '-s',
        '-m',
        '3',
        '-X',
        method,
        ...extra,
        '-w',
        '\n%{http_code}',
        `http://${web.ip}:9090${path}`,
      );
      const i = r.out.lastIndexOf('\n');
      return { status: r.out.slice(i + 1), body: r.out.slice(0, i) };
    };

    // HTTP/1.1 egress across nodes (n1's proxy): the allowed methods and paths reach the server.
    await until(() => curl('client', 'GET', '/api/v1/payments/1').status === '200', {
      timeoutMs: 15_000,
      what: 'client GET through the proxy',
    });
    assert.deepEqual(curl('client', 'POST', '/api/v1/payments', '-d', 'amount=5'), {
      status: '200',
      body: 'served POST /api/v1/payments\n',
    });
    await settle();
    const before = requests().length;
    for (const [method, path] of [
      ['DELETE', '/api/v1/payments/1'],
      ['POST', '/api/v1/payments/1'],
      ['GET', '/admin'],
      ['PUT', '/api/v1/payments'],
    ])
      assert.deepEqual(curl('client', method, path), { status: '403', body: 'Access denied\r\n' }, `${method} ${path}`);
    // Same node, ingress (n2's proxy).
    assert.equal(curl('other', 'GET', '/api/v1/payments/7').status, '200');
    assert.deepEqual(curl('other', 'DELETE', '/api/v1/payments/7'), { status: '403', body: 'Access denied\r\n' });
    const mk1 = await settle('other');
    assert.deepEqual(
      requests()
        .slice(before)
        .map((s) => `${s.method} ${s.url}`),
      ['GET /api/v1/payments/7', mk1],
      'the server saw none of the denied requests',
    );

    // headerMatches at ingress: ADD a missing field, REPLACE a wrong value with the Secret's.
    await settle();
    const n = requests().length;
    assert.equal(curl('other', 'GET', '/hm', '-H', 'X-Token: wrong').status, '200');
    const hm = await until(() => requests()[n], { timeoutMs: 5000, what: '/hm at the server' });
    assert.equal(hm.url, '/hm');
    assert.equal(hm.headers?.['x-added'], 'yes');
    assert.equal(hm.headers?.['x-token'], SECRET_VALUE, 'the proxy resolved the Secret the agent sent it');

    // Pipelined: three requests in one write, the middle one denied; answers in order, the server
    // sees the two allowed ones.
    const pipelined =
      `GET /api/v1/payments/p1 HTTP/1.1\r\nhost: web\r\n\r\n` +
      `DELETE /api/v1/payments/p2 HTTP/1.1\r\nhost: web\r\n\r\n` +
      `GET /api/v1/payments/p3 HTTP/1.1\r\nhost: web\r\n\r\n`;
    await settle();
    const p0 = requests().length;
    const raw = exec('client', 'node', '-e', RAW_CLIENT, web.ip, JSON.stringify(pipelined)).out;
    assert.deepEqual(
      [...raw.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]),
      ['200', '403', '200'],
      raw,
    );
    const m2 = await settle();
    assert.deepEqual(
      requests()
        .slice(p0)
        .map((s) => `${s.method} ${s.url}`),
      ['GET /api/v1/payments/p1', 'GET /api/v1/payments/p3', m2],
    );

    // Smuggling and garbage: 400, nothing forwarded, the proxy keeps serving.
    await settle();
    const s0 = requests().length;
    for (const bad of [
      'POST /api/v1/payments HTTP/1.1\r\nhost: web\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nhost: web\r\n\r\n',
      'GET /api/v1/payments/1 HTTP/1.1\r\nhost: web\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nxx',
      'GET /api/v1/payments/1 HTTP/1.1\r\nhost: web\r\nx-folded: a\r\n  b\r\n\r\n',
      '\x16\x03\x01\x02\x00garbage\r\n\r\n',
    ])
      assert.match(exec('client', 'node', '-e', RAW_CLIENT, web.ip, JSON.stringify(bad)).out, /^HTTP\/1\.1 400/, bad);
    const m3 = await settle();
    assert.deepEqual(
      requests()
        .slice(s0)
        .map((s) => `${s.method} ${s.url}`),
      [m3],
      'nothing of a malformed request reached the server, and the proxy still serves',
    );

    // HTTP/2 (h2c, prior knowledge) through n1's proxy: two streams on one connection, one denied.
    await settle();
    const h0 = seen().length;
    const h2 = exec(
      'client',
      'nghttp',
      '-v',
      '-t',
      '3',
      `http://${web.ip}:9091/api/v1/payments/h2`,
      `http://${web.ip}:9091/admin/h2`,
    ).out;
    assert.deepEqual([...h2.matchAll(/:status: (\d{3})/g)].map((m) => m[1]).sort(), ['200', '403'], h2);
    await settle();
    const h2seen = seen().slice(h0);
    assert.equal(h2seen.filter((s) => s.session).length, 1, 'one upstream HTTP/2 connection');
    assert.deepEqual(
      h2seen.filter((s) => s.port === 9091 && s.method).map((s) => s.url),
      ['/api/v1/payments/h2'],
    );

    // gRPC: Get allowed, Delete PERMISSION_DENIED (7) and never reaching the server.
    await settle();
    const g0 = requests().length;
    const grpc = exec('client', 'node', '-e', GRPC_CLIENT, web.ip).out;
    assert.deepEqual(
      grpc
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { method: string; code: number }),
      [
        { method: 'Get', code: 0, value: 'Get' },
        { method: 'Delete', code: 7, value: '' },
      ],
      grpc,
    );
    const m4 = await settle();
    assert.deepEqual(
      requests()
        .slice(g0)
        .map((s) => `${s.method} ${s.url}`),
      ['POST /demo.Payments/Get', m4],
    );

    // WebSocket through n1's proxy: an allowed GET, then an upgrade on the same connection gets the
    // server's 101 and bytes flow both ways; an upgrade on a denied path is answered 403 by the proxy.
    await settle();
    const w0 = requests().length;
    const bodyClient = (...args: string[]) =>
      exec('client', 'node', '-e', BODY_CLIENT, ...args)
        .out.trim()
        .split('\n')
        .map(
          (l) =>
            JSON.parse(l) as {
              status?: number | string;
              len?: number;
              sha?: string;
              sent?: number;
              got?: string;
              text?: string;
            },
        );
    const ws = bodyClient('ws', web.ip);
    assert.equal(ws.length, 1, JSON.stringify(ws));
    assert.equal(ws[0]!.status, '101', JSON.stringify(ws));
    assert.match(ws[0]!.got ?? '', /\r\n\r\nhello\necho:ping-from-client\n$/);
    const deniedWs = exec(
      'client',
      'node',
      '-e',
      RAW_CLIENT,
      web.ip,
      JSON.stringify('GET /ws HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\nhello?'),
    ).out;
    assert.match(deniedWs, /^HTTP\/1\.1 403/, deniedWs);
    assert.doesNotMatch(deniedWs, /101/, deniedWs);
    const m5 = await settle();
    assert.deepEqual(
      requests()
        .slice(w0)
        .map((s) => `${s.method} ${s.url}`),
      ['GET /api/v1/payments/before-ws', 'GET /api/v1/payments/ws', m5],
      'the denied upgrade never reached the server',
    );

    // Bodies through n1's proxy: 8 MiB in one request, 512 KiB sent slowly in chunked pieces, and a
    // 6 MiB response, each checked by length and SHA-256 at the far end.
    const bodies = (): Array<{ bodyOf: string; len: number; sha: string }> =>
      serverOut
        .split('\n')
        .filter((l) => l.startsWith('{"bodyOf"'))
        .map((l) => JSON.parse(l));
    for (const [bytes, chunks, pauseMs] of [
      [8 << 20, 1, 0],
      [512 << 10, 8, 150],
    ] as const) {
      const b0 = bodies().length;
      const [sent, got] = bodyClient('post', web.ip, String(bytes), String(chunks), String(pauseMs));
      assert.equal(sent?.sent, bytes);
      assert.deepEqual(
        { status: got?.status, text: got?.text },
        { status: 200, text: 'served POST /api/v1/payments\n' },
      );
      const atServer = await until(() => bodies()[b0], {
        timeoutMs: 5000,
        what: `the ${bytes}-byte body at the server`,
      });
      assert.deepEqual(atServer, { bodyOf: '/api/v1/payments', len: bytes, sha: sent?.sha }, `${chunks} writes`);
    }
    const big = 6 << 20;
    const [resp6] = bodyClient('get', web.ip, String(big));
    const expected = PATTERN(big);
    assert.deepEqual(
      { status: resp6?.status, len: resp6?.len, sha: resp6?.sha },
      { status: 200, len: big, sha: createHash('sha256').update(expected).digest('hex') },
    );

    // The L7 flows on n1 (egress) and n2 (ingress), filtered as `hubble observe` does.
    const observe = (node: string, ...filters: string[]): L7Flow[] =>
      membrane(
        'observe',
        '--server',
        `unix://${join(nodeDir(lab, node), 'hubble.sock')}`,
        '--last',
        '1000',
        '-o',
        'json',
        '--type',
        'l7',
        '--protocol',
        'http',
        ...filters,
      )
        .out.split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const o = JSON.parse(l) as { flow?: L7Flow } & L7Flow;
          return o.flow ?? o;
        });
    const deniedEgress = await until(
      () =>
        observe('n1', '--http-method', 'DELETE', '--http-path', '/api/v1/payments/1').find(
          (f) => f.l7?.type === 'REQUEST',
        ),
      { timeoutMs: 10_000, what: 'the denied DELETE as an L7 flow on n1' },
    );
    assert.equal(deniedEgress.verdict, 'DROPPED');
    assert.equal(deniedEgress.Type, 'L7');
    assert.equal(deniedEgress.l7?.http?.code, 403);
    assert.deepEqual(
      deniedEgress.egress_denied_by?.map((p) => p.name),
      ['client-l7'],
    );
    const allowed = observe('n1', '--http-method', 'GET', '--http-path', '/api/v1/payments/1');
    const req = allowed.find((f) => f.l7?.type === 'REQUEST');
    assert.equal(req?.verdict, 'FORWARDED');
    assert.deepEqual(
      req?.egress_allowed_by?.map((p) => p.name),
      ['client-l7'],
    );
    const resp = observe('n1', '--http-status', '200', '--http-path', '/api/v1/payments/1').find(
      (f) => f.l7?.type === 'RESPONSE',
    );
    assert.equal(resp?.verdict, 'FORWARDED');
    assert.ok((resp?.l7?.latency_ns ?? 0) > 0, 'a response carries its latency');
    const grpcDenied = observe('n1', '--http-path', '/demo.Payments/Delete').find((f) => f.l7?.type === 'REQUEST');
    assert.equal(grpcDenied?.verdict, 'DROPPED');
    const ingressDenied = observe('n2', '--http-method', 'DELETE', '--http-path', '/api/v1/payments/7').find(
      (f) => f.l7?.type === 'REQUEST',
    );
    assert.equal(ingressDenied?.verdict, 'DROPPED');
    assert.deepEqual(
      ingressDenied?.ingress_denied_by?.map((p) => p.name),
      ['web-l7'],
    );
    const n2all = membrane(
      'observe',
      '--server',
      `unix://${join(nodeDir(lab, 'n2'), 'hubble.sock')}`,
      '--last',
      '1000',
      '-o',
      'json',
    ).out;
    assert.match(n2all, /"url":"http:\/\/[^"]*\/hm"/, 'the headerMatches request is a flow');
    assert.doesNotMatch(n2all, new RegExp(SECRET_VALUE), 'the Secret value never reaches a flow');

    // Hubble's http metrics on each agent count them.
    const scrape = (node: string) =>
      execFileSync(
        'ip',
        [
          'netns',
          'exec',
          worldNetns(lab),
          'curl',
          '-sf',
          `http://${state.nodes.find((x) => x.name === node)!.metricsAddress}/metrics`,
        ],
        { encoding: 'utf8' },
      );
    const count = (text: string, name: string, re: RegExp) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && re.test(l))
        .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    // httpV2 counts responses by status (a denied request has none, as with Cilium's proxy); the
    // policy metric counts every L7 verdict.
    const m1 = await until(
      () => {
        const m = scrape('n1');
        return count(m, 'hubble_policy_verdicts_total', /match="l7\/http".*action="dropped"/) >= 6 ? m : undefined;
      },
      { timeoutMs: 10_000, what: "n1's hubble_policy_verdicts_total counts the L7 denials" },
    );
    assert.ok(count(m1, 'hubble_http_requests_total', /method="GET".*status="200"/) >= 5, m1);
    assert.ok(count(m1, 'hubble_http_requests_total', /method="POST".*status="200"/) >= 2, m1);
    const n2m = scrape('n2');
    assert.ok(count(n2m, 'hubble_policy_verdicts_total', /match="l7\/http".*action="dropped"/) >= 1, n2m);
    assert.ok(count(n2m, 'hubble_http_requests_total', /status="200"/) >= 2, n2m);

    // `membrane monitor -t l7`: the proxy's records as `cilium monitor -t l7` prints them.
    const mon = spawn(process.execPath, [MEMBRANE, 'monitor', '--node', 'n1', '-t', 'l7', '--max-events', '2'], {
      env,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(mon);
    let monOut = '';
    mon.stdout.on('data', (d) => {
      monOut += d;
    });
    await until(
      () => {
        curl('client', 'DELETE', '/api/v1/payments/mon');
        return monOut.includes('\n');
      },
      { timeoutMs: 10_000, what: 'an l7 line from membrane monitor' },
    );
    assert.match(
      monOut,
      /^<- Request http from \d+ \(\[[^\]]*k8s:app=client[^\]]*\]\) to 0 \(\[[^\]]*k8s:app=web[^\]]*\]\), identity \d+->\d+, verdict Denied DELETE http:\/\/[0-9.:]+\/api\/v1\/payments\/mon => 0$/m,
    );

    // membrane status: the proxies' connections and denials.
    const st = JSON.parse(membrane('status', '--node', 'n1', '-o', 'json').out);
    assert.ok(st.proxy.connections >= 5 && st.proxy.denials >= 5, JSON.stringify(st.proxy));
  });
});
