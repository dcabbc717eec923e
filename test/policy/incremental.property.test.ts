// Property: for random worlds and random sequences of changes, (1) applying each returned
// diff to the previous map state gives exactly the engine's new map state, and (2) the final
// state equals a full recompute by a fresh engine fed the final world and policies (compared
// by identity labels, since identity numbers depend on allocation order).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import type { MapStateDiff, PolicyEntry, PolicyKey } from '../../src/policy/map-state-types.js';
import { PolicyEngine } from '../../src/policy/policy-engine.js';
import { parsePolicyFile } from '../../src/policy/policy-parser.js';
import type { Policy } from '../../src/policy/policy-rule.js';
import type { Pod } from '../../src/policy/world.js';

const NS = ['n1', 'n2'];
const APPS = ['a', 'b', 'c'];
const POD_NAMES = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5'];
const POLICY_NAMES = ['q0', 'q1', 'q2', 'q3'];
const FQDNS = ['a.example.com', 'b.example.com'];
const EXT_IPS = ['93.184.216.1', '93.184.216.2', '8.8.8.8'];

const sel = fc.constantFrom(...APPS).map((app) => ({ matchLabels: { app } }));
const k8sPort = fc.oneof(
  fc.constant({ port: 80 }),
  fc.constant({ port: 'web' }),
  fc.constant({ port: 80, endPort: 83 }),
  fc.constant({ port: 53, protocol: 'UDP' }),
  fc.constant({ protocol: 'UDP' }),
);
const k8sPeer = fc.oneof(
  sel.map((s) => ({ podSelector: s })),
  fc.constantFrom('a', 'b').map((team) => ({ namespaceSelector: { matchLabels: { team } } })),
  fc
    .tuple(sel, fc.constantFrom('a', 'b'))
    .map(([s, team]) => ({ podSelector: s, namespaceSelector: { matchLabels: { team } } })),
  fc.constant({ ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.1.0/24'] } }),
  fc.constant({ ipBlock: { cidr: '0.0.0.0/0', except: ['8.8.8.0/24'] } }),
);
const k8sRule = fc
  .record({
    peers: fc.option(fc.array(k8sPeer, { maxLength: 2 })),
    ports: fc.option(fc.array(k8sPort, { maxLength: 2 })),
  })
  .map((r) => ({
    ...(r.peers ? { from: r.peers } : {}),
    ...(r.ports ? { ports: r.ports } : {}),
  }));
const networkPolicy = fc
  .record({
    ns: fc.constantFrom(...NS),
    subject: fc.option(sel),
    ingress: fc.option(fc.array(k8sRule, { maxLength: 2 })),
    egress: fc.option(fc.array(k8sRule, { maxLength: 2 })),
    types: fc.constantFrom(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
  })
  .map((p) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: p.ns },
    spec: {
      podSelector: p.subject ?? {},
      ...(p.types ? { policyTypes: p.types } : {}),
      ...(p.ingress ? { ingress: p.ingress } : {}),
      ...(p.egress
        ? { egress: p.egress.map(({ from, ...rest }) => ({ ...(from ? { to: from } : {}), ...rest })) }
        : {}),
    },
  }));
const cPorts: fc.Arbitrary<ReadonlyArray<Record<string, unknown>>> = fc.oneof<
  fc.Arbitrary<ReadonlyArray<Record<string, unknown>>>[]
>(
  fc.constant([{ ports: [{ port: '80', protocol: 'TCP' }] }]),
  fc.constant([{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }]),
  fc.constant([{ ports: [{ port: '80', endPort: 90 }] }]),
  fc.constant([{ ports: [{ port: 'web', protocol: 'TCP' }] }]),
);
const cRule = (dir: 'ingress' | 'egress', deny: boolean) => {
  const p = dir === 'ingress' ? 'from' : 'to';
  const l3 = fc.oneof(
    sel.map((s) => ({ [`${p}Endpoints`]: [s] })),
    fc.constant({ [`${p}Endpoints`]: [{}] }),
    fc.constant({ [`${p}Entities`]: ['world'] }),
    fc.constant({ [`${p}Entities`]: ['cluster'] }),
    fc.constant({ [`${p}CIDRSet`]: [{ cidr: '93.184.216.0/24', except: ['93.184.216.2/32'] }] }),
    fc.constant({}),
    ...(dir === 'egress' && !deny ? [fc.constantFrom(...FQDNS).map((n) => ({ toFQDNs: [{ matchName: n }] }))] : []),
  );
  return fc
    .record({
      l3,
      ports: fc.option(
        deny ? cPorts.map((ps) => ps.map((x) => ({ ports: x.ports })) as Array<Record<string, unknown>>) : cPorts,
      ),
    })
    .map((r) => {
      const hasL3 = Object.keys(r.l3).length > 0;
      const ports = r.ports ?? (hasL3 ? undefined : [{ ports: [{ port: '81' }] }]);
      return { ...r.l3, ...(ports ? { toPorts: ports } : {}) };
    });
};
const ciliumPolicy = fc
  .record({
    ns: fc.option(fc.constantFrom(...NS)),
    subject: fc.option(sel),
    ingress: fc.option(fc.array(cRule('ingress', false), { maxLength: 2 })),
    ingressDeny: fc.option(fc.array(cRule('ingress', true), { maxLength: 1 })),
    egress: fc.option(fc.array(cRule('egress', false), { maxLength: 2 })),
    egressDeny: fc.option(fc.array(cRule('egress', true), { maxLength: 1 })),
  })
  .map((p) => {
    const spec: Record<string, unknown> = { endpointSelector: p.subject ?? {} };
    for (const k of ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const) if (p[k]) spec[k] = p[k];
    if (!p.ingress && !p.ingressDeny && !p.egress && !p.egressDeny) spec.ingress = [{}];
    return {
      apiVersion: 'cilium.io/v2',
      kind: p.ns ? 'CiliumNetworkPolicy' : 'CiliumClusterwideNetworkPolicy',
      metadata: p.ns ? { namespace: p.ns } : {},
      spec,
    };
  });

const pod = fc
  .record({
    name: fc.constantFrom(...POD_NAMES),
    ns: fc.constantFrom(...NS),
    app: fc.constantFrom(...APPS),
    tier: fc.option(fc.constantFrom('x', 'y')),
    webPort: fc.constantFrom(80, 8080),
    ip: fc.constantFrom('10.1.1.', '10.1.2.', '10.2.0.'),
  })
  .map(
    (p): Pod => ({
      namespace: p.ns,
      name: p.name,
      labels: { app: p.app, ...(p.tier ? { tier: p.tier } : {}) },
      ports: [{ name: 'web', containerPort: p.webPort, protocol: 6 }],
      podIPs: [`${p.ip}${POD_NAMES.indexOf(p.name) + 1}`],
    }),
  );

type Op =
  | { op: 'pod'; pod: Pod }
  | { op: 'rmpod'; name: string }
  | { op: 'ns'; name: string; team?: string }
  | { op: 'policy'; name: string; doc: Record<string, unknown> }
  | { op: 'rmpolicy'; name: string }
  | { op: 'fqdn'; name: string; ips: string[] };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: pod.map((p) => ({ op: 'pod' as const, pod: p })) },
  { weight: 1, arbitrary: fc.constantFrom(...POD_NAMES).map((name) => ({ op: 'rmpod' as const, name })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ name: fc.constantFrom(...NS), team: fc.option(fc.constantFrom('a', 'b')) })
      .map((n) => ({ op: 'ns' as const, name: n.name, ...(n.team ? { team: n.team } : {}) })),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ name: fc.constantFrom(...POLICY_NAMES), doc: fc.oneof(networkPolicy, ciliumPolicy) })
      .map((p) => ({ op: 'policy' as const, ...p })),
  },
  { weight: 1, arbitrary: fc.constantFrom(...POLICY_NAMES).map((name) => ({ op: 'rmpolicy' as const, name })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ name: fc.constantFrom(...FQDNS), ips: fc.subarray(EXT_IPS) })
      .map((f) => ({ op: 'fqdn' as const, ...f })),
  },
);

interface Model {
  namespaces: Map<string, Record<string, string>>;
  pods: Map<string, Pod>;
  policies: Map<string, Policy>;
  fqdns: Map<string, string[]>;
}

function toPolicy(name: string, doc: Record<string, unknown>): Policy {
  const d = { ...doc, metadata: { ...(doc.metadata as object), name } };
  return parsePolicyFile(stringify(d), `${name}.yaml`).policies[0];
}

function apply(engine: PolicyEngine, m: Model, o: Op): MapStateDiff[] {
  switch (o.op) {
    case 'pod': {
      // One pod per name across namespaces, so a move is a remove then an add.
      const old = [...m.pods.values()].find((p) => p.name === o.pod.name);
      const diffs: MapStateDiff[] = [];
      if (old && old.namespace !== o.pod.namespace) {
        diffs.push(...engine.removePod(old.namespace, old.name));
        m.pods.delete(`${old.namespace}/${old.name}`);
      }
      m.pods.set(`${o.pod.namespace}/${o.pod.name}`, o.pod);
      return [...diffs, ...engine.upsertPod(o.pod)];
    }
    case 'rmpod': {
      const old = [...m.pods.values()].find((p) => p.name === o.name);
      if (!old) return [];
      m.pods.delete(`${old.namespace}/${old.name}`);
      return engine.removePod(old.namespace, old.name);
    }
    case 'ns': {
      const labels: Record<string, string> = o.team ? { team: o.team } : {};
      m.namespaces.set(o.name, labels);
      return engine.upsertNamespace({ name: o.name, labels });
    }
    case 'policy': {
      const p = toPolicy(o.name, o.doc);
      const diffs: MapStateDiff[] = [];
      // A name identifies one policy whatever its kind/namespace: replacing means remove + add.
      const old = m.policies.get(o.name);
      if (old) diffs.push(...engine.removePolicy(old.ref));
      m.policies.set(o.name, p);
      return [...diffs, ...engine.upsertPolicy(p)];
    }
    case 'rmpolicy': {
      const old = m.policies.get(o.name);
      if (!old) return [];
      m.policies.delete(o.name);
      return engine.removePolicy(old.ref);
    }
    case 'fqdn':
      m.fqdns.set(o.name, o.ips);
      return engine.updateFqdn(o.name, o.ips);
  }
}

function canonical(engine: PolicyEngine): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const ep of engine.endpointList()) {
    const rows: string[] = [];
    for (const [key, e] of engine.endpointMapState(ep.endpointId).values()) {
      const id = key.identity === 0 ? 'ANY' : (engine.identityLabels(key.identity)?.key ?? `?${key.identity}`);
      const from = e.derivedFrom.map((r) => `${r.kind}/${r.namespace}/${r.name}`).join(',');
      rows.push(
        `${key.direction}|${id}|${key.protocol}/${key.port}/${key.portPrefixLen}|${e.isDeny ? 'deny' : 'allow'}|${e.proxyPort}|${e.authType}|${from}`,
      );
    }
    const st = engine.endpointPolicyStatus(ep.endpointId)!;
    rows.push(`status|${st.ingress.enforced}|${st.ingress.defaultDeny}|${st.egress.enforced}|${st.egress.defaultDeny}`);
    out[`${ep.namespace}/${ep.name}`] = rows.sort();
  }
  return out;
}

function applyDiffs(mirror: Map<number, Map<string, string>>, diffs: readonly MapStateDiff[]): void {
  for (const d of diffs) {
    let m = mirror.get(d.endpointId);
    if (!m) {
      m = new Map();
      mirror.set(d.endpointId, m);
    }
    for (const k of d.deletes) m.delete(keyText(k));
    for (const [k, e] of d.adds) m.set(keyText(k), entryText(e));
  }
}

function engineMirror(engine: PolicyEngine): Map<number, Map<string, string>> {
  const out = new Map<number, Map<string, string>>();
  for (const ep of engine.endpointList()) {
    const m = new Map<string, string>();
    for (const [k, e] of engine.endpointMapState(ep.endpointId).values()) m.set(keyText(k), entryText(e));
    out.set(ep.endpointId, m);
  }
  return out;
}

function keyText(k: PolicyKey): string {
  return `${k.direction}|${k.identity}|${k.protocol}|${k.port}|${k.portPrefixLen}`;
}
function entryText(e: PolicyEntry): string {
  return JSON.stringify(e);
}
function nonEmpty(m: Map<number, Map<string, string>>): Record<number, Record<string, string>> {
  const out: Record<number, Record<string, string>> = {};
  for (const [id, x] of m) if (x.size > 0) out[id] = Object.fromEntries([...x].sort());
  return out;
}

describe('incremental resolution', () => {
  it('diffs applied to the old state equal the new state, and equal a full recompute', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
        const engine = new PolicyEngine();
        const m: Model = { namespaces: new Map(), pods: new Map(), policies: new Map(), fqdns: new Map() };
        const mirror = new Map<number, Map<string, string>>();
        for (const o of ops) {
          applyDiffs(mirror, apply(engine, m, o));
          assert.deepEqual(nonEmpty(mirror), nonEmpty(engineMirror(engine)), `after ${JSON.stringify(o)}`);
        }
        const fresh = new PolicyEngine();
        for (const [name, labels] of m.namespaces) fresh.upsertNamespace({ name, labels });
        for (const p of m.pods.values()) fresh.upsertPod(p);
        for (const p of m.policies.values()) fresh.upsertPolicy(p);
        for (const [name, ips] of m.fqdns) fresh.updateFqdn(name, ips);
        assert.deepEqual(canonical(engine), canonical(fresh));
      }),
      { numRuns: 300, seed: 4242 },
    );
  });
});
