// Reads policy files (YAML or JSON, one or many documents, `List` kinds too) into the engine's
// model (policy-rule.ts) and the world (world.ts). Validation is all-or-nothing per file: every
// issue is collected, and any issue rejects the whole file with a PolicyError listing them all.
// Text in, data out: the caller reads the file.
import RE2 from 're2';
import { hasHostBits, type Prefix, parsePrefix, prefixContains } from '../identity/cidr.js';
import {
  LABEL_NAMESPACE_LABELS_PREFIX,
  LABEL_POD_NAMESPACE,
  parseSelectorKey,
  SOURCE_K8S,
  SOURCE_RESERVED,
} from '../identity/labels.js';
import { FQDN_MAX_LENGTH, FQDN_NAME_SHAPE, FQDN_PATTERN_SHAPE } from './fqdn-pattern.js';
import { type LabelRequirement, makeLabelSelector, type SelectorOperator, selectorNamesKey } from './label-selector.js';
import { readManifest } from './manifest-reader.js';
import { type PolicyRef, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP } from './map-state-types.js';
import { PolicyError, type PolicyIssue, showKey, showValue } from './policy-error.js';
import type {
  DirectionRules,
  DnsRule,
  HttpRule,
  KafkaRule,
  L7Rules,
  Peer,
  Policy,
  PolicyRule,
  PortSpec,
  RuleEntry,
} from './policy-rule.js';
import { isIanaSvcName } from './port-protocol.js';
import { ENTITIES, ICMPV4_TYPES, ICMPV6_TYPES, KAFKA_API_KEYS, KAFKA_ROLE_KEYS } from './protocol-names.js';
import type { ContainerPort, Namespace, Pod, Secret, Service } from './world.js';

export interface ParsedPolicyFile {
  readonly file: string;
  readonly policies: readonly Policy[];
  readonly namespaces: readonly Namespace[];
  readonly pods: readonly Pod[];
  readonly services: readonly Service[];
  /** `v1` Secrets: the values headerMatches compare against. */
  readonly secrets?: readonly Secret[];
}

/**
 * Parses and validates one file's text. Throws ManifestError if the text is not a readable
 * manifest (manifest-reader.ts), PolicyError (every issue) if a document is not a valid policy.
 */
export function parsePolicyFile(text: string, file: string): ParsedPolicyFile {
  const out = emptyParsed(file);
  const issues: PolicyIssue[] = [];
  for (const d of readManifest(text, file)) {
    const c = new Checker(file, d.document);
    readDocument(c, d.value, '', out);
    issues.push(...c.issues);
    out.secretRefs.push(...c.secretRefs);
  }
  checkSecretRefs(out, issues);
  if (issues.length > 0) throw new PolicyError('MBR_POLICY_INVALID', issues);
  return out;
}

/** Validates one already-decoded object (as the agent receives them). */
/** Parses every document of a file (numbered from 1); throws the first PolicyError. */
export function validatePolicyDocuments(docs: readonly Record<string, unknown>[], file: string): void {
  docs.forEach((d, i) => {
    parsePolicyObject(d, file, i + 1);
  });
}

export function parsePolicyObject(value: unknown, file: string, document = 1): ParsedPolicyFile {
  const out = emptyParsed(file);
  const c = new Checker(file, document);
  readDocument(c, value, '', out);
  if (c.issues.length > 0) throw new PolicyError('MBR_POLICY_INVALID', c.issues);
  return out;
}

// Private helpers.

type Rec = Record<string, unknown>;

interface MutableParsed {
  file: string;
  policies: Policy[];
  namespaces: Namespace[];
  pods: Pod[];
  services: Service[];
  secrets: Secret[];
  /** headerMatches secrets, checked against the file's Secrets once all are read. */
  secretRefs: Array<{ namespace: string; name: string; document: number; path: string }>;
}

function emptyParsed(file: string): MutableParsed {
  return { file, policies: [], namespaces: [], pods: [], services: [], secrets: [], secretRefs: [] };
}

class Checker {
  readonly issues: PolicyIssue[] = [];
  /** headerMatches secrets seen, for the check against the file's Secrets. */
  readonly secretRefs: Array<{ namespace: string; name: string; document: number; path: string }> = [];
  constructor(
    readonly file: string,
    readonly document: number,
  ) {}
  fail(path: string, expected: string, got: unknown, raw = false): undefined {
    this.issues.push({
      file: this.file,
      document: this.document,
      path,
      expected,
      got: raw ? String(got) : showValue(got),
    });
    return undefined;
  }
}

function at(path: string, field: string | number): string {
  if (typeof field === 'number') return `${path}[${field}]`;
  return path === '' ? showKey(field) : `${path}.${showKey(field)}`;
}

function isRec(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An object with only the given fields; undefined (after reporting) if not an object. */
function obj(c: Checker, v: unknown, path: string, fields: readonly string[] | null): Rec | undefined {
  if (!isRec(v)) {
    c.fail(path, 'an object', v);
    return undefined;
  }
  if (fields)
    for (const k of Object.keys(v))
      if (!fields.includes(k)) c.fail(at(path, k), `a known field (one of ${fields.join(', ')})`, k);
  return v;
}

/** A list, or undefined when absent or null. */
function list(c: Checker, v: unknown, path: string, max?: number): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    c.fail(path, 'a list', v);
    return undefined;
  }
  if (max !== undefined && v.length > max) c.fail(path, `at most ${max} items`, `${v.length} items`, true);
  return v;
}

function str(c: Checker, v: unknown, path: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    c.fail(path, 'a string', v);
    return undefined;
  }
  return v;
}

function bool(c: Checker, v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') {
    c.fail(path, 'true or false', v);
    return undefined;
  }
  return v;
}

function strMap(c: Checker, v: unknown, path: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = obj(c, v, path, null);
  const out: Record<string, string> = {};
  if (!o) return out;
  for (const [k, x] of Object.entries(o)) {
    if (typeof x === 'string') out[k] = x;
    else if (typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
    else c.fail(at(path, k), 'a string', x);
  }
  return out;
}

const KINDS = {
  NetworkPolicy: 'networking.k8s.io/v1',
  CiliumNetworkPolicy: 'cilium.io/v2',
  CiliumClusterwideNetworkPolicy: 'cilium.io/v2',
  Namespace: 'v1',
  Pod: 'v1',
  Service: 'v1',
  Endpoints: 'v1',
  Secret: 'v1',
} as const;

function readDocument(c: Checker, v: unknown, path: string, out: MutableParsed): void {
  const o = obj(c, v, path, null);
  if (!o) return;
  const kind = o.kind;
  if (typeof kind === 'string' && kind.endsWith('List')) {
    const items = list(c, o.items, at(path, 'items'));
    items?.forEach((it, i) => {
      readDocument(c, it, at(at(path, 'items'), i), out);
    });
    return;
  }
  if (typeof kind !== 'string' || !(kind in KINDS)) {
    c.fail(at(path, 'kind'), `one of ${Object.keys(KINDS).join(', ')} or a List`, kind);
    return;
  }
  const want = KINDS[kind as keyof typeof KINDS];
  if (o.apiVersion !== want) {
    c.fail(at(path, 'apiVersion'), `"${want}" for kind ${kind}`, o.apiVersion);
    return;
  }
  const meta = obj(c, o.metadata, at(path, 'metadata'), null);
  if (!meta) return;
  const name = str(c, meta.name, at(path, 'metadata.name'));
  if (name === undefined || name === '') {
    if (name === '' || meta.name === undefined) c.fail(at(path, 'metadata.name'), 'a name', meta.name);
    return;
  }
  const namespace = str(c, meta.namespace, at(path, 'metadata.namespace')) || 'default';
  const labels = strMap(c, meta.labels, at(path, 'metadata.labels'));
  switch (kind) {
    case 'NetworkPolicy': {
      obj(c, o, path, ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
      const ref: PolicyRef = { kind, namespace, name };
      const rule = readNetworkPolicySpec(c, o.spec ?? {}, at(path, 'spec'), namespace);
      if (rule) out.policies.push({ ref, rules: [rule] });
      return;
    }
    case 'CiliumNetworkPolicy':
    case 'CiliumClusterwideNetworkPolicy': {
      obj(c, o, path, ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status']);
      const clusterwide = kind === 'CiliumClusterwideNetworkPolicy';
      const ref: PolicyRef = { kind, namespace: clusterwide ? '' : namespace, name };
      const rules: PolicyRule[] = [];
      if (o.spec === undefined && o.specs === undefined)
        c.fail(path === '' ? 'spec' : at(path, 'spec'), 'spec or specs', undefined);
      if (o.spec !== undefined && o.spec !== null) {
        const r = readCiliumRule(c, o.spec, at(path, 'spec'), ref);
        if (r) rules.push(r);
      }
      list(c, o.specs, at(path, 'specs'))?.forEach((s, i) => {
        const r = readCiliumRule(c, s, at(at(path, 'specs'), i), ref);
        if (r) rules.push(r);
      });
      out.policies.push({ ref, rules });
      return;
    }
    case 'Namespace':
      out.namespaces.push({ name, labels });
      return;
    case 'Pod':
      out.pods.push(readPod(c, o, path, namespace, name, labels));
      return;
    case 'Service':
    case 'Endpoints':
      readServiceOrEndpoints(c, o, path, kind, namespace, name, labels, out);
      return;
    case 'Secret':
      out.secrets.push(readSecret(c, o, path, namespace, name));
      return;
  }
}

/**
 * A `v1` Secret: `data` (base64) and `stringData` entries, as the API server merges them. Values
 * never appear in errors.
 */
function readSecret(c: Checker, o: Rec, path: string, namespace: string, name: string): Secret {
  obj(c, o, path, ['apiVersion', 'kind', 'metadata', 'data', 'stringData', 'type', 'immutable']);
  const data: Record<string, string> = {};
  for (const field of ['data', 'stringData'] as const) {
    const v = o[field];
    if (v === undefined || v === null) continue;
    if (!isRec(v)) {
      c.fail(at(path, field), 'a map of key to value', Array.isArray(v) ? 'a list' : typeof v, true);
      continue;
    }
    for (const [k, val] of Object.entries(v)) {
      const kp = at(at(path, field), k);
      if (!/^[-._a-zA-Z0-9]+$/.test(k) || k.length > 253) c.fail(kp, 'a key of letters, digits, "-", "_" or "."', k);
      if (typeof val !== 'string') {
        c.fail(kp, 'a string', typeof val, true);
        continue;
      }
      if (field === 'data') {
        const clean = val.replace(/\s+/g, '');
        if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(clean)) {
          c.fail(kp, 'base64 data', 'a value that is not base64', true);
          continue;
        }
        data[k] = Buffer.from(clean, 'base64').toString('utf8');
      } else data[k] = val;
    }
  }
  return { namespace, name, data };
}

/**
 * A headerMatches Secret defined in the same file must hold exactly one entry: that is the value
 * compared (Cilium: "The secret must only contain one entry").
 */
function checkSecretRefs(out: MutableParsed, issues: PolicyIssue[]): void {
  for (const ref of out.secretRefs) {
    const s = out.secrets.find((x) => x.namespace === ref.namespace && x.name === ref.name);
    if (s === undefined) continue;
    const n = Object.keys(s.data).length;
    if (n !== 1)
      issues.push({
        file: out.file,
        document: ref.document,
        path: ref.path,
        expected: `Secret ${ref.namespace}/${ref.name} to hold exactly one entry (the header value)`,
        got: `${n} entries`,
      });
  }
}

function readPod(c: Checker, o: Rec, path: string, namespace: string, name: string, labels: Record<string, string>) {
  const spec = isRec(o.spec) ? o.spec : {};
  const ports: ContainerPort[] = [];
  list(c, spec.containers, at(path, 'spec.containers'))?.forEach((ct, i) => {
    const cp = at(at(path, 'spec.containers'), i);
    if (!isRec(ct)) {
      c.fail(cp, 'an object', ct);
      return;
    }
    list(c, ct.ports, at(cp, 'ports'))?.forEach((p, j) => {
      const pp = at(at(cp, 'ports'), j);
      const po = obj(c, p, pp, null);
      if (!po) return;
      const n = po.containerPort;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
        c.fail(at(pp, 'containerPort'), 'a port 1-65535', n);
        return;
      }
      const protoName = po.protocol === undefined ? 'TCP' : po.protocol;
      const proto = typeof protoName === 'string' ? ownValue(K8S_PROTOCOLS, protoName) : undefined;
      if (proto === undefined) {
        c.fail(at(pp, 'protocol'), 'TCP, UDP or SCTP', po.protocol);
        return;
      }
      const pn = str(c, po.name, at(pp, 'name'));
      ports.push(pn ? { name: pn, containerPort: n, protocol: proto } : { containerPort: n, protocol: proto });
    });
  });
  const status = isRec(o.status) ? o.status : {};
  const ips = new Set<string>();
  const podIP = str(c, status.podIP, at(path, 'status.podIP'));
  if (podIP) ips.add(podIP);
  list(c, status.podIPs, at(path, 'status.podIPs'))?.forEach((x) => {
    if (isRec(x) && typeof x.ip === 'string') ips.add(x.ip);
  });
  for (const ip of ips)
    if (typeof parsePrefix(ip) === 'string' || ip.includes('/')) c.fail(at(path, 'status.podIP'), 'an IP address', ip);
  const sa = str(c, spec.serviceAccountName, at(path, 'spec.serviceAccountName'));
  return { namespace, name, labels, ports, podIPs: [...ips], ...(sa ? { serviceAccount: sa } : {}) };
}

function readServiceOrEndpoints(
  c: Checker,
  o: Rec,
  path: string,
  kind: 'Service' | 'Endpoints',
  namespace: string,
  name: string,
  labels: Record<string, string>,
  out: MutableParsed,
): void {
  let svc = out.services.find((s) => s.namespace === namespace && s.name === name) as
    | { -readonly [K in keyof Service]: Service[K] }
    | undefined;
  if (!svc) {
    svc = { namespace, name, labels, endpointIPs: [] };
    out.services.push(svc);
  }
  if (kind === 'Service') {
    const spec = isRec(o.spec) ? o.spec : {};
    svc.labels = labels;
    if (spec.selector !== undefined && spec.selector !== null)
      svc.selector = strMap(c, spec.selector, at(path, 'spec.selector'));
    return;
  }
  const ips: string[] = [...svc.endpointIPs];
  list(c, o.subsets, at(path, 'subsets'))?.forEach((s, i) => {
    if (!isRec(s)) return;
    list(c, s.addresses, at(at(path, 'subsets'), i) + '.addresses')?.forEach((a) => {
      if (isRec(a) && typeof a.ip === 'string') ips.push(a.ip);
    });
  });
  svc.endpointIPs = ips;
}

const K8S_PROTOCOLS: Record<string, number> = { TCP: PROTO_TCP, UDP: PROTO_UDP, SCTP: PROTO_SCTP };

/** A table lookup that never reaches Object.prototype: `__proto__` or `constructor` is not a name in it. */
function ownValue<T>(table: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

// ---- Kubernetes NetworkPolicy ----

function readNetworkPolicySpec(c: Checker, v: unknown, path: string, ns: string): PolicyRule | undefined {
  const spec = obj(c, v, path, ['podSelector', 'ingress', 'egress', 'policyTypes']);
  if (!spec) return undefined;
  const podSel = readSelector(c, spec.podSelector ?? {}, at(path, 'podSelector'), 'k8s');
  const subject = makeLabelSelector([...(podSel ?? []), nsRequirement(ns)]);
  const types = list(c, spec.policyTypes, at(path, 'policyTypes'));
  const seen = new Set<string>();
  types?.forEach((t, i) => {
    if (t !== 'Ingress' && t !== 'Egress') c.fail(at(at(path, 'policyTypes'), i), '"Ingress" or "Egress"', t);
    else seen.add(t);
  });
  const ingressList = list(c, spec.ingress, at(path, 'ingress'));
  const egressList = list(c, spec.egress, at(path, 'egress'));
  // Kubernetes' defaulting: no policyTypes means Ingress, plus Egress if egress rules exist.
  if (!types || types.length === 0) {
    seen.add('Ingress');
    if (egressList && egressList.length > 0) seen.add('Egress');
  }
  const readDir = (items: unknown[] | undefined, dir: 'ingress' | 'egress'): DirectionRules => {
    const entries: RuleEntry[] = [];
    items?.forEach((r, i) => {
      const e = readNetworkPolicyRule(c, r, at(at(path, dir), i), dir, ns);
      if (e) entries.push(e);
    });
    return { defaultDeny: true, entries };
  };
  const ingress = readDir(ingressList, 'ingress');
  const egress = readDir(egressList, 'egress');
  if (podSel === undefined) return undefined;
  return {
    subject,
    isNodeRule: false,
    ...(seen.has('Ingress') ? { ingress } : {}),
    ...(seen.has('Egress') ? { egress } : {}),
  };
}

function readNetworkPolicyRule(
  c: Checker,
  v: unknown,
  path: string,
  dir: 'ingress' | 'egress',
  ns: string,
): RuleEntry | undefined {
  const peersField = dir === 'ingress' ? 'from' : 'to';
  const r = obj(c, v, path, [peersField, 'ports']);
  if (!r) return undefined;
  const peerList = list(c, r[peersField], at(path, peersField));
  const peers: Peer[] = [];
  peerList?.forEach((p, i) => {
    const peer = readNetworkPolicyPeer(c, p, at(at(path, peersField), i), ns);
    if (peer) peers.push(peer);
  });
  const portList = list(c, r.ports, at(path, 'ports'));
  const ports: PortSpec[] = [];
  portList?.forEach((p, i) => {
    const spec = readNetworkPolicyPort(c, p, at(at(path, 'ports'), i));
    if (spec) ports.push(spec);
  });
  return {
    isDeny: false,
    // Empty or missing from/to: every peer; empty or missing ports: every port.
    peers: peerList && peerList.length > 0 ? peers : [{ kind: 'any' }],
    ...(portList && portList.length > 0 ? { ports } : {}),
    authType: 0,
  };
}

function readNetworkPolicyPeer(c: Checker, v: unknown, path: string, ns: string): Peer | undefined {
  const p = obj(c, v, path, ['podSelector', 'namespaceSelector', 'ipBlock']);
  if (!p) return undefined;
  const has = (k: string) => p[k] !== undefined && p[k] !== null;
  if (has('ipBlock')) {
    if (has('podSelector') || has('namespaceSelector'))
      c.fail(path, 'ipBlock alone (it cannot be combined with podSelector or namespaceSelector)', Object.keys(p));
    const b = obj(c, p.ipBlock, at(path, 'ipBlock'), ['cidr', 'except']);
    if (!b) return undefined;
    return readCidrWithExcept(c, b.cidr, b.except, at(path, 'ipBlock'), at(path, 'ipBlock.cidr'), true, true);
  }
  if (!has('podSelector') && !has('namespaceSelector')) {
    c.fail(path, 'one of podSelector, namespaceSelector or ipBlock', v);
    return undefined;
  }
  const reqs: LabelRequirement[] = [];
  if (has('podSelector')) {
    const r = readSelector(c, p.podSelector, at(path, 'podSelector'), 'k8s');
    if (r) reqs.push(...r);
  }
  if (has('namespaceSelector')) {
    const r = readSelector(c, p.namespaceSelector, at(path, 'namespaceSelector'), 'namespace');
    if (r) reqs.push(...r);
    if (r && r.length === 0)
      reqs.push({ source: SOURCE_K8S, key: LABEL_POD_NAMESPACE, operator: 'Exists', values: [] });
  } else reqs.push(nsRequirement(ns));
  return { kind: 'labels', selector: makeLabelSelector(reqs) };
}

function readNetworkPolicyPort(c: Checker, v: unknown, path: string): PortSpec | undefined {
  const p = obj(c, v, path, ['protocol', 'port', 'endPort']);
  if (!p) return undefined;
  const protoName = p.protocol ?? 'TCP';
  const protocol = typeof protoName === 'string' ? ownValue(K8S_PROTOCOLS, protoName) : undefined;
  if (protocol === undefined) c.fail(at(path, 'protocol'), '"TCP", "UDP" or "SCTP"', p.protocol);
  let port = 0;
  let name: string | undefined;
  if (p.port !== undefined && p.port !== null) {
    if (typeof p.port === 'number' && Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535) port = p.port;
    else if (typeof p.port === 'string' && isIanaSvcName(p.port)) name = p.port;
    else c.fail(at(path, 'port'), 'a port 1-65535 or an IANA service name', p.port);
  }
  let endPort = port;
  if (p.endPort !== undefined && p.endPort !== null) {
    if (name !== undefined || p.port === undefined || p.port === null)
      c.fail(at(path, 'endPort'), 'no endPort unless port is a number', p.endPort);
    else if (typeof p.endPort !== 'number' || !Number.isInteger(p.endPort) || p.endPort > 65535 || p.endPort < port)
      c.fail(at(path, 'endPort'), `a port ${port}-65535 (not below port)`, p.endPort);
    else endPort = p.endPort;
  }
  if (protocol === undefined) return undefined;
  return name !== undefined ? { protocol, port: 0, endPort: 0, name } : { protocol, port, endPort };
}

// ---- Cilium rules ----

const RULE_FIELDS = [
  'endpointSelector',
  'nodeSelector',
  'ingress',
  'ingressDeny',
  'egress',
  'egressDeny',
  'labels',
  'description',
  'enableDefaultDeny',
  'log',
];

function readCiliumRule(c: Checker, v: unknown, path: string, ref: PolicyRef): PolicyRule | undefined {
  const r = obj(c, v, path, RULE_FIELDS);
  if (!r) return undefined;
  const clusterwide = ref.kind === 'CiliumClusterwideNetworkPolicy';
  const has = (k: string) => r[k] !== undefined && r[k] !== null;
  const hasRules = (k: string) => has(k) && (!Array.isArray(r[k]) || (r[k] as unknown[]).length > 0);
  if (has('endpointSelector') === has('nodeSelector'))
    c.fail(path, 'exactly one of endpointSelector or nodeSelector', has('endpointSelector') ? 'both' : 'neither', true);
  if (has('nodeSelector') && !clusterwide)
    c.fail(
      at(path, 'nodeSelector'),
      'no nodeSelector (only CiliumClusterwideNetworkPolicy may select nodes)',
      'one',
      true,
    );
  if (!['ingress', 'ingressDeny', 'egress', 'egressDeny'].some((k) => has(k)))
    c.fail(path, 'at least one of ingress, ingressDeny, egress or egressDeny', 'none', true);
  const isNodeRule = has('nodeSelector');
  const selReqs = readSelector(
    c,
    r[isNodeRule ? 'nodeSelector' : 'endpointSelector'] ?? {},
    at(path, isNodeRule ? 'nodeSelector' : 'endpointSelector'),
    'cilium',
  );
  const reqs = [...(selReqs ?? [])];
  if (!clusterwide && !isNodeRule) reqs.push(nsRequirement(ref.namespace));
  const subject = makeLabelSelector(reqs);
  let dd: { ingress?: boolean; egress?: boolean } = {};
  if (has('enableDefaultDeny')) {
    const e = obj(c, r.enableDefaultDeny, at(path, 'enableDefaultDeny'), ['ingress', 'egress']);
    if (e) {
      const ing = bool(c, e.ingress, at(path, 'enableDefaultDeny.ingress'));
      const eg = bool(c, e.egress, at(path, 'enableDefaultDeny.egress'));
      dd = { ...(ing !== undefined ? { ingress: ing } : {}), ...(eg !== undefined ? { egress: eg } : {}) };
    }
  }
  let log: string | undefined;
  if (has('log')) {
    const l = obj(c, r.log, at(path, 'log'), ['value']);
    log = l ? str(c, l.value, at(path, 'log.value')) : undefined;
    if (log !== undefined && (log.length > 32 || !/^[\x20-\x7e]*$/.test(log)))
      c.fail(at(path, 'log.value'), 'at most 32 printable characters', log);
  }
  const description = str(c, r.description, at(path, 'description'));
  list(c, r.labels, at(path, 'labels'))?.forEach((l, i) => {
    const lo = obj(c, l, at(at(path, 'labels'), i), ['key', 'value', 'source']);
    if (lo && typeof lo.key !== 'string') c.fail(at(at(path, 'labels'), i) + '.key', 'a string', lo.key);
  });
  const scope: Scope = { namespace: clusterwide ? undefined : ref.namespace, isNodeRule };
  const direction = (dir: 'ingress' | 'egress'): DirectionRules | undefined => {
    const allowField = dir;
    const denyField = `${dir}Deny`;
    // As in Cilium, a direction applies only when it has at least one rule: `ingress: []`
    // and `ingress:` (null) both leave ingress alone. `ingress: [{}]` is the default-deny idiom.
    if (!hasRules(allowField) && !hasRules(denyField)) return undefined;
    const entries: RuleEntry[] = [];
    list(c, r[allowField], at(path, allowField))?.forEach((x, i) => {
      entries.push(...readCiliumSection(c, x, at(at(path, allowField), i), dir, false, scope));
    });
    list(c, r[denyField], at(path, denyField))?.forEach((x, i) => {
      entries.push(...readCiliumSection(c, x, at(at(path, denyField), i), dir, true, scope));
    });
    return { defaultDeny: dd[dir] ?? true, entries };
  };
  const ingress = direction('ingress');
  const egress = direction('egress');
  return {
    subject,
    isNodeRule,
    ...(ingress ? { ingress } : {}),
    ...(egress ? { egress } : {}),
    ...(log !== undefined ? { log } : {}),
    ...(description !== undefined ? { description } : {}),
  };
}

interface Scope {
  /** The policy's namespace for a namespaced CNP; undefined for a CCNP. */
  readonly namespace?: string;
  /** A host policy (nodeSelector): Cilium refuses L7 rules there. */
  readonly isNodeRule?: boolean;
}

const INGRESS_L3 = [
  'fromEndpoints',
  'fromRequires',
  'fromCIDR',
  'fromCIDRSet',
  'fromEntities',
  'fromGroups',
  'fromNodes',
];
const EGRESS_L3 = [
  'toEndpoints',
  'toRequires',
  'toCIDR',
  'toCIDRSet',
  'toEntities',
  'toServices',
  'toFQDNs',
  'toGroups',
  'toNodes',
];

function readCiliumSection(
  c: Checker,
  v: unknown,
  path: string,
  dir: 'ingress' | 'egress',
  isDeny: boolean,
  scope: Scope,
): RuleEntry[] {
  const l3 = dir === 'ingress' ? INGRESS_L3 : EGRESS_L3;
  const fields = [...l3, 'toPorts', 'icmps', ...(isDeny ? [] : ['authentication'])];
  if (isDeny && dir === 'egress') fields.splice(fields.indexOf('toFQDNs'), 1);
  const r = obj(c, v, path, fields);
  if (!r) return [];
  const present = l3.filter((k) => fields.includes(k) && r[k] !== undefined && r[k] !== null);
  const nonEmpty = present.filter((k) => !Array.isArray(r[k]) || (r[k] as unknown[]).length > 0);
  if (nonEmpty.length > 1)
    c.fail(
      path,
      `one kind of peer per rule (${nonEmpty[0]} and ${nonEmpty[1]} cannot be combined; write them as separate rules)`,
      `${nonEmpty[0]} and ${nonEmpty[1]}`,
      true,
    );
  const peers: Peer[] = [];
  for (const k of present) peers.push(...readPeers(c, k, r[k], at(path, k), scope));
  const hasPorts = r.toPorts !== undefined && r.toPorts !== null;
  const hasIcmps = r.icmps !== undefined && r.icmps !== null;
  if (hasPorts && hasIcmps)
    c.fail(path, 'either toPorts or icmps (icmps may only be present without toPorts)', 'both', true);
  if (hasPorts && nonEmpty.includes('toServices'))
    c.fail(at(path, 'toPorts'), 'no toPorts next to toServices (the service defines the ports)', 'toPorts', true);
  let authType = 0;
  if (!isDeny && r.authentication !== undefined) {
    const a = obj(c, r.authentication, at(path, 'authentication'), ['mode']);
    const mode = a?.mode;
    const modes: Record<string, number> = { disabled: 0, required: 1, 'test-always-fail': 2 };
    if (typeof mode !== 'string' || !(mode in modes))
      c.fail(at(path, 'authentication.mode'), '"disabled", "required" or "test-always-fail"', mode);
    else authType = modes[mode];
  }
  // No L3 member at all: a rule with ports (or ICMP) is L4-only, i.e. any peer; a rule with
  // nothing selects nothing (so `ingress: [{}]` only turns on default-deny).
  const finalPeers: Peer[] = present.length > 0 ? peers : hasPorts || hasIcmps ? [{ kind: 'any' }] : [];
  if (hasIcmps) {
    const specs = readIcmps(c, r.icmps, at(path, 'icmps'));
    return [{ isDeny, peers: finalPeers, ports: specs, authType }];
  }
  const portRules = hasPorts ? list(c, r.toPorts, at(path, 'toPorts')) : undefined;
  if (!portRules || portRules.length === 0) return [{ isDeny, peers: finalPeers, authType }];
  const out: RuleEntry[] = [];
  portRules.forEach((pr, i) => {
    const pe = readPortRule(c, pr, at(at(path, 'toPorts'), i), dir, isDeny, scope);
    if (pe) out.push({ isDeny, peers: finalPeers, ...pe, authType });
  });
  return out;
}

function readPeers(c: Checker, field: string, v: unknown, path: string, scope: Scope): Peer[] {
  const items = list(c, v, path);
  if (!items) return [];
  const out: Peer[] = [];
  items.forEach((x, i) => {
    const p = at(path, i);
    switch (field) {
      case 'fromEndpoints':
      case 'toEndpoints': {
        const reqs = readSelector(c, x, p, 'cilium');
        if (reqs) out.push(scopedSelectorPeer(reqs, scope));
        return;
      }
      case 'fromRequires':
      case 'toRequires':
        c.fail(p, `no ${field} (deprecated and unsupported)`, x);
        return;
      case 'fromCIDR':
      case 'toCIDR': {
        const peer = readCidrWithExcept(c, x, undefined, p, p, false, false);
        if (peer) out.push(peer);
        return;
      }
      case 'fromCIDRSet':
      case 'toCIDRSet': {
        const o = obj(c, x, p, ['cidr', 'cidrGroupRef', 'cidrGroupSelector', 'except']);
        if (!o) return;
        const set = ['cidr', 'cidrGroupRef', 'cidrGroupSelector'].filter((k) => o[k] !== undefined && o[k] !== null);
        if (set.length !== 1) {
          c.fail(
            p,
            'exactly one of cidr, cidrGroupRef or cidrGroupSelector',
            set.length === 0 ? 'none' : set.join(' and '),
            true,
          );
          return;
        }
        if (set[0] === 'cidr') {
          const peer = readCidrWithExcept(c, o.cidr, o.except, p, at(p, 'cidr'), false, false);
          if (peer) out.push(peer);
        } else if (set[0] === 'cidrGroupRef') str(c, o.cidrGroupRef, at(p, 'cidrGroupRef'));
        else readSelector(c, o.cidrGroupSelector, at(p, 'cidrGroupSelector'), 'cilium');
        // CIDR groups (CiliumCIDRGroup objects) are not part of the world model: they select nothing.
        return;
      }
      case 'fromEntities':
      case 'toEntities': {
        if (typeof x !== 'string' || !(ENTITIES as readonly string[]).includes(x)) {
          c.fail(p, `an entity (one of ${ENTITIES.join(', ')})`, x);
          return;
        }
        if (x === 'all') out.push({ kind: 'any' });
        else if (x !== 'none') out.push({ kind: 'entity', entity: x });
        return;
      }
      case 'toServices': {
        const o = obj(c, x, p, ['k8sService', 'k8sServiceSelector']);
        if (!o) return;
        if ((o.k8sService === undefined) === (o.k8sServiceSelector === undefined)) {
          c.fail(p, 'exactly one of k8sService or k8sServiceSelector', x);
          return;
        }
        if (o.k8sService !== undefined) {
          const s = obj(c, o.k8sService, at(p, 'k8sService'), ['serviceName', 'namespace']);
          const name = s ? str(c, s.serviceName, at(p, 'k8sService.serviceName')) : undefined;
          const ns = s ? str(c, s.namespace, at(p, 'k8sService.namespace')) : undefined;
          if (s && !name) c.fail(at(p, 'k8sService.serviceName'), 'a service name', s.serviceName);
          if (name) out.push({ kind: 'service', namespace: ns || scope.namespace || 'default', name });
        } else {
          const s = obj(c, o.k8sServiceSelector, at(p, 'k8sServiceSelector'), ['selector', 'namespace']);
          if (!s) return;
          const reqs = readSelector(c, s.selector ?? {}, at(p, 'k8sServiceSelector.selector'), 'k8s');
          const ns = str(c, s.namespace, at(p, 'k8sServiceSelector.namespace'));
          if (reqs)
            out.push({
              kind: 'service',
              namespace: ns || scope.namespace || 'default',
              selector: makeLabelSelector(reqs),
            });
        }
        return;
      }
      case 'toFQDNs': {
        const o = obj(c, x, p, ['matchName', 'matchPattern']);
        const sel = o ? readFqdnSelector(c, o, p) : undefined;
        if (sel) out.push({ kind: 'fqdn', ...sel });
        return;
      }
      case 'fromGroups':
      case 'toGroups':
        // Cloud provider groups: validated for shape; there is no provider here, so they select nothing.
        obj(c, x, p, ['aws']);
        return;
      case 'fromNodes':
      case 'toNodes':
        // Node label selectors: the world has no node objects; they select nothing.
        readSelector(c, x, p, 'cilium');
        return;
    }
  });
  return out;
}

function scopedSelectorPeer(reqs: LabelRequirement[], scope: Scope): Peer {
  if (reqs.length === 0 && scope.namespace === undefined) return { kind: 'any' };
  const sel = makeLabelSelector(reqs);
  // A namespaced policy's peers stay in its namespace unless they name one (or a reserved label).
  const namesNs = selectorNamesKey(sel, LABEL_POD_NAMESPACE);
  const reserved = sel.requirements.some((r) => r.source === SOURCE_RESERVED);
  if (scope.namespace !== undefined && !namesNs && !reserved)
    return { kind: 'labels', selector: makeLabelSelector([...reqs, nsRequirement(scope.namespace)]) };
  return { kind: 'labels', selector: sel };
}

const FQDN_LABELS = 'labels of letters, digits, "-" or "_" joined by single dots';

function readFqdnSelector(c: Checker, o: Rec, p: string): DnsRule | undefined {
  const hasName = o.matchName !== undefined;
  const hasPattern = o.matchPattern !== undefined;
  if (hasName === hasPattern) {
    c.fail(p, 'exactly one of matchName or matchPattern', o);
    return undefined;
  }
  if (hasName) {
    const n = o.matchName;
    if (typeof n !== 'string' || n.length > FQDN_MAX_LENGTH || !FQDN_NAME_SHAPE.test(n)) {
      c.fail(at(p, 'matchName'), `a DNS name (${FQDN_LABELS}, at most ${FQDN_MAX_LENGTH})`, n);
      return undefined;
    }
    return { matchName: n };
  }
  const n = o.matchPattern;
  if (typeof n !== 'string' || n.length > FQDN_MAX_LENGTH || !FQDN_PATTERN_SHAPE.test(n)) {
    c.fail(
      at(p, 'matchPattern'),
      `a DNS pattern (${FQDN_LABELS} where "*" may stand in a label, at most ${FQDN_MAX_LENGTH})`,
      n,
    );
    return undefined;
  }
  return { matchPattern: n };
}

function readCidrWithExcept(
  c: Checker,
  cidrV: unknown,
  exceptV: unknown,
  path: string,
  cidrPath: string,
  matchPods: boolean,
  k8sStyle: boolean,
): Peer | undefined {
  const cidr = readPrefix(c, cidrV, cidrPath, k8sStyle);
  const except: Prefix[] = [];
  list(c, exceptV, at(path, 'except'))?.forEach((e, i) => {
    const ep = at(at(path, 'except'), i);
    const p = readPrefix(c, e, ep, k8sStyle);
    if (!p || !cidr) return;
    const strict = k8sStyle ? p.len > cidr.len : p.len >= cidr.len;
    if (!prefixContains(cidr, p) || !strict) c.fail(ep, `a prefix inside ${cidr.text}`, e);
    else except.push(p);
  });
  if (!cidr) return undefined;
  return { kind: 'cidr', cidr, except, matchPods };
}

function readPrefix(c: Checker, v: unknown, path: string, requireLength: boolean): Prefix | undefined {
  if (typeof v !== 'string') {
    c.fail(path, 'a CIDR such as 10.0.0.0/8', v);
    return undefined;
  }
  const p = parsePrefix(v);
  if (typeof p === 'string' || (requireLength && !v.includes('/'))) {
    c.fail(path, 'a CIDR such as 10.0.0.0/8', v);
    return undefined;
  }
  if (!requireLength && hasHostBits(v) && v.includes('/')) {
    c.fail(path, `a CIDR with no host bits (${p.text})`, v);
    return undefined;
  }
  return p;
}

function readIcmps(c: Checker, v: unknown, path: string): PortSpec[] {
  const out: PortSpec[] = [];
  list(c, v, path)?.forEach((x, i) => {
    const o = obj(c, x, at(path, i), ['fields']);
    if (!o) return;
    list(c, o.fields, at(at(path, i), 'fields'), 40)?.forEach((f, j) => {
      const fp = at(at(at(path, i), 'fields'), j);
      const fo = obj(c, f, fp, ['family', 'type']);
      if (!fo) return;
      const family = fo.family ?? 'IPv4';
      if (family !== 'IPv4' && family !== 'IPv6') {
        c.fail(at(fp, 'family'), '"IPv4" or "IPv6"', fo.family);
        return;
      }
      const table = family === 'IPv4' ? ICMPV4_TYPES : ICMPV6_TYPES;
      let type: number | undefined;
      if (typeof fo.type === 'number' && Number.isInteger(fo.type) && fo.type >= 0 && fo.type <= 255) type = fo.type;
      else if (typeof fo.type === 'string' && /^\d+$/.test(fo.type) && Number(fo.type) <= 255) type = Number(fo.type);
      else if (typeof fo.type === 'string') type = ownValue(table, fo.type);
      if (type === undefined) {
        c.fail(at(fp, 'type'), `an ICMP type 0-255 or an ${family} type name`, fo.type);
        return;
      }
      const protocol = family === 'IPv4' ? PROTO_ICMP : PROTO_ICMPV6;
      out.push({ protocol, port: type, endPort: type });
    });
  });
  return out;
}

// endPort as Cilium applies it (PortRangeToMaskedPorts in pkg/policy/types): absent, 0 or not
// above port, it is ignored and the rule is the one port. Two cases Cilium would turn into ranges
// it was not given are rejected instead: with a named port (Cilium ranges from whatever number the
// name resolves to) and with port 0 (Cilium ranges from 0; "0" alone means every port).
function readEndPort(c: Checker, v: unknown, path: string, port: number, name: string | undefined): number | undefined {
  if (v === undefined || v === null || v === 0) return port;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
    c.fail(path, 'an endPort 0-65535', v);
    return undefined;
  }
  if (name !== undefined || port === 0) {
    c.fail(path, 'no endPort unless port is a number 1-65535', v);
    return undefined;
  }
  return v > port ? v : port;
}

function readPortRule(
  c: Checker,
  v: unknown,
  path: string,
  dir: 'ingress' | 'egress',
  isDeny: boolean,
  scope: Scope,
): { ports?: PortSpec[]; l7?: L7Rules } | undefined {
  const fields = isDeny ? ['ports'] : ['ports', 'rules', 'terminatingTLS', 'originatingTLS', 'serverNames', 'listener'];
  const r = obj(c, v, path, fields);
  if (!r) return undefined;
  const raw = list(c, r.ports, at(path, 'ports'), 40);
  const specs: PortSpec[] = [];
  const writtenPorts: Array<{ port: number; name?: string; protocol: string; endPort: number }> = [];
  raw?.forEach((p, i) => {
    const pp = at(at(path, 'ports'), i);
    const o = obj(c, p, pp, ['port', 'endPort', 'protocol']);
    if (!o) return;
    const protoName = o.protocol ?? 'ANY';
    const protos: Record<string, number[]> = {
      TCP: [PROTO_TCP],
      UDP: [PROTO_UDP],
      SCTP: [PROTO_SCTP],
      ANY: [PROTO_TCP, PROTO_UDP, PROTO_SCTP],
    };
    if (typeof protoName !== 'string' || !Object.hasOwn(protos, protoName)) {
      c.fail(at(pp, 'protocol'), '"TCP", "UDP", "SCTP" or "ANY"', o.protocol);
      return;
    }
    // Cilium requires a port (PortProtocol.Validate: "port must be specified"); "0" is every port.
    let port = 0;
    let name: string | undefined;
    const pv = o.port;
    const text = typeof pv === 'number' ? String(pv) : pv;
    if (typeof text === 'string' && /^\d+$/.test(text) && Number(text) <= 65535) port = Number(text);
    else if (typeof text === 'string' && isIanaSvcName(text)) name = text;
    else {
      c.fail(at(pp, 'port'), 'a port 1-65535 or an IANA service name', pv);
      return;
    }
    const endPort = readEndPort(c, o.endPort, at(pp, 'endPort'), port, name);
    if (endPort === undefined) return;
    writtenPorts.push({ port, ...(name ? { name } : {}), protocol: protoName, endPort });
    if (protoName === 'ANY' && port === 0 && name === undefined) {
      specs.push({ protocol: 0, port: 0, endPort: 0 });
      return;
    }
    for (const proto of protos[protoName])
      specs.push(
        name !== undefined ? { protocol: proto, port: 0, endPort: 0, name } : { protocol: proto, port, endPort },
      );
  });
  // A TLS context names the Secret holding its certificate and key (Cilium's TLSContext.secret).
  for (const f of ['terminatingTLS', 'originatingTLS'])
    if (r[f] !== undefined && r[f] !== null) {
      const t = obj(c, r[f], at(path, f), ['secret', 'certificate', 'privateKey', 'trustedCA']);
      if (t && (t.secret === undefined || t.secret === null))
        c.fail(
          at(at(path, f), 'secret'),
          'a secret (name, and namespace) holding the TLS certificate and key',
          'none',
          true,
        );
      else if (t) readSecretRef(c, t.secret, at(at(path, f), 'secret'));
    }
  const serverNames = list(c, r.serverNames, at(path, 'serverNames')) ?? [];
  serverNames.forEach((s, i) => {
    const v = str(c, s, at(at(path, 'serverNames'), i));
    if (v === '') c.fail(at(at(path, 'serverNames'), i), 'a non-empty server name', v);
  });
  const hasL7 = r.rules !== undefined && r.rules !== null && hasAnyL7(r.rules);
  if (serverNames.length > 0 && hasL7 && (r.terminatingTLS === undefined || r.terminatingTLS === null))
    c.fail(
      at(path, 'serverNames'),
      'no serverNames next to L7 rules unless terminatingTLS is set (the proxy cannot see the SNI otherwise)',
      'serverNames without terminatingTLS',
      true,
    );
  if (r.listener !== undefined) {
    if (dir !== 'egress')
      c.fail(at(path, 'listener'), 'no listener on ingress (listeners are egress only)', 'listener', true);
    obj(c, r.listener, at(path, 'listener'), ['envoyConfig', 'name', 'priority']);
    if (hasL7) c.fail(at(path, 'listener'), 'no listener next to L7 rules', 'listener and rules', true);
  }
  if (hasL7 && scope.isNodeRule)
    c.fail(at(path, 'rules'), 'no L7 rules in a host policy (nodeSelector)', 'L7 rules', true);
  let l7: L7Rules | undefined;
  if (r.rules !== undefined && r.rules !== null)
    l7 = readL7Rules(c, r.rules, at(path, 'rules'), dir, writtenPorts, scope);
  const out: { ports?: PortSpec[]; l7?: L7Rules } = {};
  if (raw && raw.length > 0) out.ports = specs;
  if (l7) out.l7 = l7;
  return out;
}

function readL7Rules(
  c: Checker,
  v: unknown,
  path: string,
  dir: 'ingress' | 'egress',
  ports: Array<{ port: number; name?: string; protocol: string; endPort: number }>,
  scope: Scope,
): L7Rules | undefined {
  const r = obj(c, v, path, ['http', 'kafka', 'dns', 'l7proto', 'l7']);
  if (!r) return undefined;
  const kinds = ['http', 'kafka', 'dns', 'l7proto', 'l7'].filter((k) => {
    const x = r[k];
    return x !== undefined && x !== null && (!Array.isArray(x) || x.length > 0) && x !== '';
  });
  if (kinds.length > 1) {
    c.fail(path, 'one kind of L7 rule per port rule', kinds.join(' and '), true);
    return undefined;
  }
  if (kinds.includes('l7proto') || kinds.includes('l7')) {
    c.fail(at(path, kinds[0]), 'http, kafka or dns rules (generic l7proto rules are not supported)', r[kinds[0]]);
    return undefined;
  }
  if (kinds.length === 0) return undefined;
  const parser = kinds[0] as 'http' | 'kafka' | 'dns';
  if (ports.length === 0) c.fail(path, `a port for ${parser} rules (toPorts[].ports)`, 'no ports', true);
  for (const p of ports) {
    if (p.port === 0 && p.name === undefined) c.fail(path, `a non-zero port for ${parser} rules`, '0', true);
    if (p.endPort !== p.port)
      c.fail(path, `a single port for ${parser} rules (not a range)`, `${p.port}-${p.endPort}`, true);
    // Cilium's sanitizer: L7 rules other than DNS apply to TCP only, and ANY (also the default
    // when no protocol is written) is not TCP.
    if (parser !== 'dns' && p.protocol !== 'TCP')
      c.fail(path, `TCP for ${parser} rules (L7 rules other than DNS need TCP)`, p.protocol);
  }
  const items = list(c, r[parser], at(path, parser)) ?? [];
  if (parser === 'dns') {
    if (dir !== 'egress') c.fail(at(path, 'dns'), 'dns rules on egress only', dir);
    if (!ports.some((p) => p.port === 53))
      c.fail(
        path,
        'port 53 listed in ports for dns rules',
        ports.map((p) => p.name ?? String(p.port)),
      );
    const dns: DnsRule[] = [];
    items.forEach((x, i) => {
      const o = obj(c, x, at(at(path, 'dns'), i), ['matchName', 'matchPattern']);
      const s = o ? readFqdnSelector(c, o, at(at(path, 'dns'), i)) : undefined;
      if (s) dns.push(s);
    });
    return { parser, dns };
  }
  if (parser === 'http') {
    const http: HttpRule[] = [];
    items.forEach((x, i) => {
      const hp = at(at(path, 'http'), i);
      const o = obj(c, x, hp, ['method', 'path', 'host', 'headers', 'headerMatches']);
      if (!o) return;
      const rule: { -readonly [K in keyof HttpRule]: HttpRule[K] } = {};
      for (const f of ['method', 'path', 'host'] as const) {
        const s = str(c, o[f], at(hp, f));
        if (s === undefined) continue;
        try {
          new RE2(s);
          rule[f] = s;
        } catch (e) {
          c.fail(at(hp, f), `a valid regular expression (RE2 syntax: ${(e as Error).message.split(': ')[0]})`, s);
        }
      }
      const headers = list(c, o.headers, at(hp, 'headers'))?.map((h, j) => str(c, h, at(at(hp, 'headers'), j)) ?? '');
      if (headers) rule.headers = headers;
      const hms = list(c, o.headerMatches, at(hp, 'headerMatches'));
      if (hms) {
        rule.headerMatches = hms.flatMap((h, j) => {
          const mp = at(at(hp, 'headerMatches'), j);
          const ho = obj(c, h, mp, ['name', 'value', 'secret', 'mismatch']);
          if (!ho) return [];
          const name = str(c, ho.name, at(mp, 'name'));
          if (!name) {
            c.fail(at(mp, 'name'), 'a header name', ho.name);
            return [];
          }
          if (!HEADER_NAME.test(name)) c.fail(at(mp, 'name'), 'a header field name (an HTTP token)', name);
          const value = str(c, ho.value, at(mp, 'value'));
          if (value !== undefined && /[\0\r\n]/.test(value))
            c.fail(at(mp, 'value'), 'a header value without NUL, CR or LF', value);
          let mismatch: string | undefined;
          if (ho.mismatch !== undefined) {
            if (typeof ho.mismatch !== 'string' || !['LOG', 'ADD', 'DELETE', 'REPLACE'].includes(ho.mismatch))
              c.fail(at(mp, 'mismatch'), '"LOG", "ADD", "DELETE" or "REPLACE"', ho.mismatch);
            else mismatch = ho.mismatch;
          }
          let secret: { namespace?: string; name: string } | undefined;
          if (ho.secret !== undefined && ho.secret !== null) {
            const ref = readSecretRef(c, ho.secret, at(mp, 'secret'));
            // A Secret without a namespace is looked up in the policy's own ("default" for a CCNP).
            if (ref) {
              const ns = ref.namespace ?? scope.namespace ?? 'default';
              secret = { name: ref.name, namespace: ns };
              c.secretRefs.push({ namespace: ns, name: ref.name, document: c.document, path: at(mp, 'secret') });
            }
          }
          return [
            {
              name,
              ...(value !== undefined ? { value } : {}),
              ...(mismatch ? { mismatch } : {}),
              ...(secret ? { secret } : {}),
            },
          ];
        });
      }
      http.push(rule);
    });
    return { parser, http };
  }
  const kafka: KafkaRule[] = [];
  items.forEach((x, i) => {
    const kp = at(at(path, 'kafka'), i);
    const o = obj(c, x, kp, ['role', 'apiKey', 'apiVersion', 'clientID', 'topic']);
    if (!o) return;
    if (o.role !== undefined && o.apiKey !== undefined) c.fail(kp, 'either role or apiKey', 'both', true);
    let apiKeys: readonly number[] = [];
    if (o.role !== undefined) {
      if (typeof o.role !== 'string' || !Object.hasOwn(KAFKA_ROLE_KEYS, o.role.toLowerCase()))
        c.fail(at(kp, 'role'), '"produce" or "consume"', o.role);
      else apiKeys = KAFKA_ROLE_KEYS[o.role.toLowerCase()];
    }
    if (o.apiKey !== undefined) {
      const idx =
        typeof o.apiKey === 'string' ? (KAFKA_API_KEYS as readonly string[]).indexOf(o.apiKey.toLowerCase()) : -1;
      if (idx < 0) c.fail(at(kp, 'apiKey'), 'a Kafka API key name such as produce, fetch or metadata', o.apiKey);
      else apiKeys = [idx];
    }
    let apiVersion: number | undefined;
    if (o.apiVersion !== undefined) {
      const t = String(o.apiVersion);
      if (!/^\d+$/.test(t)) c.fail(at(kp, 'apiVersion'), 'a number', o.apiVersion);
      else apiVersion = Number(t);
    }
    const clientID = str(c, o.clientID, at(kp, 'clientID'));
    const topic = str(c, o.topic, at(kp, 'topic'));
    if (topic !== undefined && (topic.length > 255 || !/^[a-zA-Z0-9._-]*$/.test(topic)))
      c.fail(at(kp, 'topic'), 'a Kafka topic (letters, digits, ".", "_", "-", at most 255)', topic);
    kafka.push({
      apiKeys,
      ...(apiVersion !== undefined ? { apiVersion } : {}),
      ...(clientID !== undefined ? { clientID } : {}),
      ...(topic !== undefined ? { topic } : {}),
    });
  });
  return { parser, kafka };
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Some L7 rule list of the `rules` object is non-empty. */
function hasAnyL7(v: unknown): boolean {
  if (!isRec(v)) return false;
  return ['http', 'kafka', 'dns', 'l7proto', 'l7'].some((k) => {
    const x = v[k];
    return x !== undefined && x !== null && (!Array.isArray(x) || x.length > 0) && x !== '';
  });
}

/** A reference to a Secret: `name` required (Cilium: "Secret name missing"), `namespace` optional. */
function readSecretRef(c: Checker, v: unknown, path: string): { name: string; namespace?: string } | undefined {
  const o = obj(c, v, path, ['namespace', 'name']);
  if (!o) return undefined;
  const name = str(c, o.name, at(path, 'name'));
  const namespace = str(c, o.namespace, at(path, 'namespace'));
  if (!name) {
    c.fail(at(path, 'name'), 'the name of a Secret', o.name);
    return undefined;
  }
  return { name, ...(namespace ? { namespace } : {}) };
}

// ---- selectors ----

type SelectorMode = 'k8s' | 'namespace' | 'cilium';

/** Reads a LabelSelector; undefined (after reporting) if it is invalid. */
function readSelector(c: Checker, v: unknown, path: string, mode: SelectorMode): LabelRequirement[] | undefined {
  const o = obj(c, v, path, ['matchLabels', 'matchExpressions']);
  if (!o) return undefined;
  const before = c.issues.length;
  const out: LabelRequirement[] = [];
  const key = (raw: string, p: string): { source: string; key: string } | undefined => {
    let sk: { source: string; key: string };
    if (mode === 'cilium') sk = parseSelectorKey(raw);
    else sk = { source: SOURCE_K8S, key: raw };
    if (!isQualifiedName(sk.key)) {
      c.fail(p, 'a label key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", ".")', raw);
      return undefined;
    }
    if (mode === 'namespace') return { source: SOURCE_K8S, key: LABEL_NAMESPACE_LABELS_PREFIX + sk.key };
    return sk;
  };
  const value = (x: unknown, p: string): string | undefined => {
    const s = typeof x === 'number' || typeof x === 'boolean' ? String(x) : x;
    if (typeof s !== 'string' || !isLabelValue(s)) {
      c.fail(p, 'a label value (at most 63 letters, digits, "-", "_", ".")', x);
      return undefined;
    }
    return s;
  };
  if (o.matchLabels !== undefined && o.matchLabels !== null) {
    const ml = obj(c, o.matchLabels, at(path, 'matchLabels'), null);
    if (ml)
      for (const [k, x] of Object.entries(ml)) {
        const kp = at(at(path, 'matchLabels'), k);
        const sk = key(k, kp);
        const val = value(x ?? '', kp);
        if (sk && val !== undefined) out.push({ ...sk, operator: 'In', values: [val] });
      }
  }
  list(c, o.matchExpressions, at(path, 'matchExpressions'))?.forEach((e, i) => {
    const ep = at(at(path, 'matchExpressions'), i);
    const eo = obj(c, e, ep, ['key', 'operator', 'values']);
    if (!eo) return;
    const k = str(c, eo.key, at(ep, 'key'));
    if (k === undefined) {
      c.fail(at(ep, 'key'), 'a label key', eo.key);
      return;
    }
    const sk = key(k, at(ep, 'key'));
    const op = eo.operator;
    if (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist') {
      c.fail(at(ep, 'operator'), '"In", "NotIn", "Exists" or "DoesNotExist"', op);
      return;
    }
    const vals = (list(c, eo.values, at(ep, 'values')) ?? []).map((x, j) => value(x, at(at(ep, 'values'), j)));
    if ((op === 'In' || op === 'NotIn') && vals.length === 0) {
      c.fail(at(ep, 'values'), `at least one value for operator ${op}`, eo.values ?? []);
      return;
    }
    if ((op === 'Exists' || op === 'DoesNotExist') && vals.length > 0) {
      c.fail(at(ep, 'values'), `no values for operator ${op}`, eo.values);
      return;
    }
    if (sk && vals.every((x) => x !== undefined))
      out.push({ ...sk, operator: op as SelectorOperator, values: vals as string[] });
  });
  return c.issues.length > before ? undefined : out;
}

function nsRequirement(ns: string): LabelRequirement {
  return { source: SOURCE_K8S, key: LABEL_POD_NAMESPACE, operator: 'In', values: [ns] };
}

function isQualifiedName(k: string): boolean {
  const slash = k.lastIndexOf('/');
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  const prefix = slash >= 0 ? k.slice(0, slash) : '';
  if (slash >= 0 && (prefix.length === 0 || prefix.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(prefix)))
    return false;
  return name.length > 0 && name.length <= 63 && /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(name);
}

function isLabelValue(v: string): boolean {
  return v === '' || (v.length <= 63 && /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(v));
}
