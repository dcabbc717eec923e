// Kubernetes NetworkPolicy semantics as truth tables over the 3x3 world: every (source,
// destination) pair is traced and compared with the expected reachability.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LabPeer, labIp, labPod, np, PolicyLab } from './policy-lab.js';

type Allowed = (s: LabPeer, d: LabPeer) => boolean;
interface Case {
  readonly name: string;
  readonly yaml: string;
  readonly checks: ReadonlyArray<readonly [number | string, string, Allowed]>;
}

const xa = (d: LabPeer) => d.key === 'x/a';

const CASES: readonly Case[] = [
  { name: 'no policy allows everything', yaml: '', checks: [[80, 'TCP', () => true]] },
  {
    name: 'default-deny ingress isolates every pod of the namespace',
    yaml: np('x', 'deny', 'podSelector: {}\npolicyTypes: [Ingress]'),
    checks: [
      [80, 'TCP', (_s, d) => d.ns !== 'x'],
      [81, 'UDP', (_s, d) => d.ns !== 'x'],
    ],
  },
  {
    name: 'a policy without policyTypes and without ingress is default-deny ingress',
    yaml: np('x', 'deny', 'podSelector: {}'),
    checks: [[80, 'TCP', (_s, d) => d.ns !== 'x']],
  },
  {
    name: 'default-deny egress isolates every pod of the namespace on egress only',
    yaml: np('x', 'deny', 'podSelector: {}\npolicyTypes: [Egress]'),
    checks: [[80, 'TCP', (s) => s.ns !== 'x']],
  },
  {
    name: 'default-deny both ways',
    yaml: np('x', 'deny', 'podSelector: {}\npolicyTypes: [Ingress, Egress]'),
    checks: [[80, 'TCP', (s, d) => s.ns !== 'x' && d.ns !== 'x']],
  },
  {
    name: 'an empty ingress rule allows everything',
    yaml: np('x', 'all', 'podSelector: {}\ningress: [{}]'),
    checks: [[80, 'TCP', () => true]],
  },
  {
    name: 'an empty egress rule allows everything',
    yaml: np('x', 'all', 'podSelector: {}\npolicyTypes: [Egress]\negress: [{}]'),
    checks: [[80, 'TCP', () => true]],
  },
  {
    name: 'egress: [] without policyTypes does not isolate egress',
    yaml: np('x', 'deny', 'podSelector: {}\negress: []'),
    checks: [[80, 'TCP', (_s, d) => d.ns !== 'x']],
  },
  {
    name: 'ingress rules are ignored when policyTypes does not list Ingress',
    yaml: np(
      'x',
      'eg',
      'podSelector: {}\npolicyTypes: [Egress]\negress: [{}]\ningress:\n- from: [{podSelector: {matchLabels: {pod: none}}}]',
    ),
    checks: [[80, 'TCP', () => true]],
  },
  {
    name: 'podSelector peers stay in the policy namespace',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{podSelector: {}}]'),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.ns === 'x']],
  },
  {
    name: 'podSelector peers select by label',
    yaml: np(
      'x',
      'p',
      'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{podSelector: {matchLabels: {pod: b}}}]',
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.key === 'x/b']],
  },
  {
    name: 'namespaceSelector peers select whole namespaces',
    yaml: np(
      'x',
      'p',
      'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {ns: y}}}]',
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.ns === 'y']],
  },
  {
    name: 'namespaceSelector on the automatic kubernetes.io/metadata.name label',
    yaml: np(
      'x',
      'p',
      'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]',
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.ns === 'z']],
  },
  {
    name: 'namespaceSelector and podSelector in one peer are ANDed',
    yaml: np(
      'x',
      'p',
      `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y, z]}]}
    podSelector: {matchLabels: {pod: b}}`,
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || (s.ns !== 'x' && s.pod === 'b')]],
  },
  {
    name: 'two peers are ORed',
    yaml: np(
      'x',
      'p',
      `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y, z]}]}
  - podSelector: {matchLabels: {pod: b}}`,
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.ns !== 'x' || s.pod === 'b']],
  },
  {
    name: 'an empty namespaceSelector with a podSelector selects that pod in every namespace',
    yaml: np(
      'x',
      'p',
      'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}]',
    ),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.pod === 'c']],
  },
  {
    name: 'NotIn and DoesNotExist expressions',
    yaml: np(
      'x',
      'p',
      `podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [b, c]}]}
ingress:
- from: [{namespaceSelector: {matchExpressions: [{key: missing, operator: DoesNotExist}]}, podSelector: {matchExpressions: [{key: pod, operator: Exists}]}}]
  ports: [{port: 81}]`,
    ),
    checks: [
      [80, 'TCP', (_s, d) => !xa(d)],
      [81, 'TCP', () => true],
    ],
  },
  {
    name: 'ports restrict an allow to one port, default TCP',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 81}]'),
    checks: [
      [80, 'TCP', (_s, d) => !xa(d)],
      [81, 'TCP', () => true],
      [81, 'UDP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'a named port is resolved on the destination pod',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: serve-81-tcp}]'),
    checks: [
      [80, 'TCP', (_s, d) => !xa(d)],
      [81, 'TCP', () => true],
      ['serve-81-tcp', 'TCP', () => true],
      ['serve-80-tcp', 'TCP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'a named port on egress is resolved on each destination',
    yaml: np(
      'x',
      'p',
      'podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- ports: [{port: serve-81-udp, protocol: UDP}]',
    ),
    checks: [
      [81, 'UDP', () => true],
      [80, 'UDP', (s) => s.key !== 'x/a'],
      [81, 'TCP', (s) => s.key !== 'x/a'],
    ],
  },
  {
    name: 'endPort allows a port range',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 80, endPort: 81}]'),
    checks: [
      [80, 'TCP', () => true],
      [81, 'TCP', () => true],
      [82, 'TCP', (_s, d) => !xa(d)],
      [79, 'TCP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'protocol isolation: UDP only',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 80, protocol: UDP}]'),
    checks: [
      [80, 'UDP', () => true],
      [80, 'TCP', (_s, d) => !xa(d)],
      [80, 'SCTP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'protocol isolation: SCTP only',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 80, protocol: SCTP}]'),
    checks: [
      [80, 'SCTP', () => true],
      [80, 'TCP', (_s, d) => !xa(d)],
      [80, 'UDP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'a protocol without a port allows every port of it',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{protocol: UDP}]'),
    checks: [
      [81, 'UDP', () => true],
      [80, 'TCP', (_s, d) => !xa(d)],
    ],
  },
  {
    name: 'egress to one namespace only',
    yaml: np(
      'x',
      'p',
      'podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- to: [{namespaceSelector: {matchLabels: {ns: y}}}]',
    ),
    checks: [[80, 'TCP', (s, d) => s.key !== 'x/a' || d.ns === 'y']],
  },
  {
    name: 'ipBlock matches pod IPs, with except',
    yaml: np(
      'x',
      'p',
      `podSelector: {matchLabels: {pod: a}}
policyTypes: [Egress]
egress:
- to: [{ipBlock: {cidr: 10.0.0.0/16, except: [${labIp('y', 'b')}/32]}}]`,
    ),
    checks: [[80, 'TCP', (s, d) => s.key !== 'x/a' || d.key !== 'y/b']],
  },
  {
    name: 'ipBlock on ingress selects the source pods by IP',
    yaml: np('x', 'p', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{ipBlock: {cidr: 10.0.2.0/24}}]'),
    checks: [[80, 'TCP', (s, d) => !xa(d) || s.ns === 'y']],
  },
  {
    name: 'several policies are unioned',
    yaml:
      np('x', 'deny', 'podSelector: {}\npolicyTypes: [Ingress]') +
      np(
        'x',
        'p1',
        'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {ns: y}}}]',
      ) +
      np(
        'x',
        'p2',
        'podSelector: {matchLabels: {pod: b}}\ningress:\n- from: [{podSelector: {matchLabels: {pod: c}}}]\n  ports: [{port: 81}]',
      ),
    checks: [
      [80, 'TCP', (s, d) => d.ns !== 'x' || (xa(d) && s.ns === 'y')],
      [81, 'TCP', (s, d) => d.ns !== 'x' || (xa(d) && s.ns === 'y') || (d.key === 'x/b' && s.key === 'x/c')],
    ],
  },
  {
    name: 'egress isolation of the source and ingress isolation of the destination both apply',
    yaml:
      np(
        'x',
        'eg',
        'podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- to: [{namespaceSelector: {}}]',
      ) + np('y', 'in', 'podSelector: {}\ningress:\n- from: [{podSelector: {}}]'),
    checks: [[80, 'TCP', (s, d) => d.ns !== 'y' || s.ns === 'y']],
  },
];

describe('Kubernetes NetworkPolicy truth tables (3x3 pods)', () => {
  for (const c of CASES)
    it(c.name, () => {
      const lab = new PolicyLab();
      if (c.yaml) lab.apply(c.yaml);
      for (const [port, proto, allowed] of c.checks) lab.expect(port, proto, allowed);
    });

  it('follows relabel and update steps with diffs for the affected endpoints only', () => {
    const lab = new PolicyLab();
    lab.apply(
      np(
        'x',
        'p',
        'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]',
      ),
    );
    lab.expect(80, 'TCP', (s, d) => !xa(d) || s.pod === 'b');
    const xaId = lab.engine.endpointByPod('x', 'a')!.endpointId;
    // Relabelled like z/b, z/c takes z/b's identity, which x/a already allows: no map changes.
    assert.deepEqual(lab.engine.upsertPod(labPod('z', 'c', { pod: 'b' })), []);
    // With a new identity, only x/a's map changes (one key added for it; z/c is unenforced).
    const diffs = lab.engine.upsertPod(labPod('z', 'c', { pod: 'b', tier: 'new' }));
    assert.deepEqual(
      diffs.map((d) => [d.endpointId, d.adds.length, d.deletes.length]),
      [[xaId, 1, 0]],
    );
    lab.expect(80, 'TCP', (s, d) => !xa(d) || s.pod === 'b' || s.key === 'z/c');
    // The policy now asks for a namespace label that y gets later.
    lab.apply(
      np(
        'x',
        'p',
        'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {team: blue}}}]',
      ),
    );
    lab.expect(80, 'TCP', (_s, d) => !xa(d));
    lab.engine.upsertNamespace({ name: 'y', labels: { ns: 'y', team: 'blue' } });
    lab.expect(80, 'TCP', (s, d) => !xa(d) || s.ns === 'y');
    // The destination pod is relabelled out of the policy's podSelector.
    lab.engine.upsertPod(labPod('x', 'a', { pod: 'a2' }));
    lab.expect(80, 'TCP', () => true);
    lab.engine.upsertPod(labPod('x', 'a'));
    lab.expect(80, 'TCP', (s, d) => !xa(d) || s.ns === 'y');
    // Removing the policy removes the isolation.
    lab.engine.removePolicy({ kind: 'NetworkPolicy', namespace: 'x', name: 'p' });
    lab.expect(80, 'TCP', () => true);
  });

  it('answers DENIED for a named port the destination does not serve', () => {
    const lab = new PolicyLab();
    const r = lab.trace('x/a', 'x/b', 'serve-99-tcp');
    assert.equal(r.verdict, 'DENIED');
    assert.equal(r.egress.reason, 'unresolved-port');
  });

  it('treats an IP outside every pod as world', () => {
    const lab = new PolicyLab();
    lab.apply(
      np(
        'x',
        'p',
        'podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}]',
      ),
    );
    assert.equal(lab.trace('192.168.2.7', 'x/a', 80).verdict, 'ALLOWED');
    assert.equal(lab.trace('192.168.1.7', 'x/a', 80).verdict, 'DENIED');
    assert.equal(lab.trace('8.8.8.8', 'x/a', 80).verdict, 'DENIED');
    assert.equal(lab.trace('x/b', 'x/a', 80).verdict, 'DENIED');
    assert.equal(lab.trace('8.8.8.8', 'x/b', 80).verdict, 'ALLOWED');
  });

  it('names the policies that decided', () => {
    const lab = new PolicyLab();
    lab.apply(
      np('x', 'deny', 'podSelector: {}\npolicyTypes: [Ingress]') +
        np('x', 'allow-y', 'podSelector: {}\ningress:\n- from: [{namespaceSelector: {matchLabels: {ns: y}}}]'),
    );
    assert.deepEqual(lab.trace('y/a', 'x/a', 80).policies, [
      { kind: 'NetworkPolicy', namespace: 'x', name: 'allow-y', direction: 'ingress', effect: 'allow' },
    ]);
    assert.deepEqual(lab.trace('z/a', 'x/a', 80).policies, [
      { kind: 'NetworkPolicy', namespace: 'x', name: 'allow-y', direction: 'ingress', effect: 'deny' },
      { kind: 'NetworkPolicy', namespace: 'x', name: 'deny', direction: 'ingress', effect: 'deny' },
    ]);
  });
});
