// Golden dump of every endpoint's policy map for the seed policies over a small world, so any
// change in resolution shows up as a reviewed diff (UPDATE_GOLDEN=1 rewrites it).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { PolicyEngine } from '../../src/policy/policy-engine.js';
import { parsePolicyFile } from '../../src/policy/policy-parser.js';
import { protocolName } from '../../src/policy/protocol-names.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const SEEDS = `${ROOT}test/fixtures/seed-policies/`;
const GOLDEN = `${ROOT}test/golden/policy/seed-map-dump.txt`;

const WORLD = `
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: production}}
- {apiVersion: v1, kind: Namespace, metadata: {name: monitoring}}
- {apiVersion: v1, kind: Namespace, metadata: {name: payments}}
- {apiVersion: v1, kind: Namespace, metadata: {name: checkout}}
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- {apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}
- {apiVersion: v1, kind: Pod, metadata: {name: backend, namespace: production, labels: {role: backend}}, status: {podIP: 10.1.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: frontend, namespace: production, labels: {role: frontend}}, status: {podIP: 10.1.0.2}}
- {apiVersion: v1, kind: Pod, metadata: {name: my-api, namespace: production, labels: {app: my-api}}, status: {podIP: 10.1.0.3}}
- {apiVersion: v1, kind: Pod, metadata: {name: prom, namespace: monitoring, labels: {app: prometheus}}, status: {podIP: 10.1.1.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: payment, namespace: payments, labels: {app: payment-service}}, status: {podIP: 10.1.2.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: checkout, namespace: checkout, labels: {app: checkout-service}}, status: {podIP: 10.1.3.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: backend, namespace: shop, labels: {app: backend}}, status: {podIP: 10.1.4.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: frontend, namespace: shop, labels: {app: frontend}}, status: {podIP: 10.1.4.2}}
- {apiVersion: v1, kind: Pod, metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}, status: {podIP: 10.1.5.1}}
`;

function dump(engine: PolicyEngine): string {
  const out: string[] = [];
  for (const ep of engine.endpointList()) {
    const st = engine.endpointPolicyStatus(ep.endpointId)!;
    const dir = (d: typeof st.ingress) => (d.defaultDeny ? 'default-deny' : d.enforced ? 'enforced' : 'open');
    out.push(
      `endpoint ${ep.endpointId} ${ep.namespace}/${ep.name} identity ${ep.identity} ingress ${dir(st.ingress)} egress ${dir(st.egress)}`,
    );
    const rows: string[] = [];
    for (const [k, e] of engine.endpointMapState(ep.endpointId).values()) {
      const port =
        k.protocol === 0
          ? 'ANY'
          : k.portPrefixLen === 0
            ? `ANY/${protocolName(k.protocol)}`
            : `${k.port}/${k.portPrefixLen}/${protocolName(k.protocol)}`;
      const what = e.isDeny
        ? 'deny'
        : `allow${e.proxyPort ? ` proxy=${e.proxyPort}` : ''}${e.authType ? ` auth=${e.authType}` : ''}`;
      const from = e.derivedFrom.map((r) => `${r.kind}/${r.namespace}/${r.name}`).join(',');
      rows.push(
        `  ${k.direction} ${k.identity === 0 ? 'ANY' : k.identity} ${port} ${what}${from ? ` by ${from}` : ''}`,
      );
    }
    out.push(...rows.sort());
  }
  out.push('identities:');
  for (const i of engine.identityList()) if (i.id >= 256) out.push(`  ${i.id} ${i.labels.key}`);
  return `${out.join('\n')}\n`;
}

describe('seed policy map dump', () => {
  it('resolves the seed policies over a small world to the reviewed map state', () => {
    const engine = new PolicyEngine();
    engine.applyFile(parsePolicyFile(WORLD, 'world.yaml'));
    for (const f of readdirSync(SEEDS).sort()) engine.applyFile(parsePolicyFile(readFileSync(SEEDS + f, 'utf8'), f));
    engine.updateFqdn('api.stripe.com', ['54.1.2.3']);
    const actual = dump(engine);
    if (process.env.UPDATE_GOLDEN === '1' || !existsSync(GOLDEN)) writeFileSync(GOLDEN, actual);
    assert.equal(actual, readFileSync(GOLDEN, 'utf8'));
  });
});
