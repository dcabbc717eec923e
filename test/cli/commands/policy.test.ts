import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = new URL('../../../../', import.meta.url).pathname;
const BIN = `${ROOT}bin/membrane`;
const FIX = `${ROOT}test/fixtures/policy/`;
const GOLDEN = `${ROOT}test/golden/policy/`;
const SEEDS = `${ROOT}test/fixtures/seed-policies`;

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function golden(name: string, actual: string): void {
  const file = GOLDEN + name;
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'));
}

describe('membrane policy validate', () => {
  it('accepts every seed policy and counts them', () => {
    const r = run('policy', 'validate', '-f', SEEDS);
    assert.equal(r.err, '');
    assert.equal(r.out, 'valid: 21 policies\n');
    assert.equal(r.code, 0);
  });

  it('prints every error with file, document and field path, and exits 1', () => {
    const r = run('policy', 'validate', '-f', `${FIX}bad-port.yaml`, '-f', `${SEEDS}/01-np-default-deny-ingress.yaml`);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.equal(
      r.err,
      [
        `${FIX}bad-port.yaml: document 2: spec.ingress[0].toPorts[0].ports[0].port: expected a port 1-65535 or an IANA service name, got "99999"`,
        `${FIX}bad-port.yaml: document 2: spec.ingress[1]: expected one kind of peer per rule (fromEndpoints and fromCIDR cannot be combined; write them as separate rules), got fromEndpoints and fromCIDR`,
        'membrane: invalid: 2 errors',
        '',
      ].join('\n'),
    );
  });

  it('reports a missing file', () => {
    const r = run('policy', 'validate', '-f', `${FIX}nope.yaml`);
    assert.equal(r.code, 1);
    assert.match(r.err, /nope\.yaml: cannot read: ENOENT/);
  });
});

describe('membrane policy trace', () => {
  const world = ['-f', `${FIX}shop-world.yaml`, '-f', `${SEEDS}/15-cnp-shop.yaml`];
  it('prints both directions and the deciding policies', () => {
    const r = run(
      'policy',
      'trace',
      ...world,
      '--src-k8s-pod',
      'shop/frontend',
      '--dst-k8s-pod',
      'shop/backend',
      '--dport',
      '8080/TCP',
    );
    assert.equal(r.code, 0, r.err);
    golden('trace-frontend-backend.txt', r.out);
  });

  it('prints JSON with -o json', () => {
    const r = run(
      'policy',
      'trace',
      ...world,
      '--src-k8s-pod',
      'shop/backend',
      '--dst-ip',
      '10.0.0.3',
      '--dport',
      '53/UDP',
      '-o',
      'json',
    );
    assert.equal(r.code, 0, r.err);
    golden('trace-backend-dns.json', r.out);
    assert.equal(JSON.parse(r.out).verdict, 'ALLOWED');
  });

  it('answers a batch of queries in order, one JSON line each', () => {
    const r = run('policy', 'trace', ...world, '--queries', `${FIX}queries.jsonl`, '-o', 'jsonl');
    assert.equal(r.code, 0, r.err);
    golden('trace-batch.jsonl', r.out);
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.verdict, l.egress, l.ingress]),
      [
        ['ALLOWED', 'ALLOWED', 'ALLOWED'],
        // shop/default-deny's `egress: []` does not apply at egress (Cilium semantics).
        ['ALLOWED', 'ALLOWED', 'ALLOWED'],
        ['DENIED', 'ALLOWED', 'DENIED'],
        ['DENIED', 'DENIED', 'DENIED'],
      ],
    );
  });

  it('traces toFQDNs rules with the addresses given by --fqdn', () => {
    const args = [
      'policy',
      'trace',
      ...world,
      '--src-k8s-pod',
      'shop/backend',
      '--dst-ip',
      '54.1.2.3',
      '--dport',
      '443/TCP',
      '-o',
      'json',
    ];
    assert.equal(JSON.parse(run(...args).out).verdict, 'DENIED');
    const r = run(...args, '--fqdn', 'api.stripe.com=54.1.2.3,54.1.2.4');
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).verdict, 'ALLOWED');
    assert.equal(run(...args, '--fqdn', 'nonsense').code, 2);
  });

  it('fails with a usage error without a destination', () => {
    const r = run('policy', 'trace', ...world, '--src-k8s-pod', 'shop/frontend', '--dport', '80');
    assert.equal(r.code, 2);
    assert.match(r.err, /a destination is required/);
  });

  const BAD_DPORTS: Array<{ dport: string; message: string }> = [
    { dport: '70000', message: '--dport: expected a port 1-65535 or a container port name, got "70000"' },
    { dport: '-1', message: '--dport: expected a port 1-65535 or a container port name, got "-1"' },
    { dport: '80.5', message: '--dport: expected a port 1-65535 or a container port name, got "80.5"' },
    { dport: '80-90', message: '--dport: expected a port 1-65535 or a container port name, got "80-90"' },
    { dport: '300/ICMP', message: '--dport: expected an ICMP type 0-255, got "300"' },
    { dport: '8080/999', message: '--dport: expected TCP, UDP, SCTP, ICMP or ICMPv6, got "999"' },
    { dport: '8080/TCP/UDP', message: '--dport: expected PORT or PORT/PROTOCOL, got "8080/TCP/UDP"' },
  ];
  for (const c of BAD_DPORTS)
    it(`rejects --dport ${c.dport} with a usage error`, () => {
      const pods = ['--src-k8s-pod', 'shop/frontend', '--dst-k8s-pod', 'shop/backend'];
      const r = run('policy', 'trace', ...world, ...pods, '--dport', c.dport);
      assert.equal(r.out, '');
      assert.equal(r.err, `membrane: ${c.message}\n`);
      assert.equal(r.code, 2);
    });

  it('names the line and field of each bad --queries line, and answers the good ones', () => {
    const q = (rest: string) => `{"src":"shop/frontend","dst":"shop/backend",${rest}}`;
    const file = join(mkdtempSync(join(tmpdir(), 'mbr-trace-')), 'q.jsonl');
    writeFileSync(
      file,
      [
        q('"dport":8080.5'),
        q('"dport":null'),
        q('"dport":8080,"protocol":{}'),
        q('"dport":8080,"protocol":true'),
        'null',
        q('"dport":8080'),
      ].join('\n'),
    );
    const r = run('policy', 'trace', ...world, '--queries', file, '-o', 'jsonl');
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(lines.slice(0, 5), [
      { error: `${file}: line 1: dport: expected a port 1-65535 or a container port name, got 8080.5` },
      { error: `${file}: line 2: dport: expected a port 1-65535 or a container port name, got null` },
      { error: `${file}: line 3: protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got {}` },
      { error: `${file}: line 4: protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got true` },
      { error: `${file}: line 5: expected a JSON object {"src","dst","dport","protocol"}, got null` },
    ]);
    assert.equal(lines[5].verdict, 'ALLOWED');
    assert.equal(r.err, `membrane: ${file}: 5 queries failed\n`);
    assert.equal(r.code, 1);
  });

  it('fails on an unknown pod', () => {
    const r = run('policy', 'trace', ...world, '--src-k8s-pod', 'shop/nope', '--dst-ip', '1.1.1.1', '--dport', '80');
    assert.equal(r.code, 1);
    assert.equal(r.err, 'membrane: peer: expected a pod of the world, got "shop/nope" (no such pod)\n');
  });
});
