import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { showValue } from '../../src/policy/policy-error.js';
import { parsePolicyFile } from '../../src/policy/policy-parser.js';

const SEEDS = new URL('../../../test/fixtures/seed-policies/', import.meta.url).pathname;

function cnp(spec: unknown, kind = 'CiliumNetworkPolicy'): string {
  return stringify({ apiVersion: 'cilium.io/v2', kind, metadata: { name: 'p', namespace: 'shop' }, spec });
}
function np(spec: unknown): string {
  return stringify({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'p', namespace: 'shop' },
    spec,
  });
}
const sel = { matchLabels: { app: 'web' } };

/** Invalid inputs: each must be rejected with exactly this message. */
const INVALID: Array<{ name: string; yaml: string; message: string; code?: string }> = [
  {
    name: 'a port above 65535',
    yaml: cnp({ endpointSelector: sel, ingress: [{ toPorts: [{ ports: [{ port: '99999' }] }] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].ports[0].port: expected a port 1-65535 or an IANA service name, got "99999"',
  },
  {
    name: 'a bad protocol',
    yaml: cnp({ endpointSelector: sel, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'tcp' }] }] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].ports[0].protocol: expected "TCP", "UDP", "SCTP" or "ANY", got "tcp"',
  },
  // Found by the fuzz tests (test/fuzz/policy-manifest.test.ts): names of Object.prototype members
  // were looked up through the prototype; `__proto__` used to throw a TypeError.
  {
    name: 'a protocol named __proto__',
    yaml: cnp({ endpointSelector: sel, egress: [{ toPorts: [{ ports: [{ port: '53', protocol: '__proto__' }] }] }] }),
    message:
      'case.yaml: document 1: spec.egress[0].toPorts[0].ports[0].protocol: expected "TCP", "UDP", "SCTP" or "ANY", got "__proto__"',
  },
  {
    name: 'a NetworkPolicy protocol named constructor',
    yaml: np({ podSelector: sel, ingress: [{ ports: [{ port: 80, protocol: 'constructor' }] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].ports[0].protocol: expected "TCP", "UDP" or "SCTP", got "constructor"',
  },
  {
    name: 'an ICMP type named toString',
    yaml: cnp({ endpointSelector: sel, egress: [{ icmps: [{ fields: [{ type: 'toString' }] }] }] }),
    message:
      'case.yaml: document 1: spec.egress[0].icmps[0].fields[0].type: expected an ICMP type 0-255 or an IPv4 type name, got "toString"',
  },
  {
    name: 'two L3 peer kinds in one rule',
    yaml: cnp({ endpointSelector: sel, ingress: [{ fromEndpoints: [sel], fromCIDR: ['10.0.0.0/8'] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0]: expected one kind of peer per rule (fromEndpoints and fromCIDR cannot be combined; write them as separate rules), got fromEndpoints and fromCIDR',
  },
  {
    name: 'toFQDNs with toEndpoints',
    yaml: cnp({ endpointSelector: sel, egress: [{ toEndpoints: [sel], toFQDNs: [{ matchName: 'a.com' }] }] }),
    message:
      'case.yaml: document 1: spec.egress[0]: expected one kind of peer per rule (toEndpoints and toFQDNs cannot be combined; write them as separate rules), got toEndpoints and toFQDNs',
  },
  {
    name: 'DNS rules without port 53',
    yaml: cnp({
      endpointSelector: sel,
      egress: [{ toPorts: [{ ports: [{ port: '54', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] }],
    }),
    message:
      'case.yaml: document 1: spec.egress[0].toPorts[0].rules: expected port 53 listed in ports for dns rules, got ["54"]',
  },
  {
    name: 'DNS rules on ingress',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] }],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.dns: expected dns rules on egress only, got "ingress"',
  },
  {
    name: 'toServices with toPorts',
    yaml: cnp({
      endpointSelector: sel,
      egress: [{ toServices: [{ k8sService: { serviceName: 'db' } }], toPorts: [{ ports: [{ port: '5432' }] }] }],
    }),
    message:
      'case.yaml: document 1: spec.egress[0].toPorts: expected no toPorts next to toServices (the service defines the ports), got toPorts',
  },
  {
    name: 'a bad CIDR',
    yaml: cnp({ endpointSelector: sel, egress: [{ toCIDR: ['10.0.0.300/8'] }] }),
    message: 'case.yaml: document 1: spec.egress[0].toCIDR[0]: expected a CIDR such as 10.0.0.0/8, got "10.0.0.300/8"',
  },
  {
    name: 'a CIDR except outside the CIDR',
    yaml: cnp({ endpointSelector: sel, egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] }] }] }),
    message:
      'case.yaml: document 1: spec.egress[0].toCIDRSet[0].except[0]: expected a prefix inside 10.0.0.0/8, got "11.0.0.0/16"',
  },
  {
    name: 'a bad HTTP path regex',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ path: '/a(' }] } }] }],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.http[0].path: expected a valid regular expression (RE2 syntax: missing )), got "/a("',
  },
  {
    name: 'an unknown field',
    yaml: cnp({ endpointSelector: sel, ingress: [{ fromEndpoint: [sel] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].fromEndpoint: expected a known field (one of fromEndpoints, fromRequires, fromCIDR, fromCIDRSet, fromEntities, fromGroups, fromNodes, toPorts, icmps, authentication), got "fromEndpoint"',
  },
  {
    name: 'a wrong type',
    yaml: cnp({ endpointSelector: sel, ingress: { fromEndpoints: [sel] } }),
    message:
      'case.yaml: document 1: spec.ingress: expected a list, got {"fromEndpoints":[{"matchLabels":{"app":"web"}}]}',
  },
  {
    name: 'an unknown entity',
    yaml: cnp({ endpointSelector: sel, ingress: [{ fromEntities: ['planet'] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].fromEntities[0]: expected an entity (one of all, world, world-ipv4, world-ipv6, cluster, cluster-mesh, host, init, ingress, unmanaged, remote-node, health, none, kube-apiserver), got "planet"',
  },
  {
    name: 'L7 rules on UDP',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'UDP' }], rules: { http: [{}] } }] }],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules: expected TCP for http rules (L7 rules other than DNS need TCP), got "UDP"',
  },
  {
    name: 'two kinds of L7 rules',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [
        { toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}], kafka: [{ topic: 'a' }] } }] },
      ],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules: expected one kind of L7 rule per port rule, got http and kafka',
  },
  {
    name: 'icmps with toPorts',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [{ icmps: [{ fields: [{ type: 8 }] }], toPorts: [{ ports: [{ port: '80' }] }] }],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0]: expected either toPorts or icmps (icmps may only be present without toPorts), got both',
  },
  {
    name: 'a bad ICMP type name',
    yaml: cnp({ endpointSelector: sel, ingress: [{ icmps: [{ fields: [{ type: 'Ping' }] }] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].icmps[0].fields[0].type: expected an ICMP type 0-255 or an IPv4 type name, got "Ping"',
  },
  {
    name: 'a bad authentication mode',
    yaml: cnp({ endpointSelector: sel, ingress: [{ fromEntities: ['world'], authentication: { mode: 'mtls' } }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].authentication.mode: expected "disabled", "required" or "test-always-fail", got "mtls"',
  },
  {
    name: 'a rule with no direction',
    yaml: cnp({ endpointSelector: sel }),
    message:
      'case.yaml: document 1: spec: expected at least one of ingress, ingressDeny, egress or egressDeny, got none',
  },
  {
    name: 'both endpointSelector and nodeSelector',
    yaml: cnp({ endpointSelector: sel, nodeSelector: sel, ingress: [{}] }, 'CiliumClusterwideNetworkPolicy'),
    message: 'case.yaml: document 1: spec: expected exactly one of endpointSelector or nodeSelector, got both',
  },
  {
    name: 'a nodeSelector in a namespaced policy',
    yaml: cnp({ nodeSelector: sel, ingress: [{}] }),
    message:
      'case.yaml: document 1: spec.nodeSelector: expected no nodeSelector (only CiliumClusterwideNetworkPolicy may select nodes), got one',
  },
  {
    name: 'L7 rules in a deny rule',
    yaml: cnp({
      endpointSelector: sel,
      ingressDeny: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}] } }] }],
    }),
    message:
      'case.yaml: document 1: spec.ingressDeny[0].toPorts[0].rules: expected a known field (one of ports), got "rules"',
  },
  {
    name: 'a bad matchPattern',
    yaml: cnp({ endpointSelector: sel, egress: [{ toFQDNs: [{ matchPattern: 'a b.com' }] }] }),
    message:
      'case.yaml: document 1: spec.egress[0].toFQDNs[0].matchPattern: expected a DNS pattern (labels of letters, digits, "-" or "_" joined by single dots where "*" may stand in a label, at most 255), got "a b.com"',
  },
  {
    name: 'a bad selector operator',
    yaml: cnp({
      endpointSelector: { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['a'] }] },
      ingress: [{}],
    }),
    message:
      'case.yaml: document 1: spec.endpointSelector.matchExpressions[0].operator: expected "In", "NotIn", "Exists" or "DoesNotExist", got "Equals"',
  },
  {
    name: 'In without values',
    yaml: cnp({ endpointSelector: { matchExpressions: [{ key: 'app', operator: 'In' }] }, ingress: [{}] }),
    message:
      'case.yaml: document 1: spec.endpointSelector.matchExpressions[0].values: expected at least one value for operator In, got []',
  },
  {
    name: 'a log value that is too long',
    yaml: cnp({ endpointSelector: sel, ingress: [{}], log: { value: 'x'.repeat(33) } }),
    message: `case.yaml: document 1: spec.log.value: expected at most 32 printable characters, got "${'x'.repeat(33)}"`,
  },
  {
    name: 'a Kafka rule with role and apiKey',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            { ports: [{ port: '9092', protocol: 'TCP' }], rules: { kafka: [{ role: 'produce', apiKey: 'fetch' }] } },
          ],
        },
      ],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.kafka[0]: expected either role or apiKey, got both',
  },
  {
    name: 'a Kafka topic with a character Kafka refuses',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            { ports: [{ port: '9092', protocol: 'TCP' }], rules: { kafka: [{ role: 'consume', topic: 'a/b' }] } },
          ],
        },
      ],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.kafka[0].topic: expected a Kafka topic (letters, digits, ".", "_", "-", at most 255), got "a/b"',
  },
  {
    name: 'a Kafka topic longer than 255 characters',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            {
              ports: [{ port: '9092', protocol: 'TCP' }],
              rules: { kafka: [{ role: 'produce', topic: 't'.repeat(256) }] },
            },
          ],
        },
      ],
    }),
    message: `case.yaml: document 1: spec.ingress[0].toPorts[0].rules.kafka[0].topic: expected a Kafka topic (letters, digits, ".", "_", "-", at most 255), got "${'t'.repeat(76)}...`,
  },
  {
    name: 'an L7 rule on a port range',
    yaml: cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80', endPort: 90, protocol: 'TCP' }], rules: { http: [{}] } }] }],
    }),
    message:
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules: expected a single port for http rules (not a range), got 80-90',
  },
  {
    name: 'a NetworkPolicy port given as a quoted number',
    yaml: np({ podSelector: {}, ingress: [{ ports: [{ port: '80' }] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].ports[0].port: expected a port 1-65535 or an IANA service name, got "80"',
  },
  {
    name: 'a NetworkPolicy endPort with a named port',
    yaml: np({ podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].ports[0].endPort: expected no endPort unless port is a number, got 90',
  },
  {
    name: 'a NetworkPolicy ipBlock combined with a podSelector',
    yaml: np({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }),
    message:
      'case.yaml: document 1: spec.ingress[0].from[0]: expected ipBlock alone (it cannot be combined with podSelector or namespaceSelector), got ["ipBlock","podSelector"]',
  },
  {
    name: 'a NetworkPolicy except equal to the cidr',
    yaml: np({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }] }),
    message:
      'case.yaml: document 1: spec.egress[0].to[0].ipBlock.except[0]: expected a prefix inside 10.0.0.0/8, got "10.0.0.0/8"',
  },
  {
    name: 'a NetworkPolicy ipBlock without a prefix length',
    yaml: np({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.1' } }] }] }),
    message:
      'case.yaml: document 1: spec.egress[0].to[0].ipBlock.cidr: expected a CIDR such as 10.0.0.0/8, got "10.0.0.1"',
  },
  {
    name: 'a bad policyType',
    yaml: np({ podSelector: {}, policyTypes: ['Inbound'] }),
    message: 'case.yaml: document 1: spec.policyTypes[0]: expected "Ingress" or "Egress", got "Inbound"',
  },
  {
    name: 'a SCTP-less protocol in NetworkPolicy',
    yaml: np({ podSelector: {}, ingress: [{ ports: [{ protocol: 'ANY', port: 80 }] }] }),
    message: 'case.yaml: document 1: spec.ingress[0].ports[0].protocol: expected "TCP", "UDP" or "SCTP", got "ANY"',
  },
  {
    name: 'a bad label key',
    yaml: np({ podSelector: { matchLabels: { 'bad key': 'x' } } }),
    message:
      'case.yaml: document 1: spec.podSelector.matchLabels.bad key: expected a label key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", "."), got "bad key"',
  },
  {
    name: 'a label key of 1 MB, shown cut to 80 characters in the path and the value',
    yaml: JSON.stringify({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'x', namespace: 'shop' },
      spec: { podSelector: { matchLabels: { [`bad ${'k'.repeat(1 << 20)}`]: 'x' } } },
    }),
    message: `case.yaml: document 1: spec.podSelector.matchLabels.bad ${'k'.repeat(73)}...: expected a label key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", "."), got "bad ${'k'.repeat(72)}...`,
  },
  {
    name: 'an unknown kind',
    yaml: 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n',
    message:
      'case.yaml: document 1: kind: expected one of NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, Namespace, Pod, Service, Endpoints, Secret or a List, got "Deployment"',
  },
  {
    name: 'a wrong apiVersion',
    yaml: 'apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec: {}\n',
    message:
      'case.yaml: document 1: apiVersion: expected "cilium.io/v2" for kind CiliumNetworkPolicy, got "cilium.io/v1"',
  },
  {
    name: 'broken YAML',
    yaml: 'kind: [\n',
    code: 'MBR_MANIFEST_INVALID',
    message:
      'case.yaml: document 1 (line 2): expected YAML or JSON, got "Flow sequence in block collection must be sufficiently indented and end with a ]"',
  },
];

// toFQDNs selectors, one row per value: accepted exactly when Cilium's CRD schema and
// FQDNSelector.sanitize accept it (pkg/policy/api/fqdn.go, pkg/fqdn/matchpattern/matchpattern.go).
const NAME_ERR = 'a DNS name (labels of letters, digits, "-" or "_" joined by single dots, at most 255)';
const PATTERN_ERR =
  'a DNS pattern (labels of letters, digits, "-" or "_" joined by single dots where "*" may stand in a label, at most 255)';
const FQDN_SELECTORS: Array<{ field: 'matchName' | 'matchPattern'; value: unknown; expected?: string }> = [
  { field: 'matchPattern', value: '*' },
  { field: 'matchPattern', value: '**' },
  { field: 'matchPattern', value: '**.' },
  { field: 'matchPattern', value: '*.a.com' },
  { field: 'matchPattern', value: '**.a.com' },
  { field: 'matchPattern', value: 'a.**.com' },
  { field: 'matchPattern', value: 'sub*.a.com' },
  { field: 'matchPattern', value: '*a.com.' },
  { field: 'matchPattern', value: '_srv.A-b.com' },
  { field: 'matchPattern', value: 'a..b', expected: PATTERN_ERR },
  { field: 'matchPattern', value: '.a.com', expected: PATTERN_ERR },
  { field: 'matchPattern', value: '*..a.com', expected: PATTERN_ERR },
  { field: 'matchPattern', value: '.', expected: PATTERN_ERR },
  { field: 'matchPattern', value: 'a.com..', expected: PATTERN_ERR },
  { field: 'matchPattern', value: '', expected: PATTERN_ERR },
  { field: 'matchPattern', value: ' a.com', expected: PATTERN_ERR },
  { field: 'matchPattern', value: 'a?.com', expected: PATTERN_ERR },
  { field: 'matchPattern', value: '[a].com', expected: PATTERN_ERR },
  { field: 'matchPattern', value: `${'a.'.repeat(127)}ab`, expected: PATTERN_ERR },
  { field: 'matchPattern', value: 7, expected: PATTERN_ERR },
  { field: 'matchName', value: 'a.com' },
  { field: 'matchName', value: 'a.com.' },
  { field: 'matchName', value: '_dns.A-1.com' },
  { field: 'matchName', value: `${'a.'.repeat(127)}a` },
  { field: 'matchName', value: 'a..b', expected: NAME_ERR },
  { field: 'matchName', value: '.a.com', expected: NAME_ERR },
  { field: 'matchName', value: '.', expected: NAME_ERR },
  { field: 'matchName', value: '*.a.com', expected: NAME_ERR },
  { field: 'matchName', value: '', expected: NAME_ERR },
  { field: 'matchName', value: `${'a.'.repeat(127)}ab`, expected: NAME_ERR },
];

describe('toFQDNs selectors', () => {
  for (const c of FQDN_SELECTORS) {
    const yaml = cnp({ endpointSelector: sel, egress: [{ toFQDNs: [{ [c.field]: c.value }] }] });
    const { expected } = c;
    if (expected === undefined)
      it(`accepts ${c.field} ${JSON.stringify(c.value)}`, () => {
        assert.equal(parsePolicyFile(yaml, 'case.yaml').policies.length, 1);
      });
    else
      it(`rejects ${c.field} ${JSON.stringify(c.value).slice(0, 40)}`, () => {
        assert.throws(() => parsePolicyFile(yaml, 'case.yaml'), {
          code: 'MBR_POLICY_INVALID',
          message: `case.yaml: document 1: spec.egress[0].toFQDNs[0].${c.field}: expected ${expected}, got ${showValue(c.value)}`,
        });
      });
  }

  it('applies the same rules to DNS rules under toPorts', () => {
    const dns = (matchPattern: string) =>
      cnp({
        endpointSelector: sel,
        egress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern }] } }] }],
      });
    assert.equal(parsePolicyFile(dns('**.a.com'), 'case.yaml').policies.length, 1);
    assert.throws(() => parsePolicyFile(dns('a..b'), 'case.yaml'), {
      code: 'MBR_POLICY_INVALID',
      message: `case.yaml: document 1: spec.egress[0].toPorts[0].rules.dns[0].matchPattern: expected ${PATTERN_ERR}, got "a..b"`,
    });
  });
});

// toPorts[].ports[] with endPort, one row per case. Accepted rows give the ports Cilium enforces
// (PortRangeToMaskedPorts: an endPort not above port is ignored); rejected rows are the cases
// Cilium would widen or its CRD schema refuses (pkg/policy/api/rule_validation.go, l4.go).
const CNP_END_PORTS: Array<{ name: string; port: unknown; endPort: unknown; ports?: string; expected?: string }> = [
  { name: 'a range', port: '80', endPort: 90, ports: '80-90/TCP' },
  { name: 'an endPort equal to port', port: '80', endPort: 80, ports: '80-80/TCP' },
  { name: 'an endPort below port (ignored, as Cilium does)', port: '80', endPort: 70, ports: '80-80/TCP' },
  { name: 'an endPort of 0 (unset)', port: '80', endPort: 0, ports: '80-80/TCP' },
  { name: 'a numeric port with an endPort', port: 80, endPort: 65535, ports: '80-65535/TCP' },
  {
    name: 'an endPort with a named port',
    port: 'http',
    endPort: 90,
    expected: 'no endPort unless port is a number 1-65535, got 90',
  },
  {
    name: 'an endPort with port 0',
    port: '0',
    endPort: 90,
    expected: 'no endPort unless port is a number 1-65535, got 90',
  },
  { name: 'an endPort above 65535', port: '80', endPort: 70000, expected: 'an endPort 0-65535, got 70000' },
  { name: 'a negative endPort', port: '80', endPort: -1, expected: 'an endPort 0-65535, got -1' },
  { name: 'a fractional endPort', port: '80', endPort: 90.5, expected: 'an endPort 0-65535, got 90.5' },
  { name: 'an endPort as text', port: '80', endPort: '90', expected: 'an endPort 0-65535, got "90"' },
];

describe('CiliumNetworkPolicy endPort', () => {
  for (const c of CNP_END_PORTS) {
    const yaml = cnp({
      endpointSelector: sel,
      egress: [{ toPorts: [{ ports: [{ port: c.port, endPort: c.endPort, protocol: 'TCP' }] }] }],
    });
    const { expected } = c;
    if (expected === undefined)
      it(`accepts ${c.name}`, () => {
        const entry = parsePolicyFile(yaml, 'case.yaml').policies[0].rules[0].egress?.entries[0];
        assert.deepEqual(
          entry?.ports?.map((p) => `${p.port}-${p.endPort}/${p.protocol === 6 ? 'TCP' : p.protocol}`).join(','),
          c.ports,
        );
      });
    else
      it(`rejects ${c.name}`, () => {
        assert.throws(() => parsePolicyFile(yaml, 'case.yaml'), {
          code: 'MBR_POLICY_INVALID',
          message: `case.yaml: document 1: spec.egress[0].toPorts[0].ports[0].endPort: expected ${expected}`,
        });
      });
  }

  it('rejects a port entry with no port, as Cilium does', () => {
    const yaml = cnp({ endpointSelector: sel, egress: [{ toPorts: [{ ports: [{ endPort: 90, protocol: 'TCP' }] }] }] });
    assert.throws(() => parsePolicyFile(yaml, 'case.yaml'), {
      code: 'MBR_POLICY_INVALID',
      message:
        'case.yaml: document 1: spec.egress[0].toPorts[0].ports[0].port: expected a port 1-65535 or an IANA service name, got nothing',
    });
  });
});

// NetworkPolicy ports[].endPort, as the Kubernetes API validates it (ValidateNetworkPolicyPort):
// a numeric port is required, endPort >= port, endPort 1-65535.
const NP_END_PORTS: Array<{ name: string; port?: unknown; endPort: unknown; expected?: string }> = [
  { name: 'a range', port: 80, endPort: 90 },
  { name: 'an endPort equal to port', port: 80, endPort: 80 },
  { name: 'an endPort without a port', endPort: 90, expected: 'no endPort unless port is a number, got 90' },
  { name: 'an endPort below port', port: 80, endPort: 70, expected: 'a port 80-65535 (not below port), got 70' },
  { name: 'an endPort above 65535', port: 80, endPort: 70000, expected: 'a port 80-65535 (not below port), got 70000' },
  { name: 'a fractional endPort', port: 80, endPort: 80.5, expected: 'a port 80-65535 (not below port), got 80.5' },
];

describe('NetworkPolicy endPort', () => {
  for (const c of NP_END_PORTS) {
    const yaml = np({ podSelector: {}, ingress: [{ ports: [{ port: c.port, endPort: c.endPort }] }] });
    const { expected } = c;
    if (expected === undefined)
      it(`accepts ${c.name}`, () => {
        assert.equal(parsePolicyFile(yaml, 'case.yaml').policies.length, 1);
      });
    else
      it(`rejects ${c.name}`, () => {
        assert.throws(() => parsePolicyFile(yaml, 'case.yaml'), {
          code: 'MBR_POLICY_INVALID',
          message: `case.yaml: document 1: spec.ingress[0].ports[0].endPort: expected ${expected}`,
        });
      });
  }
});

describe('parsePolicyFile', () => {
  it('accepts every seed policy unchanged', () => {
    const dir = SEEDS;
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    assert.equal(files.length, 15);
    let n = 0;
    for (const f of files) n += parsePolicyFile(readFileSync(dir + f, 'utf8'), f).policies.length;
    assert.equal(n, 21);
  });

  for (const c of INVALID)
    it(`rejects ${c.name}`, () => {
      assert.throws(
        () => parsePolicyFile(c.yaml, 'case.yaml'),
        (e: Error & { code: string }) => {
          assert.equal(e.code, c.code ?? 'MBR_POLICY_INVALID');
          assert.equal(e.message, c.message);
          return true;
        },
      );
    });

  it('reports every issue of a file, with document numbers, and accepts nothing from it', () => {
    const bad = cnp({ endpointSelector: sel, ingress: [{ toPorts: [{ ports: [{ port: '99999' }] }] }] });
    const good = cnp({ endpointSelector: sel, ingress: [{}] });
    assert.throws(
      () => parsePolicyFile(`${good}---\n${bad}---\n${bad}`, 'shop.yaml'),
      (e: Error & { issues: Array<{ document: number }> }) => {
        assert.deepEqual(
          e.issues.map((i) => i.document),
          [2, 3],
        );
        return true;
      },
    );
  });

  it('reads List kinds and prefixes item paths', () => {
    const list = stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a', labels: { t: 'x' } } }, { kind: 'Foo' }],
    });
    assert.throws(() => parsePolicyFile(list, 'l.yaml'), /l\.yaml: document 1: items\[1\]\.kind: expected one of/);
  });

  it('reads the world: namespaces, pods with named ports and IPs', () => {
    const text = `apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  containers:
  - name: c
    ports:
    - {name: serve-80-tcp, containerPort: 80}
    - {name: serve-81-udp, containerPort: 81, protocol: UDP}
status: {podIP: 10.0.0.1}
`;
    const r = parsePolicyFile(text, 'w.yaml');
    assert.deepEqual(r.namespaces, [{ name: 'x', labels: { team: 'a' } }]);
    assert.deepEqual(r.pods[0], {
      namespace: 'x',
      name: 'a',
      labels: { pod: 'a' },
      ports: [
        { name: 'serve-80-tcp', containerPort: 80, protocol: 6 },
        { name: 'serve-81-udp', containerPort: 81, protocol: 17 },
      ],
      podIPs: ['10.0.0.1'],
    });
  });

  it('defaults NetworkPolicy policyTypes as Kubernetes does', () => {
    const types = (spec: unknown) => {
      const r = parsePolicyFile(np(spec), 'a.yaml').policies[0].rules[0];
      return [r.ingress ? 'Ingress' : '', r.egress ? 'Egress' : ''].filter(Boolean).join(',');
    };
    assert.equal(types({ podSelector: {} }), 'Ingress');
    assert.equal(types({ podSelector: {}, egress: [] }), 'Ingress');
    assert.equal(types({ podSelector: {}, egress: [{}] }), 'Ingress,Egress');
    assert.equal(types({ podSelector: {}, policyTypes: ['Egress'], ingress: [{}] }), 'Egress');
  });

  it('treats an empty or null section as absent and a section with rules as present', () => {
    const dirs = (yaml: string) => {
      const r = parsePolicyFile(yaml, 'a.yaml').policies[0].rules[0];
      return [r.ingress ? 'ingress' : '', r.egress ? 'egress' : ''].filter(Boolean).join(',');
    };
    const head =
      'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  endpointSelector: {}\n';
    assert.equal(dirs(`${head}  ingress: []\n  egress:\n`), '');
    assert.equal(dirs(`${head}  ingress: [{}]\n  egress: []\n`), 'ingress');
    assert.equal(dirs(`${head}  ingress:\n  egressDeny: [{toEntities: [world]}]\n`), 'egress');
  });

  it('scopes a namespaced CNP peer to its namespace unless it names one', () => {
    const peers = (sels: unknown[]) =>
      parsePolicyFile(
        cnp({ endpointSelector: {}, ingress: [{ fromEndpoints: sels }] }),
        'a.yaml',
      ).policies[0].rules[0].ingress!.entries[0].peers.map((p) => (p.kind === 'labels' ? p.selector.key : p.kind));
    assert.deepEqual(peers([{}]), ['k8s:io.kubernetes.pod.namespace=shop']);
    assert.deepEqual(peers([{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'x', app: 'a' } }]), [
      'any:app=a,k8s:io.kubernetes.pod.namespace=x',
    ]);
    assert.deepEqual(peers([{ matchLabels: { 'reserved:host': '' } }]), ['reserved:host=']);
  });
});
