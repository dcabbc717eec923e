import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFlowFilters, type FlowFilter } from '../../src/hubble/filters/flow-filter.js';
import type { Flow } from '../../src/hubble/flow/flow.js';
import { sampleFlows } from './fixtures.js';

// Index: 0 SYN trace frontend->payments, 1 SYN-ACK reply, 2 policy verdict allowed, 3 drop 133 to
// postgres, 4 drop 181 to world (example.com), 5 ICMPv4 echo, 6 UDP over IPv6 to world, 7 HTTP
// request, 8 HTTP 503 response, 9 DNS request, 10 DNS response. 11 and 12 are copies of 0 on
// other nodes, 13 a flow with a source service, a translated source and an encrypted flag.
function flows(): Flow[] {
  const fs = sampleFlows();
  const c1 = structuredClone(fs[0]!);
  c1.node_name = 'prod/k8s-worker-1.example.com';
  c1.uuid = 'uuid-c1';
  c1.source!.cluster_name = 'prod';
  c1.node_labels = ['kubernetes.io/arch=amd64', 'zone=a'];
  const c2 = structuredClone(fs[0]!);
  c2.node_name = 'k8s-master';
  c2.uuid = 'uuid-c2';
  c2.trace_context = { parent: { trace_id: 'aaaa' } };
  c2.ip_trace_id = { trace_id: 77 };
  const svc = structuredClone(fs[0]!);
  svc.uuid = 'uuid-svc';
  svc.source_service = { name: 'frontend-svc', namespace: 'shop' };
  svc.IP!.source_xlated = '192.168.1.5';
  svc.IP!.encrypted = true;
  return [...fs, c1, c2, svc];
}

const ALL = [...Array(14).keys()];
const NOT = (...xs: number[]) => ALL.filter((i) => !xs.includes(i));

interface Case {
  name: string;
  allow?: FlowFilter[];
  deny?: FlowFilter[];
  want: number[];
}

const CASES: Case[] = [
  { name: 'no filters match everything', want: ALL },
  { name: 'an empty FlowFilter matches everything', allow: [{}], want: ALL },
  { name: 'uuid', allow: [{ uuid: ['uuid-c1', 'uuid-c2'] }], want: [11, 12] },
  { name: 'source_ip exact', allow: [{ source_ip: ['10.1.0.12'] }], want: [1, 8] },
  { name: 'source_ip CIDR', allow: [{ source_ip: ['10.96.0.0/16'] }], want: [10] },
  { name: 'destination_ip CIDR /0 of IPv4 only', allow: [{ destination_ip: ['0.0.0.0/0'] }], want: NOT(6) },
  { name: 'destination_ip IPv6 CIDR', allow: [{ destination_ip: ['fd00::/64'] }], want: [6] },
  { name: 'destination_ip compares addresses as text', allow: [{ destination_ip: ['fd00:0::0099'] }], want: [] },
  { name: 'destination_ip IPv6 exact', allow: [{ destination_ip: ['fd00::99'] }], want: [6] },
  { name: 'source_ip_xlated', allow: [{ source_ip_xlated: ['192.168.1.0/24'] }], want: [13] },
  { name: 'source_pod ns/prefix', allow: [{ source_pod: ['shop/pay'] }], want: [1, 8] },
  {
    name: 'source_pod without namespace (in the namespace default)',
    allow: [{ source_pod: ['frontend-'] }],
    want: [],
  },
  { name: 'source_pod ignores text after a second slash', allow: [{ source_pod: ['shop/pay/x'] }], want: [1, 8] },
  { name: 'destination_pod whole namespace', allow: [{ destination_pod: ['db/'] }], want: [3] },
  { name: 'destination_pod wrong namespace', allow: [{ destination_pod: ['db/payments'] }], want: [] },
  { name: 'source_fqdn no names', allow: [{ source_fqdn: ['example.com'] }], want: [] },
  { name: 'destination_fqdn exact with trailing dot', allow: [{ destination_fqdn: ['EXAMPLE.com.'] }], want: [4] },
  { name: 'destination_fqdn wildcard', allow: [{ destination_fqdn: ['*.com'] }], want: [4] },
  { name: 'destination_fqdn wildcard not matching', allow: [{ destination_fqdn: ['*.org'] }], want: [] },
  { name: 'source_label equality', allow: [{ source_label: ['app=payments'] }], want: [1, 8] },
  { name: 'source_label with source prefix', allow: [{ source_label: ['k8s:app=payments'] }], want: [1, 8] },
  { name: 'source_label with another source', allow: [{ source_label: ['container:app=payments'] }], want: [] },
  { name: 'source_label any: source', allow: [{ source_label: ['any:app=payments'] }], want: [1, 8] },
  {
    name: 'destination_label set-based in',
    allow: [{ destination_label: ['app in (postgres, payments)'] }],
    want: [0, 2, 3, 5, 7, 11, 12, 13],
  },
  {
    name: 'destination_label notin also matches missing key',
    allow: [{ destination_label: ['app notin (payments,frontend)'] }],
    want: [3, 4, 6, 9],
  },
  { name: 'destination_label exists', allow: [{ destination_label: ['reserved:world'] }], want: [4, 6, 9] },
  { name: 'destination_label does not exist', allow: [{ destination_label: ['!app'] }], want: [4, 6, 9] },
  {
    name: 'destination_label != matches missing key',
    allow: [{ destination_label: ['tier!=api'] }],
    want: [1, 3, 4, 6, 8, 9, 10],
  },
  {
    name: 'source_label AND inside one selector',
    allow: [{ source_label: ['app=frontend,tier=web'] }],
    want: [0, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13],
  },
  { name: 'source_label AND fails', allow: [{ source_label: ['app=frontend,tier=api'] }], want: [] },
  { name: 'source_service', allow: [{ source_service: ['shop/frontend'] }], want: [13] },
  { name: 'destination_service', allow: [{ destination_service: ['payments'] }], want: [] },
  { name: 'source_workload by name', allow: [{ source_workload: [{ name: 'payments' }] }], want: [1, 8] },
  { name: 'destination_workload by kind', allow: [{ destination_workload: [{ kind: 'StatefulSet' }] }], want: [3] },
  {
    name: 'destination_workload name and kind',
    allow: [{ destination_workload: [{ name: 'postgres', kind: 'Deployment' }] }],
    want: [],
  },
  { name: 'source_cluster_name', allow: [{ source_cluster_name: ['prod'] }], want: [11] },
  { name: 'destination_cluster_name', allow: [{ destination_cluster_name: ['prod'] }], want: [] },
  { name: 'source_identity', allow: [{ source_identity: [5002] }], want: [1, 8] },
  { name: 'destination_identity reserved world', allow: [{ destination_identity: [2] }], want: [6, 9] },
  { name: 'traffic_direction INGRESS', allow: [{ traffic_direction: [1] }], want: [2, 3, 7, 8] },
  { name: 'verdict DROPPED', allow: [{ verdict: [2] }], want: [3, 4] },
  { name: 'verdict FORWARDED or DROPPED', allow: [{ verdict: [1, 2] }], want: ALL },
  { name: 'drop_reason_desc POLICY_DENY', allow: [{ drop_reason_desc: [181] }], want: [4] },
  {
    name: 'interface by name',
    allow: [{ interface: [{ name: 'mbr-veth101' }] }],
    want: [0, 1, 2, 3, 4, 5, 6, 11, 12, 13],
  },
  { name: 'interface by index', allow: [{ interface: [{ index: 8 }] }], want: [] },
  { name: 'event_type drop', allow: [{ event_type: [{ type: 1 }] }], want: [3, 4] },
  {
    name: 'event_type trace with sub type to-stack',
    allow: [{ event_type: [{ type: 4, match_sub_type: true, sub_type: 3 }] }],
    want: [5, 6],
  },
  {
    name: 'event_type trace with sub type 0 (to-endpoint)',
    allow: [{ event_type: [{ type: 4, match_sub_type: true, sub_type: 0 }] }],
    want: [1],
  },
  {
    name: 'event_type 0 as a wildcard with a sub type',
    allow: [{ event_type: [{ type: 0, match_sub_type: true, sub_type: 133 }] }],
    want: [3],
  },
  { name: 'event_type access log', allow: [{ event_type: [{ type: 129 }] }], want: [7, 8, 9, 10] },
  { name: 'http_status_code exact', allow: [{ http_status_code: ['503'] }], want: [8] },
  { name: 'http_status_code 5+', allow: [{ http_status_code: ['5+'] }], want: [8] },
  { name: 'http_status_code 50+', allow: [{ http_status_code: ['50+'] }], want: [8] },
  { name: 'http_status_code 4+', allow: [{ http_status_code: ['4+'] }], want: [] },
  { name: 'protocol tcp', allow: [{ protocol: ['TCP'] }], want: [0, 1, 2, 3, 4, 7, 8, 11, 12, 13] },
  { name: 'protocol udp', allow: [{ protocol: ['udp'] }], want: [6, 9, 10] },
  { name: 'protocol icmp covers v4', allow: [{ protocol: ['icmp'] }], want: [5] },
  { name: 'protocol icmpv6', allow: [{ protocol: ['icmpv6'] }], want: [] },
  { name: 'protocol http', allow: [{ protocol: ['http'] }], want: [7, 8] },
  { name: 'protocol dns', allow: [{ protocol: ['dns'] }], want: [9, 10] },
  { name: 'protocol kafka', allow: [{ protocol: ['kafka'] }], want: [] },
  { name: 'source_port', allow: [{ source_port: ['8080'] }], want: [1, 8] },
  { name: 'destination_port', allow: [{ destination_port: ['53', '5432'] }], want: [3, 6, 9] },
  { name: 'reply true', allow: [{ reply: [true] }], want: [1, 8, 10] },
  {
    name: 'reply false excludes unknown except drops',
    allow: [{ reply: [false] }],
    want: [0, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13],
  },
  { name: 'dns_query RE2', allow: [{ dns_query: ['^example\\.'] }], want: [9, 10] },
  { name: 'http_method case-insensitive', allow: [{ http_method: ['post'] }], want: [7, 8] },
  { name: 'http_method other', allow: [{ http_method: ['GET'] }], want: [] },
  { name: 'http_path RE2 on the path only', allow: [{ http_path: ['^/v1/charge$'] }], want: [7, 8] },
  { name: 'http_url RE2 on the whole URL', allow: [{ http_url: ['id=7$'] }], want: [7, 8] },
  { name: 'http_header', allow: [{ http_header: [{ key: 'x-request-id', value: 'abc' }] }], want: [7, 8] },
  { name: 'http_header value differs', allow: [{ http_header: [{ key: 'x-request-id', value: 'x' }] }], want: [] },
  {
    name: 'tcp_flags SYN matches SYN and SYN-ACK',
    allow: [{ tcp_flags: [{ SYN: true }] }],
    want: [0, 1, 2, 3, 4, 11, 12, 13],
  },
  { name: 'tcp_flags SYN+ACK needs both', allow: [{ tcp_flags: [{ SYN: true, ACK: true }] }], want: [1] },
  { name: 'tcp_flags OR across entries', allow: [{ tcp_flags: [{ FIN: true }, { ACK: true }] }], want: [1] },
  {
    name: 'tcp_flags empty entry matches any TCP flags',
    allow: [{ tcp_flags: [{}] }],
    want: [0, 1, 2, 3, 4, 11, 12, 13],
  },
  {
    name: 'an empty workload matching any workload',
    allow: [{ destination_workload: [{}] }],
    want: [0, 1, 2, 3, 5, 7, 8, 10, 11, 12, 13],
  },
  {
    name: 'http_status_code with an l7 event type',
    allow: [{ http_status_code: ['503'], event_type: [{ type: 129 }] }],
    want: [8],
  },
  { name: 'node_name exact', allow: [{ node_name: ['node-1'] }], want: NOT(11, 12) },
  { name: 'node_name glob', allow: [{ node_name: ['k8s*'] }], want: [11, 12] },
  { name: 'node_name glob in the default cluster', allow: [{ node_name: ['default/k8s*'] }], want: [12] },
  { name: 'node_name cluster/', allow: [{ node_name: ['prod/'] }], want: [11] },
  { name: 'node_name cluster/glob', allow: [{ node_name: ['prod/k8s-worker-*.example.com'] }], want: [11] },
  { name: 'node_name glob crosses dots', allow: [{ node_name: ['prod/*.com'] }], want: [11] },
  { name: 'node_name in another cluster', allow: [{ node_name: ['staging/'] }], want: [] },
  { name: 'node_labels', allow: [{ node_labels: ['zone=a'] }], want: [11] },
  { name: 'ip_version IPv6', allow: [{ ip_version: [2] }], want: [6] },
  { name: 'trace_id', allow: [{ trace_id: ['aaaa'] }], want: [12] },
  { name: 'ip_trace_id', allow: [{ ip_trace_id: [77] }], want: [12] },
  { name: 'encrypted true', allow: [{ encrypted: [true] }], want: [13] },
  { name: 'AND of two fields', allow: [{ source_pod: ['shop/frontend'], verdict: [2] }], want: [3, 4] },
  { name: 'OR across filters', allow: [{ verdict: [2] }, { protocol: ['http'] }], want: [3, 4, 7, 8] },
  { name: 'denylist alone', deny: [{ protocol: ['tcp'] }], want: [5, 6, 9, 10] },
  { name: 'allowlist minus denylist', allow: [{ source_pod: ['shop/'] }], deny: [{ verdict: [1] }], want: [3, 4] },
  {
    name: 'any denylist filter excludes',
    deny: [{ verdict: [2] }, { protocol: ['udp'] }],
    want: [0, 1, 2, 5, 7, 8, 11, 12, 13],
  },
  {
    name: 'undirected pod filter as the CLI builds it (two filters OR-ed)',
    allow: [{ source_pod: ['db/'] }, { destination_pod: ['db/'] }],
    want: [3],
  },
];

const LONG_CEL = `_flow.node_name == '${'a'.repeat(4080)}'`;

const INVALID: { name: string; filter: FlowFilter; message: string }[] = [
  {
    name: 'a bad IP',
    filter: { source_ip: ['10.0.0.256'] },
    message: 'whitelist[0].source_ip[0]: expected an IP address or a CIDR, got "10.0.0.256"',
  },
  {
    name: 'a bad CIDR length',
    filter: { destination_ip: ['10.0.0.0/33'] },
    message: 'whitelist[0].destination_ip[0]: expected an IP address or a CIDR, got "10.0.0.0/33"',
  },
  {
    name: 'an empty pod filter',
    filter: { source_pod: [''] },
    message: 'whitelist[0].source_pod[0]: expected [namespace/][pod-name-prefix], got ""',
  },
  {
    name: 'an empty service filter',
    filter: { destination_service: [''] },
    message: 'whitelist[0].destination_service[0]: expected [namespace/][service-name-prefix], got ""',
  },
  {
    name: 'an empty cluster name',
    filter: { source_cluster_name: ['a', ''] },
    message: 'whitelist[0].source_cluster_name[1]: expected a cluster name, got ""',
  },
  {
    name: 'an HTTP filter with a non-L7 event type',
    filter: { http_method: ['GET'], event_type: [{ type: 4 }] },
    message:
      'whitelist[0].http_method: expected an event_type filter that includes l7 events (129), got "[{\\"type\\":4}]"',
  },
  {
    name: 'a FQDN pattern with two trailing dots',
    filter: { source_fqdn: ['a.com..'] },
    message:
      'whitelist[0].source_fqdn[0]: expected a DNS name pattern of letters, digits, "-", "_", "." and "*", got "a.com.."',
  },
  {
    name: 'an unknown protocol',
    filter: { protocol: ['tcp', 'quic'] },
    message:
      'whitelist[0].protocol[1]: expected one of tcp, udp, sctp, icmp, icmpv4, icmpv6, vrrp, igmp, dns, http, kafka, got "quic"',
  },
  {
    name: 'a bad port',
    filter: { destination_port: ['70000'] },
    message: 'whitelist[0].destination_port[0]: expected a port number 0-65535, got "70000"',
  },
  {
    name: 'a bad status code',
    filter: { http_status_code: ['6+'] },
    message: 'whitelist[0].http_status_code[0]: expected an HTTP status code like "404", "40+" or "4+", got "6+"',
  },
  {
    name: 'a short exact status code',
    filter: { http_status_code: ['40'] },
    message: 'whitelist[0].http_status_code[0]: expected an HTTP status code like "404", "40+" or "4+", got "40"',
  },
  {
    name: 'a bad regex',
    filter: { http_path: ['(unclosed'] },
    message: 'whitelist[0].http_path[0]: expected an RE2 regular expression (missing ): (unclosed), got "(unclosed"',
  },
  {
    name: 'a backreference RE2 rejects',
    filter: { dns_query: ['(a)\\1'] },
    message:
      'whitelist[0].dns_query[0]: expected an RE2 regular expression (invalid escape sequence: \\1), got "(a)\\\\1"',
  },
  {
    name: 'a bad FQDN pattern',
    filter: { destination_fqdn: ['exa mple.com'] },
    message:
      'whitelist[0].destination_fqdn[0]: expected a DNS name pattern of letters, digits, "-", "_", "." and "*", got "exa mple.com"',
  },
  {
    name: 'a bad label selector',
    filter: { source_label: ['app in (a,b'] },
    message: 'whitelist[0].source_label[0]: expected a label selector with balanced parentheses, got "app in (a,b"',
  },
  {
    name: 'a bad label key',
    filter: { source_label: ['-app=x'] },
    message: 'whitelist[0].source_label[0]: expected a label selector with valid keys (bad key "-app"), got "-app=x"',
  },
  {
    name: 'a bad node name pattern',
    filter: { node_name: ['a/b/c'] },
    message:
      'whitelist[0].node_name[0]: expected a node name pattern ("node*", "cluster/", "cluster/node*"), got "a/b/c"',
  },
  {
    name: 'a CEL expression that does not parse',
    filter: { experimental: { cel_expression: ['_flow.verdict == 1', 'something-invalid'] } },
    message:
      'whitelist[0].experimental.cel_expression[1]: expected a CEL expression (Unknown variable: something), got "something-invalid"',
  },
  {
    name: 'a CEL expression that is not a bool',
    filter: { experimental: { cel_expression: ['_flow'] } },
    message:
      'whitelist[0].experimental.cel_expression[0]: expected a CEL expression of type bool, not map, got "_flow"',
  },
  {
    name: 'an empty CEL expression',
    filter: { experimental: { cel_expression: [''] } },
    message: 'whitelist[0].experimental.cel_expression[0]: expected a CEL expression (Unexpected token: EOF), got ""',
  },
  {
    name: 'a CEL expression longer than 4096 characters',
    filter: { experimental: { cel_expression: [LONG_CEL] } },
    message: `whitelist[0].experimental.cel_expression[0]: expected a CEL expression of at most 4096 characters, got ${JSON.stringify(LONG_CEL)}`,
  },
];

describe('flow filters', () => {
  const fs = flows();
  for (const c of CASES)
    it(`selects by ${c.name}`, () => {
      const match = compileFlowFilters(c.allow, c.deny);
      const got = fs.flatMap((f, i) => (match(f) ? [i] : []));
      assert.deepEqual(got, c.want);
    });

  for (const c of INVALID)
    it(`rejects ${c.name}`, () =>
      assert.throws(() => compileFlowFilters([c.filter], []), { code: 'MBR_FILTER_INVALID', message: c.message }));

  it('names the denylist in errors from the denylist', () =>
    assert.throws(() => compileFlowFilters([], [{}, { source_port: ['x'] }]), {
      code: 'MBR_FILTER_INVALID',
      message: 'blacklist[1].source_port[0]: expected a port number 0-65535, got "x"',
    }));
});

// Pod and service names as Hubble's own filter tests use them (pkg/hubble/filters/k8s_test.go).
const ep = (namespace: string, pod_name: string) => ({ namespace, pod_name });
const svc = (namespace: string, name: string) => ({ namespace, name });

const NAME_CASES: { name: string; allow: FlowFilter[]; flows: Partial<Flow>[]; want: boolean[] }[] = [
  {
    name: 'a source pod without namespace in default, and one with',
    allow: [{ source_pod: ['xwing', 'default/tiefighter'] }],
    flows: [
      { source: ep('default', 'xwing') },
      { source: ep('default', 'tiefighter') },
      { source: ep('kube-system', 'xwing') },
      { destination: ep('default', 'xwing') },
    ],
    want: [true, true, false, false],
  },
  {
    name: 'name prefixes',
    allow: [{ source_pod: ['xwing', 'kube-system/coredns-'] }],
    flows: [
      { source: ep('default', 'xwing') },
      { source: ep('default', 'xwing-t-65b') },
      { source: ep('kube-system', 'coredns-12345') },
      { source: ep('kube-system', '-coredns-12345') },
      { source: ep('default', 'tiefighter') },
    ],
    want: [true, true, true, false, false],
  },
  {
    name: 'a pod name on an endpoint without a namespace',
    allow: [{ source_pod: ['xwing'] }],
    flows: [{}, { source: ep('', 'xwing') }],
    want: [false, false],
  },
  {
    name: 'a whole namespace (the old "ns/" form)',
    allow: [{ source_pod: ['kube-system/'] }, { destination_pod: ['kube-system/'] }],
    flows: [
      { source: ep('kube-system', 'coredns'), destination: ep('kube-system', 'kube-proxy') },
      { source: ep('default', 'tiefighter'), destination: ep('kube-system', 'coredns') },
      { source: ep('kube-system', 'coredns'), destination: ep('default', 'xwing') },
      { source: ep('default', 'tiefighter'), destination: ep('default', 'xwing') },
    ],
    want: [true, true, true, false],
  },
  {
    name: 'a pod name prefix in any namespace ("/xwing")',
    allow: [{ source_pod: ['/xwing'] }, { destination_pod: ['/xwing'] }],
    flows: [
      { source: ep('kube-system', 'coredns'), destination: ep('kube-system', 'kube-proxy') },
      { source: ep('default', 'tiefighter'), destination: ep('kube-system', 'coredns') },
      { source: ep('kube-system', 'coredns'), destination: ep('default', 'xwing') },
      { source: ep('default', 'tiefighter'), destination: ep('default', 'xwing') },
      { source: ep('hoth', 'tiefighter'), destination: ep('endor', 'xwing') },
      { source: ep('default', 'tiefighter'), destination: ep('default', 'ywing') },
    ],
    want: [false, false, true, true, true, false],
  },
  {
    name: 'any pod in any namespace ("/", what --all-namespaces sends)',
    allow: [{ destination_pod: ['/'] }],
    flows: [{ destination: ep('endor', 'xwing') }, { destination: ep('', '') }, {}],
    want: [true, false, false],
  },
  {
    name: 'a service name prefix in any namespace ("/kube-")',
    allow: [{ destination_service: ['/kube-'] }],
    flows: [
      { destination_service: svc('default', 'xwing') },
      { destination_service: svc('default', 'deathstar') },
      { destination_service: svc('kube-system', 'kube-dns') },
      { source_service: svc('kube-system', 'deathstar') },
      { destination_service: svc('monitoring', 'kube-prometheus') },
    ],
    want: [false, false, true, false, true],
  },
  {
    name: 'a source service without namespace in default',
    allow: [{ source_service: ['deathstar', 'kube-system/kube-dns'] }],
    flows: [
      { source_service: svc('default', 'xwing') },
      { source_service: svc('default', 'deathstar') },
      { source_service: svc('kube-system', 'kube-dns') },
      { destination_service: svc('kube-system', 'deathstar') },
    ],
    want: [false, true, true, false],
  },
];

// CEL cases after Hubble's pkg/hubble/filters/cel_expression_test.go, plus how several
// expressions combine and what an evaluation error does.
const tcp = (source_port: number, destination_port: number) => ({ l4: { TCP: { source_port, destination_port } } });
const CEL_CASES: { name: string; exprs: string[]; flows: Partial<Flow>[]; want: boolean[] }[] = [
  {
    name: 'verdicts by enum name',
    exprs: ['_flow.verdict == Verdict.FORWARDED || _flow.verdict == Verdict.TRANSLATED'],
    flows: [{ verdict: 1 }, { verdict: 2 }, { verdict: 7 }],
    want: [true, false, true],
  },
  {
    name: 'IP addresses',
    exprs: ["_flow.IP.source == '1.1.1.1' || _flow.IP.destination == '8.8.8.8'"],
    flows: [
      { IP: { source: '1.1.1.1', destination: '10.0.0.2', ipVersion: 1 } },
      { IP: { source: '10.0.0.2', destination: '1.1.1.1', ipVersion: 1 } },
      { IP: { source: '10.0.0.2', destination: '8.8.8.8', ipVersion: 1 } },
    ],
    want: [true, false, true],
  },
  {
    name: 'the L4 protocol with has()',
    exprs: ['has(_flow.l4.TCP)'],
    flows: [tcp(20222, 80), { l4: { UDP: { source_port: 30222, destination_port: 53 } } }, tcp(20222, 443)],
    want: [true, false, true],
  },
  {
    name: 'ports compared as uint',
    exprs: [
      'has(_flow.l4.TCP) && (_flow.l4.TCP.destination_port == uint(80) || _flow.l4.TCP.destination_port == uint(443))',
    ],
    flows: [tcp(20222, 80), { l4: { UDP: { source_port: 30222, destination_port: 53 } } }, tcp(20222, 443)],
    want: [true, false, true],
  },
  {
    name: 'several expressions, ORed',
    exprs: ["_flow.source.namespace == 'hoth'", "_flow.destination.pod_name.startsWith('x')"],
    flows: [
      { source: ep('hoth', 'a'), destination: ep('endor', 'b') },
      { source: ep('endor', 'a'), destination: ep('hoth', 'xwing') },
      { source: ep('endor', 'a'), destination: ep('hoth', 'ywing') },
    ],
    want: [true, true, false],
  },
  {
    name: 'an expression that fails on a flow (no such key) as no match',
    exprs: ['_flow.l4.UDP.destination_port == 53'],
    flows: [tcp(1, 53), { l4: { UDP: { source_port: 1, destination_port: 53 } } }],
    want: [false, true],
  },
  {
    name: 'a verdict the flow leaves out as its proto default',
    exprs: ['_flow.verdict == Verdict.VERDICT_UNKNOWN'],
    flows: [{}, { verdict: 1 }],
    want: [true, false],
  },
  {
    name: 'is_reply unwrapped, null when unknown',
    exprs: ['_flow.is_reply == true', '_flow.is_reply == null && _flow.verdict == flow.Verdict.DROPPED'],
    flows: [{ is_reply: { value: true } }, { is_reply: { value: false } }, { verdict: 2 }],
    want: [true, false, true],
  },
];

describe('pod and service name filters', () => {
  for (const c of NAME_CASES)
    it(`matches ${c.name}`, () => {
      const match = compileFlowFilters(c.allow, []);
      assert.deepEqual(
        c.flows.map((f) => match(f as Flow)),
        c.want,
      );
    });
});

describe('CEL expression filters', () => {
  for (const c of CEL_CASES)
    it(`matches ${c.name}`, () => {
      const match = compileFlowFilters([{ experimental: { cel_expression: c.exprs } }], []);
      assert.deepEqual(
        c.flows.map((f) => match(f as Flow)),
        c.want,
      );
    });

  it('ANDs a CEL expression with the other fields of its filter', () => {
    const match = compileFlowFilters(
      [{ verdict: [2], experimental: { cel_expression: ["_flow.node_name == 'a'"] } }],
      [],
    );
    assert.deepEqual(
      [
        { verdict: 2, node_name: 'a' },
        { verdict: 1, node_name: 'a' },
        { verdict: 2, node_name: 'b' },
      ].map((f) => match(f as Flow)),
      [true, false, false],
    );
  });
});
