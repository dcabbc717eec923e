// `membrane fqdn cache list|clean` and `fqdn names` against an agent's API whose FQDN cache the
// DNS proxy filled (a real dig through the proxy to dnsmasq).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { serveAgentApi } from '../../../src/agent/api-server.js';
import { type DnsHarness, startDnsHarness } from '../../support/dns-harness.js';
import { runMembrane } from '../../support/membrane-cli.js';

const run = promisify(execFile);

describe('membrane fqdn', () => {
  let h: DnsHarness;
  let server: Server;
  let sock: string;
  before(async () => {
    h = await startDnsHarness({
      hosts: ['10.200.0.1 api.stripe.com', '10.200.0.2 api.stripe.com', '10.200.0.5 www.stripe.com'],
      ttlSeconds: 30,
      dnsPatterns: ['*.stripe.com'],
      fqdnPatterns: ['*.stripe.com'],
    });
    sock = join(h.dir, 'agent.sock');
    server = await serveAgentApi(h.agent, sock);
    for (const name of ['api.stripe.com', 'www.stripe.com'])
      await run('dig', ['+time=2', '+tries=2', '-p', String(h.udpPort), '@127.0.0.1', name]);
  });
  after(async () => {
    server?.close();
    await h?.stop();
  });

  it("lists the cache with Cilium's columns", async () => {
    const r = await runMembrane(['fqdn', 'cache', 'list', '-H', sock]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^Endpoint\s+Source\s+FQDN\s+TTL\s+ExpirationTime\s+IPs$/);
    assert.match(
      lines[1]!,
      new RegExp(
        `^${h.endpointId}\\s+lookup\\s+api\\.stripe\\.com\\.\\s+30\\s+\\S+Z\\s+10\\.200\\.0\\.1,10\\.200\\.0\\.2$`,
      ),
    );
    assert.equal(lines.length, 3);
  });

  it('lists as JSON, filtered by pattern and endpoint', async () => {
    const r = await runMembrane([
      'fqdn',
      'cache',
      'list',
      '-H',
      sock,
      '-p',
      'www.*.com',
      '-e',
      String(h.endpointId),
      '-o',
      'json',
    ]);
    assert.equal(r.code, 0, r.err);
    const rows = JSON.parse(r.out);
    assert.deepEqual(
      rows.map((x: { fqdn: string; ips: string[] }) => [x.fqdn, x.ips]),
      [['www.stripe.com.', ['10.200.0.5']]],
    );
    const bad = await runMembrane(['fqdn', 'cache', 'list', '-H', sock, '-e', 'x']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--endpoint: expected an endpoint ID, got "x"/);
  });

  it('shows the names each toFQDNs selector selects', async () => {
    const r = await runMembrane(['fqdn', 'names', '-H', sock]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /matchPattern: \*\.stripe\.com\s+api\.stripe\.com\.\s+10\.200\.0\.1/);
  });

  it('lints the running cluster: its policies, its pods as the world', async () => {
    const live = await runMembrane(['policy', 'lint', '--live', '-H', sock]);
    assert.equal(live.code, 0, live.out + live.err);
    assert.match(live.out, /^1 documents: 0 errors, 0 warnings$/m);
    const fixture = new URL('../../../../test/fixtures/lint/fqdn-without-dns-rule.triggers.yaml', import.meta.url)
      .pathname;
    const withFile = await runMembrane(['policy', 'lint', '--live', '-H', sock, '-f', fixture, '-o', 'json']);
    assert.equal(withFile.code, 1);
    const codes = (JSON.parse(withFile.out) as Array<{ code: string; path: string }>).map((f) => `${f.code} ${f.path}`);
    // The fixture's backend pod does not run in this cluster: its selector matches nothing.
    assert.deepEqual(codes, [
      'MBR_LINT_FQDN_WITHOUT_DNS_RULE spec.egress[0].toFQDNs',
      'MBR_LINT_SELECTOR_MATCHES_NOTHING spec.endpointSelector',
    ]);
  });

  it('cleans names from the cache and their IPs from the ipcache', async () => {
    assert.ok(h.ipcache('10.200.0.5') !== undefined);
    const r = await runMembrane(['fqdn', 'cache', 'clean', '-H', sock, '-p', 'www.stripe.com']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /1 names cleaned/);
    assert.equal(h.ipcache('10.200.0.5'), undefined);
    assert.ok(h.ipcache('10.200.0.1') !== undefined);
  });
});
