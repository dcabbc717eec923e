// Test support: the 3x3 world (namespaces x, y, z; pods a, b, c in each) used by the
// NetworkPolicy conformance suites, with a policy engine and truth-table checks over it.
import assert from 'node:assert/strict';
import { PolicyEngine } from '../../src/policy/policy-engine.js';
import { parsePolicyFile } from '../../src/policy/policy-parser.js';
import { type TraceResult, tracePolicy } from '../../src/policy/policy-trace.js';
import type { Pod } from '../../src/policy/world.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const PODS = ['a', 'b', 'c'] as const;

export interface LabPeer {
  readonly ns: string;
  readonly pod: string;
  /** `ns/pod` */
  readonly key: string;
}

export const PEERS: readonly LabPeer[] = NAMESPACES.flatMap((ns) =>
  PODS.map((pod) => ({ ns, pod, key: `${ns}/${pod}` })),
);

export function labPod(ns: string, pod: string, labels: Record<string, string> = { pod }): Pod {
  const ports = [80, 81].flatMap((port) =>
    (
      [
        ['tcp', 6],
        ['udp', 17],
        ['sctp', 132],
      ] as const
    ).map(([p, n]) => ({ name: `serve-${port}-${p}`, containerPort: port, protocol: n })),
  );
  return { namespace: ns, name: pod, labels, ports, podIPs: [labIp(ns, pod)] };
}

export function labIp(ns: string, pod: string): string {
  return `10.0.${NAMESPACES.indexOf(ns as 'x') + 1}.${PODS.indexOf(pod as 'a') + 1}`;
}

export class PolicyLab {
  readonly engine = new PolicyEngine();
  constructor() {
    for (const ns of NAMESPACES) this.engine.upsertNamespace({ name: ns, labels: { ns } });
    for (const p of PEERS) this.engine.upsertPod(labPod(p.ns, p.pod));
  }

  apply(yaml: string) {
    return this.engine.applyFile(parsePolicyFile(yaml, 'case.yaml'));
  }

  trace(src: string, dst: string, dport: number | string, protocol = 'TCP'): TraceResult {
    return tracePolicy(this.engine, { src, dst, dport, protocol });
  }

  /** Asserts the verdict of every (src, dst) pair on one port against `allowed`. */
  expect(dport: number | string, protocol: string, allowed: (s: LabPeer, d: LabPeer) => boolean): void {
    const wrong: string[] = [];
    for (const s of PEERS)
      for (const d of PEERS) {
        const want = s.key === d.key || allowed(s, d) ? 'ALLOWED' : 'DENIED';
        const got = this.trace(s.key, d.key, dport, protocol).verdict;
        if (got !== want) wrong.push(`${s.key} -> ${d.key} ${dport}/${protocol}: got ${got}, want ${want}`);
      }
    assert.deepEqual(wrong, []);
  }
}

/** A NetworkPolicy document. */
export function np(ns: string, name: string, spec: string): string {
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}, namespace: ${ns}}
spec:
${indent(spec)}
---
`;
}

export function cnp(ns: string, name: string, spec: string): string {
  return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ${name}, namespace: ${ns}}
spec:
${indent(spec)}
---
`;
}

export function ccnp(name: string, spec: string): string {
  return `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: ${name}}
spec:
${indent(spec)}
---
`;
}

function indent(s: string): string {
  return s
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
