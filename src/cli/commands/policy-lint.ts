// `membrane policy lint -f FILE|DIR [--world FILE|DIR] [--live]`: the known traps of network
// policy (src/policy/policy-lint.ts), offline or against the running cluster. Exit 1 when any
// finding is an error.
import type { Command } from 'commander';
import type { Endpoint, PolicySet } from '../../agent/api-types.js';
import { ManifestError } from '../../policy/manifest-reader.js';
import { PolicyError } from '../../policy/policy-error.js';
import { formatLintFinding, type LintDocument, type LintWorld, lintPolicies } from '../../policy/policy-lint.js';
import { parsePolicyObject } from '../../policy/policy-parser.js';
import type { Namespace, Pod } from '../../policy/world.js';
import { addTargetOptions, resolveTargets, type TargetOptions } from '../agent-target.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { listManifestFiles, readManifestFile } from '../manifest-files.js';

interface LintOptions extends TargetOptions {
  file: string[];
  world: string[];
  live?: boolean;
  output: string;
}

export function registerPolicyLint(group: Command): void {
  addTargetOptions(
    group
      .command('lint')
      .description('Find the known traps in policy: toFQDNs without DNS rules, selectors matching nothing, ...')
      .option('-f, --file <path>', 'policy file or directory (repeatable)', collect, [])
      .option(
        '--world <path>',
        'Namespace and Pod manifests to judge selectors and ports against (repeatable)',
        collect,
        [],
      )
      .option('--live', 'judge against the running cluster: its pods are the world, its policies the context')
      .option('-o, --output <format>', 'output format: text or json', 'text'),
  ).action(async (o: LintOptions) => runLint(o));
}

async function runLint(o: LintOptions): Promise<void> {
  if (!['text', 'json'].includes(o.output))
    throw new CliError('MBR_USAGE', `--output: expected text or json, got "${o.output}"`, EXIT_USAGE);
  if (o.file.length === 0 && !o.live)
    throw new CliError('MBR_USAGE', 'policy lint: pass -f FILE|DIR, or --live to lint the running cluster', EXIT_USAGE);
  const docs: LintDocument[] = o.file.flatMap((p) => readDocs(p).map((d) => ({ ...d })));
  let world: LintWorld | undefined = o.world.length > 0 ? readWorld(o.world) : undefined;
  if (o.live) {
    const live = await readLive(o);
    world = mergeWorlds(world, live.world);
    // The cluster's policies judge the files (a DNS rule may live in another policy); with no
    // files, they are what is linted.
    docs.push(...live.docs.map((d) => ({ ...d, isContext: o.file.length > 0 })));
  }
  const findings = lintPolicies(docs, world);
  if (o.output === 'json') process.stdout.write(`${JSON.stringify(findings, null, 2)}\n`);
  else for (const f of findings) process.stdout.write(`${formatLintFinding(f)}\n`);
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.length - errors;
  if (o.output !== 'json')
    process.stdout.write(
      `${docs.filter((d) => !d.isContext).length} documents: ${errors} errors, ${warnings} warnings\n`,
    );
  if (errors > 0) throw new CliError('MBR_LINT_FAILED', `policy lint: ${errors} ${errors === 1 ? 'error' : 'errors'}`);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function readDocs(path: string): LintDocument[] {
  let files: string[];
  try {
    files = listManifestFiles(path, { recursive: true });
  } catch (e) {
    throw new CliError('MBR_NOT_FOUND', `${path}: cannot read: ${(e as Error).message}`);
  }
  return files.flatMap((f) => {
    try {
      return readManifestFile(f).documents.map((d) => ({ file: f, document: d.document, value: d.value }));
    } catch (e) {
      if (e instanceof ManifestError) throw new CliError(e.code, e.message);
      throw new CliError('MBR_NOT_FOUND', `${f}: cannot read: ${(e as Error).message}`);
    }
  });
}

/** Namespace and Pod documents of world files (other kinds are skipped). */
function readWorld(paths: readonly string[]): LintWorld {
  const namespaces: Namespace[] = [];
  const pods: Pod[] = [];
  for (const p of paths)
    for (const d of readDocs(p)) {
      if (d.value.kind !== 'Namespace' && d.value.kind !== 'Pod') continue;
      try {
        const parsed = parsePolicyObject(d.value, d.file, d.document);
        namespaces.push(...parsed.namespaces);
        pods.push(...parsed.pods);
      } catch (e) {
        if (e instanceof PolicyError) throw new CliError(e.code, e.message);
        throw e;
      }
    }
  return { namespaces, pods };
}

async function readLive(o: TargetOptions): Promise<{ world: LintWorld; docs: LintDocument[] }> {
  const targets = resolveTargets(o);
  const pods: Pod[] = [];
  for (const t of targets)
    for (const e of await t.client.get<Endpoint[]>('/v1/endpoint'))
      pods.push({ namespace: e.namespace, name: e.podName, labels: e.labels, ports: e.ports ?? [], podIPs: [e.ipv4] });
  const set = await targets[0]!.client.get<PolicySet>('/v1/policy');
  const docs = set.policies.map((p, i) => ({
    file: `cluster:${p.source}`,
    document: i + 1,
    value: p.doc as Record<string, unknown>,
  }));
  const namespaces = [...new Set(pods.map((p) => p.namespace))].map((name) => ({ name, labels: {} }));
  return { world: { namespaces, pods }, docs };
}

function mergeWorlds(a: LintWorld | undefined, b: LintWorld): LintWorld {
  if (!a) return b;
  return { namespaces: [...a.namespaces, ...b.namespaces], pods: [...a.pods, ...b.pods] };
}
