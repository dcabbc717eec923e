// A Kubernetes `v1 Service` as the load balancer uses it, and its one parser. Pure: a manifest
// document in, a ServiceSpec out, or a ServiceError naming the file, the document, the field, what
// was expected and what was found. Every reader of Service manifests (worlds, `membrane apply`, the
// agent reading the store) goes through parseServiceObject.
import { showValue } from '../policy/policy-error.js';

export type ServiceType = 'ClusterIP' | 'NodePort';
export type TrafficPolicy = 'Cluster' | 'Local';
export type LbAlgorithm = 'random' | 'maglev';

export interface ServicePort {
  /** The port's name; '' when the service has a single unnamed port. */
  readonly name: string;
  readonly port: number;
  /** A container port number, or a container port's name looked up in each backend pod. */
  readonly targetPort: number | string;
  /** 6 TCP, 17 UDP. */
  readonly protocol: number;
  /** NodePort services: the port on every node's address (30000-32767). */
  readonly nodePort?: number;
}

export interface ServiceSpec {
  readonly namespace: string;
  readonly name: string;
  readonly type: ServiceType;
  readonly clusterIP: string;
  readonly ports: readonly ServicePort[];
  /** undefined: a selectorless service (its backends are not pods): not load-balanced here. */
  readonly selector?: Readonly<Record<string, string>>;
  /** sessionAffinity ClientIP: seconds a client sticks to its backend (0 = no affinity). */
  readonly affinityTimeoutSeconds: number;
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  /** From the annotation `service.cilium.io/lb-algorithm` (or `membrane.io/lb-algorithm`). */
  readonly algorithm: LbAlgorithm;
}

/** Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
export const NODE_PORT_MIN = 30000;
export const NODE_PORT_MAX = 32767;
export const LB_ALGORITHM_ANNOTATIONS = ['service.cilium.io/lb-algorithm', 'membrane.io/lb-algorithm'] as const;

export class ServiceError extends Error {
  readonly code = 'MBR_SERVICE_INVALID';
  constructor(where: string, path: string, expected: string, got: unknown) {
    super(`${where}: ${path}: expected ${expected}, got ${showValue(got)}`);
    this.name = 'ServiceError';
  }
}

export function isServiceDocument(d: Record<string, unknown>): boolean {
  return d.kind === 'Service' && d.apiVersion === 'v1';
}

export function serviceKeyOf(s: { namespace: string; name: string }): string {
  return `${s.namespace}/${s.name}`;
}

/** Parses one `v1 Service` document; `where` is "FILE: document N". */
export function parseServiceObject(d: Record<string, unknown>, where: string): ServiceSpec {
  if (!isServiceDocument(d)) throw new ServiceError(where, 'apiVersion', 'v1 (a v1 Service)', d.apiVersion);
  const meta = mapping(d.metadata ?? {}, where, 'metadata');
  const name = meta.name;
  if (typeof name !== 'string' || !DNS_LABEL.test(name))
    throw new ServiceError(where, 'metadata.name', 'a DNS label (RFC 1123, at most 63 characters)', name);
  const namespace = meta.namespace ?? 'default';
  if (typeof namespace !== 'string' || !DNS_LABEL.test(namespace))
    throw new ServiceError(where, 'metadata.namespace', 'a DNS label', namespace);
  const annotations = stringMap(meta.annotations, where, 'metadata.annotations');
  const spec = mapping(d.spec ?? {}, where, 'spec');

  const type = spec.type ?? 'ClusterIP';
  if (type !== 'ClusterIP' && type !== 'NodePort')
    throw new ServiceError(where, 'spec.type', 'ClusterIP or NodePort', type);
  const clusterIP = spec.clusterIP;
  if (typeof clusterIP !== 'string' || !isIpv4(clusterIP))
    throw new ServiceError(where, 'spec.clusterIP', 'an IPv4 address (this build allocates none)', clusterIP);

  const rawPorts = spec.ports;
  if (!Array.isArray(rawPorts) || rawPorts.length === 0)
    throw new ServiceError(where, 'spec.ports', 'a list of at least one port', rawPorts);
  const ports = rawPorts.map((p, i) => parsePort(p, where, `spec.ports[${i}]`, type, rawPorts.length));
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    const k = `${p.port}/${p.protocol}`;
    if (seen.has(k)) throw new ServiceError(where, `spec.ports[${i}]`, 'a port/protocol not listed before', k);
    seen.add(k);
    if (ports.findIndex((q) => q.name === p.name) !== i)
      throw new ServiceError(where, `spec.ports[${i}].name`, 'a name unique among the ports', p.name);
  });

  const selector = spec.selector === undefined ? undefined : stringMap(spec.selector, where, 'spec.selector');

  const affinity = spec.sessionAffinity ?? 'None';
  if (affinity !== 'None' && affinity !== 'ClientIP')
    throw new ServiceError(where, 'spec.sessionAffinity', 'None or ClientIP', affinity);
  let affinityTimeoutSeconds = 0;
  if (affinity === 'ClientIP') {
    const cfg = mapping(spec.sessionAffinityConfig ?? {}, where, 'spec.sessionAffinityConfig');
    const ip = mapping(cfg.clientIP ?? {}, where, 'spec.sessionAffinityConfig.clientIP');
    const t = ip.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 86400)
      throw new ServiceError(where, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', 'seconds 1-86400', t);
    affinityTimeoutSeconds = t;
  }
  const etp = trafficPolicy(spec.externalTrafficPolicy, where, 'spec.externalTrafficPolicy');
  const itp = trafficPolicy(spec.internalTrafficPolicy, where, 'spec.internalTrafficPolicy');

  let algorithm: LbAlgorithm = 'random';
  for (const a of LB_ALGORITHM_ANNOTATIONS) {
    const v = annotations[a];
    if (v === undefined) continue;
    if (v !== 'random' && v !== 'maglev')
      throw new ServiceError(where, `metadata.annotations.${a}`, 'random or maglev', v);
    algorithm = v;
  }
  return {
    namespace,
    name,
    type,
    clusterIP,
    ports,
    ...(selector ? { selector } : {}),
    affinityTimeoutSeconds,
    externalTrafficPolicy: etp,
    internalTrafficPolicy: itp,
    algorithm,
  };
}

// ---- helpers ----

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;

function parsePort(raw: unknown, where: string, path: string, type: ServiceType, count: number): ServicePort {
  const p = mapping(raw, where, path);
  const name = p.name ?? '';
  if (typeof name !== 'string' || (name !== '' && !PORT_NAME.test(name)))
    throw new ServiceError(where, `${path}.name`, 'a port name (lowercase, at most 15 characters)', name);
  if (name === '' && count > 1)
    throw new ServiceError(where, `${path}.name`, 'a name (required when a service has several ports)', p.name);
  const port = portNumber(p.port, where, `${path}.port`);
  const protocol = p.protocol ?? 'TCP';
  if (protocol !== 'TCP' && protocol !== 'UDP')
    throw new ServiceError(where, `${path}.protocol`, 'TCP or UDP', protocol);
  let targetPort: number | string = port;
  if (p.targetPort !== undefined) {
    if (typeof p.targetPort === 'string' && !/^\d+$/.test(p.targetPort)) {
      if (!PORT_NAME.test(p.targetPort))
        throw new ServiceError(where, `${path}.targetPort`, 'a port number or a container port name', p.targetPort);
      targetPort = p.targetPort;
    } else {
      targetPort = portNumber(Number(p.targetPort), where, `${path}.targetPort`);
    }
  }
  let nodePort: number | undefined;
  if (p.nodePort !== undefined) {
    if (type !== 'NodePort')
      throw new ServiceError(where, `${path}.nodePort`, 'no nodePort on a ClusterIP service', p.nodePort);
    const n = p.nodePort;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < NODE_PORT_MIN || n > NODE_PORT_MAX)
      throw new ServiceError(where, `${path}.nodePort`, `a port ${NODE_PORT_MIN}-${NODE_PORT_MAX}`, n);
    nodePort = n;
  } else if (type === 'NodePort') {
    throw new ServiceError(
      where,
      `${path}.nodePort`,
      `a port ${NODE_PORT_MIN}-${NODE_PORT_MAX} (this build allocates none)`,
      undefined,
    );
  }
  return { name, port, targetPort, protocol: protocol === 'TCP' ? 6 : 17, ...(nodePort ? { nodePort } : {}) };
}

function portNumber(v: unknown, where: string, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    throw new ServiceError(where, path, 'a port 1-65535', v);
  return v;
}

function trafficPolicy(v: unknown, where: string, path: string): TrafficPolicy {
  if (v === undefined) return 'Cluster';
  if (v !== 'Cluster' && v !== 'Local') throw new ServiceError(where, path, 'Cluster or Local', v);
  return v;
}

function mapping(v: unknown, where: string, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ServiceError(where, path, 'a mapping', v);
  return v as Record<string, unknown>;
}

function stringMap(v: unknown, where: string, path: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const m = mapping(v, where, path);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(m)) {
    if (typeof x !== 'string') throw new ServiceError(where, `${path}.${k.slice(0, 80)}`, 'a string', x);
    out[k] = x;
  }
  return out;
}

function isIpv4(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  return m?.slice(1).every((x) => Number(x) <= 255) === true;
}
