// The one way a process gets its cluster store: `--kvstore` and `--kvstore-opt` (Cilium's flag
// names) become a StoreSpec, and openClusterStore turns a spec into the embedded store or an etcd
// client. The agent, the lab, the tests and the benchmarks all open stores through here.
//
//   --kvstore embedded                          (default) the lab's shared directory store
//   --kvstore etcd --kvstore-opt etcd.config=FILE
//   --kvstore etcd --kvstore-opt etcd.address=http://10.0.0.1:2379,http://10.0.0.2:2379
//                  [--kvstore-opt etcd.trusted-ca-file=F --kvstore-opt etcd.cert-file=F
//                   --kvstore-opt etcd.key-file=F]
//
// etcd.config is Cilium's etcd config file: YAML with `endpoints` (a list of client URLs) and
// optionally `trusted-ca-file`, `cert-file`, `key-file`. Options given on the command line
// override the file's.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { ClusterStore } from './cluster-store.js';
import { EmbeddedStore, type EmbeddedStoreOptions } from './embedded-store.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd-store.js';

export type StoreSpec =
  | { readonly kind: 'embedded'; readonly dir: string; readonly options?: EmbeddedStoreOptions }
  | ({ readonly kind: 'etcd' } & EtcdStoreOptions);

export const KVSTORE_KINDS = ['embedded', 'etcd'] as const;

export class StoreSpecError extends Error {
  readonly code = 'MBR_KVSTORE_OPTION';
  constructor(message: string) {
    super(message);
    this.name = 'StoreSpecError';
  }
}

/**
 * `--kvstore` and its `--kvstore-opt key=value` list as a spec. `clusterDir` is the embedded
 * store's directory. Throws StoreSpecError naming the option and what was expected.
 */
export function storeSpecFromOptions(kvstore: string, opts: readonly string[], clusterDir: string): StoreSpec {
  const kv = new Map<string, string>();
  for (const o of opts) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new StoreSpecError(`--kvstore-opt: expected key=value, got "${o}"`);
    kv.set(o.slice(0, eq), o.slice(eq + 1));
  }
  if (kvstore === 'embedded' || kvstore === '') {
    if (kv.size > 0) throw new StoreSpecError(`--kvstore-opt: the embedded store takes no options, got "${opts[0]}"`);
    return { kind: 'embedded', dir: clusterDir };
  }
  if (kvstore !== 'etcd')
    throw new StoreSpecError(`--kvstore: expected one of ${KVSTORE_KINDS.join(', ')}, got "${kvstore}"`);
  const known = ['etcd.config', 'etcd.address', 'etcd.trusted-ca-file', 'etcd.cert-file', 'etcd.key-file'];
  for (const k of kv.keys())
    if (!known.includes(k)) throw new StoreSpecError(`--kvstore-opt: expected one of ${known.join(', ')}, got "${k}"`);
  const file = kv.get('etcd.config');
  const fromFile = file ? readEtcdConfig(file) : {};
  const address = kv.get('etcd.address');
  const endpoints = address
    ? address
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean)
    : (fromFile.endpoints ?? []);
  if (endpoints.length === 0)
    throw new StoreSpecError('--kvstore etcd: expected --kvstore-opt etcd.config=FILE or etcd.address=URL[,URL...]');
  for (const e of endpoints)
    if (!/^(https?:\/\/[^/\s]+|unix:\/\/\S+)$/.test(e))
      throw new StoreSpecError(`etcd endpoint: expected http(s)://host:port or unix://path, got "${e}"`);
  const ca = kv.get('etcd.trusted-ca-file') ?? fromFile.ca;
  const cert = kv.get('etcd.cert-file') ?? fromFile.cert;
  const key = kv.get('etcd.key-file') ?? fromFile.key;
  if ((cert === undefined) !== (key === undefined))
    throw new StoreSpecError('etcd TLS: expected both cert-file and key-file, or neither');
  if (cert !== undefined && ca === undefined) throw new StoreSpecError('etcd TLS: cert-file needs trusted-ca-file');
  return {
    kind: 'etcd',
    endpoints,
    ...(ca !== undefined ? { tls: { ca, ...(cert ? { cert } : {}), ...(key ? { key } : {}) } } : {}),
  };
}

/** Opens the store a spec names: the embedded one at once, etcd once a member answers. */
export async function openClusterStore(spec: StoreSpec): Promise<ClusterStore> {
  if (spec.kind === 'embedded') return EmbeddedStore.open(spec.dir, spec.options);
  return EtcdStore.open(spec);
}

/** Cilium's etcd config file: endpoints and TLS file paths. */
export function readEtcdConfig(file: string): { endpoints?: string[]; ca?: string; cert?: string; key?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new StoreSpecError(`${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 0 });
  } catch (err) {
    throw new StoreSpecError(`${file}: expected YAML, got a parse error: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new StoreSpecError(`${file}: expected a mapping with "endpoints", got ${JSON.stringify(doc)}`);
  const d = doc as Record<string, unknown>;
  const endpoints = d.endpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((e) => typeof e === 'string'))
    throw new StoreSpecError(`${file}: endpoints: expected a list of client URLs, got ${JSON.stringify(endpoints)}`);
  const str = (name: string): string | undefined => {
    const v = d[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string')
      throw new StoreSpecError(`${file}: ${name}: expected a file path, got ${JSON.stringify(v)}`);
    return v;
  };
  const ca = str('trusted-ca-file');
  const cert = str('cert-file');
  const key = str('key-file');
  return {
    endpoints: endpoints as string[],
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
  };
}

/** Cilium's etcd config file text for these endpoints (what the lab writes). */
export function formatEtcdConfig(endpoints: readonly string[]): string {
  return `endpoints:\n${endpoints.map((e) => `- ${e}`).join('\n')}\n`;
}
