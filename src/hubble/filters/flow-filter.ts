// Hubble's FlowFilter semantics, compiled once into a predicate (the only place that throws):
//   - inside one FlowFilter every set field must match (AND), and within a repeated field one
//     value must match (OR);
//   - across the filters of an allowlist one must match (OR); an empty allowlist lets all through;
//   - a flow is left out when any denylist filter matches: result = allow.some && !deny.some.
import { isIP } from 'node:net';
import RE2 from 're2';
import { type Flow, IPVersion, type TCPFlags, type Workload } from '../flow/flow.js';
import { compileCelExpressions } from './cel-filter.js';
import { FilterError } from './filter-error.js';
import { compileLabelSelector, type LabelMatcher } from './label-selector.js';

export interface EventTypeFilter {
  type?: number;
  match_sub_type?: boolean;
  sub_type?: number;
}

/** flow.FlowFilter as a proto object (keepCase, enums as numbers). */
export interface FlowFilter {
  uuid?: string[];
  source_ip?: string[];
  source_ip_xlated?: string[];
  source_pod?: string[];
  source_fqdn?: string[];
  source_label?: string[];
  source_service?: string[];
  source_workload?: Workload[];
  source_cluster_name?: string[];
  destination_ip?: string[];
  destination_pod?: string[];
  destination_fqdn?: string[];
  destination_label?: string[];
  destination_service?: string[];
  destination_workload?: Workload[];
  destination_cluster_name?: string[];
  traffic_direction?: number[];
  verdict?: number[];
  drop_reason_desc?: number[];
  interface?: { index?: number; name?: string }[];
  event_type?: EventTypeFilter[];
  http_status_code?: string[];
  protocol?: string[];
  source_port?: string[];
  destination_port?: string[];
  reply?: boolean[];
  dns_query?: string[];
  source_identity?: number[];
  destination_identity?: number[];
  http_method?: string[];
  http_path?: string[];
  http_url?: string[];
  http_header?: { key?: string; value?: string }[];
  tcp_flags?: TCPFlags[];
  node_name?: string[];
  node_labels?: string[];
  ip_version?: number[];
  trace_id?: string[];
  ip_trace_id?: number[];
  encrypted?: boolean[];
  experimental?: { cel_expression?: string[] };
}

export type FlowPredicate = (flow: Flow) => boolean;

/** allowlist minus denylist; `name` prefixes error paths ("whitelist", "blacklist"). */
export function compileFlowFilters(
  allowlist: readonly FlowFilter[] | undefined,
  denylist: readonly FlowFilter[] | undefined,
): FlowPredicate {
  const allow = (allowlist ?? []).map((f, i) => compileFlowFilter(f, `whitelist[${i}]`));
  const deny = (denylist ?? []).map((f, i) => compileFlowFilter(f, `blacklist[${i}]`));
  if (allow.length === 0 && deny.length === 0) return () => true;
  return (flow) => {
    if (allow.length > 0) {
      let ok = false;
      for (const a of allow)
        if (a(flow)) {
          ok = true;
          break;
        }
      if (!ok) return false;
    }
    for (const d of deny) if (d(flow)) return false;
    return true;
  };
}

/** One FlowFilter: every set field must match. An empty filter matches every flow. */
export function compileFlowFilter(f: FlowFilter, path = 'filter'): FlowPredicate {
  const preds: FlowPredicate[] = [];
  const add = (p: FlowPredicate | undefined) => {
    if (p !== undefined) preds.push(p);
  };
  const has = <T>(v: readonly T[] | undefined): v is readonly T[] => v !== undefined && v.length > 0;
  const p = (field: string) => `${path}.${field}`;

  if (has(f.uuid)) {
    const set = new Set(f.uuid);
    add((fl) => fl.uuid !== undefined && set.has(fl.uuid));
  }
  if (has(f.event_type)) add(eventTypeFilter(f.event_type));
  if (has(f.verdict)) add(enumIn(f.verdict, (fl) => fl.verdict ?? 0));
  if (has(f.drop_reason_desc)) add(enumIn(f.drop_reason_desc, (fl) => fl.drop_reason_desc ?? 0));
  if (has(f.reply)) {
    const want = f.reply;
    // An unknown is_reply never matches, except that a drop counts as "not a reply" (what older
    // clients expect from the deprecated `reply` field).
    add((fl) => (fl.is_reply !== undefined || fl.verdict === 2) && want.includes(fl.is_reply?.value === true));
  }
  if (has(f.encrypted)) {
    const want = f.encrypted;
    add((fl) => want.includes(fl.IP?.encrypted === true));
  }
  if (has(f.source_identity)) add(enumIn(f.source_identity, (fl) => fl.source?.identity ?? 0));
  if (has(f.destination_identity)) add(enumIn(f.destination_identity, (fl) => fl.destination?.identity ?? 0));
  if (has(f.protocol)) add(protocolFilter(f.protocol, p('protocol')));
  if (has(f.source_ip)) add(ipFilter(f.source_ip, p('source_ip'), (fl) => fl.IP?.source));
  if (has(f.source_ip_xlated)) add(ipFilter(f.source_ip_xlated, p('source_ip_xlated'), (fl) => fl.IP?.source_xlated));
  if (has(f.destination_ip)) add(ipFilter(f.destination_ip, p('destination_ip'), (fl) => fl.IP?.destination));
  if (has(f.source_pod))
    add(
      namespacedNameFilter(f.source_pod, p('source_pod'), 'pod', (fl) => [fl.source?.namespace, fl.source?.pod_name]),
    );
  if (has(f.destination_pod))
    add(
      namespacedNameFilter(f.destination_pod, p('destination_pod'), 'pod', (fl) => [
        fl.destination?.namespace,
        fl.destination?.pod_name,
      ]),
    );
  if (has(f.source_workload)) add(workloadFilter(f.source_workload, (fl) => fl.source?.workloads));
  if (has(f.destination_workload)) add(workloadFilter(f.destination_workload, (fl) => fl.destination?.workloads));
  if (has(f.source_service))
    add(
      namespacedNameFilter(f.source_service, p('source_service'), 'service', (fl) => [
        fl.source_service?.namespace,
        fl.source_service?.name,
      ]),
    );
  if (has(f.destination_service))
    add(
      namespacedNameFilter(f.destination_service, p('destination_service'), 'service', (fl) => [
        fl.destination_service?.namespace,
        fl.destination_service?.name,
      ]),
    );
  if (has(f.source_fqdn)) add(fqdnFilter(f.source_fqdn, p('source_fqdn'), (fl) => fl.source_names));
  if (has(f.destination_fqdn)) add(fqdnFilter(f.destination_fqdn, p('destination_fqdn'), (fl) => fl.destination_names));
  if (has(f.source_label)) add(labelFilter(f.source_label, p('source_label'), (fl) => fl.source?.labels));
  if (has(f.destination_label))
    add(labelFilter(f.destination_label, p('destination_label'), (fl) => fl.destination?.labels));
  if (has(f.node_labels)) add(labelFilter(f.node_labels, p('node_labels'), (fl) => fl.node_labels));
  if (has(f.source_port)) add(portFilter(f.source_port, p('source_port'), 'source_port'));
  if (has(f.destination_port)) add(portFilter(f.destination_port, p('destination_port'), 'destination_port'));
  if (has(f.event_type) && !f.event_type.some((t) => t.type === 129))
    for (const field of ['http_status_code', 'http_method', 'http_path', 'http_url', 'http_header'] as const)
      if ((f[field]?.length ?? 0) > 0)
        throw new FilterError(
          p(field),
          'an event_type filter that includes l7 events (129)',
          JSON.stringify(f.event_type),
        );
  if (has(f.http_status_code)) add(httpStatusFilter(f.http_status_code, p('http_status_code')));
  if (has(f.http_method)) add(httpMethodFilter(f.http_method));
  if (has(f.http_path)) add(httpRegexFilter(f.http_path, p('http_path'), urlPath));
  if (has(f.http_url)) add(httpRegexFilter(f.http_url, p('http_url'), (u) => u));
  if (has(f.http_header)) add(httpHeaderFilter(f.http_header));
  if (has(f.dns_query)) add(dnsQueryFilter(f.dns_query, p('dns_query')));
  if (has(f.tcp_flags)) add(tcpFlagsFilter(f.tcp_flags));
  if (has(f.node_name)) add(nodeNameFilter(f.node_name, p('node_name')));
  if (has(f.source_cluster_name))
    add(stringIn(nonEmpty(f.source_cluster_name, p('source_cluster_name')), (fl) => fl.source?.cluster_name ?? ''));
  if (has(f.destination_cluster_name))
    add(
      stringIn(
        nonEmpty(f.destination_cluster_name, p('destination_cluster_name')),
        (fl) => fl.destination?.cluster_name ?? '',
      ),
    );
  if (has(f.ip_version)) add(enumIn(f.ip_version, (fl) => fl.IP?.ipVersion ?? IPVersion.IP_NOT_USED));
  if (has(f.trace_id)) add(stringIn(f.trace_id, (fl) => fl.trace_context?.parent?.trace_id ?? ''));
  if (has(f.traffic_direction)) add(enumIn(f.traffic_direction, (fl) => fl.traffic_direction ?? 0));
  if (has(f.experimental?.cel_expression))
    add(compileCelExpressions(f.experimental.cel_expression, p('experimental.cel_expression')));
  if (has(f.interface)) add(interfaceFilter(f.interface));
  if (has(f.ip_trace_id)) {
    const set = new Set(f.ip_trace_id.map(Number));
    add((fl) => fl.ip_trace_id !== undefined && set.has(Number(fl.ip_trace_id.trace_id ?? 0)));
  }

  if (preds.length === 0) return () => true;
  if (preds.length === 1) return preds[0]!;
  return (fl) => {
    for (const pr of preds) if (!pr(fl)) return false;
    return true;
  };
}

function enumIn(values: readonly number[], get: (f: Flow) => number): FlowPredicate {
  if (values.length === 1) {
    const v = Number(values[0]);
    return (fl) => get(fl) === v;
  }
  const set = new Set(values.map(Number));
  return (fl) => set.has(get(fl));
}

function nonEmpty(values: readonly string[], path: string): readonly string[] {
  const i = values.indexOf('');
  if (i >= 0) throw new FilterError(`${path}[${i}]`, 'a cluster name', '');
  return values;
}

function stringIn(values: readonly string[], get: (f: Flow) => string): FlowPredicate {
  const set = new Set(values);
  return (fl) => set.has(get(fl));
}

function eventTypeFilter(types: readonly EventTypeFilter[]): FlowPredicate {
  return (fl) => {
    const et = fl.event_type;
    if (et === undefined) return false;
    for (const t of types) {
      // type 0 is a wildcard; sub_type 0 is real, hence match_sub_type.
      if (t.type && t.type !== (et.type ?? 0)) continue;
      if (t.match_sub_type === true && (t.sub_type ?? 0) !== (et.sub_type ?? 0)) continue;
      return true;
    }
    return false;
  };
}

const L4_PROTOCOLS = new Set(['tcp', 'udp', 'sctp', 'icmp', 'icmpv4', 'icmpv6', 'vrrp', 'igmp']);
const L7_PROTOCOLS = new Set(['dns', 'http', 'kafka']);

function protocolFilter(protocols: readonly string[], path: string): FlowPredicate {
  const wanted = protocols.map((raw, i) => {
    const v = raw.toLowerCase();
    if (!L4_PROTOCOLS.has(v) && !L7_PROTOCOLS.has(v))
      throw new FilterError(
        `${path}[${i}]`,
        'one of tcp, udp, sctp, icmp, icmpv4, icmpv6, vrrp, igmp, dns, http, kafka',
        raw,
      );
    return v;
  });
  return (fl) => {
    const l4 = fl.l4;
    const l7 = fl.l7;
    for (const w of wanted) {
      switch (w) {
        case 'tcp':
          if (l4?.TCP !== undefined) return true;
          break;
        case 'udp':
          if (l4?.UDP !== undefined) return true;
          break;
        case 'sctp':
          if (l4?.SCTP !== undefined) return true;
          break;
        case 'icmp':
          if (l4?.ICMPv4 !== undefined || l4?.ICMPv6 !== undefined) return true;
          break;
        case 'icmpv4':
          if (l4?.ICMPv4 !== undefined) return true;
          break;
        case 'icmpv6':
          if (l4?.ICMPv6 !== undefined) return true;
          break;
        case 'vrrp':
          if (l4?.VRRP !== undefined) return true;
          break;
        case 'igmp':
          if (l4?.IGMP !== undefined) return true;
          break;
        case 'dns':
          if (l7?.dns !== undefined) return true;
          break;
        case 'http':
          if (l7?.http !== undefined) return true;
          break;
        case 'kafka':
          if (l7?.kafka !== undefined) return true;
          break;
      }
    }
    return false;
  };
}

/** An address or CIDR as bytes plus a prefix length; matching compares the leading bits. */
interface IpMatcher {
  readonly bytes: Uint8Array;
  readonly prefixLen: number;
}

function ipFilter(values: readonly string[], path: string, get: (f: Flow) => string | undefined): FlowPredicate {
  const exact = new Set<string>();
  const cidrs: IpMatcher[] = [];
  values.forEach((v, i) => {
    const slash = v.indexOf('/');
    if (slash < 0) {
      if (isIP(v) === 0) throw new FilterError(`${path}[${i}]`, 'an IP address or a CIDR', v);
      // Addresses compare as text, as Hubble does: "fd00::1" does not match "fd00:0::1".
      exact.add(v);
      return;
    }
    const addr = v.slice(0, slash);
    const lenText = v.slice(slash + 1);
    const family = isIP(addr);
    const max = family === 4 ? 32 : 128;
    const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : -1;
    if (family === 0 || len < 0 || len > max) throw new FilterError(`${path}[${i}]`, 'an IP address or a CIDR', v);
    cidrs.push({ bytes: ipBytes(addr)!, prefixLen: len });
  });
  return (fl) => {
    const ip = get(fl);
    if (ip === undefined || ip === '') return false;
    if (exact.has(ip)) return true;
    if (cidrs.length === 0) return false;
    const b = ipBytes(ip);
    if (b === undefined) return false;
    for (const c of cidrs) if (c.bytes.length === b.length && prefixEqual(c.bytes, b, c.prefixLen)) return true;
    return false;
  };
}

/** IPv4 -> 4 bytes, IPv6 (incl. embedded IPv4) -> 16 bytes, else undefined. */
export function ipBytes(ip: string): Uint8Array | undefined {
  const fam = isIP(ip);
  if (fam === 4) return Uint8Array.from(ip.split('.').map(Number));
  if (fam !== 6) return undefined;
  let text = ip;
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const want = 8 - tail.length;
  const dbl = text.indexOf('::');
  let words: string[];
  if (dbl >= 0) {
    const head = groups(text.slice(0, dbl));
    const rest = groups(text.slice(dbl + 2));
    words = [...head, ...Array<string>(want - head.length - rest.length).fill('0'), ...rest];
  } else words = groups(text);
  const nums = [...words.map((w) => Number.parseInt(w, 16)), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = (nums[i]! >> 8) & 0xff;
    out[i * 2 + 1] = nums[i]! & 0xff;
  }
  return out;
}

function prefixEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rem = bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

/**
 * Pod and service names, as Hubble reads them: "ns/name-prefix", "ns/" (the whole namespace),
 * "/name-prefix" (that prefix in any namespace; "/" alone: any named endpoint) and "name-prefix"
 * (in the namespace "default"). Text after a second "/" is ignored. Only "" is invalid. An
 * endpoint with neither a namespace nor a name never matches.
 */
function namespacedNameFilter(
  values: readonly string[],
  path: string,
  what: string,
  get: (f: Flow) => [string | undefined, string | undefined],
): FlowPredicate {
  const parsed = values.map((v, i) => {
    if (v === '') throw new FilterError(`${path}[${i}]`, `[namespace/][${what}-name-prefix]`, v);
    const parts = v.split('/');
    // undefined namespace: any namespace.
    const ns = parts.length > 1 ? parts[0] || undefined : DEFAULT_NAMESPACE;
    const prefix = parts.length > 1 ? parts[1]! : parts[0]!;
    return { ns, prefix };
  });
  return (fl) => {
    const [ns = '', name = ''] = get(fl);
    if (ns === '' && name === '') return false;
    for (const f of parsed)
      if ((f.ns === undefined || f.ns === ns) && (f.prefix === '' || name.startsWith(f.prefix))) return true;
    return false;
  };
}

/** The namespace of a pod or service filter given without one. */
export const DEFAULT_NAMESPACE = 'default';

/** A filter workload with no name (kind) matches any name (kind); an empty one any workload. */
function workloadFilter(values: readonly Workload[], get: (f: Flow) => Workload[] | undefined): FlowPredicate {
  return (fl) => {
    const ws = get(fl);
    if (ws === undefined) return false;
    for (const w of ws)
      for (const f of values) if ((!f.name || f.name === w.name) && (!f.kind || f.kind === w.kind)) return true;
    return false;
  };
}

/**
 * DNS name patterns: trimmed, one trailing dot dropped, lowercased; letters, digits, "-", "_", "."
 * and "*" (any run of [-.0-9a-z]). Flow names compare as they are, whole.
 */
export function fqdnPatternSource(raw: string, path: string): string {
  let pat = raw.trim();
  if (pat.endsWith('.')) pat = pat.slice(0, -1);
  pat = pat.toLowerCase();
  if (pat === '' || pat.endsWith('.') || !/^[-0-9_a-z.*]+$/.test(pat))
    throw new FilterError(path, 'a DNS name pattern of letters, digits, "-", "_", "." and "*"', raw);
  return pat.replace(/\./g, '\\.').replace(/\*/g, '[-.0-9a-z]*');
}

function fqdnFilter(values: readonly string[], path: string, get: (f: Flow) => string[] | undefined): FlowPredicate {
  const re = new RegExp(`^(?:${values.map((v, i) => fqdnPatternSource(v, `${path}[${i}]`)).join('|')})$`);
  return (fl) => {
    const names = get(fl);
    if (names === undefined) return false;
    for (const n of names) if (re.test(n)) return true;
    return false;
  };
}

function labelFilter(values: readonly string[], path: string, get: (f: Flow) => string[] | undefined): FlowPredicate {
  const ms: LabelMatcher[] = values.map((v, i) => compileLabelSelector(v, `${path}[${i}]`));
  return (fl) => {
    const labels = get(fl);
    for (const m of ms) if (m(labels)) return true;
    return false;
  };
}

function portFilter(values: readonly string[], path: string, side: 'source_port' | 'destination_port'): FlowPredicate {
  const set = new Set(
    values.map((v, i) => {
      const n = /^\d{1,5}$/.test(v) ? Number(v) : -1;
      if (n < 0 || n > 65535) throw new FilterError(`${path}[${i}]`, 'a port number 0-65535', v);
      return n;
    }),
  );
  return (fl) => {
    const l4 = fl.l4;
    if (l4 === undefined) return false;
    const ports = l4.TCP ?? l4.UDP ?? l4.SCTP;
    return ports !== undefined && set.has(ports[side] ?? 0);
  };
}

/** "404" exact, "40+" and "4+" prefixes; flows without a status code (requests) never match. */
function httpStatusFilter(values: readonly string[], path: string): FlowPredicate {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  values.forEach((v, i) => {
    // Hubble's full-code test is unanchored: "x404" is accepted and simply never matches.
    if (/[1-5][0-9]{2}/.test(v)) exact.add(v);
    else if (/^[1-5][0-9]?\+$/.test(v)) prefixes.push(v.slice(0, -1));
    else throw new FilterError(`${path}[${i}]`, 'an HTTP status code like "404", "40+" or "4+"', v);
  });
  return (fl) => {
    const code = fl.l7?.http?.code;
    if (!code) return false;
    const text = String(code).padStart(3, '0');
    if (exact.has(text)) return true;
    for (const p of prefixes) if (text.startsWith(p)) return true;
    return false;
  };
}

function httpMethodFilter(values: readonly string[]): FlowPredicate {
  const set = new Set(values.map((v) => v.toUpperCase()));
  return (fl) => {
    const m = fl.l7?.http?.method;
    return !!m && set.has(m.toUpperCase());
  };
}

function compileRe2(values: readonly string[], path: string): RE2[] {
  return values.map((v, i) => {
    try {
      return new RE2(v);
    } catch (err) {
      throw new FilterError(`${path}[${i}]`, `an RE2 regular expression (${(err as Error).message})`, v);
    }
  });
}

function httpRegexFilter(
  values: readonly string[],
  path: string,
  pick: (url: string) => string | undefined,
): FlowPredicate {
  const res = compileRe2(values, path);
  return (fl) => {
    const url = fl.l7?.http?.url;
    if (!url) return false;
    const s = pick(url);
    if (s === undefined) return false;
    for (const re of res) if (re.test(s)) return true;
    return false;
  };
}

/** The path of an absolute URL or of an absolute path; anything else has none (Go's ParseRequestURI). */
function urlPath(url: string): string | undefined {
  if (url.startsWith('/')) {
    const q = url.search(/[?#]/);
    return q < 0 ? url : url.slice(0, q);
  }
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(url)) return undefined;
  try {
    return new URL(url).pathname;
  } catch {
    return undefined;
  }
}

function httpHeaderFilter(values: readonly { key?: string; value?: string }[]): FlowPredicate {
  return (fl) => {
    const hs = fl.l7?.http?.headers;
    if (hs === undefined) return false;
    for (const h of hs) for (const f of values) if (f.key === h.key && f.value === h.value) return true;
    return false;
  };
}

function dnsQueryFilter(values: readonly string[], path: string): FlowPredicate {
  const res = compileRe2(values, path);
  return (fl) => {
    const q = fl.l7?.dns?.query;
    if (q === undefined) return false;
    for (const re of res) if (re.test(q)) return true;
    return false;
  };
}

const FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const;

/** An entry matches when every flag it sets is set on the flow (an empty entry: any TCP flow with flags). */
function tcpFlagsFilter(values: readonly TCPFlags[]): FlowPredicate {
  const wanted = values.map((v) => FLAG_NAMES.filter((n) => v[n] === true));
  return (fl) => {
    const flags = fl.l4?.TCP?.flags;
    if (flags === undefined) return false;
    for (const w of wanted) if (w.every((n) => flags[n] === true)) return true;
    return false;
  };
}

/** The cluster of flows whose node name names none ("node" means "default/node"). */
export const DEFAULT_CLUSTER_NAME = 'default';

/**
 * Node name patterns "cluster/node": each part a DNS name pattern, an empty part matching any
 * name; without "/" the pattern is the node part, in any cluster.
 */
function nodeNameFilter(values: readonly string[], path: string): FlowPredicate {
  const ANY = '(?:[-0-9_a-z]+(?:\\.[-0-9_a-z]+)*)';
  const alts = values.map((v, i) => {
    const at = `${path}[${i}]`;
    const parts = v.split('/');
    if (v === '' || parts.length > 2)
      throw new FilterError(at, 'a node name pattern ("node*", "cluster/", "cluster/node*")', v);
    const [cluster, node] = parts.length === 2 ? [parts[0]!, parts[1]!] : ['', parts[0]!];
    const c = cluster === '' ? ANY : fqdnPatternSource(cluster, at);
    const n = node === '' ? ANY : fqdnPatternSource(node, at);
    return `${c}/${n}`;
  });
  const re = new RegExp(`^(?:${alts.join('|')})$`);
  return (fl) => {
    const n = fl.node_name;
    if (!n) return false;
    return re.test(n.includes('/') ? n : `${DEFAULT_CLUSTER_NAME}/${n}`);
  };
}

function interfaceFilter(values: readonly { index?: number; name?: string }[]): FlowPredicate {
  return (fl) => {
    const itf = fl.interface;
    if (itf === undefined) return false;
    for (const f of values) {
      if (f.index && f.index !== itf.index) continue;
      if (f.name && f.name !== itf.name) continue;
      return true;
    }
    return false;
  };
}
