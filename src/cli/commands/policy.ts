// `membrane policy`: validate, trace and show network policy. Files are read by the one manifest
// reader (../manifest-files.ts); parsing, resolution and verdicts are the pure engine's.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseIp } from '../../identity/cidr.js';
import { formatLabel } from '../../identity/labels.js';
import { ManifestError } from '../../policy/manifest-reader.js';
import { PolicyEngine, PolicyEngineError } from '../../policy/policy-engine.js';
import { PolicyError, showValue } from '../../policy/policy-error.js';
import { type ParsedPolicyFile, parsePolicyFile } from '../../policy/policy-parser.js';
import {
  type DirectionTrace,
  describeKey,
  describeMatchType,
  type TracePeer,
  type TraceQuery,
  type TraceResult,
  tracePolicy,
} from '../../policy/policy-trace.js';
import { parsePortProtocol } from '../../policy/port-protocol.js';
import { protocolName } from '../../policy/protocol-names.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { listManifestFiles, readManifestText } from '../manifest-files.js';
import { registerPolicyGet } from './policy-get.js';
import { registerPolicyLint } from './policy-lint.js';

export function registerPolicy(program: Command): void {
  const group = program.command('policy').description('Validate, trace and show network policy');
  group
    .command('validate')
    .description('Validate policy files (YAML/JSON, K8s NetworkPolicy, CNP, CCNP)')
    .requiredOption('-f, --file <path>', 'policy file or directory (repeatable)', collect, [])
    .action((opts: { file: string[] }) => {
      const { parsed, policies } = loadFiles(opts.file);
      void parsed;
      process.stdout.write(`valid: ${policies} policies\n`);
    });
  group
    .command('trace')
    .description('Trace a connection through policy: which rules allow or deny it')
    .requiredOption(
      '-f, --file <path>',
      'policy and world (Namespace, Pod) file or directory (repeatable)',
      collect,
      [],
    )
    .option('--src-k8s-pod <ns/pod>', 'source pod')
    .option('--dst-k8s-pod <ns/pod>', 'destination pod')
    .option('--src-ip <ip>', 'source IP address')
    .option('--dst-ip <ip>', 'destination IP address')
    .option('-s, --src <peer>', 'source: NAMESPACE/POD or IP')
    .option('-d, --dst <peer>', 'destination: NAMESPACE/POD or IP')
    .option('--dport <port[/proto]>', 'destination port (number or name) and protocol, e.g. 8080/TCP')
    .option('--fqdn <name=ip,...>', 'addresses a DNS name resolves to, for toFQDNs rules (repeatable)', collect, [])
    .option('--queries <file.jsonl>', 'batch: one {"src","dst","dport","protocol"} query per line')
    .option('-o, --output <format>', 'output format: text, json or jsonl', 'text')
    .action((opts: TraceOptions) => runTrace(opts));
  registerPolicyGet(group);
  registerPolicyLint(group);
}

// Private helpers.

interface TraceOptions {
  file: string[];
  srcK8sPod?: string;
  dstK8sPod?: string;
  srcIp?: string;
  dstIp?: string;
  src?: string;
  dst?: string;
  dport?: string;
  queries?: string;
  fqdn: string[];
  output: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Reads and validates every file; prints every issue and fails if there is any. */
function loadFiles(paths: readonly string[]): { parsed: ParsedPolicyFile[]; policies: number } {
  const files: string[] = [];
  const problems: string[] = [];
  for (const p of paths) {
    try {
      files.push(...listManifestFiles(p, { recursive: true }));
    } catch (e) {
      problems.push(`${p}: cannot read: ${(e as Error).message}`);
    }
  }
  const parsed: ParsedPolicyFile[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = readManifestText(f);
    } catch (e) {
      problems.push(e instanceof ManifestError ? e.message : `${f}: cannot read: ${(e as Error).message}`);
      continue;
    }
    try {
      parsed.push(parsePolicyFile(text, f));
    } catch (e) {
      if (e instanceof ManifestError) problems.push(e.message);
      else if (e instanceof PolicyError) problems.push(...e.message.split('\n'));
      else throw e;
    }
  }
  if (problems.length > 0) {
    for (const line of problems) process.stderr.write(`${line}\n`);
    throw new CliError(
      'MBR_POLICY_INVALID',
      `invalid: ${problems.length} ${problems.length === 1 ? 'error' : 'errors'}`,
    );
  }
  return { parsed, policies: parsed.reduce((n, p) => n + p.policies.length, 0) };
}

function runTrace(opts: TraceOptions): void {
  const usage = (msg: string) => new CliError('MBR_USAGE', msg, EXIT_USAGE);
  if (!['text', 'json', 'jsonl'].includes(opts.output))
    throw usage(`--output: expected text, json or jsonl, got "${opts.output}"`);
  const { parsed } = loadFiles(opts.file);
  const engine = new PolicyEngine();
  for (const p of parsed) engine.applyFile(p);
  for (const f of opts.fqdn) {
    const eq = f.indexOf('=');
    const ips = f
      .slice(eq + 1)
      .split(',')
      .filter(Boolean);
    if (eq <= 0 || ips.length === 0 || ips.some((ip) => !parseIp(ip)))
      throw usage(`--fqdn: expected NAME=IP[,IP...], got "${f}"`);
    engine.updateFqdn(f.slice(0, eq), ips);
  }
  if (opts.queries) {
    runBatch(engine, opts.queries);
    return;
  }
  const src = opts.srcK8sPod ?? opts.srcIp ?? opts.src;
  const dst = opts.dstK8sPod ?? opts.dstIp ?? opts.dst;
  if (!src) throw usage('a source is required: --src-k8s-pod NS/POD or --src-ip IP');
  if (!dst) throw usage('a destination is required: --dst-k8s-pod NS/POD or --dst-ip IP');
  if (!opts.dport) throw usage('--dport PORT[/PROTO] is required');
  let r: TraceResult;
  try {
    const { port, protocol } = parsePortProtocol(opts.dport, '--dport');
    r = tracePolicy(engine, { src, dst, dport: port, protocol });
  } catch (e) {
    const isUsage = e instanceof PolicyEngineError && /^MBR_TRACE_BAD_(PORT|PROTOCOL)$/.test(e.code);
    if (e instanceof PolicyEngineError) throw new CliError(e.code, e.message, isUsage ? EXIT_USAGE : undefined);
    throw e;
  }
  if (opts.output === 'text') process.stdout.write(formatTrace(engine, r));
  else process.stdout.write(`${JSON.stringify(traceJson(r), null, opts.output === 'json' ? 2 : undefined)}\n`);
}

function runBatch(engine: PolicyEngine, file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError('MBR_TRACE_QUERIES', `${file}: cannot read: ${(e as Error).message}`);
  }
  const out: string[] = [];
  let failed = 0;
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      const q = readQuery(line);
      const r = tracePolicy(engine, q);
      out.push(
        JSON.stringify({
          verdict: r.verdict,
          egress: r.egress.verdict,
          ingress: r.ingress.verdict,
          policies: r.policies,
        }),
      );
    } catch (e) {
      failed++;
      out.push(JSON.stringify({ error: `${file}: line ${i + 1}: ${(e as Error).message}` }));
    }
  });
  process.stdout.write(`${out.join('\n')}\n`);
  if (failed > 0) throw new CliError('MBR_TRACE_QUERIES', `${file}: ${failed} queries failed`);
}

// A --queries line: a JSON object with string src and dst; dport and protocol are checked by
// tracePolicy (readPortProtocol), which names the field.
function readQuery(line: string): TraceQuery {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`expected a JSON object {"src","dst","dport","protocol"}, got ${showValue(line)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`expected a JSON object {"src","dst","dport","protocol"}, got ${showValue(v)}`);
  const q = v as Record<string, unknown>;
  for (const f of ['src', 'dst'])
    if (typeof q[f] !== 'string')
      throw new Error(`${f}: expected NAMESPACE/POD or an IP address, got ${showValue(q[f])}`);
  return q as unknown as TraceQuery;
}

function traceJson(r: TraceResult): unknown {
  const peer = (p: TracePeer) => ({
    input: p.input,
    identity: p.identity,
    ...(p.ip ? { ip: p.ip } : {}),
    ...(p.endpoint
      ? {
          endpoint_id: p.endpoint.endpointId,
          namespace: p.endpoint.namespace,
          pod_name: p.endpoint.name,
          labels: p.endpoint.labels.labels.map(formatLabel),
        }
      : {}),
  });
  const dir = (d: DirectionTrace) => ({
    verdict: d.verdict,
    enforced: d.enforced,
    reason: d.reason,
    match_type: describeMatchType(d.matchType),
    ...(d.key ? { key: d.key } : {}),
    proxy_port: d.proxyPort,
    auth_type: d.authType,
    policies: d.policies,
  });
  return {
    verdict: r.verdict,
    source: peer(r.src),
    destination: peer(r.dst),
    protocol: protocolName(r.protocol),
    dport: r.dport,
    egress: dir(r.egress),
    ingress: dir(r.ingress),
    policies: r.policies,
  };
}

function formatTrace(engine: PolicyEngine, r: TraceResult): string {
  void engine;
  const name = (p: TracePeer) =>
    p.endpoint
      ? `${p.endpoint.namespace}/${p.endpoint.name} (identity ${p.identity}, endpoint ${p.endpoint.endpointId})`
      : `${p.input} (identity ${p.identity})`;
  const lines = [`Tracing ${name(r.src)} => ${name(r.dst)}, port ${r.dport}/${protocolName(r.protocol)}`, ''];
  const who = (ps: DirectionTrace['policies']) =>
    ps.map((p) => `${p.kind} ${p.namespace ? `${p.namespace}/` : ''}${p.name}`).join(', ');
  const explain = (side: string, d: DirectionTrace): string[] => {
    const head = `${side}: ${d.verdict}`;
    switch (d.reason) {
      case 'not-an-endpoint':
        return [head, '  not a local endpoint: no policy applies'];
      case 'other-node':
        return [head, '  a pod of another node: that node enforces this side (trace it there)'];
      case 'loopback':
        return [head, '  a pod talking to itself: no policy applies'];
      case 'unresolved-port':
        return [head, '  the destination does not serve that named port'];
      case 'default-deny':
        return [head, `  no rule allows it; default-deny from ${who(d.policies) || '(none)'}`];
      case 'deny-rule':
        return [head, `  denied by ${who(d.policies)} (${describeMatchType(d.matchType)}, ${describeKey(d.key!)})`];
      default: {
        const by =
          d.policies.length > 0
            ? who(d.policies)
            : d.enforced
              ? 'the allow-all of a non-default-deny policy'
              : 'no policy (not enforced)';
        const out = [head, `  allowed by ${by} (${describeMatchType(d.matchType)}, ${describeKey(d.key!)})`];
        if (d.proxyPort > 0)
          out.push(`  redirected to the L7 proxy on port ${d.proxyPort}: L7 rules decide each request`);
        if (d.authType > 0)
          out.push(`  requires authentication (mode ${d.authType === 1 ? 'required' : 'test-always-fail'})`);
        return out;
      }
    }
  };
  lines.push(...explain(`Egress from ${r.src.input}`, r.egress), '');
  lines.push(...explain(`Ingress to ${r.dst.input}`, r.ingress), '');
  lines.push(`Final verdict: ${r.verdict}`, '');
  return lines.join('\n');
}
