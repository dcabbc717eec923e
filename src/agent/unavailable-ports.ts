// Stand-ins used when the policy engine or the datapath is not part of the build (or failed to
// start). They say so in `membrane status` instead of pretending to enforce anything.
import type { AttributionQuery } from '../hubble/flow/enrichment.js';
import type { MapStateDiff, PolicyRef } from '../policy/map-state-types.js';
import type { Endpoint, SubsystemHealth } from './api-types.js';
import { securityLabels } from './security-labels.js';
import type {
  DatapathPort,
  EndpointPolicy,
  IpcacheEntry,
  PolicyInput,
  PolicyPort,
  TraceRequest,
} from './subsystem-ports.js';

const KINDS: Readonly<Record<string, readonly string[]>> = {
  'networking.k8s.io/v1': ['NetworkPolicy'],
  'cilium.io/v2': ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'],
};

export class PolicyValidationError extends Error {
  readonly code = 'MBR_POLICY_INVALID';
  constructor(file: string, path: string, expected: string, got: unknown) {
    super(`${file}: ${path}: expected ${expected}, got ${got === undefined ? 'nothing' : JSON.stringify(got)}`);
    this.name = 'PolicyValidationError';
  }
}

/** Checks the envelope of each document (apiVersion, kind, metadata, spec); computes nothing. */
export class StructuralPolicyPort implements PolicyPort {
  readonly #reason: string;
  constructor(reason: string) {
    this.#reason = reason;
  }

  health(): SubsystemHealth {
    return { name: 'policy', state: 'Disabled', message: this.#reason };
  }

  validate(docs: readonly Record<string, unknown>[], file: string): void {
    docs.forEach((d, i) => {
      validateEnvelope(d, file, docs.length > 1 ? `[${i}].` : '');
    });
  }

  compute(_input: PolicyInput): readonly EndpointPolicy[] | undefined {
    return undefined;
  }

  trace(_q: TraceRequest): unknown {
    return undefined;
  }

  securityLabels(
    podLabels: Readonly<Record<string, string>>,
    namespace: string,
    namespaceLabels: Readonly<Record<string, string>>,
  ): string[] {
    return securityLabels(podLabels, namespace, namespaceLabels);
  }

  extraIpcache(): readonly IpcacheEntry[] {
    return [];
  }

  attribution(_q: AttributionQuery): readonly PolicyRef[] {
    return [];
  }
}

export function validateEnvelope(d: Record<string, unknown>, file: string, at = ''): void {
  const apiVersion = d.apiVersion;
  if (typeof apiVersion !== 'string' || !(apiVersion in KINDS))
    throw new PolicyValidationError(file, `${at}apiVersion`, 'networking.k8s.io/v1 or cilium.io/v2', apiVersion);
  if (typeof d.kind !== 'string' || !KINDS[apiVersion].includes(d.kind))
    throw new PolicyValidationError(file, `${at}kind`, `one of ${KINDS[apiVersion].join(', ')}`, d.kind);
  const meta = d.metadata as Record<string, unknown> | undefined;
  if (typeof meta !== 'object' || meta === null)
    throw new PolicyValidationError(file, `${at}metadata`, 'an object', meta);
  if (typeof meta.name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(meta.name))
    throw new PolicyValidationError(file, `${at}metadata.name`, 'a DNS-1123 name', meta.name);
  const spec = d.spec ?? d.specs;
  if (typeof spec !== 'object' || spec === null) throw new PolicyValidationError(file, `${at}spec`, 'an object', spec);
}

export class NullDatapath implements DatapathPort {
  readonly #reason: string;
  constructor(reason: string) {
    this.#reason = reason;
  }
  health(): SubsystemHealth {
    return { name: 'datapath', state: 'Disabled', message: this.#reason };
  }
  async attachEndpoint(_ep: Endpoint): Promise<void> {}
  async detachEndpoint(_ep: Endpoint): Promise<void> {}
  async syncIpcache(_entries: readonly IpcacheEntry[]): Promise<void> {}
  async applyPolicy(_diff: MapStateDiff): Promise<void> {}
  async dumpPolicy(_endpointId: number): Promise<unknown[]> {
    return [];
  }
  async dumpIpcache(): Promise<unknown[]> {
    return [];
  }
  async dumpCt(): Promise<unknown[]> {
    return [];
  }
  onEvent(_listener: (event: unknown) => void): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {}
}
