// The DNS proxy over loopback with a real DNS server (dnsmasq) and real clients (dig, kdig):
// allowed and refused names by pattern over UDP and TCP, CNAME chains, min-TTL, an answer of
// 1,200 addresses, malformed packets, and restarts of the proxy and of the agent during a query
// loop. The redirect itself is the proxy framework's (tested there); here the clients ask the
// proxy directly.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type DnsHarness, startDnsHarness } from '../../support/dns-harness.js';
import { until } from '../../support/until.js';

const run = promisify(execFile);

const BIG = Array.from({ length: 1200 }, (_, i) => `10.77.${i >> 8}.${i & 255} big.stripe.com`);
const HOSTS = [
  '10.200.0.1 api.stripe.com',
  '10.200.0.2 api.stripe.com',
  '10.200.0.3 edge.stripe-cdn.net',
  '10.200.0.9 api.github.com',
  '10.200.0.10 deep.a.b.stripe.com',
  ...BIG,
];

async function dig(h: DnsHarness, name: string, extra: string[] = []): Promise<{ status: string; ips: string[] }> {
  const { stdout } = await run('dig', [
    '+time=2',
    '+tries=3',
    '-p',
    String(extra.includes('+tcp') ? h.tcpPort : h.udpPort),
    '@127.0.0.1',
    name,
    ...extra,
  ]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
  const ips = [...stdout.matchAll(/\sIN\s+A\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!).sort();
  return { status, ips };
}

async function kdig(h: DnsHarness, name: string, tcp: boolean): Promise<{ status: string; ips: string[] }> {
  const { stdout } = await run(
    'kdig',
    ['+time=2', '+retry=2', '-p', String(tcp ? h.tcpPort : h.udpPort), '@127.0.0.1', name, ...(tcp ? ['+tcp'] : [])],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
  const ips = [...stdout.matchAll(/\sIN\s+A\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!).sort();
  return { status, ips };
}

describe('DNS proxy with dnsmasq, dig and kdig', () => {
  let h: DnsHarness;
  before(async () => {
    h = await startDnsHarness({
      hosts: HOSTS,
      cnames: [
        ['www.stripe.com', 'edge.stripe-cdn.net'],
        ['alias.stripe.com', 'www.stripe.com'],
      ],
      ttlSeconds: 30,
      dnsPatterns: ['*.stripe.com', 'edge.stripe-cdn.net', 'deep.**.stripe.com'],
      fqdnPatterns: ['*.stripe.com', '**.stripe.com'],
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('answers an allowed name over UDP and the ipcache holds its IPs when the answer arrives', async () => {
    const r = await dig(h, 'api.stripe.com');
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.ips, ['10.200.0.1', '10.200.0.2']);
    // Checked right after dig returned: the proxy released the answer only once the maps held it.
    const id = h.ipcache('10.200.0.1');
    assert.ok(id !== undefined && id >= 1 << 24, `local identity for 10.200.0.1, got ${id}`);
    assert.ok(h.ipcache('10.200.0.2') !== undefined);
    assert.equal(h.proxy.stats.responseDelayExceeded, 0);
    assert.deepEqual(h.fqdn.namesOf('10.200.0.1'), ['api.stripe.com.']);
  });

  it('refuses a name no DNS rule allows, over UDP and TCP, and learns nothing', async () => {
    for (const tcp of [false, true]) {
      const r = await kdig(h, 'api.github.com', tcp);
      assert.equal(r.status, 'REFUSED', `tcp=${tcp}`);
      assert.deepEqual(r.ips, []);
    }
    assert.equal(h.ipcache('10.200.0.9'), undefined);
    const denied = h.records.filter((x) => x.dns?.query === 'api.github.com.' && x.type === 'request');
    assert.equal(denied.length, 2);
    assert.ok(denied.every((x) => x.verdict === 'denied'));
    assert.deepEqual(
      denied.map((x) => x.protocol),
      [17, 6],
    );
  });

  it('answers an allowed name over TCP (dig +tcp and kdig +tcp)', async () => {
    assert.deepEqual((await dig(h, 'API.Stripe.com', ['+tcp'])).ips, ['10.200.0.1', '10.200.0.2']);
    assert.deepEqual((await kdig(h, 'api.stripe.com', true)).ips, ['10.200.0.1', '10.200.0.2']);
  });

  it('matches `**.` over several labels', async () => {
    const r = await dig(h, 'deep.a.b.stripe.com');
    assert.equal(r.status, 'NOERROR');
    assert.ok(h.ipcache('10.200.0.10') !== undefined);
  });

  it('learns a CNAME chain for the queried name and every name of the chain', async () => {
    const r = await dig(h, 'alias.stripe.com');
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.ips, ['10.200.0.3']);
    assert.deepEqual(h.fqdn.namesOf('10.200.0.3'), ['alias.stripe.com.', 'edge.stripe-cdn.net.', 'www.stripe.com.']);
    // edge.stripe-cdn.net matches no toFQDNs selector, alias.stripe.com does: the IP is selected.
    assert.ok(h.ipcache('10.200.0.3') !== undefined);
    const resp = h.records.find((x) => x.type === 'response' && x.dns?.query === 'alias.stripe.com.');
    assert.deepEqual(resp?.dns?.cnames, ['www.stripe.com.', 'edge.stripe-cdn.net.']);
    assert.deepEqual(resp?.dns?.ips, ['10.200.0.3']);
    assert.equal(resp?.dns?.ttl, 30);
    assert.equal(resp?.verdict, 'forwarded');
  });

  it('passes an answer of 1,200 addresses (TCP) and keeps the per-name cap of 1,000', async () => {
    const r = await kdig(h, 'big.stripe.com', true);
    assert.equal(r.status, 'NOERROR');
    assert.equal(r.ips.length, 1200);
    const live = h.fqdn.list({}).filter((x) => x.fqdn === 'big.stripe.com.' && x.source === 'lookup');
    assert.equal(live[0]?.ips.length, 1000);
    await h.fqdn.gc();
    assert.equal(h.fqdn.cache.ipsOf('big.stripe.com').length, 1000);
    assert.equal(BIG.filter((l) => h.ipcache(l.split(' ')[0]!) !== undefined).length, 1000);
  });

  it('drops malformed datagrams and frames, counts them, and keeps answering', async () => {
    const before = h.proxy.stats.malformed;
    const s = createSocket('udp4');
    const junk = [
      Buffer.alloc(0),
      Buffer.from([1, 2, 3]),
      Buffer.alloc(12, 0xff),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    ];
    // A query header claiming 65535 questions with none present, and a compression-pointer loop.
    const loop = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    const lies = Buffer.from([0, 2, 1, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    for (const b of [...junk, loop, lies])
      await new Promise<void>((resolve) => s.send(b, h.udpPort, '127.0.0.1', () => resolve()));
    s.close();
    await until(() => h.proxy.stats.malformed >= before + 5, { what: 'malformed counted' });
    // TCP: a zero-length frame closes the connection.
    await new Promise<void>((resolve) => {
      const c = connect(h.tcpPort, '127.0.0.1', () => c.write(Buffer.from([0, 0])));
      c.on('close', () => resolve());
      c.on('error', () => resolve());
    });
    assert.deepEqual((await dig(h, 'api.stripe.com')).ips, ['10.200.0.1', '10.200.0.2']);
  });

  it('restarts the proxy during a query loop without a failed query', async () => {
    const failures: string[] = [];
    let done = 0;
    const loop = (async () => {
      for (let i = 0; i < 40; i++) {
        const r = await dig(h, 'api.stripe.com').catch((e: Error) => ({ status: e.message, ips: [] }));
        if (r.status !== 'NOERROR' || r.ips.length !== 2) failures.push(`${i}: ${r.status}`);
        done++;
      }
    })();
    await until(() => done >= 10, { timeoutMs: 30_000, what: '10 queries' });
    await h.restartProxy();
    await until(() => done >= 20, { timeoutMs: 30_000, what: '20 queries' });
    await h.restartProxy();
    await loop;
    assert.deepEqual(failures, []);
  });

  it('restarts the agent during a query loop: no failed query, and the learned IPs stay in the ipcache', async () => {
    await dig(h, 'api.stripe.com');
    const id = h.ipcache('10.200.0.1');
    assert.ok(id !== undefined);
    h.fqdn.flush();
    h.dp.ipcacheWrites = [];
    const failures: string[] = [];
    let done = 0;
    const loop = (async () => {
      for (let i = 0; i < 30; i++) {
        const r = await dig(h, 'api.stripe.com').catch((e: Error) => ({ status: e.message, ips: [] }));
        if (r.status !== 'NOERROR') failures.push(`${i}: ${r.status}`);
        done++;
      }
    })();
    await until(() => done >= 10, { timeoutMs: 30_000, what: '10 queries' });
    await h.restartAgent();
    await loop;
    assert.deepEqual(failures, []);
    // The restarted agent never deleted the FQDN IPs from the ipcache.
    const deleted = h.dp.ipcacheWrites.flatMap((w) => w.deletes);
    assert.ok(!deleted.includes('10.200.0.1/32'), deleted.join(' '));
    assert.ok(h.ipcache('10.200.0.1') !== undefined);
  });
});

describe('DNS proxy minimum TTL', () => {
  it('keeps a short-TTL answer for the configured minimum', async () => {
    const h = await startDnsHarness({
      hosts: ['10.200.1.1 api.stripe.com'],
      ttlSeconds: 2,
      dnsPatterns: ['*.stripe.com'],
      fqdnPatterns: ['*.stripe.com'],
      minTtlSeconds: 3600,
    });
    try {
      const r = await dig(h, 'api.stripe.com');
      assert.deepEqual(r.ips, ['10.200.1.1']);
      const row = h.fqdn.list().find((x) => x.fqdn === 'api.stripe.com.');
      assert.equal(row?.ttlSeconds, 3600);
      const resp = h.records.find((x) => x.type === 'response');
      assert.equal(resp?.dns?.ttl, 2, 'the flow shows the TTL the server gave');
    } finally {
      await h.stop();
    }
  });
});
