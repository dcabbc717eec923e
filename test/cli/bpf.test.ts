import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { formatCtList, formatIpcacheTable, formatPolicyTable } from '../../src/cli/commands/bpf.js';

const BIN = new URL('../../../bin/membrane', import.meta.url).pathname;

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('membrane bpf', () => {
  const ERRORS = [
    {
      args: ['bpf', 'ipcache', 'list', '--pin-dir', '/nonexistent/mbr'],
      code: 1,
      err: 'membrane: no datapath pinned at /nonexistent/mbr (/nonexistent/mbr/maps/mbr_ipcache does not exist)\n',
    },
    { args: ['bpf', 'ct', 'list', 'local'], code: 2, err: 'membrane: scope: expected "global", got "local"\n' },
    {
      args: ['bpf', 'policy', 'get', 'web'],
      code: 2,
      err: 'membrane: endpoint: expected a numeric endpoint ID, got "web"\n',
    },
    {
      args: ['bpf', 'ipcache', 'list', '-o', 'yaml', '--pin-dir', '/nonexistent/mbr'],
      code: 2,
      err: 'membrane: --output: expected table or json, got "yaml"\n',
    },
  ];
  for (const c of ERRORS) {
    it(`fails on ${c.args.join(' ')}`, () => {
      const r = run(...c.args);
      assert.equal(r.code, c.code);
      assert.equal(r.err, c.err);
    });
  }

  it('prints a policy map with Cilium-like columns', () => {
    const out = formatPolicyTable([
      {
        key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8080, portPrefixLen: 14 },
        value: { isDeny: false, proxyPort: 0, authType: 0, l4PrefixLen: 22 },
      },
      {
        key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
        value: { isDeny: true, proxyPort: 0, authType: 0, l4PrefixLen: 0 },
      },
      {
        key: { identity: 2, direction: 'egress', protocol: 6, port: 80, portPrefixLen: 16 },
        value: { isDeny: false, proxyPort: 15001, authType: 1, l4PrefixLen: 24 },
      },
    ]);
    assert.equal(
      out,
      [
        'POLICY   DIRECTION   IDENTITY   PORT/PROTO      PROXY PORT   AUTH TYPE   PREFIX',
        'Deny     Egress      ANY        ANY             NONE         disabled    0',
        'Allow    Egress      2          80/TCP          15001        spire       24',
        'Allow    Ingress     1001       8080-8083/TCP   NONE         disabled    22',
        '',
      ].join('\n'),
    );
  });

  it('prints the ipcache and conntrack like cilium bpf', () => {
    assert.equal(
      formatIpcacheTable([
        { prefix: { addr: '10.240.1.2', prefixLen: 32 }, identity: 1001, flags: 1 },
        { prefix: { addr: '192.0.2.0', prefixLen: 24 }, identity: 16777217 },
      ]),
      [
        'IP PREFIX/ADDRESS   IDENTITY',
        '10.240.1.2/32       identity=1001 encryptkey=0 tunnelendpoint=0.0.0.0 flags=localendpoint',
        '192.0.2.0/24        identity=16777217 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>',
        '',
      ].join('\n'),
    );
    assert.equal(
      formatCtList(
        [
          {
            key: {
              saddr: '10.240.1.2',
              daddr: '10.240.2.2',
              sport: 40000,
              dport: 80,
              protocol: 6,
              direction: 'egress',
            },
            entry: {
              txPackets: 3,
              txBytes: 180,
              rxPackets: 2,
              rxBytes: 120,
              lifetime: 1100,
              sourceSecurityId: 1002,
              policyRevision: 4,
              flags: 0x10,
              txFlagsSeen: 0x1a,
              rxFlagsSeen: 0x12,
              proxyPort: 0,
              lastTxReport: 0,
              lastRxReport: 0,
              peerIfindex: 0,
            },
          },
        ],
        1000,
      ),
      'TCP OUT 10.240.1.2:40000 -> 10.240.2.2:80 expires=1100 (remaining: 100 sec(s)) RxPackets=2 RxBytes=120 RxFlagsSeen=0x12 TxPackets=3 TxBytes=180 TxFlagsSeen=0x1a Flags=0x10 [ SeenReply ] ProxyPort=0 PolicyRevision=4 SourceSecurityID=1002 IfIndex=0\n',
    );
  });
});
