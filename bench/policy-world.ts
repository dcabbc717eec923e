// The synthetic world the policy and agent benchmarks share: pods with named ports, and policy
// documents of realistic shapes (L3/L4 NetworkPolicy, namespace-scoped monitoring, L7 HTTP, DNS +
// FQDN egress, ipBlock egress, deny), rotating by index.
import type { Pod } from '../src/policy/world.js';

export const APPS_PER_NS = 4;

export function makePod(i: number, ns: string, app: string, extra: Record<string, string> = {}): Pod {
  return {
    namespace: ns,
    name: `pod-${i}`,
    labels: { app, ...extra },
    ports: [
      { name: 'http', containerPort: 8080, protocol: 6 },
      { name: 'metrics', containerPort: 9090, protocol: 6 },
    ],
    podIPs: [`10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
  };
}

/** Realistic shapes, rotating: L3/L4 NP, namespace-scoped monitoring, L7 HTTP, DNS + FQDN egress, ipBlock egress, deny. */
export function policyDoc(i: number, nsNames: string[], variant = 0): Record<string, unknown> {
  const ns = nsNames[i % nsNames.length];
  const app = `app-${Math.floor(i / nsNames.length) % APPS_PER_NS}`;
  const peer = `app-${(Math.floor(i / nsNames.length) + 1) % APPS_PER_NS}`;
  const meta = { name: `pol-${i}`, namespace: ns };
  const port = 8080 + variant;
  switch (i % 6) {
    case 0:
      return np(meta, {
        podSelector: { matchLabels: { app } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: peer } } }], ports: [{ port }] }],
      });
    case 1:
      return np(meta, {
        podSelector: { matchLabels: { app } },
        ingress: [
          { from: [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }], ports: [{ port: 'metrics' }] },
        ],
      });
    case 2:
      return cnp(meta, {
        endpointSelector: { matchLabels: { app } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { app: peer } }],
            toPorts: [
              {
                ports: [{ port: String(port), protocol: 'TCP' }],
                rules: { http: [{ method: 'GET', path: `/api/v${i}/.*` }] },
              },
            ],
          },
        ],
      });
    case 3:
      return cnp(meta, {
        endpointSelector: { matchLabels: { app } },
        egress: [
          {
            toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }],
            toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }],
          },
          {
            toFQDNs: [{ matchName: `api-${i}.example.com` }],
            toPorts: [{ ports: [{ port: String(443 + variant), protocol: 'TCP' }] }],
          },
        ],
      });
    case 4:
      return np(meta, {
        podSelector: { matchLabels: { app } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              { ipBlock: { cidr: `172.${16 + (i % 16)}.0.0/16`, except: [`172.${16 + (i % 16)}.${i % 256}.0/24`] } },
            ],
          },
          { to: [{ podSelector: {} }], ports: [{ port, endPort: port + 10 }] },
        ],
      });
    default:
      return cnp(meta, {
        endpointSelector: { matchLabels: { app } },
        ingress: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: String(port), protocol: 'TCP' }] }] }],
        ingressDeny: [
          { fromEndpoints: [{ matchLabels: { app: peer } }], toPorts: [{ ports: [{ port: '22', protocol: 'TCP' }] }] },
        ],
      });
  }
}

export function np(metadata: object, spec: object) {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata, spec };
}
export function cnp(metadata: object, spec: object) {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata, spec };
}
