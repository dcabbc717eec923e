// Cilium policy semantics over the 3x3 world: deny precedence, L4-only vs L3-L4 rules, port
// ranges, entities, CIDR except, per-direction default-deny, empty vs wildcard selectors,
// clusterwide with namespaced policies, toFQDNs, toServices, L7 redirects, auth and ICMP.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ccnp, cnp, type LabPeer, np, PolicyLab } from './policy-lab.js';

type Allowed = (s: LabPeer, d: LabPeer) => boolean;
const xa = (d: LabPeer) => d.key === 'x/a';

const TABLES: ReadonlyArray<{
  name: string;
  yaml: string;
  checks: ReadonlyArray<readonly [number, string, Allowed]>;
}> = [
  {
    name: 'an ingressDeny beats an allow-all in the same policy',
    yaml: cnp(
      'x',
      'p',
      'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEntities: [all]}]\ningressDeny: [{fromEndpoints: [{matchLabels: {pod: b}}]}]',
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.key !== 'x/b']],
  },
  {
    name: 'a deny in one policy beats an allow in another (even a NetworkPolicy)',
    yaml:
      np('x', 'allow', 'podSelector: {matchLabels: {pod: a}}\ningress: [{}]') +
      cnp(
        'x',
        'deny',
        'endpointSelector: {matchLabels: {pod: a}}\ningressDeny: [{fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y}}]}]',
      ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.ns !== 'y']],
  },
  {
    name: 'a port deny beats an L3 allow only on that port',
    yaml: cnp(
      'x',
      'p',
      'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEntities: [cluster]}]\ningressDeny: [{toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]',
    ),
    checks: [
      [80, 'TCP', (_s, d) => !xa(d)],
      [81, 'TCP', () => true],
      [80, 'UDP', () => true],
    ],
  },
  {
    name: 'a deny-only policy turns on default-deny',
    yaml: cnp(
      'x',
      'p',
      'endpointSelector: {matchLabels: {pod: a}}\ningressDeny: [{fromEndpoints: [{matchLabels: {pod: b}}]}]',
    ),
    checks: [[80, 'TCP', (_s, d) => !xa(d)]],
  },
  {
    name: 'enableDefaultDeny false keeps other traffic allowed while a deny applies',
    yaml: cnp(
      'x',
      'p',
      'endpointSelector: {matchLabels: {pod: a}}\nenableDefaultDeny: {ingress: false}\ningressDeny: [{fromEndpoints: [{matchLabels: {pod: b}}]}]',
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.key !== 'x/b']],
  },
  {
    name: 'an L4-only rule allows every peer on its port, an L3-L4 rule one peer on another',
    yaml: cnp(
      'x',
      'p',
      `endpointSelector: {matchLabels: {pod: a}}
ingress:
- toPorts: [{ports: [{port: "80", protocol: TCP}]}]
- fromEndpoints: [{matchLabels: {pod: b}}]
  toPorts: [{ports: [{port: "81", protocol: TCP}]}]`,
    ),
    checks: [
      [80, 'TCP', () => true],
      [81, 'TCP', (s, d) => !xa(d) || s.key === 'x/b'],
      [80, 'UDP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'protocol ANY expands to TCP, UDP and SCTP',
    yaml: cnp('x', 'p', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{toPorts: [{ports: [{port: "80"}]}]}]'),
    checks: [
      [80, 'TCP', () => true],
      [80, 'UDP', () => true],
      [80, 'SCTP', () => true],
      [81, 'TCP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'a port range with endPort',
    yaml: cnp(
      'x',
      'p',
      'endpointSelector: {matchLabels: {pod: a}}\ningress: [{toPorts: [{ports: [{port: "79", endPort: 81, protocol: TCP}]}]}]',
    ),
    checks: [
      [79, 'TCP', () => true],
      [80, 'TCP', () => true],
      [81, 'TCP', () => true],
      [82, 'TCP', (_s, d) => !xa(d)],
      [78, 'TCP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'fromEndpoints: [{}] in a namespaced policy means its own namespace',
    yaml: cnp('x', 'p', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEndpoints: [{}]}]'),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.ns === 'x']],
  },
  {
    name: 'fromEndpoints: [{}] in a clusterwide policy means every peer',
    yaml: ccnp('p', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEndpoints: [{}]}]'),
    checks: [[80, 'TCP', () => true]],
  },
  {
    name: 'an empty fromEndpoints list selects nothing',
    yaml: cnp(
      'x',
      'p',
      'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEndpoints: [], toPorts: [{ports: [{port: "80"}]}]}]',
    ),
    checks: [[80, 'TCP', (_s, d) => !xa(d)]],
  },
  {
    name: 'ingress: [{}] is default-deny, not allow-all',
    yaml: cnp('x', 'p', 'endpointSelector: {}\ningress: [{}]'),
    checks: [[80, 'TCP', (_s, d) => d.ns !== 'x']],
  },
  {
    name: 'ingress: [] (an empty list) does not apply at ingress, as in Cilium',
    yaml: cnp('x', 'p', 'endpointSelector: {}\ningress: []'),
    checks: [[80, 'TCP', () => true]],
  },
  {
    name: 'a policy with only ingress leaves egress unenforced',
    yaml: cnp('x', 'p', 'endpointSelector: {}\ningress: [{}]'),
    checks: [[80, 'TCP', (_s, d) => d.ns !== 'x']],
  },
  {
    name: 'a clusterwide default-deny with a namespaced allow',
    yaml:
      ccnp('deny-all', 'endpointSelector: {}\ningress: [{}]') +
      cnp(
        'x',
        'allow',
        'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEndpoints: [{matchLabels: {pod: b}}]}]',
      ),
    checks: [[80, 'TCP', (s, d) => xa(d) && s.key === 'x/b']],
  },
  {
    name: 'the cluster entity selects every pod',
    yaml: cnp('x', 'p', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEntities: [cluster]}]'),
    checks: [[80, 'TCP', () => true]],
  },
  {
    name: 'the world entity selects no pod',
    yaml: cnp('x', 'p', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEntities: [world]}]'),
    checks: [[80, 'TCP', (_s, d) => !xa(d)]],
  },
  {
    name: 'a CIDR rule does not select pods (unlike a NetworkPolicy ipBlock)',
    yaml: cnp('x', 'p', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromCIDR: [10.0.0.0/8]}]'),
    checks: [[80, 'TCP', (_s, d) => !xa(d)]],
  },
];

describe('Cilium policy semantics', () => {
  for (const c of TABLES)
    it(c.name, () => {
      const lab = new PolicyLab();
      lab.apply(c.yaml);
      for (const [port, proto, allowed] of c.checks) lab.expect(port, proto, allowed);
    });

  it('selects world and CIDR identities with entities and CIDR excepts', () => {
    const lab = new PolicyLab();
    lab.apply(
      cnp('x', 'w', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEntities: [world]}]') +
        cnp(
          'x',
          'c',
          'endpointSelector: {matchLabels: {pod: b}}\negress: [{toCIDRSet: [{cidr: 8.8.0.0/16, except: [8.8.8.0/24]}]}]',
        ),
    );
    assert.equal(lab.trace('1.1.1.1', 'x/a', 80).verdict, 'ALLOWED');
    assert.equal(lab.trace('2001:db8::1', 'x/a', 80).verdict, 'ALLOWED');
    assert.equal(lab.trace('x/b', 'x/a', 80).verdict, 'DENIED');
    assert.equal(lab.trace('x/b', '8.8.4.4', 53, 'UDP').verdict, 'ALLOWED');
    assert.equal(lab.trace('x/b', '8.8.8.8', 53, 'UDP').verdict, 'DENIED');
    assert.equal(lab.trace('x/b', '1.1.1.1', 53, 'UDP').verdict, 'DENIED');
    // The except prefix and the CIDR got local identities from 1<<24 in the ipcache.
    const cidrs = lab.engine.ipcacheEntries().filter((e) => e.source === 'cidr');
    assert.deepEqual(
      cidrs.map((e) => e.prefix),
      ['8.8.0.0/16', '8.8.8.0/24'],
    );
    assert.ok(cidrs.every((e) => e.identity > 1 << 24));
  });

  it('follows toFQDNs as the DNS proxy learns and forgets addresses', () => {
    const lab = new PolicyLab();
    lab.apply(
      cnp(
        'x',
        'f',
        'endpointSelector: {matchLabels: {pod: a}}\negress: [{toFQDNs: [{matchPattern: "*.example.com"}], toPorts: [{ports: [{port: "443", protocol: TCP}]}]}]',
      ),
    );
    assert.equal(lab.trace('x/a', '93.184.216.34', 443).verdict, 'DENIED');
    const d1 = lab.engine.updateFqdn('api.example.com', ['93.184.216.34']);
    assert.equal(d1.length, 1);
    assert.equal(lab.trace('x/a', '93.184.216.34', 443).verdict, 'ALLOWED');
    assert.equal(lab.trace('x/a', '93.184.216.34', 80).verdict, 'DENIED');
    lab.engine.updateFqdn('other.org', ['1.2.3.4']);
    assert.equal(lab.trace('x/a', '1.2.3.4', 443).verdict, 'DENIED');
    lab.engine.updateFqdn('api.example.com', []);
    assert.equal(lab.trace('x/a', '93.184.216.34', 443).verdict, 'DENIED');
    assert.ok(!lab.engine.ipcacheEntries().some((e) => e.prefix === '93.184.216.34/32'));
  });

  it('allows toServices to the backends of a service without a selector', () => {
    const lab = new PolicyLab();
    lab.engine.upsertService({ namespace: 'x', name: 'db', labels: {}, endpointIPs: ['172.16.0.5'] });
    lab.apply(
      cnp(
        'x',
        's',
        'endpointSelector: {matchLabels: {pod: a}}\negress: [{toServices: [{k8sService: {serviceName: db}}]}]',
      ),
    );
    assert.equal(lab.trace('x/a', '172.16.0.5', 5432).verdict, 'ALLOWED');
    assert.equal(lab.trace('x/a', '172.16.0.6', 5432).verdict, 'DENIED');
  });

  it('redirects L7 rules to the proxy and exposes them per remote identity', () => {
    const lab = new PolicyLab();
    lab.apply(
      cnp(
        'x',
        'l7',
        `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEndpoints: [{matchLabels: {pod: b}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET, path: "/api/.*"}]}}]
- fromEndpoints: [{matchLabels: {pod: c}}]`,
      ),
    );
    const r = lab.trace('x/b', 'x/a', 80);
    assert.equal(r.verdict, 'ALLOWED');
    assert.equal(r.ingress.reason, 'redirected');
    assert.equal(r.ingress.proxyPort, 10001);
    const ep = lab.engine.endpointByPod('x', 'a')!;
    const xb = lab.engine.endpointByPod('x', 'b')!.identity;
    const l7 = lab.engine.l7Policies(ep.endpointId);
    assert.deepEqual(
      l7.map((p) => [p.direction, p.port, p.protocol, p.parser, p.remoteIdentities, p.allowAll, p.http]),
      [['ingress', 80, 6, 'http', [xb], false, [{ method: 'GET', path: '/api/.*' }]]],
    );
    // x/c has an L3 allow with no L7 rule: its traffic is not redirected.
    assert.equal(lab.trace('x/c', 'x/a', 80).ingress.reason, 'allowed');
    assert.equal(lab.trace('x/b', 'x/a', 81).verdict, 'DENIED');
  });

  it('unions an L7 rule with a broader L3 allow for the same peer as allow-all', () => {
    const lab = new PolicyLab();
    lab.apply(
      cnp(
        'x',
        'l7',
        `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEndpoints: [{matchLabels: {pod: b}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
- fromEndpoints: [{matchLabels: {pod: b}}]`,
      ),
    );
    const ep = lab.engine.endpointByPod('x', 'a')!;
    const [p] = lab.engine.l7Policies(ep.endpointId);
    assert.equal(p.allowAll, true);
  });

  it('carries authentication.mode required into the entry', () => {
    const lab = new PolicyLab();
    lab.apply(
      cnp(
        'x',
        'auth',
        'endpointSelector: {matchLabels: {pod: a}}\ningress: [{fromEndpoints: [{matchLabels: {pod: b}}], authentication: {mode: required}}]',
      ),
    );
    const r = lab.trace('x/b', 'x/a', 80);
    assert.equal(r.ingress.authType, 1);
    assert.equal(r.ingress.reason, 'auth-required');
  });

  it('matches ICMP types from icmps', () => {
    const lab = new PolicyLab();
    lab.apply(
      cnp(
        'x',
        'icmp',
        'endpointSelector: {matchLabels: {pod: a}}\ningress: [{icmps: [{fields: [{type: EchoRequest}]}]}]',
      ),
    );
    assert.equal(lab.trace('x/b', 'x/a', 8, 'ICMP').verdict, 'ALLOWED');
    assert.equal(lab.trace('x/b', 'x/a', 0, 'ICMP').verdict, 'DENIED');
    assert.equal(lab.trace('x/b', 'x/a', 80).verdict, 'DENIED');
  });

  it('attributes a deny to the deny rule and a default-deny to the policies that enabled it', () => {
    const lab = new PolicyLab();
    lab.apply(
      cnp(
        'x',
        'deny-b',
        'endpointSelector: {matchLabels: {pod: a}}\ningressDeny: [{fromEndpoints: [{matchLabels: {pod: b}}]}]\ningress: [{fromEndpoints: [{matchLabels: {pod: c}}]}]',
      ),
    );
    assert.deepEqual(lab.trace('x/b', 'x/a', 80).ingress.reason, 'deny-rule');
    assert.deepEqual(lab.trace('x/b', 'x/a', 80).policies, [
      { kind: 'CiliumNetworkPolicy', namespace: 'x', name: 'deny-b', direction: 'ingress', effect: 'deny' },
    ]);
    assert.deepEqual(lab.trace('y/a', 'x/a', 80).ingress.reason, 'default-deny');
  });

  it('keeps allow-from-host into default-deny endpoints (allow-localhost)', () => {
    const lab = new PolicyLab();
    lab.apply(cnp('x', 'p', 'endpointSelector: {}\ningress: [{}]'));
    const ep = lab.engine.endpointByPod('x', 'a')!;
    const keys = [...lab.engine.endpointMapState(ep.endpointId).keys()];
    assert.ok(keys.includes('i|1|0|0|0'));
  });

  it('resolves every seed policy against a world without errors', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { parsePolicyFile } = await import('../../src/policy/policy-parser.js');
    const lab = new PolicyLab();
    const dir = new URL('../../../test/fixtures/seed-policies/', import.meta.url).pathname;
    for (const f of readdirSync(dir)) lab.engine.applyFile(parsePolicyFile(readFileSync(dir + f, 'utf8'), f));
    assert.equal(lab.engine.policyRefs().length, 21);
    // The clusterwide baseline makes every pod default-deny both ways.
    assert.equal(lab.trace('x/a', 'y/b', 80).verdict, 'DENIED');
  });
});

describe('PolicyEngine files', () => {
  it('replaces the policies a file carried when the file is applied again, and removes them with the file', async () => {
    const { parsePolicyFile } = await import('../../src/policy/policy-parser.js');
    const lab = new PolicyLab();
    const two =
      cnp('x', 'a', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{}]') +
      cnp('x', 'b', 'endpointSelector: {matchLabels: {pod: b}}\ningress: [{}]');
    lab.engine.applyFile(parsePolicyFile(two, 'team.yaml'));
    assert.equal(lab.trace('y/a', 'x/b', 80).verdict, 'DENIED');
    const diffs = lab.engine.applyFile(
      parsePolicyFile(cnp('x', 'a', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{}]'), 'team.yaml'),
    );
    assert.deepEqual(
      diffs.map((d) => d.endpointId),
      [lab.engine.endpointByPod('x', 'b')!.endpointId],
    );
    assert.equal(lab.trace('y/a', 'x/b', 80).verdict, 'ALLOWED');
    assert.equal(lab.trace('y/a', 'x/a', 80).verdict, 'DENIED');
    lab.engine.removeFile('team.yaml');
    assert.equal(lab.trace('y/a', 'x/a', 80).verdict, 'ALLOWED');
    assert.deepEqual(lab.engine.policyRefs(), []);
  });
});
