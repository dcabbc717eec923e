// `membrane observe` and `membrane hubble status|list nodes`: flows with hubble's flags and
// output formats, from a flow server over gRPC (an agent or the relay) or streamed from a file of
// jsonpb lines through the same filter and printer code (src/hubble/observer/flow-replay.ts).
import { createReadStream, existsSync, type ReadStream } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { type Command, Option } from 'commander';
import { observerClient } from '../../hubble/api/grpc-clients.js';
import { fromProtoJson, toProtoJson } from '../../hubble/api/proto-json.js';
import { protoType } from '../../hubble/api/proto-root.js';
import { FilterTracker } from '../../hubble/filters/filter-tracker.js';
import { compileFlowFilters, type FlowFilter } from '../../hubble/filters/flow-filter.js';
import {
  DROP_REASON_NAMES,
  type FlowsResponse,
  RESERVED_IDENTITY_NAMES,
  type Timestamp,
} from '../../hubble/flow/flow.js';
import { ReplayError, readLines, replayFlows } from '../../hubble/observer/flow-replay.js';
import { DEFAULT_SOCKET_PATH } from '../../hubble/observer/observer-server.js';
import {
  alignColumns,
  FlowPrinter,
  OUTPUT_FORMATS,
  type OutputFormat,
  TRACE_POINT_NAMES,
} from '../../hubble/printer/flow-printer.js';
import { CliError, EXIT_USAGE } from '../errors.js';

export const DEFAULT_RELAY_SERVER = 'localhost:4245';

export function registerObserve(program: Command): void {
  const observe = program
    .command('observe')
    .description('Observe flows (the same flags and output as `hubble observe`)')
    .option(
      '--server <address>',
      `flow server: host:port or unix:///path (default ${DEFAULT_SOCKET_PATH} if present, else ${DEFAULT_RELAY_SERVER})`,
    )
    .option('--input-file <file>', 'replay flows from a file of jsonpb lines ("-" for stdin) instead of a server')
    .option('--last <n>', 'get the last N flows (default 20 when no other selector is given)', positiveInt)
    .option('--first <n>', 'get the first N flows', positiveInt)
    .option('--all', 'get all flows stored in the ring')
    .option('-f, --follow', 'follow flows as they arrive')
    .option('--since <time>', 'flows since this time: a duration ago ("30s", "1h5m") or a date')
    .option('--until <time>', 'flows until this time: a duration ago or a date')
    .addOption(new Option('-o, --output <format>', 'output format').choices([...OUTPUT_FORMATS]).default('compact'))
    .option('--print-node-name', 'print the node name in each line')
    .option('--print-policy-names', 'print the names of the policies that allowed or denied each flow')
    .option(
      '--time-format <layout>',
      'time layout (StampMilli, RFC3339, RFC3339Nano, ... or a Go layout)',
      'StampMilli',
    )
    .option(
      '--compat <options>',
      'old behaviour kept for scripts, comma-separated (as HUBBLE_COMPAT): legacy-json-output makes -o json print the bare flow',
    )
    .addOption(new Option('--color <when>', 'colour the output').choices(['auto', 'always', 'never']).default('auto'))
    .option('--allowlist <json>', 'a FlowFilter as JSON to include (repeatable)', collect, [])
    .option('--denylist <json>', 'a FlowFilter as JSON to exclude (repeatable)', collect, [])
    .option('--print-raw-filters', 'print the allowlist and denylist the flags make, as FlowFilter JSON, and exit');
  for (const f of FILTER_FLAGS) {
    const opt = new Option(f.flags, f.description);
    observe.addOption(opt);
  }
  const ops: [string, string | true][] = [];
  for (const f of FILTER_FLAGS) {
    const name = new Option(f.flags).attributeName();
    const long = new Option(f.flags).name();
    observe.on(`option:${long}`, (v: string | undefined) => ops.push([name, v ?? true]));
  }
  observe.action(async (opts: ObserveOptions) => {
    await runObserve(opts, ops);
  });

  const hubble = program.command('hubble').description('Hubble-compatible observability commands');
  hubble
    .command('status')
    .description('Show the flow server status')
    .option('--server <address>', 'flow server (host:port or unix:///path)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { server?: string; output: string }) => {
      await runStatus(opts.server ?? defaultServer(), opts.output);
    });
  hubble
    .command('list')
    .description('List Hubble objects')
    .command('nodes')
    .description('List the nodes the flow server knows')
    .option('--server <address>', 'flow server (host:port or unix:///path)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (opts: { server?: string; output: string }) => {
      await runListNodes(opts.server ?? defaultServer(), opts.output);
    });
}

interface ObserveOptions {
  server?: string;
  inputFile?: string;
  last?: number;
  first?: number;
  all?: boolean;
  follow?: boolean;
  since?: string;
  until?: string;
  output: OutputFormat;
  printNodeName?: boolean;
  printPolicyNames?: boolean;
  timeFormat: string;
  compat?: string;
  color: string;
  allowlist: string[];
  denylist: string[];
  printRawFilters?: boolean;
}

interface FilterFlag {
  readonly flags: string;
  readonly description: string;
  readonly apply: (t: FlagTracker, v: string) => void;
}

/** A FilterTracker bound to the flag being applied (hubble checks flag conflicts by name). */
interface FlagTracker {
  not(): void;
  all<K extends Parameters<FilterTracker['all']>[1]>(key: K, value: unknown): void;
  either(
    src: Parameters<FilterTracker['either']>[1],
    dst: Parameters<FilterTracker['either']>[2],
    value: unknown,
  ): void;
  namespace(direction: 'both' | 'source' | 'destination', ns: string): void;
  allNamespaces(direction: 'both' | 'source' | 'destination'): void;
  celExpression(expr: string): void;
}

function bind(t: FilterTracker, flag: string): FlagTracker {
  return {
    not: () => t.not(),
    all: (key, value) => t.all(flag, key, value as never),
    either: (src, dst, value) => t.either(flag, src, dst, value as never),
    namespace: (direction, ns) => t.namespace(flag, direction, ns),
    allNamespaces: (direction) => t.allNamespaces(flag, direction),
    celExpression: (expr) => t.celExpression(flag, expr),
  };
}

const eitherFlag = (
  flags: string,
  description: string,
  src: Parameters<FilterTracker['either']>[1],
  dst: Parameters<FilterTracker['either']>[2],
  parse: (v: string) => unknown = (v) => v,
): FilterFlag[] => {
  const [short, long] = flags.includes(',') ? flags.split(', ') : [undefined, flags];
  const [name, arg] = long!.split(' ');
  return [
    {
      flags: `--from-${name!.slice(2)} ${arg}`,
      description: `${description} (source)`,
      apply: (t, v) => t.all(src, parse(v) as never),
    },
    {
      flags: short ? `${short}, ${name} ${arg}` : `${name} ${arg}`,
      description: `${description} (source or destination)`,
      apply: (t, v) => t.either(src, dst, parse(v) as never),
    },
    {
      flags: `--to-${name!.slice(2)} ${arg}`,
      description: `${description} (destination)`,
      apply: (t, v) => t.all(dst, parse(v) as never),
    },
  ];
};

const FILTER_FLAGS: FilterFlag[] = [
  { flags: '--not', description: 'exclude flows matching the next filter flag', apply: (t) => t.not() },
  { flags: '--uuid <uuid>', description: 'flows with this uuid', apply: (t, v) => t.all('uuid', v) },
  {
    flags: '--node-name <pattern>',
    description: 'flows seen on nodes matching this pattern',
    apply: (t, v) => t.all('node_name', v),
  },
  {
    flags: '--node-label <selector>',
    description: 'flows seen on nodes with these labels',
    apply: (t, v) => t.all('node_labels', v),
  },
  ...eitherFlag('--cluster <name>', 'flows of this cluster', 'source_cluster_name', 'destination_cluster_name'),
  {
    flags: '--protocol <proto>',
    description: 'flows of this L4 or L7 protocol (tcp, udp, icmp, http, dns, ...)',
    apply: (t, v) => t.all('protocol', v),
  },
  {
    flags: '--tcp-flags <flags>',
    description: 'TCP flows with all of these flags (e.g. SYN,ACK)',
    apply: (t, v) => t.all('tcp_flags', parseTcpFlags(v)),
  },
  {
    flags: '-t, --type <type>',
    description: 'event type[:subtype]: trace, drop, l7, policy-verdict, capture, trace-sock',
    apply: (t, v) => t.all('event_type', parseEventType(v)),
  },
  {
    flags: '--verdict <verdict>',
    description: 'FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED',
    apply: (t, v) => t.all('verdict', parseEnum('flow.Verdict', v, '--verdict')),
  },
  {
    flags: '--drop-reason-desc <reason>',
    description: 'drop reason (e.g. POLICY_DENIED)',
    apply: (t, v) => t.all('drop_reason_desc', parseEnum('flow.DropReason', v, '--drop-reason-desc')),
  },
  {
    flags: '--http-status <code>',
    description: 'HTTP status code or prefix (404, 4+, 50+)',
    apply: (t, v) => t.all('http_status_code', v),
  },
  { flags: '--http-method <method>', description: 'HTTP method', apply: (t, v) => t.all('http_method', v) },
  { flags: '--http-path <regex>', description: 'HTTP path (RE2)', apply: (t, v) => t.all('http_path', v) },
  { flags: '--http-url <regex>', description: 'HTTP URL (RE2)', apply: (t, v) => t.all('http_url', v) },
  {
    flags: '--http-header <key:value>',
    description: 'HTTP header',
    apply: (t, v) => t.all('http_header', parseHeader(v)),
  },
  { flags: '--trace-id <id>', description: 'trace id', apply: (t, v) => t.all('trace_id', v) },
  { flags: '--ip-trace-id <id>', description: 'IP option trace id', apply: (t, v) => t.all('ip_trace_id', Number(v)) },
  ...eitherFlag('--fqdn <name>', 'flows of this DNS name (wildcards: *)', 'source_fqdn', 'destination_fqdn'),
  ...eitherFlag('--ip <ip>', 'flows of this IP or CIDR', 'source_ip', 'destination_ip'),
  {
    flags: '--snat-ip <ip>',
    description: 'flows whose source was translated to this IP',
    apply: (t, v) => t.all('source_ip_xlated', v),
  },
  { flags: '-4, --ipv4', description: 'IPv4 flows only', apply: (t) => t.all('ip_version', 1) },
  { flags: '-6, --ipv6', description: 'IPv6 flows only', apply: (t) => t.all('ip_version', 2) },
  { flags: '--ip-version <version>', description: '4 or 6', apply: (t, v) => t.all('ip_version', parseIpVersion(v)) },
  ...eitherFlag('--pod <[namespace/]pod>', 'flows of pods with this name prefix', 'source_pod', 'destination_pod'),
  {
    flags: '--from-namespace <namespace>',
    description: 'flows from this namespace (also qualifies --pod/--service names without one)',
    apply: (t, v) => t.namespace('source', v),
  },
  {
    flags: '-n, --namespace <namespace>',
    description: 'flows from or to this namespace (also qualifies --pod/--service names without one)',
    apply: (t, v) => t.namespace('both', v),
  },
  {
    flags: '--to-namespace <namespace>',
    description: 'flows to this namespace (also qualifies --pod/--service names without one)',
    apply: (t, v) => t.namespace('destination', v),
  },
  {
    flags: '--from-all-namespaces',
    description: 'flows from any namespace (--from-pod/--from-service names in any namespace)',
    apply: (t) => t.allNamespaces('source'),
  },
  {
    flags: '-A, --all-namespaces',
    description: 'flows from or to any namespace (--pod/--service names in any namespace)',
    apply: (t) => t.allNamespaces('both'),
  },
  {
    flags: '--to-all-namespaces',
    description: 'flows to any namespace (--to-pod/--to-service names in any namespace)',
    apply: (t) => t.allNamespaces('destination'),
  },
  ...eitherFlag(
    '-l, --label <selector>',
    'flows of endpoints matching this label selector',
    'source_label',
    'destination_label',
  ),
  ...eitherFlag('--service <[namespace/]service>', 'flows of this service', 'source_service', 'destination_service'),
  ...eitherFlag('--port <port>', 'flows of this L4 port', 'source_port', 'destination_port'),
  ...eitherFlag(
    '--workload <[kind/]name>',
    'flows of this workload',
    'source_workload',
    'destination_workload',
    parseWorkload,
  ),
  ...eitherFlag(
    '--identity <identity>',
    'flows of this security identity (number or reserved name)',
    'source_identity',
    'destination_identity',
    parseIdentity,
  ),
  {
    flags: '--traffic-direction <direction>',
    description: 'ingress or egress',
    apply: (t, v) => t.all('traffic_direction', parseDirection(v)),
  },
  {
    flags: '--interface <name>',
    description: 'flows seen on this network interface',
    apply: (t, v) => t.all('interface', { name: v }),
  },
  {
    flags: '--cel-expression <expr>',
    description: 'flows for which this CEL expression over _flow is true (repeatable: any of them)',
    apply: (t, v) => t.celExpression(v),
  },
  { flags: '--encrypted', description: 'encrypted flows only', apply: (t) => t.all('encrypted', true) },
  { flags: '--unencrypted', description: 'unencrypted flows only', apply: (t) => t.all('encrypted', false) },
];

/** The long names of the filter flags (`namespace`, `to-pod`, `not`, ...), for callers other than the CLI. */
export function filterFlagNames(): string[] {
  return FILTER_FLAGS.map((f) => new Option(f.flags).name());
}

/** Builds the allowlist and denylist from the filter flags in command-line order. */
export function buildFilters(
  ops: readonly [string, string | true][],
  allowJson: readonly string[] = [],
  denyJson: readonly string[] = [],
): { whitelist: FlowFilter[]; blacklist: FlowFilter[] } {
  const byName = new Map(FILTER_FLAGS.map((f) => [new Option(f.flags).attributeName(), f]));
  const t = new FilterTracker();
  for (const [name, v] of ops) {
    const flag = byName.get(name)!;
    flag.apply(bind(t, new Option(flag.flags).name()), typeof v === 'string' ? v : '');
  }
  const whitelist = t.allowlist();
  const blacklist = t.denylist();
  const filterType = protoType('flow.FlowFilter');
  for (const [i, j] of allowJson.entries()) whitelist.push(parseFilterJson(filterType, j, `--allowlist[${i}]`));
  for (const [i, j] of denyJson.entries()) blacklist.push(parseFilterJson(filterType, j, `--denylist[${i}]`));
  return { whitelist, blacklist };
}

/** Relative ("30s", "1h43m", "2m ago") or absolute (RFC 3339, "2006-01-02 15:04:05", "2006-01-02"). */
export function parseTimeArg(text: string, flag: string, nowMs: number): Timestamp {
  const rel = /^((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)(?:\s+ago)?$/.exec(text.trim());
  if (rel !== null) {
    const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    let ms = 0;
    for (const m of rel[1]!.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * unit[m[2]!]!;
    return msToTimestamp(nowMs - ms);
  }
  const abs = /^\d{4}-\d\d-\d\d$/.test(text) ? `${text}T00:00:00` : text.replace(' ', 'T');
  const ms = Date.parse(abs);
  if (Number.isNaN(ms))
    throw new CliError(
      'MBR_CLI_USAGE',
      `${flag}: expected a duration ago like "30s" or "1h5m", or a time like "2026-01-02T15:04:05Z", got ${JSON.stringify(text)}`,
      EXIT_USAGE,
    );
  const frac = /\.(\d{1,9})/.exec(abs);
  const t = msToTimestamp(ms);
  if (frac !== null) t.nanos = Number(frac[1]!.padEnd(9, '0'));
  return t;
}

async function runObserve(opts: ObserveOptions, ops: readonly [string, string | true][]): Promise<void> {
  let filters: { whitelist: FlowFilter[]; blacklist: FlowFilter[] };
  try {
    filters = buildFilters(ops, opts.allowlist, opts.denylist);
    compileFlowFilters(filters.whitelist, filters.blacklist);
  } catch (err) {
    throw usage(err);
  }
  if (opts.printRawFilters) {
    process.stdout.write(rawFiltersText(filters.whitelist, filters.blacklist));
    return;
  }
  if (opts.first !== undefined && opts.follow)
    throw new CliError('MBR_CLI_USAGE', '--first cannot be combined with --follow', EXIT_USAGE);
  const now = Date.now();
  const selected =
    opts.last !== undefined || opts.first !== undefined || opts.all || opts.follow || opts.since || opts.until;
  const request = {
    number: opts.first ?? opts.last ?? (selected ? 0 : 20),
    first: opts.first !== undefined,
    follow: opts.follow === true,
    since: opts.since === undefined ? undefined : parseTimeArg(opts.since, '--since', now),
    until: opts.until === undefined ? undefined : parseTimeArg(opts.until, '--until', now),
    whitelist: filters.whitelist,
    blacklist: filters.blacklist,
  };
  const compat = parseCompat(opts.compat, process.env.HUBBLE_COMPAT);
  const printer = new FlowPrinter({
    format: opts.output,
    legacyJsonOutput: compat.legacyJsonOutput,
    printNodeName: opts.printNodeName,
    printPolicyNames: opts.printPolicyNames,
    timeFormat: opts.timeFormat,
    color:
      opts.color === 'always' ||
      (opts.color === 'auto' && process.stdout.isTTY === true && opts.output !== 'json' && opts.output !== 'jsonpb'),
  });
  const out = (s: string) => {
    if (s !== '') process.stdout.write(s);
  };
  if (opts.inputFile !== undefined) {
    // `... | head`: once the reader has gone, stop reading the input instead of crashing on EPIPE.
    let isClosed = false;
    const onError = (e: Error & { code?: string }) => {
      if (e.code !== 'EPIPE') throw e;
      isClosed = true;
    };
    process.stdout.on('error', onError);
    try {
      for await (const r of replayInputFile(opts.inputFile, request)) {
        if (isClosed) return;
        out(printer.write(r));
      }
      if (!isClosed) out(printer.end());
    } finally {
      if (!isClosed) process.stdout.off('error', onError);
    }
    return;
  }
  const server = opts.server ?? defaultServer();
  const client = observerClient(server);
  try {
    await new Promise<void>((resolve, reject) => {
      const call = client.GetFlows(request) as grpc.ClientReadableStream<FlowsResponse>;
      const stop = () => call.cancel();
      process.once('SIGINT', stop);
      // Node status goes to stderr in every format, jsonpb too (as hubble's printer does), so
      // that stdout stays one flow per line for pipes and `-o json` parsers.
      call.on('data', (r: FlowsResponse) =>
        r.node_status !== undefined ? process.stderr.write(printer.write(r)) : out(printer.write(r)),
      );
      call.on('error', (e: Error & { code?: number; details?: string }) => {
        process.off('SIGINT', stop);
        if (e.code === 1) resolve();
        else reject(grpcFailure(server, 'GetFlows', e));
      });
      call.on('end', () => {
        process.off('SIGINT', stop);
        resolve();
      });
    });
  } finally {
    client.close();
  }
  out(printer.end());
}

/**
 * Replays a jsonpb file ("-" for stdin) line by line through the filters a server uses: the
 * whole input, at bounded memory (see src/hubble/observer/flow-replay.ts). The bench calls this.
 */
export async function* replayInputFile(
  file: string,
  request: {
    number: number;
    first: boolean;
    since?: Timestamp;
    until?: Timestamp;
    whitelist: FlowFilter[];
    blacklist: FlowFilter[];
  },
): AsyncGenerator<FlowsResponse> {
  const match = compileFlowFilters(request.whitelist, request.blacklist);
  const input = file === '-' ? process.stdin : await openInput(file);
  try {
    // As hubble's reader: a line that does not decode is skipped, with a warning that names it.
    const onBadLine = (err: ReplayError) => process.stderr.write(`membrane: ${err.message}; line skipped\n`);
    yield* replayFlows(readLines(input, file === '-' ? 'stdin' : file), file === '-' ? 'stdin' : file, match, {
      ...request,
      onBadLine,
    });
  } catch (err) {
    if (err instanceof ReplayError)
      throw new CliError(err.code, err.message, err.code === 'MBR_CLI_USAGE' ? EXIT_USAGE : undefined);
    if ((err as { code?: string }).code?.startsWith('E'))
      throw new CliError('MBR_INPUT_FILE', `--input-file ${file}: ${(err as Error).message}`);
    throw err;
  } finally {
    // --first stops early: let go of the file (stdin is left to the process).
    if (input !== process.stdin) input.destroy();
  }
}

async function runStatus(server: string, output: string): Promise<void> {
  const client = observerClient(server);
  try {
    const s = await unary<Record<string, number | string | { value?: number } | string[]>>(
      client,
      'ServerStatus',
      server,
    );
    if (output === 'json') {
      process.stdout.write(`${JSON.stringify(toProtoJson(protoType('observer.ServerStatusResponse'), s), null, 2)}\n`);
      return;
    }
    const num = Number(s.num_flows ?? 0);
    const max = Number(s.max_flows ?? 0);
    const pct = max === 0 ? 0 : (num / max) * 100;
    const lines = [
      `Healthcheck (via ${server}): Ok`,
      `Current/Max Flows: ${num.toLocaleString('en-US')}/${max.toLocaleString('en-US')} (${pct.toFixed(2)}%)`,
      `Flows/s: ${Number(s.flows_rate ?? 0).toFixed(2)}`,
    ];
    const connected = (s.num_connected_nodes as { value?: number } | undefined)?.value;
    const unavailable = (s.num_unavailable_nodes as { value?: number } | undefined)?.value;
    if (connected !== undefined || unavailable !== undefined) {
      lines.push(`Connected Nodes: ${connected ?? 0}/${(connected ?? 0) + (unavailable ?? 0)}`);
      const names = (s.unavailable_nodes as string[] | undefined) ?? [];
      if ((unavailable ?? 0) > 0) lines.push(`Unavailable Nodes: ${unavailable}`, ...names.map((n) => `  - ${n}`));
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    client.close();
  }
}

async function runListNodes(server: string, output: string): Promise<void> {
  const client = observerClient(server);
  try {
    const r = await unary<{ nodes?: Record<string, unknown>[] }>(client, 'GetNodes', server);
    const nodes = (r.nodes ?? []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    if (output === 'json') {
      const nodeType = protoType('observer.Node');
      process.stdout.write(
        `${JSON.stringify(
          nodes.map((n) => toProtoJson(nodeType, n)),
          null,
          2,
        )}\n`,
      );
      return;
    }
    const states = ['Unknown', 'Connected', 'Unavailable', 'Gone', 'Error'];
    const rows = nodes.map((n) => {
      const num = Number(n.num_flows ?? 0);
      const max = Number(n.max_flows ?? 0);
      const connected = n.state === 1;
      return [
        String(n.name),
        states[Number(n.state ?? 0)] ?? 'Unknown',
        connected ? formatAge(Number(n.uptime_ns ?? 0)) : 'N/A',
        connected
          ? Number(n.uptime_ns) > 0
            ? (Number(n.seen_flows ?? 0) / (Number(n.uptime_ns) / 1e9)).toFixed(2)
            : '0.00'
          : 'N/A',
        connected ? `${num}/${max} (${(max === 0 ? 0 : (num / max) * 100).toFixed(2)}%)` : 'N/A',
      ];
    });
    process.stdout.write(alignColumns([['NAME', 'STATUS', 'AGE', 'FLOWS/S', 'CURRENT/MAX-FLOWS'], ...rows]));
  } finally {
    client.close();
  }
}

/** The filters as hubble's --print-raw-filters shows them: YAML lists of FlowFilter JSON strings. */
export function rawFiltersText(allow: readonly FlowFilter[], deny: readonly FlowFilter[]): string {
  const type = protoType('flow.FlowFilter');
  const list = (name: string, fs: readonly FlowFilter[]) =>
    fs.length === 0
      ? `${name}: []\n`
      : `${name}:\n${fs.map((f) => `- '${JSON.stringify(toProtoJson(type, f)).replace(/'/g, "''")}'\n`).join('')}`;
  return list('allowlist', allow) + list('denylist', deny);
}

export const COMPAT_OPTIONS = ['legacy-json-output'] as const;

/**
 * The --compat flag, else the HUBBLE_COMPAT variable (hubble's only way to set these). Unknown
 * names in the variable are ignored like hubble does (forward compatibility); in the flag they
 * are a usage error.
 */
export function parseCompat(flag: string | undefined, env: string | undefined): { legacyJsonOutput: boolean } {
  const names = (flag ?? env ?? '')
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n !== '');
  if (flag !== undefined)
    for (const n of names)
      if (!(COMPAT_OPTIONS as readonly string[]).includes(n))
        throw new CliError(
          'MBR_CLI_USAGE',
          `--compat: expected one of ${COMPAT_OPTIONS.join(', ')}, got ${JSON.stringify(n)}`,
          EXIT_USAGE,
        );
  return { legacyJsonOutput: names.includes('legacy-json-output') };
}

function defaultServer(): string {
  return existsSync(DEFAULT_SOCKET_PATH) ? `unix://${DEFAULT_SOCKET_PATH}` : DEFAULT_RELAY_SERVER;
}

function unary<T>(client: ReturnType<typeof observerClient>, method: string, server: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10_000);
    (client[method] as (r: object, o: object, cb: (e: Error | null, v: T) => void) => void)({}, { deadline }, (e, v) =>
      e ? reject(grpcFailure(server, method, e as Error & { code?: number; details?: string })) : resolve(v),
    );
  });
}

function grpcFailure(server: string, method: string, e: Error & { code?: number; details?: string }): CliError {
  if (e.code === 3) return new CliError('MBR_FILTER_INVALID', `invalid request: ${e.details}`, EXIT_USAGE);
  return new CliError('MBR_FLOW_SERVER', `${method} on ${server}: ${e.details ?? e.message}`);
}

function usage(err: unknown): CliError {
  const e = err as Error & { code?: string };
  return new CliError(e.code ?? 'MBR_CLI_USAGE', e.message, EXIT_USAGE);
}

/** Opens the file, failing here (not on the first read) when it is missing or unreadable. */
async function openInput(file: string): Promise<ReadStream> {
  const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
  try {
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
  } catch (err) {
    throw new CliError('MBR_INPUT_FILE', `--input-file ${file}: ${(err as Error).message}`);
  }
  return stream;
}

function parseFilterJson(type: ReturnType<typeof protoType>, text: string, flag: string): FlowFilter {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CliError(
      'MBR_CLI_USAGE',
      `${flag}: expected a FlowFilter as JSON, got ${(err as Error).message}`,
      EXIT_USAGE,
    );
  }
  return fromProtoJson(type, json, flag) as FlowFilter;
}

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v))
    throw new CliError('MBR_CLI_USAGE', `expected a whole number, got ${JSON.stringify(v)}`, EXIT_USAGE);
  return Number(v);
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'];

function parseTcpFlags(v: string): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const raw of v.split(',')) {
    const f = raw.trim().toUpperCase();
    if (!TCP_FLAG_NAMES.includes(f))
      throw new CliError(
        'MBR_CLI_USAGE',
        `--tcp-flags: expected flags among ${TCP_FLAG_NAMES.join(', ')}, got ${JSON.stringify(raw)}`,
        EXIT_USAGE,
      );
    out[f] = true;
  }
  return out;
}

const EVENT_TYPES: Readonly<Record<string, number>> = {
  drop: 1,
  debug: 2,
  capture: 3,
  trace: 4,
  'policy-verdict': 5,
  recorder: 6,
  'trace-sock': 7,
  l7: 129,
  agent: 130,
};

function parseEventType(v: string): { type: number; match_sub_type?: boolean; sub_type?: number } {
  const [name, sub] = v.split(':', 2) as [string, string | undefined];
  const type = EVENT_TYPES[name] ?? (/^\d+$/.test(name) ? Number(name) : undefined);
  if (type === undefined)
    throw new CliError(
      'MBR_CLI_USAGE',
      `--type: expected one of ${Object.keys(EVENT_TYPES).join(', ')} (optionally :subtype), got ${JSON.stringify(v)}`,
      EXIT_USAGE,
    );
  if (sub === undefined) return { type };
  let subType: number | undefined = /^\d+$/.test(sub) ? Number(sub) : undefined;
  if (subType === undefined && type === 4) subType = TRACE_POINT_NAMES.indexOf(sub);
  if (subType === undefined && type === 1) {
    const e = Object.entries(DROP_REASON_NAMES).find(([, n]) => n === sub.toUpperCase());
    subType = e === undefined ? undefined : Number(e[0]);
  }
  if (subType === undefined || subType < 0)
    throw new CliError('MBR_CLI_USAGE', `--type: unknown subtype ${JSON.stringify(sub)} for ${name}`, EXIT_USAGE);
  return { type, match_sub_type: true, sub_type: subType };
}

function parseEnum(typeName: string, v: string, flag: string): number {
  const e = protoType('flow.Flow').root.lookupEnum(typeName);
  const n = e.values[v.toUpperCase()];
  if (n === undefined)
    throw new CliError(
      'MBR_CLI_USAGE',
      `${flag}: expected one of ${Object.keys(e.values).join(', ')}, got ${JSON.stringify(v)}`,
      EXIT_USAGE,
    );
  return n;
}

function parseHeader(v: string): { key: string; value: string } {
  const i = v.indexOf(':');
  if (i <= 0)
    throw new CliError('MBR_CLI_USAGE', `--http-header: expected key:value, got ${JSON.stringify(v)}`, EXIT_USAGE);
  return { key: v.slice(0, i), value: v.slice(i + 1) };
}

function parseIpVersion(v: string): number {
  const n = { '4': 1, v4: 1, ipv4: 1, '6': 2, v6: 2, ipv6: 2 }[v.toLowerCase()];
  if (n === undefined)
    throw new CliError('MBR_CLI_USAGE', `--ip-version: expected 4 or 6, got ${JSON.stringify(v)}`, EXIT_USAGE);
  return n;
}

function parseWorkload(v: string): { name?: string; kind?: string } {
  const i = v.indexOf('/');
  return i < 0 ? { name: v } : { kind: v.slice(0, i), name: v.slice(i + 1) };
}

function parseIdentity(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const e = Object.entries(RESERVED_IDENTITY_NAMES).find(([, n]) => n === v.replace(/^reserved:/, ''));
  if (e === undefined)
    throw new CliError(
      'MBR_CLI_USAGE',
      `--identity: expected a number or a reserved identity name (host, world, ...), got ${JSON.stringify(v)}`,
      EXIT_USAGE,
    );
  return Number(e[0]);
}

function parseDirection(v: string): number {
  const n = { ingress: 1, egress: 2 }[v.toLowerCase()];
  if (n === undefined)
    throw new CliError(
      'MBR_CLI_USAGE',
      `--traffic-direction: expected ingress or egress, got ${JSON.stringify(v)}`,
      EXIT_USAGE,
    );
  return n;
}

function msToTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

function formatAge(ns: number): string {
  let s = Math.floor(ns / 1e9);
  const d = Math.floor(s / 86400);
  s %= 86400;
  const h = Math.floor(s / 3600);
  s %= 3600;
  const m = Math.floor(s / 60);
  s %= 60;
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
