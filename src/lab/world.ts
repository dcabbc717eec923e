// A lab world from Kubernetes manifests: Namespaces, Pods (labels, container ports, command,
// args, env, optional nodeName), v1 Services (through the one Service parser, lb/service.ts) and
// one ConfigMap "membrane-lab-world" naming the hosts the
// outside "world" host answers for. Pure: text in, World out. The text is read by the one manifest
// reader (policy/manifest-reader.ts); errors name the file, the document (1-based) and the field.
import { parseServiceObject, type ServiceSpec } from '../lb/service.js';
import { readManifest } from '../policy/manifest-reader.js';
import { showKey, showValue } from '../policy/policy-error.js';
import { parsePolicyObject } from '../policy/policy-parser.js';
import type { Secret } from '../policy/world.js';
import { type ClusterPolicy, policyKey } from '../store/cluster-resources.js';

export interface WorldPod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly nodeName?: string;
  readonly ports: ReadonlyArray<{ containerPort: number; protocol: string; name?: string }>;
  /** Command and args, with $(VAR) references still in place. */
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

export interface World {
  readonly namespaces: ReadonlyArray<{ name: string; labels: Readonly<Record<string, string>> }>;
  readonly pods: readonly WorldPod[];
  /** Services with their documents as written (the lab stores the documents). */
  readonly services: ReadonlyArray<{ spec: ServiceSpec; doc: Record<string, unknown>; source: string }>;
  /** DNS names the outside host answers for. */
  readonly externalHosts: readonly string[];
  /** `v1` Secrets (values for L7 headerMatches), read by the policy parser's Secret reader. */
  readonly secrets: readonly Secret[];
}

/** A world manifest that reads as YAML but is not a world: `FILE: document N: PATH: expected X, got Y`. */
export class WorldError extends Error {
  readonly code = 'MBR_WORLD_INVALID';
  constructor(where: string, path: string, expected: string, got: unknown) {
    super(`${where}: ${path}: expected ${expected}, got ${showValue(got)}`);
    this.name = 'WorldError';
  }
}

const NAME = /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/;

export function parseWorld(files: ReadonlyArray<{ file: string; text: string }>): World {
  const namespaces = new Map<string, Record<string, string>>();
  const pods: WorldPod[] = [];
  const services: Array<{ spec: ServiceSpec; doc: Record<string, unknown>; source: string }> = [];
  const hosts: string[] = [];
  const secrets: Secret[] = [];
  for (const { file, text } of files) {
    for (const { document, value: d } of readManifest(text, file)) {
      const at = `${file}: document ${document}`;
      const meta = (d.metadata ?? {}) as Record<string, unknown>;
      const name = meta.name;
      if (typeof name !== 'string' || !NAME.test(name))
        throw new WorldError(at, 'metadata.name', 'a DNS label of at most 32 characters', name);
      const labels = stringMap(meta.labels, at, 'metadata.labels');
      switch (d.kind) {
        case 'Namespace':
          namespaces.set(name, { ...labels, 'kubernetes.io/metadata.name': name });
          break;
        case 'Pod':
          pods.push(parsePod(d, at, name, labels, scalar(meta.namespace ?? 'default', at, 'metadata.namespace')));
          break;
        case 'Service':
          services.push({ spec: parseServiceObject(d, at), doc: d, source: file });
          break;
        case 'ConfigMap': {
          if (name !== 'membrane-lab-world') throw new WorldError(at, 'metadata.name', 'membrane-lab-world', name);
          const data = stringMap(d.data, at, 'data');
          hosts.push(...(data.externalHosts ?? '').split(/[\s,]+/).filter((h) => h !== ''));
          break;
        }
        case 'Secret':
          // Errors (PolicyError) name the file, the document and the field, never a value.
          secrets.push(...(parsePolicyObject(d, file, document).secrets ?? []));
          break;
        default:
          throw new WorldError(at, 'kind', 'Namespace, Pod, Service, ConfigMap or Secret', d.kind);
      }
    }
  }
  for (const p of pods) {
    if (!namespaces.has(p.namespace)) namespaces.set(p.namespace, { 'kubernetes.io/metadata.name': p.namespace });
  }
  const seen = new Set<string>();
  for (const p of pods) {
    const k = `${p.namespace}/${p.name}`;
    if (seen.has(k)) throw new WorldError('world', `pod ${k}`, 'one pod per namespace and name', 'a duplicate');
    seen.add(k);
  }
  return {
    namespaces: [...namespaces].map(([n, l]) => ({ name: n, labels: l })),
    pods,
    services,
    externalHosts: hosts,
    secrets,
  };
}

/**
 * The world's Secrets as the store keeps them: documents of kind Secret under the policy keys, as
 * `membrane apply` stores a Secret manifest (the agent reads both the same way).
 */
export function worldSecretPuts(world: World): { type: 'put'; key: string; value: string }[] {
  return world.secrets.map((s) => {
    const p: ClusterPolicy = {
      kind: 'Secret',
      namespace: s.namespace,
      name: s.name,
      source: 'world',
      doc: { apiVersion: 'v1', kind: 'Secret', metadata: { name: s.name, namespace: s.namespace }, stringData: s.data },
    };
    return { type: 'put', key: policyKey(p), value: JSON.stringify(p) };
  });
}

/** Kubernetes' $(VAR) expansion in command and args; an unknown $(VAR) stays as written. */
export function expandVars(argv: readonly string[], env: Readonly<Record<string, string>>): string[] {
  return argv.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m));
}

function parsePod(
  d: Record<string, unknown>,
  at: string,
  name: string,
  labels: Record<string, string>,
  namespace: string,
): WorldPod {
  const spec = (d.spec ?? {}) as Record<string, unknown>;
  const containers = spec.containers;
  if (!Array.isArray(containers) || containers.length !== 1)
    throw new WorldError(at, 'spec.containers', 'exactly one container', containers);
  const c = containers[0] as Record<string, unknown>;
  if (typeof c !== 'object' || c === null || Array.isArray(c))
    throw new WorldError(at, 'spec.containers[0]', 'a container', c);
  const command = [
    ...strings(c.command, at, 'spec.containers[0].command'),
    ...strings(c.args, at, 'spec.containers[0].args'),
  ];
  if (command.length === 0) throw new WorldError(at, 'spec.containers[0].command', 'a command to run', undefined);
  const ports = list(c.ports, at, 'spec.containers[0].ports').map((p, j) => {
    const port = p.containerPort;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new WorldError(at, `spec.containers[0].ports[${j}].containerPort`, 'a port 1-65535', port);
    const protocol = scalar(p.protocol ?? 'TCP', at, `spec.containers[0].ports[${j}].protocol`);
    const portName = p.name ? scalar(p.name, at, `spec.containers[0].ports[${j}].name`) : undefined;
    return { containerPort: port, protocol, ...(portName ? { name: portName } : {}) };
  });
  const env: Record<string, string> = {};
  list(c.env, at, 'spec.containers[0].env').forEach((e, j) => {
    if (typeof e.name !== 'string') throw new WorldError(at, `spec.containers[0].env[${j}].name`, 'a name', e.name);
    env[e.name] = scalar(e.value ?? '', at, `spec.containers[0].env[${j}].value`);
  });
  const nodeName = spec.nodeName;
  if (nodeName !== undefined && typeof nodeName !== 'string')
    throw new WorldError(at, 'spec.nodeName', 'a node name', nodeName);
  return { namespace, name, labels, ...(nodeName ? { nodeName } : {}), ports, command, env };
}

function stringMap(v: unknown, at: string, path: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new WorldError(at, path, 'a map of strings', v);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean')
      throw new WorldError(at, `${path}.${showKey(k)}`, 'a string', x);
    out[k] = String(x);
  }
  return out;
}

function strings(v: unknown, at: string, path: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new WorldError(at, path, 'a list of strings', v);
  return v.map((x, i) => scalar(x, at, `${path}[${i}]`));
}

/** A string, number or boolean as its text; anything else (a mapping, a list) is an error. */
function scalar(v: unknown, at: string, path: string): string {
  if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
    throw new WorldError(at, path, 'a string', v);
  return String(v);
}

/** A list of mappings (ports, env), empty when absent. */
function list(v: unknown, at: string, path: string): Array<Record<string, unknown>> {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new WorldError(at, path, 'a list', v);
  v.forEach((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x))
      throw new WorldError(at, `${path}[${i}]`, 'a mapping', x);
  });
  return v as Array<Record<string, unknown>>;
}
