// Hubble's metric option strings: "dns:query;ignoreAAAA", "flow:sourceContext=namespace|pod;
// destinationContext=pod", "httpV2:exemplars=true;labelsContext=source_ip,destination_namespace".
// A name, then ";"-separated options, each a bare flag or key=value.

export class MetricOptionError extends Error {
  readonly code = 'MBR_METRICS_OPTION_INVALID';
  constructor(spec: string, expected: string, got: string) {
    super(`metrics option ${JSON.stringify(spec)}: expected ${expected}, got ${JSON.stringify(got)}`);
    this.name = 'MetricOptionError';
  }
}

export const METRIC_NAMES = [
  'flow',
  'drop',
  'tcp',
  'port-distribution',
  'icmp',
  'dns',
  'http',
  'httpV2',
  'kafka',
  'policy',
  'flows-to-world',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

export const CONTEXT_VALUES = [
  'identity',
  'namespace',
  'pod',
  'pod-short',
  'pod-name',
  'dns',
  'ip',
  'reserved-identity',
  'workload-name',
  'app',
] as const;
export const LABELS_CONTEXT = [
  'source_ip',
  'source_pod',
  'source_namespace',
  'source_workload',
  'source_app',
  'destination_ip',
  'destination_pod',
  'destination_namespace',
  'destination_workload',
  'destination_app',
  'traffic_direction',
] as const;

export interface ContextOptions {
  /** Fallback chains, e.g. [["namespace"], ["pod", "ip"]] for "namespace" and "pod|ip". */
  readonly source?: readonly string[];
  readonly sourceEgress?: readonly string[];
  readonly sourceIngress?: readonly string[];
  readonly destination?: readonly string[];
  readonly destinationEgress?: readonly string[];
  readonly destinationIngress?: readonly string[];
  readonly labels: readonly string[];
}

export interface MetricSpec {
  readonly name: MetricName;
  readonly flags: ReadonlySet<string>;
  readonly values: ReadonlyMap<string, string>;
  readonly context: ContextOptions;
}

const CONTEXT_KEYS: Readonly<Record<string, keyof Omit<ContextOptions, 'labels'>>> = {
  sourceContext: 'source',
  sourceEgressContext: 'sourceEgress',
  sourceIngressContext: 'sourceIngress',
  destinationContext: 'destination',
  destinationEgressContext: 'destinationEgress',
  destinationIngressContext: 'destinationIngress',
};

const FLAGS: Readonly<Record<string, readonly string[]>> = { dns: ['query', 'ignoreAAAA'] };
const VALUES: Readonly<Record<string, readonly string[]>> = { http: ['exemplars'], httpV2: ['exemplars'] };

export function parseMetricSpec(spec: string): MetricSpec {
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  if (!(METRIC_NAMES as readonly string[]).includes(name))
    throw new MetricOptionError(spec, `a metric name (${METRIC_NAMES.join(', ')})`, name);
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const context: { -readonly [K in keyof ContextOptions]: ContextOptions[K] } = { labels: [] };
  const rest = colon < 0 ? '' : spec.slice(colon + 1);
  for (const opt of rest.split(';').filter((o) => o !== '')) {
    const eq = opt.indexOf('=');
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? '' : opt.slice(eq + 1);
    const ctxKey = CONTEXT_KEYS[key];
    if (ctxKey !== undefined) {
      const chain = value.split('|');
      for (const c of chain)
        if (!(CONTEXT_VALUES as readonly string[]).includes(c))
          throw new MetricOptionError(spec, `${key} values among ${CONTEXT_VALUES.join('|')}`, c);
      context[ctxKey] = chain;
    } else if (key === 'labelsContext') {
      const labels = value.split(',');
      for (const l of labels)
        if (!(LABELS_CONTEXT as readonly string[]).includes(l))
          throw new MetricOptionError(spec, `labelsContext labels among ${LABELS_CONTEXT.join(',')}`, l);
      context.labels = labels;
    } else if (eq < 0 && (FLAGS[name] ?? []).includes(key)) flags.add(key);
    else if (eq >= 0 && (VALUES[name] ?? []).includes(key)) values.set(key, value);
    else throw new MetricOptionError(spec, `an option of ${name}`, opt);
  }
  return { name: name as MetricName, flags, values, context };
}

/**
 * Splits a `--hubble-metrics` value into option strings. Options are separated by spaces (the way
 * Cilium's config map writes them) or commas (the way its command line does); a comma inside
 * `labelsContext=a,b` separates label names, not options, so a comma splits only when a metric
 * name follows it.
 */
export function splitMetricOptions(text: string): string[] {
  const out: string[] = [];
  for (const word of text.split(/\s+/)) {
    if (word === '') continue;
    let current = '';
    for (const part of word.split(',')) {
      if (part === '') continue;
      const name = part.split(':', 1)[0]!;
      if (current !== '' && !(METRIC_NAMES as readonly string[]).includes(name)) current += `,${part}`;
      else {
        if (current !== '') out.push(current);
        current = part;
      }
    }
    if (current !== '') out.push(current);
  }
  return out;
}
