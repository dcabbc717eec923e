// The etcd cluster store against a real single-member etcd: the store contract shared with the
// embedded store (store-contract.ts), leases, compaction, and a watch that survives etcd
// restarting under it. Privileged by name because it needs the etcd binary: outside CI a missing
// etcd skips, under CI=true it fails.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { WatchEvent } from '../../src/store/cluster-store.js';
import { EtcdStore } from '../../src/store/etcd-store.js';
import { requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { STORE_CONTRACT } from './store-contract.js';

interface EtcdServer {
  readonly endpoint: string;
  /** PEM files of the TLS setup, when started with TLS (client certificates required). */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

/** A single-member etcd on random loopback ports and a temporary data dir, removed in t.after. */
async function startEtcd(t: TestContext, opts: { withTls?: boolean } = {}): Promise<EtcdServer> {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const tls = opts.withTls ? makeCertificates(dir) : undefined;
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  let proc: ChildProcess | undefined;
  let log = '';
  const server: EtcdServer = {
    endpoint,
    ...(tls ? { tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } } : {}),
    async start() {
      log = '';
      const p = spawn(
        'etcd',
        [
          ...['--name', 't', '--data-dir', join(dir, 'data')],
          ...['--listen-client-urls', endpoint, '--advertise-client-urls', endpoint],
          ...['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl],
          ...['--initial-cluster', `t=${peerUrl}`],
          ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca] : []),
          ...(tls ? ['--client-cert-auth'] : []),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      p.stdout?.on('data', (b: Buffer) => (log += b.toString()));
      p.stderr?.on('data', (b: Buffer) => (log += b.toString()));
      proc = p;
      await until(
        async () => {
          if (p.exitCode !== null) throw new Error(`etcd exited ${p.exitCode}: ${log.slice(-2000)}`);
          if (tls) return probeTls(endpoint, tls);
          const res = await fetch(`${endpoint}/health`);
          return res.ok && ((await res.json()) as { health?: string }).health === 'true';
        },
        { timeoutMs: 15_000, intervalMs: 50, what: `etcd on ${endpoint} healthy` },
      );
    },
    async stop() {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null) return;
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGTERM');
      await exited;
    },
  };
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await server.start();
  return server;
}

interface Certificates {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** A CA, and a server (127.0.0.1) and a client certificate it signed, as PEM files in `dir`. */
function makeCertificates(dir: string): Certificates {
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=mbr-test-ca'],
    ...['-keyout', f('ca.key'), '-out', f('ca.pem')],
  );
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=mbr-${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
    );
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    openssl(
      ...['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial'],
      ...['-days', '1', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)],
    );
  }
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

/** True once a TLS etcd answers a client that presents the test's client certificate. */
async function probeTls(endpoint: string, tls: Certificates): Promise<boolean> {
  const s = await EtcdStore.open({
    endpoints: [endpoint],
    tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey },
    dialTimeoutMs: 1000,
  });
  await s.close();
  return true;
}

async function open(t: TestContext, etcd: EtcdServer): Promise<EtcdStore> {
  const s = await EtcdStore.open({
    endpoints: [etcd.endpoint],
    dialTimeoutMs: 3000,
    ...(etcd.tls ? { tls: etcd.tls } : {}),
  });
  t.after(() => s.close());
  return s;
}

/** Starts etcd for the test, or returns undefined when the test was skipped for lack of it. */
async function etcdFor(t: TestContext): Promise<EtcdServer | undefined> {
  if (!requireRoot(t, 'runs etcd', ['etcd'])) return undefined;
  return startEtcd(t);
}

describe('etcd cluster store', () => {
  for (const c of STORE_CONTRACT) {
    it(c.name, async (t) => {
      const etcd = await etcdFor(t);
      if (!etcd) return;
      await c.run(() => open(t, etcd));
    });
  }

  it('describes itself by its endpoints', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    assert.equal((await open(t, etcd)).description, `etcd ${etcd.endpoint}`);
  });

  it('deletes the keys of a lease that was not kept alive, and keeps those of one that was', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const s = await open(t, etcd);
    const gone = await s.grantLease(2);
    const kept = await s.grantLease(30);
    await s.put('nodes/a', 'a', { lease: gone });
    await s.put('nodes/b', 'b', { lease: kept });
    await s.put('other', 'o');
    assert.equal((await s.get('nodes/a'))?.lease, gone);
    await s.keepAlive(kept);
    // etcd expires a 2 s lease within a few seconds (its lease checker runs every 500 ms).
    await until(async () => (await s.get('nodes/a')) === undefined, { timeoutMs: 10_000, what: 'nodes/a deleted' });
    assert.equal((await s.get('nodes/b'))?.value, 'b');
    assert.equal((await s.get('other'))?.value, 'o');
    await assert.rejects(s.keepAlive(gone), {
      code: 'MBR_STORE_NO_LEASE',
      message: `etcd ${etcd.endpoint}: lease ${gone} not found (expired or revoked)`,
    });
    await s.revokeLease(kept);
    assert.equal(await s.get('nodes/b'), undefined);
    await assert.rejects(s.revokeLease(kept), { code: 'MBR_STORE_NO_LEASE' });
  });

  it('tells a watch whose revision was compacted to resync, and goes on from the present', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const s = await open(t, etcd);
    const r0 = (await s.list('')).revision;
    for (let i = 0; i < 5; i++) await s.put(`k/${i}`, String(i));
    await s.compact(r0 + 4);
    let compactedAt = 0;
    const seen: WatchEvent[] = [];
    s.watch('k/', r0 + 1, { onEvents: (e) => seen.push(...e), onCompacted: (rev) => (compactedAt = rev) });
    await until(() => compactedAt === r0 + 5, { what: 'onCompacted' });
    await s.put('k/9', '9');
    await until(() => seen.length === 1, { what: 'the next event' });
    assert.equal(seen[0].revision, r0 + 6);
  });

  it('resumes a watch after etcd restarts with nothing missed and nothing twice', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const s = await open(t, etcd);
    const seen: WatchEvent[] = [];
    const r0 = (await s.list('')).revision;
    s.watch('w/', r0, { onEvents: (evs) => seen.push(...evs) });
    for (let i = 0; i < 3; i++) await s.put(`w/${i}`, String(i));
    await until(() => seen.length === 3, { what: 'three events before the restart' });
    await etcd.stop();
    await etcd.start();
    const writer = await open(t, etcd);
    for (let i = 3; i < 6; i++) await writer.put(`w/${i}`, String(i));
    await until(() => seen.length >= 6, { timeoutMs: 30_000, what: 'six events after the restart' });
    assert.deepEqual(
      seen.map((e) => [e.key, e.revision - r0]),
      Array.from({ length: 6 }, (_, i) => [`w/${i}`, i + 1]),
    );
  });

  it('talks to an etcd that requires TLS client certificates', async (t) => {
    if (!requireRoot(t, 'runs etcd', ['etcd', 'openssl'])) return;
    const etcd = await startEtcd(t, { withTls: true });
    const s = await open(t, etcd);
    const rev = await s.put('tls/k', 'v');
    assert.equal((await s.get('tls/k'))?.modRevision, rev);
    // Without the client certificate the handshake fails: unreachable, naming the endpoint.
    await assert.rejects(
      EtcdStore.open({ endpoints: [etcd.endpoint], tls: { ca: etcd.tls?.ca ?? '' }, dialTimeoutMs: 1000 }),
      { code: 'MBR_STORE_UNREACHABLE', message: new RegExp(`^etcd ${etcd.endpoint}: connect: `) },
    );
  });

  it('fails a write with MBR_STORE_UNREACHABLE, naming the endpoint, once etcd has gone', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const s = await open(t, etcd);
    const lease = await s.grantLease(30);
    await etcd.stop();
    await assert.rejects(s.put('k', 'v'), {
      code: 'MBR_STORE_UNREACHABLE',
      message: new RegExp(`^etcd ${etcd.endpoint}: put k: `),
    });
    await assert.rejects(s.keepAlive(lease), { code: 'MBR_STORE_UNREACHABLE' });
  });

  it('names the endpoints when etcd cannot be reached', async (t) => {
    if (!requireRoot(t, 'runs etcd', ['etcd'])) return;
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(EtcdStore.open({ endpoints: [endpoint], dialTimeoutMs: 500 }), (err: Error) => {
      assert.equal((err as { code?: string }).code, 'MBR_STORE_UNREACHABLE');
      assert.ok(err.message.startsWith(`etcd ${endpoint}: connect: `), err.message);
      return true;
    });
  });
});
