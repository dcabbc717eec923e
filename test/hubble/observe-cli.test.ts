// `membrane observe` and `membrane hubble ...` as a user runs them: replayed from a jsonpb file
// and against a live Observer server.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { buildFilters, parseTimeArg } from '../../src/cli/commands/observe.js';
import type { FlowFilter } from '../../src/hubble/filters/flow-filter.js';
import { FlowObserver } from '../../src/hubble/observer/flow-observer.js';
import { ObserverServer } from '../../src/hubble/observer/observer-server.js';
import { MEMBRANE_BIN as BIN, type CliRun, runMembrane } from '../support/membrane-cli.js';
import { context, sampleFlows, T0 } from './fixtures.js';

const GOLDEN_DIR = new URL('../../../test/golden/hubble/', import.meta.url).pathname;
const FLOWS_FILE = `${GOLDEN_DIR}observe-jsonpb.txt`;

function run(...args: string[]): Promise<CliRun> {
  return runMembrane(args);
}

const uuids = (jsonpb: string) =>
  jsonpb
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l))
    .filter((r) => r.flow)
    .map((r) => Number.parseInt(String(r.flow.uuid).slice(-2), 16));

function golden(name: string, got: string): void {
  const file = `${GOLDEN_DIR}${name}`;
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, got);
  assert.equal(got, readFileSync(file, 'utf8'));
}

// Flow numbers are the uuid counters of sampleFlows(): 1 SYN, 2 SYN-ACK, 3 verdict, 4 drop 133,
// 5 drop 181, 6 ICMP, 7 UDP/IPv6, 8 HTTP request, 9 HTTP 503, 10 DNS query, 11 DNS answer.
const REPLAYS: { args: string[]; want: number[] }[] = [
  { args: ['--all'], want: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  { args: [], want: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  { args: ['--last', '2'], want: [10, 11] },
  { args: ['--first', '2'], want: [1, 2] },
  { args: ['--pod', 'shop/payments'], want: [1, 2, 3, 6, 8, 9] },
  { args: ['--from-pod', 'shop/payments'], want: [2, 9] },
  { args: ['--to-namespace', 'db'], want: [4] },
  { args: ['-n', 'db'], want: [4] },
  { args: ['--to-namespace', 'shop', '--to-pod', 'pay'], want: [1, 3, 6, 8] },
  { args: ['--pod', 'pay', '-n', 'shop'], want: [1, 2, 3, 6, 8, 9] },
  { args: ['--not', '-n', 'shop'], want: [] },
  { args: ['--not', '--to-namespace', 'shop'], want: [4, 5, 7, 10] },
  { args: ['--to-pod', 'pay'], want: [] },
  { args: ['-A'], want: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  { args: ['--to-all-namespaces', '--to-pod', 'pay'], want: [1, 3, 6, 8] },
  { args: ['-A', '--pod', 'postgres'], want: [4] },
  { args: ['--to-pod', '/pay'], want: [1, 3, 6, 8] },
  { args: ['--cel-expression', '_flow.verdict == Verdict.DROPPED'], want: [4, 5] },
  {
    args: ['--cel-expression', "_flow.destination.namespace == 'db'", '--cel-expression', 'has(_flow.l4.ICMPv4)'],
    want: [4, 6],
  },
  { args: ['--not', '--cel-expression', 'has(_flow.l7)'], want: [1, 2, 3, 4, 5, 6, 7] },
  { args: ['--verdict', 'DROPPED'], want: [4, 5] },
  { args: ['--not', '--verdict', 'FORWARDED'], want: [4, 5] },
  { args: ['--pod', 'shop/', '--not', '--protocol', 'tcp'], want: [6, 7, 10, 11] },
  { args: ['--http-status', '5+'], want: [9] },
  { args: ['--http-method', 'post', '--http-path', '^/v1/'], want: [8, 9] },
  { args: ['--protocol', 'dns'], want: [10, 11] },
  { args: ['--to-fqdn', '*.com'], want: [5] },
  { args: ['--tcp-flags', 'SYN,ACK'], want: [2] },
  { args: ['-t', 'trace:to-endpoint'], want: [2] },
  { args: ['-t', 'drop'], want: [4, 5] },
  { args: ['-t', 'l7'], want: [8, 9, 10, 11] },
  { args: ['-t', 'policy-verdict'], want: [3] },
  { args: ['--traffic-direction', 'ingress'], want: [3, 4, 8, 9] },
  { args: ['--to-identity', 'world'], want: [7, 10] },
  { args: ['--identity', '5003'], want: [4] },
  { args: ['-l', 'app=postgres'], want: [4] },
  { args: ['--from-label', 'k8s:tier=api'], want: [2, 9] },
  { args: ['--ip', '10.96.0.10'], want: [10, 11] },
  { args: ['--to-ip', 'fd00::/16'], want: [7] },
  { args: ['-6'], want: [7] },
  { args: ['--port', '5432'], want: [4] },
  { args: ['--to-workload', 'StatefulSet/postgres'], want: [4] },
  { args: ['--drop-reason-desc', 'policy_deny'], want: [5] },
  { args: ['--node-name', 'node-*'], want: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  { args: ['--allowlist', '{"destination_port":["53"]}'], want: [7, 10] },
  { args: ['--allowlist', '{"verdict":["DROPPED"]}', '--denylist', '{"destinationPod":["db/"]}'], want: [5] },
  { args: ['--since', '2026-11-23T10:00:00.004Z', '--until', '2026-11-23 10:00:00.006'], want: [4, 5, 6] },
];

describe('membrane observe --input-file', () => {
  for (const c of REPLAYS)
    it(`replays with ${c.args.join(' ') || 'no flags'}`, async () => {
      const r = await run('observe', '--input-file', FLOWS_FILE, '-o', 'jsonpb', ...c.args);
      assert.equal(r.err, '');
      assert.equal(r.code, 0);
      assert.deepEqual(uuids(r.out), c.want);
    });

  it('replays jsonpb written by hubble itself, with fields and enum names it does not know', async () => {
    const r = await run('observe', '--input-file', `${GOLDEN_DIR}hubble-observe.jsonpb`, '--print-node-name');
    assert.equal(r.err, '');
    assert.equal(
      r.out,
      'Apr  3 09:03:33.345 [kind-worker]: default/tiefighter:45842 (ID:30962) <> default/deathstar-54bb8475cc-4gcv4:80 (ID:3346) Policy denied DROPPED (TCP Flags: SYN)\n' +
        'Apr  3 09:03:34.001 [kind-worker]: kube-system/coredns-787d4945fb-x7x7x:53000 (ID:5555) -> 10.0.0.20:53 (world) to-network FORWARDED (UDP)\n',
    );
    const j = await run(
      'observe',
      '--input-file',
      `${GOLDEN_DIR}hubble-observe.jsonpb`,
      '-o',
      'jsonpb',
      '--label',
      'k8s-app=kube-dns',
    );
    const back = JSON.parse(j.out);
    assert.equal(back.flow.socket_cookie, '12345');
    assert.equal(back.flow.trace_observation_point, 'TO_NETWORK');
  });

  it('prints -o json as the GetFlowsResponse, and the bare flow with --compat legacy-json-output', async () => {
    const pb = await run('observe', '--input-file', FLOWS_FILE, '--first', '1', '-o', 'json');
    assert.equal(pb.code, 0, pb.err);
    const r = JSON.parse(pb.out);
    assert.deepEqual(Object.keys(r), ['flow', 'node_name', 'time']);
    assert.equal(r.node_name, 'node-1');
    const legacy = await run(
      'observe',
      '--input-file',
      FLOWS_FILE,
      '--first',
      '1',
      '-o',
      'json',
      '--compat',
      'legacy-json-output',
    );
    assert.equal(legacy.code, 0, legacy.err);
    assert.deepEqual(JSON.parse(legacy.out), r.flow);
  });

  it('takes legacy-json-output from HUBBLE_COMPAT like hubble, ignoring names it does not know', async () => {
    const p = spawn(process.execPath, [BIN, 'observe', '--input-file', FLOWS_FILE, '--first', '1', '-o', 'json'], {
      env: { ...process.env, TZ: 'UTC', HUBBLE_COMPAT: 'future-thing,legacy-json-output' },
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    await new Promise((resolve) => p.on('close', resolve));
    assert.equal(JSON.parse(out).uuid, '01234567-89ab-4def-a123-000000000001');
  });

  it('prints compact lines with policy names like the golden file', async () => {
    const r = await run('observe', '--input-file', FLOWS_FILE, '--print-policy-names', '--print-node-name');
    assert.equal(r.code, 0);
    golden('observe-replay-compact.txt', r.out);
  });

  const USAGE: { args: string[]; message: string }[] = [
    {
      args: ['-n', 'shop', '--to-pod', 'pay'],
      message: 'membrane: --to-pod: expected a filter that can be combined with --namespace, got "--to-pod"\n',
    },
    {
      args: ['--not', '--not', '--ip', '1.1.1.1'],
      message: 'membrane: --not: expected a filter flag after --not, got "--not"\n',
    },
    {
      args: ['--verdict', 'DROPED'],
      message:
        'membrane: --verdict: expected one of VERDICT_UNKNOWN, FORWARDED, DROPPED, ERROR, AUDIT, REDIRECTED, TRACED, TRANSLATED, got "DROPED"\n',
    },
    {
      args: ['--ip', '10.0.0.300'],
      message: 'membrane: whitelist[0].source_ip[0]: expected an IP address or a CIDR, got "10.0.0.300"\n',
    },
    { args: ['--first', '3', '--follow'], message: 'membrane: --first cannot be combined with --follow\n' },
    {
      args: ['--compat', 'legacy-json'],
      message: 'membrane: --compat: expected one of legacy-json-output, got "legacy-json"\n',
    },
    {
      args: ['--since', 'yesterday'],
      message:
        'membrane: --since: expected a duration ago like "30s" or "1h5m", or a time like "2026-01-02T15:04:05Z", got "yesterday"\n',
    },
    {
      args: ['--allowlist', '{"source_pod":"x"}'],
      message: 'membrane: --allowlist[0].source_pod: expected a JSON array, got "x"\n',
    },
    {
      args: ['--type', 'bogus'],
      message:
        'membrane: --type: expected one of drop, debug, capture, trace, policy-verdict, recorder, trace-sock, l7, agent (optionally :subtype), got "bogus"\n',
    },
  ];
  for (const u of USAGE)
    it(`rejects ${u.args.join(' ')} with exit 2`, async () => {
      const r = await run('observe', '--input-file', FLOWS_FILE, ...u.args);
      assert.equal(r.code, 2);
      assert.equal(r.err, u.message);
    });

  it('prints the raw filters the flags make', async () => {
    const r = await run('observe', '--print-raw-filters', '-n', 'kube-system', '--not', '--verdict', 'FORWARDED');
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      'allowlist:\n- \'{"source_pod":["kube-system/"]}\'\n- \'{"destination_pod":["kube-system/"]}\'\ndenylist:\n- \'{"verdict":["FORWARDED"]}\'\n',
    );
  });

  it('suggests the right flag for a typo', async () => {
    const r = await run('observe', '--verdcit', 'DROPPED');
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown option '--verdcit'\n\(Did you mean --verdict\?\)/);
  });
});

describe('observe filter flags', () => {
  it('turns a direction-less flag into two filters OR-ed and a directed one into both', () =>
    assert.deepEqual(
      buildFilters([
        ['pod', 'a/b'],
        ['toPort', '80'],
        ['verdict', 'DROPPED'],
        ['not', true],
        ['protocol', 'udp'],
      ]),
      {
        whitelist: [
          { source_pod: ['a/b'], destination_port: ['80'], verdict: [2] },
          { destination_pod: ['a/b'], destination_port: ['80'], verdict: [2] },
        ],
        blacklist: [{ protocol: ['udp'] }],
      },
    ));

  // After hubble's TestNamespace and TestCELExpression (hubble/cmd/observe/flows_filter_test.go).
  const NAMESPACE_FLAGS: { name: string; ops: [string, string | true][]; want: FlowFilter[] }[] = [
    {
      name: 'a namespace and a port',
      ops: [
        ['namespace', 'cilium'],
        ['port', '443'],
      ],
      want: [
        { source_pod: ['cilium/'], source_port: ['443'] },
        { destination_pod: ['cilium/'], destination_port: ['443'] },
      ],
    },
    {
      name: 'a source namespace and a source port',
      ops: [
        ['fromNamespace', 'cilium'],
        ['fromPort', '443'],
      ],
      want: [{ source_pod: ['cilium/'], source_port: ['443'] }],
    },
    {
      name: 'a namespace and a pod',
      ops: [
        ['namespace', 'cilium'],
        ['pod', 'foo-9c76d6c95-tf788'],
      ],
      want: [{ source_pod: ['cilium/foo-9c76d6c95-tf788'] }, { destination_pod: ['cilium/foo-9c76d6c95-tf788'] }],
    },
    {
      name: 'two namespaces and two services',
      ops: [
        ['namespace', 'cilium'],
        ['namespace', 'kube-system'],
        ['service', 'foo'],
        ['service', 'bar'],
      ],
      want: [
        { source_service: ['cilium/foo', 'kube-system/foo', 'cilium/bar', 'kube-system/bar'] },
        { destination_service: ['cilium/foo', 'kube-system/foo', 'cilium/bar', 'kube-system/bar'] },
      ],
    },
    {
      name: 'a source namespace and a destination pod with its namespace',
      ops: [
        ['fromNamespace', 'kube-system'],
        ['toPod', 'cilium/foo-9c76d6c95-tf788'],
      ],
      want: [{ source_pod: ['kube-system/'], destination_pod: ['cilium/foo-9c76d6c95-tf788'] }],
    },
    {
      name: 'any destination namespace and a port',
      ops: [
        ['toAllNamespaces', true],
        ['port', '443'],
      ],
      want: [
        { destination_pod: ['/'], source_port: ['443'] },
        { destination_pod: ['/'], destination_port: ['443'] },
      ],
    },
    {
      name: 'a destination pod in any namespace',
      ops: [
        ['toAllNamespaces', true],
        ['toPod', 'foo'],
      ],
      want: [{ destination_pod: ['/foo'] }],
    },
    {
      name: 'a destination service in any namespace',
      ops: [
        ['toAllNamespaces', true],
        ['toService', 'bar'],
      ],
      want: [{ destination_service: ['/bar'] }],
    },
    {
      name: 'a pod in any namespace, either way',
      ops: [
        ['allNamespaces', true],
        ['pod', 'foo'],
      ],
      want: [{ source_pod: ['/foo'] }, { destination_pod: ['/foo'] }],
    },
    {
      name: 'a service in any namespace, either way',
      ops: [
        ['allNamespaces', true],
        ['service', 'bar'],
      ],
      want: [{ source_service: ['/bar'] }, { destination_service: ['/bar'] }],
    },
    {
      name: 'one CEL expression',
      ops: [['celExpression', '_flow.verdict == Verdict.FORWARDED || _flow.verdict == Verdict.TRANSLATED']],
      want: [
        {
          experimental: {
            cel_expression: ['_flow.verdict == Verdict.FORWARDED || _flow.verdict == Verdict.TRANSLATED'],
          },
        },
      ],
    },
    {
      name: 'two CEL expressions in one filter',
      ops: [
        ['celExpression', '_flow.verdict == Verdict.FORWARDED'],
        ['celExpression', '_flow.verdict == Verdict.TRANSLATED'],
      ],
      want: [
        {
          experimental: {
            cel_expression: ['_flow.verdict == Verdict.FORWARDED', '_flow.verdict == Verdict.TRANSLATED'],
          },
        },
      ],
    },
  ];
  for (const c of NAMESPACE_FLAGS)
    it(`builds the filters of ${c.name}`, () =>
      assert.deepEqual(buildFilters(c.ops), { whitelist: c.want, blacklist: [] }));

  const NAMESPACE_CONFLICTS: { name: string; ops: [string, string | true][]; message: string }[] = [
    {
      name: 'a destination pod outside the destination namespace',
      ops: [
        ['toNamespace', 'kube-system'],
        ['toPod', 'cilium/foo-9c76d6c95-tf788'],
      ],
      message: '--to-pod: expected a name in the namespace "kube-system", got "cilium/foo-9c76d6c95-tf788"',
    },
    {
      name: 'a source service outside the source namespace',
      ops: [
        ['fromNamespace', 'kube-system'],
        ['fromService', 'cilium/foo'],
      ],
      message: '--from-service: expected a name in the namespace "kube-system", got "cilium/foo"',
    },
    {
      name: 'a source service and a source pod in different namespaces',
      ops: [
        ['fromService', 'cilium/foo'],
        ['fromPod', 'kube-system/hubble'],
      ],
      message: '--from-pod: expected a service in the namespace of the pod "kube-system/hubble", got "cilium/foo"',
    },
  ];
  for (const c of NAMESPACE_CONFLICTS)
    it(`refuses ${c.name}`, () =>
      assert.throws(() => buildFilters(c.ops), { code: 'MBR_FILTER_INVALID', message: c.message }));

  it('parses relative and absolute times', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    assert.deepEqual(parseTimeArg('1h30m', '--since', now), { seconds: now / 1000 - 5400, nanos: 0 });
    assert.deepEqual(parseTimeArg('2026-01-01T00:00:00.5Z', '--since', now), {
      seconds: Date.UTC(2026, 0, 1) / 1000,
      nanos: 5e8,
    });
  });
});

describe('membrane observe and hubble commands against a server', () => {
  let nowMs = T0.seconds * 1000;
  const observer = new FlowObserver({ parser: context(), capacity: 4095, nowMs: () => nowMs });
  nowMs += 60_000;
  const server = new ObserverServer({ observer });
  let addr = '';
  before(async () => {
    for (const f of sampleFlows()) observer.ingestFlow(f);
    addr = await server.listen('127.0.0.1:0');
  });
  after(() => server.close());

  it('streams the last flows with filters', async () => {
    const r = await run('observe', '--server', addr, '--last', '1', '--verdict', 'DROPPED', '-o', 'jsonpb');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(uuids(r.out), [5]);
  });

  it('defaults to the last 20 flows', async () => {
    const r = await run('observe', '--server', addr, '-o', 'jsonpb');
    assert.equal(uuids(r.out).length, 11);
  });

  it('prints hubble status', async () => {
    const r = await run('hubble', 'status', '--server', addr);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `Healthcheck (via ${addr}): Ok\nCurrent/Max Flows: 11/4,095 (0.27%)\nFlows/s: 0.18\n`);
  });

  it('lists nodes as a table and as JSON', async () => {
    const t = await run('hubble', 'list', 'nodes', '--server', addr);
    assert.equal(t.code, 0, t.err);
    assert.equal(
      t.out,
      'NAME    STATUS     AGE   FLOWS/S  CURRENT/MAX-FLOWS\nnode-1  Connected  1m0s  0.18     11/4095 (0.27%)\n',
    );
    const j = await run('hubble', 'list', 'nodes', '--server', addr, '-o', 'json');
    const nodes = JSON.parse(j.out);
    assert.equal(nodes[0].name, 'node-1');
    assert.equal(nodes[0].state, 'NODE_CONNECTED');
  });

  it('fails with the server address when nothing listens', async () => {
    const r = await run('hubble', 'status', '--server', 'unix:///nonexistent/mbr-hb.sock');
    assert.equal(r.code, 1);
    assert.match(r.err, /^membrane: ServerStatus on unix:\/\/\/nonexistent\/mbr-hb\.sock: /);
  });
});
