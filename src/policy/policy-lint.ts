// `membrane policy lint`: the known traps of network policy, found before they bite. Pure: the
// documents (as the one manifest reader returns them) and, optionally, a world (namespaces and
// pods, from world files or the running cluster) in; findings out. Each finding names the file,
// the document, the field path, why it is a problem and how to fix it.
//
//   MBR_LINT_FQDN_WITHOUT_DNS_RULE    error    toFQDNs, but no DNS rule (port 53, rules.dns) for the
//                                              same pods: the DNS proxy never sees their lookups,
//                                              so no name is ever learned and nothing is allowed
//   MBR_LINT_FQDN_NOT_IN_DNS_RULES    error    a toFQDNs name the pods' DNS rules refuse: it can
//                                              never resolve
//   MBR_LINT_DEFAULT_DENY_WITHOUT_DNS error    egress default-deny with no allow of UDP 53
//   MBR_LINT_L7_PORT_NOT_SERVED       warning  an L7 rule on a port no pod serves (ingress: the
//                                              selected pods; egress: the toEndpoints pods)
//   MBR_LINT_SELECTOR_MATCHES_NOTHING warning  a selector that matches no pod of the world
//   MBR_LINT_EMPTY_RULE_LIST          warning  `ingress: []` (Cilium): no rule and no enforcement;
//                                              `ingress: [{}]` is the deny-all idiom
//   MBR_LINT_INVALID                  error    the document is no valid policy
// Without a world, "the same pods" means rules with the same subject selector, and the checks
// that need pods (L7 port, selectors) are not run.

import { compileMatchPattern, normalizeFqdn } from './fqdn-pattern.js';
import { selectorMatches } from './label-selector.js';
import type { ManifestDocument } from './manifest-reader.js';
import { PolicyEngine } from './policy-engine.js';
import { PolicyError } from './policy-error.js';
import { parsePolicyObject } from './policy-parser.js';
import type { PolicyRule } from './policy-rule.js';
import type { Namespace, Pod } from './world.js';

export type LintSeverity = 'error' | 'warning';

export interface LintFinding {
  readonly file: string;
  readonly document: number;
  readonly path: string;
  readonly severity: LintSeverity;
  readonly code: string;
  readonly why: string;
  readonly fix: string;
}

export interface LintWorld {
  readonly namespaces: readonly Namespace[];
  readonly pods: readonly Pod[];
}

export interface LintDocument extends Pick<ManifestDocument, 'document' | 'value'> {
  readonly file: string;
  /** Context only (the running cluster's policies): used to judge, never reported on. */
  readonly isContext?: boolean;
}

/** `FILE: document N: PATH: error CODE: why (fix: ...)`. */
export function formatLintFinding(f: LintFinding): string {
  return `${f.file}: document ${f.document}: ${f.path}: ${f.severity} ${f.code}: ${f.why} (fix: ${f.fix})`;
}

export function lintPolicies(docs: readonly LintDocument[], world?: LintWorld): LintFinding[] {
  const out: LintFinding[] = [];
  const engine = new PolicyEngine();
  const nsByName = new Map((world?.namespaces ?? []).map((n) => [n.name, n]));
  const podLabels = (world?.pods ?? []).map((p) => ({
    pod: p,
    labels: engine.podIdentityLabels(p, nsByName.get(p.namespace)),
  }));
  const rules: RuleView[] = [];
  for (const d of docs) {
    const kind = d.value.kind;
    if (kind !== 'CiliumNetworkPolicy' && kind !== 'CiliumClusterwideNetworkPolicy' && kind !== 'NetworkPolicy')
      continue;
    let parsed: PolicyRule[];
    try {
      parsed = parsePolicyObject(d.value, d.file, d.document).policies.flatMap((p) => [...p.rules]);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      if (!d.isContext)
        for (const i of err.issues)
          out.push({
            file: d.file,
            document: d.document,
            path: i.path,
            severity: 'error',
            code: 'MBR_LINT_INVALID',
            why: `expected ${i.expected}, got ${i.got}`,
            fix: 'make the document valid (membrane policy validate)',
          });
      continue;
    }
    const spec = d.value.spec as Record<string, unknown> | undefined;
    const specs = Array.isArray(d.value.specs) ? (d.value.specs as Record<string, unknown>[]) : [];
    const raws: Array<{ path: string; raw: Record<string, unknown> }> = [];
    if (spec && typeof spec === 'object') raws.push({ path: 'spec', raw: spec });
    specs.forEach((s, i) => {
      raws.push({ path: `specs[${i}]`, raw: s });
    });
    const meta = (d.value.metadata ?? {}) as Record<string, unknown>;
    const namespace = kind === 'CiliumClusterwideNetworkPolicy' ? undefined : String(meta.namespace ?? 'default');
    parsed.forEach((rule, i) => {
      const r = raws[i];
      if (!r || rule.isNodeRule) return;
      const pods = world
        ? podLabels.filter((p) => selectorMatches(rule.subject, p.labels)).map((p) => p.pod)
        : undefined;
      rules.push({ doc: d, kind: String(kind), namespace, path: r.path, raw: r.raw, rule, pods });
    });
  }

  for (const r of rules) {
    if (r.doc.isContext) continue;
    const at = (path: string, severity: LintSeverity, code: string, why: string, fix: string) =>
      out.push({ file: r.doc.file, document: r.doc.document, path: `${r.path}.${path}`, severity, code, why, fix });
    const peers = rulesForSamePods(r, rules);
    const dnsRules = peers.flatMap((p) => dnsRulesOf(p));
    const hasDnsVisibility = peers.some((p) => dnsRulesOf(p).length > 0 || hasDnsAllowAll(p));

    // toFQDNs and the DNS rules that make them work.
    items(r.raw.egress).forEach((e, i) => {
      const fqdns = items(e.toFQDNs);
      if (fqdns.length === 0) return;
      if (!hasDnsVisibility) {
        at(
          `egress[${i}].toFQDNs`,
          'error',
          'MBR_LINT_FQDN_WITHOUT_DNS_RULE',
          "toFQDNs learns addresses only from DNS answers the DNS proxy sees, and no rule sends these pods' DNS (port 53) to it: the names never resolve to anything the policy allows",
          'add an egress rule to the DNS server on port 53 (UDP and TCP) with rules: {dns: [{matchPattern: "*"}]}',
        );
        return;
      }
      if (dnsRules.length === 0) return; // DNS allowed without L7 rules: every name is seen.
      fqdns.forEach((f, k) => {
        const sample = sampleName(f);
        if (sample === undefined) return;
        if (!dnsRules.some((d) => dnsRuleAllows(d, sample)))
          at(
            `egress[${i}].toFQDNs[${k}]`,
            'error',
            'MBR_LINT_FQDN_NOT_IN_DNS_RULES',
            `the DNS rules of these pods refuse "${sample.slice(0, -1)}", so the proxy answers REFUSED and ${describeSelector(f)} never learns an address`,
            `add {${describeSelector(f)}} to the rules.dns of the port 53 rule, or use matchPattern: "*" there`,
          );
      });
    });

    // Egress default-deny without DNS.
    if (r.rule.egress?.defaultDeny && !peers.some(allowsUdp53)) {
      const path = r.kind === 'NetworkPolicy' ? 'policyTypes' : 'egress';
      at(
        path,
        'error',
        'MBR_LINT_DEFAULT_DENY_WITHOUT_DNS',
        'this turns on egress default-deny for the selected pods and no rule allows DNS (UDP 53): every name lookup of theirs is dropped',
        'add an egress rule allowing UDP and TCP port 53 to the DNS server (kube-dns)',
      );
    }

    // `ingress: []` in Cilium policies.
    if (r.kind !== 'NetworkPolicy')
      for (const f of ['ingress', 'egress', 'ingressDeny', 'egressDeny'])
        if (Array.isArray(r.raw[f]) && (r.raw[f] as unknown[]).length === 0)
          at(
            f,
            'warning',
            'MBR_LINT_EMPTY_RULE_LIST',
            `an empty list adds no rule and does not enforce ${f.replace('Deny', '')}: traffic stays allowed`,
            `to deny all ${f.replace('Deny', '')}, write ${f.replace('Deny', '')}: [{}]; otherwise remove the field`,
          );

    if (!world || !r.pods) continue;
    const selPath = r.kind === 'NetworkPolicy' ? 'podSelector' : 'endpointSelector';
    if (r.pods.length === 0) {
      at(
        selPath,
        'warning',
        'MBR_LINT_SELECTOR_MATCHES_NOTHING',
        'the selector matches no pod of the world: the rule has no effect',
        'check the labels and the namespace against the pods (membrane endpoint list)',
      );
      continue;
    }
    for (const dir of ['ingress', 'egress'] as const) {
      items(r.raw[dir]).forEach((e, i) => {
        const field = dir === 'ingress' ? 'fromEndpoints' : 'toEndpoints';
        items(e[field]).forEach((sel, k) => {
          const ns = peerNamespace(sel, r.namespace);
          const any = podLabels.some(
            ({ pod }) => (ns === undefined || pod.namespace === ns) && rawSelectorMatches(sel, pod, nsByName),
          );
          if (!any)
            at(
              `${dir}[${i}].${field}[${k}]`,
              'warning',
              'MBR_LINT_SELECTOR_MATCHES_NOTHING',
              `the selector matches no pod${ns ? ` in namespace ${ns}` : ''} of the world: this peer allows nothing`,
              'check the labels and the namespace (a peer of a namespaced policy is in its namespace unless it names one)',
            );
        });
      });
    }
    // L7 rules on a port nobody serves: ingress, the selected pods' ports; egress, the ports of
    // the pods toEndpoints selects.
    for (const dir of ['ingress', 'egress'] as const) {
      items(r.raw[dir]).forEach((e, i) => {
        const servers =
          dir === 'ingress'
            ? r.pods!
            : items(e.toEndpoints).flatMap((sel) => {
                const ns = peerNamespace(sel, r.namespace);
                return podLabels
                  .filter(
                    ({ pod }) => (ns === undefined || pod.namespace === ns) && rawSelectorMatches(sel, pod, nsByName),
                  )
                  .map(({ pod }) => pod);
              });
        if (servers.length === 0) return;
        items(e.toPorts).forEach((tp, j) => {
          const l7 = tp.rules as Record<string, unknown> | undefined;
          if (!l7 || !['http', 'kafka'].some((k) => Array.isArray(l7[k]))) return;
          items(tp.ports).forEach((p, k) => {
            const port = String(p.port ?? '');
            const served = servers.some((pod) =>
              pod.ports.some((cp) => String(cp.containerPort) === port || (cp.name !== undefined && cp.name === port)),
            );
            if (!served)
              at(
                `${dir}[${i}].toPorts[${j}].ports[${k}].port`,
                'warning',
                'MBR_LINT_L7_PORT_NOT_SERVED',
                `no ${dir === 'ingress' ? 'selected' : 'destination'} pod serves port ${port}: this L7 rule never sees a request`,
                'use the port the pods listen on (their containerPorts)',
              );
          });
        });
      });
    }
  }
  return out;
}

// ---- internals ----

interface RuleView {
  readonly doc: LintDocument;
  readonly kind: string;
  readonly namespace: string | undefined;
  readonly path: string;
  readonly raw: Record<string, unknown>;
  readonly rule: PolicyRule;
  /** The world's pods the rule selects; undefined without a world. */
  readonly pods: readonly Pod[] | undefined;
}

function items(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter((x): x is Record<string, unknown> => !!x && typeof x === 'object') : [];
}

/** Rules that apply to the same pods as r (r included): each of r's pods, or the same subject. */
function rulesForSamePods(r: RuleView, all: readonly RuleView[]): RuleView[] {
  if (r.pods && r.pods.length > 0) {
    const mine = new Set(r.pods);
    return all.filter((o) => o.pods?.some((p) => mine.has(p)));
  }
  return all.filter((o) => o.rule.subject.key === r.rule.subject.key);
}

/** rules.dns of egress rules on port 53. */
function dnsRulesOf(r: RuleView): Array<{ matchName?: string; matchPattern?: string }> {
  const out: Array<{ matchName?: string; matchPattern?: string }> = [];
  for (const e of r.rule.egress?.entries ?? [])
    if (!e.isDeny && e.l7?.parser === 'dns' && (e.ports ?? []).some((p) => p.port <= 53 && 53 <= p.endPort))
      out.push(...(e.l7.dns ?? []));
  return out;
}

/** A port 53 rule with an empty dns list (`dns: [{}]`-like) still sends DNS to the proxy. */
function hasDnsAllowAll(r: RuleView): boolean {
  return (r.rule.egress?.entries ?? []).some((e) => !e.isDeny && e.l7?.parser === 'dns');
}

function allowsUdp53(r: RuleView): boolean {
  return (r.rule.egress?.entries ?? []).some(
    (e) =>
      !e.isDeny &&
      e.peers.length > 0 &&
      (e.ports === undefined ||
        e.ports.some((p) => p.protocol === 17 && (p.port === 0 || (p.port <= 53 && 53 <= p.endPort)))),
  );
}

/** A name a toFQDNs selector selects: matchName itself, or the pattern with each star filled. */
function sampleName(f: Record<string, unknown>): string | undefined {
  if (typeof f.matchName === 'string') return normalizeFqdn(f.matchName);
  if (typeof f.matchPattern !== 'string') return undefined;
  const p = normalizeFqdn(f.matchPattern);
  if (/^\*+\.$/.test(p)) return 'any-name.example.';
  return p
    .split('.')
    .map((l) => (/^\*{2,}$/.test(l) ? 'sub' : l.replace(/\*+/g, 'x')))
    .join('.');
}

function dnsRuleAllows(d: { matchName?: string; matchPattern?: string }, name: string): boolean {
  if (d.matchName !== undefined) return normalizeFqdn(d.matchName) === name;
  if (d.matchPattern !== undefined) return compileMatchPattern(d.matchPattern)(name);
  return true;
}

function describeSelector(f: Record<string, unknown>): string {
  return typeof f.matchName === 'string' ? `matchName: ${f.matchName}` : `matchPattern: ${String(f.matchPattern)}`;
}

const NS_KEY = 'io.kubernetes.pod.namespace';
const NS_LABEL_PREFIX = 'io.cilium.k8s.namespace.labels.';

function stripSource(k: string): string {
  const m = /^(k8s|any|container|reserved):(.*)$/.exec(k);
  return m ? m[2]! : k;
}

/** The namespace a raw endpoint selector is confined to: the one it names, else the policy's. */
function peerNamespace(sel: Record<string, unknown>, policyNs: string | undefined): string | undefined {
  const ml = (sel.matchLabels ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(ml)) if (stripSource(k) === NS_KEY) return String(v);
  const exprs = items(sel.matchExpressions);
  if (exprs.some((e) => stripSource(String(e.key)) === NS_KEY)) return undefined;
  return policyNs;
}

/** matchLabels and matchExpressions of a raw selector against a pod's labels (and its namespace's). */
function rawSelectorMatches(sel: Record<string, unknown>, pod: Pod, ns: ReadonlyMap<string, Namespace>): boolean {
  const value = (rawKey: string): string | undefined => {
    const k = stripSource(rawKey);
    if (k === NS_KEY) return pod.namespace;
    if (k.startsWith(NS_LABEL_PREFIX)) return ns.get(pod.namespace)?.labels[k.slice(NS_LABEL_PREFIX.length)];
    return pod.labels[k];
  };
  for (const [k, v] of Object.entries((sel.matchLabels ?? {}) as Record<string, unknown>))
    if (value(k) !== String(v)) return false;
  for (const e of items(sel.matchExpressions)) {
    const v = value(String(e.key));
    const vals = Array.isArray(e.values) ? e.values.map(String) : [];
    switch (e.operator) {
      case 'In':
        if (v === undefined || !vals.includes(v)) return false;
        break;
      case 'NotIn':
        if (v !== undefined && vals.includes(v)) return false;
        break;
      case 'Exists':
        if (v === undefined) return false;
        break;
      case 'DoesNotExist':
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}
