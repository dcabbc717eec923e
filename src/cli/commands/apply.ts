// `membrane apply -f` / `membrane delete -f`: load policy and `v1 Service` files into the running
// lab. All files are read and validated first; any bad document rejects the whole request and the
// running policy stays as it was. Services go to the agent's /v1/service, the rest to /v1/policy.
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import type { StoredPolicy } from '../../agent/api-types.js';
import { isServiceDocument, parseServiceObject } from '../../lb/service.js';
import type { ManifestDocument } from '../../policy/manifest-reader.js';
import { parsePolicyObject } from '../../policy/policy-parser.js';
import { addTargetOptions, resolveTargets } from '../agent-target.js';
import { CliError } from '../errors.js';
import { listManifestFiles, readManifestFile } from '../manifest-files.js';

export interface PolicyFileDocs {
  readonly file: string;
  readonly documents: readonly ManifestDocument[];
  /** The documents' values, as sent to the agent. */
  readonly docs: Record<string, unknown>[];
}

export function registerApply(program: Command): void {
  addTargetOptions(
    program
      .command('apply')
      .description('Validate policy files and apply them to the running agent (all or nothing)')
      .requiredOption('-f, --file <path...>', 'policy file or directory'),
  ).action(async (o) => {
    const files = await readAndValidate(o.file);
    const [t] = resolveTargets(o);
    const source = files.map((f) => f.file).join(',');
    const { policies, services } = splitDocs(files);
    let revision = 0;
    if (services.length > 0)
      revision = (await t.client.put<{ revision: number }>('/v1/service', { docs: services, source })).revision;
    if (policies.length > 0 || services.length === 0)
      revision = (await t.client.put<{ revision: number }>('/v1/policy', { docs: policies, source })).revision;
    await waitEveryNode(o, revision);
    for (const f of files) for (const d of f.docs) process.stdout.write(`${describe(d)} applied\n`);
    process.stdout.write(`Revision: ${revision}\n`);
  });
  addTargetOptions(
    program
      .command('delete')
      .description('Remove the policies named in files from the running agent')
      .requiredOption('-f, --file <path...>', 'policy file or directory'),
  ).action(async (o) => {
    const files = readPolicyFiles(o.file);
    const [t] = resolveTargets(o);
    const source = files.map((f) => f.file).join(',');
    const { policies, services } = splitDocs(files);
    let revision = 0;
    if (services.length > 0)
      revision = (await t.client.delete<{ revision: number }>('/v1/service', { docs: services, source })).revision;
    if (policies.length > 0 || services.length === 0)
      revision = (await t.client.delete<{ revision: number }>('/v1/policy', { docs: policies, source })).revision;
    await waitEveryNode(o, revision);
    for (const f of files) for (const d of f.docs) process.stdout.write(`${describe(d)} deleted\n`);
    process.stdout.write(`Revision: ${revision}\n`);
  });
}

function splitDocs(files: readonly PolicyFileDocs[]): {
  policies: Record<string, unknown>[];
  services: Record<string, unknown>[];
} {
  const all = files.flatMap((f) => f.docs);
  return { policies: all.filter((d) => !isServiceDocument(d)), services: all.filter(isServiceDocument) };
}

/**
 * Reads files and directories (*.yaml, *.yml, *.json, in name order) through the one manifest
 * reader; a problem in any file rejects all (ManifestError, MBR_MANIFEST_INVALID).
 */
export function readPolicyFiles(paths: readonly string[]): PolicyFileDocs[] {
  const files: string[] = [];
  for (const p of paths) {
    try {
      statSync(p);
    } catch {
      throw new CliError('MBR_POLICY_FILE', `${p}: no such file or directory`);
    }
    files.push(...listManifestFiles(p, { recursive: false }));
  }
  return files.map((file) => {
    const { documents } = readManifestFile(file);
    return { file, documents, docs: documents.map((d) => d.value) };
  });
}

/** readPolicyFiles, then every document validated as a policy (numbered as in its file). */
export async function readAndValidate(paths: readonly string[]): Promise<PolicyFileDocs[]> {
  const files = readPolicyFiles(paths);
  for (const f of files) {
    try {
      for (const d of f.documents)
        if (isServiceDocument(d.value)) parseServiceObject(d.value, `${f.file}: document ${d.document}`);
        else parsePolicyObject(d.value, f.file, d.document);
    } catch (err) {
      throw new CliError((err as { code?: string }).code ?? 'MBR_POLICY_INVALID', (err as Error).message);
    }
  }
  return files;
}

/** Returns once every agent of the lab enforces the revision (the others follow the store's watch). */
async function waitEveryNode(o: Parameters<typeof resolveTargets>[0], revision: number): Promise<void> {
  if (o.host) return;
  const all = resolveTargets({ ...o, node: undefined });
  await Promise.all(all.map((t) => t.client.get(`/v1/policy/wait?revision=${revision}&timeoutMs=10000`)));
}

function describe(d: Record<string, unknown>): string {
  const meta = (d.metadata ?? {}) as Record<string, unknown>;
  const kind = String(d.kind ?? '?');
  const ns = kind === 'CiliumClusterwideNetworkPolicy' ? '' : `${String(meta.namespace ?? 'default')}/`;
  return `${kind.toLowerCase()} ${ns}${String(meta.name ?? '?')}`;
}

export function policyListing(p: readonly StoredPolicy[]): unknown[] {
  return p.map((x) => x.doc);
}
