// Turns `observe` filter flags, in the order given, into allowlist and denylist FlowFilters the
// way hubble's CLI does: a direction-less flag (--pod, --ip, --label, ...) fills the source field
// of one filter and the destination field of another, and the two are OR-ed; --from-X and --to-X
// (one field) and flags without a direction (--verdict, --protocol, ...) apply to both. --not sends
// the next filter flag to the denylist. Namespaces (-n, --from-namespace, --to-namespace, and ""
// for -A, --from-all-namespaces, --to-all-namespaces) are applied last: they qualify pod and
// service names given without one ("ns/name", "/name"), or become "ns/" ("/") filters.

import { FilterError } from './filter-error.js';
import type { FlowFilter } from './flow-filter.js';

type ListKey = {
  [K in keyof FlowFilter]-?: NonNullable<FlowFilter[K]> extends unknown[] ? K : never;
}[keyof FlowFilter];

/** Flags that cannot be combined within one list (hubble's groups). */
const CONFLICTS: readonly (readonly string[])[] = [
  ['from-fqdn', 'from-ip', 'ip', 'fqdn', 'from-namespace', 'namespace', 'from-all-namespaces', 'all-namespaces'],
  ['from-fqdn', 'from-ip', 'ip', 'fqdn', 'from-pod', 'pod'],
  ['to-fqdn', 'to-ip', 'ip', 'fqdn', 'to-namespace', 'namespace', 'to-all-namespaces', 'all-namespaces'],
  ['to-fqdn', 'to-ip', 'ip', 'fqdn', 'to-pod', 'pod'],
  ['to-pod', 'namespace', 'all-namespaces'],
  ['from-pod', 'namespace', 'all-namespaces'],
  ['to-service', 'namespace', 'all-namespaces'],
  ['from-service', 'namespace', 'all-namespaces'],
  ['label', 'from-label'],
  ['label', 'to-label'],
  ['service', 'from-service'],
  ['service', 'to-service'],
  ['port', 'to-port'],
  ['port', 'from-port'],
  ['identity', 'to-identity'],
  ['identity', 'from-identity'],
  ['workload', 'to-workload'],
  ['workload', 'from-workload'],
  ['encrypted', 'unencrypted'],
];

class Side {
  left: FlowFilter | undefined;
  right: FlowFilter | undefined;
  readonly changed = new Set<string>();
  readonly ns: string[] = [];
  readonly srcNs: string[] = [];
  readonly dstNs: string[] = [];

  touch(flag: string): void {
    this.changed.add(flag);
    for (const group of CONFLICTS) {
      if (!group.includes(flag)) continue;
      for (const other of group)
        if (other !== flag && this.changed.has(other))
          throw new FilterError(`--${flag}`, `a filter that can be combined with --${other}`, `--${flag}`);
    }
  }

  both(update: (f: FlowFilter) => void): void {
    this.left ??= {};
    this.right ??= {};
    update(this.left);
    update(this.right);
  }

  split(updateLeft: (f: FlowFilter) => void, updateRight: (f: FlowFilter) => void): void {
    this.left ??= {};
    this.right ??= {};
    updateLeft(this.left);
    updateRight(this.right);
  }

  /**
   * hubble's namespace checks, after every flag: a name that has a namespace must be in the
   * namespaces given for its side (-A gives ""), and a side's pods and services must agree.
   */
  checkNamespaces(flag: string): void {
    for (const f of [this.left, this.right]) {
      if (f === undefined) continue;
      namespaceConflict(flag, this.ns, [f.source_pod, f.source_service, f.destination_pod, f.destination_service]);
      namespaceConflict(flag, this.srcNs, [f.source_pod, f.source_service]);
      namespaceConflict(flag, this.dstNs, [f.destination_pod, f.destination_service]);
      podServiceConflict(flag, f.source_pod, f.source_service);
      podServiceConflict(flag, f.destination_pod, f.destination_service);
    }
  }

  filters(): FlowFilter[] {
    if (
      this.left === undefined &&
      this.right === undefined &&
      this.ns.length + this.srcNs.length + this.dstNs.length === 0
    )
      return [];
    const left = this.left ?? {};
    const right = this.right ?? {};
    if (this.dstNs.length > 0) {
      applyNamespaces(left, 'destination', this.dstNs);
      applyNamespaces(right, 'destination', this.dstNs);
    }
    if (this.srcNs.length > 0) {
      applyNamespaces(left, 'source', this.srcNs);
      applyNamespaces(right, 'source', this.srcNs);
    }
    if (this.ns.length > 0) {
      applyNamespaces(left, 'source', this.ns);
      applyNamespaces(right, 'destination', this.ns);
    }
    if (JSON.stringify(left) === JSON.stringify(right)) return [left];
    return [left, right];
  }
}

export class FilterTracker {
  private readonly allow = new Side();
  private readonly deny = new Side();
  private negateNext = false;

  /** --not: the next filter flag goes to the denylist. */
  not(): void {
    if (this.negateNext) throw new FilterError('--not', 'a filter flag after --not', '--not');
    this.negateNext = true;
  }

  /** A flag with one direction (--from-pod, --to-ip) or none (--verdict): the same field in both filters. */
  all<K extends ListKey>(flag: string, key: K, value: NonNullable<FlowFilter[K]>[number]): void {
    const side = this.side(flag);
    side.both((f) => push(f, key, value));
    side.checkNamespaces(flag);
  }

  /** A direction-less endpoint flag: source field on the left, destination field on the right. */
  either<K extends ListKey, L extends ListKey>(
    flag: string,
    sourceKey: K,
    destinationKey: L,
    value: NonNullable<FlowFilter[K]>[number],
  ): void {
    const side = this.side(flag);
    side.split(
      (f) => push(f, sourceKey, value),
      (f) => push(f, destinationKey, value as NonNullable<FlowFilter[L]>[number]),
    );
    side.checkNamespaces(flag);
  }

  /** -n (both), --from-namespace (source) or --to-namespace (destination). */
  namespace(flag: string, direction: 'both' | 'source' | 'destination', ns: string): void {
    const side = this.side(flag);
    (direction === 'both' ? side.ns : direction === 'source' ? side.srcNs : side.dstNs).push(ns);
    side.checkNamespaces(flag);
  }

  /**
   * -A (both), --from-all-namespaces (source), --to-all-namespaces (destination): the namespace
   * "", so that names become "/name" (that name in any namespace) and, without names, "/" (any
   * pod in any namespace), as hubble sends them.
   */
  allNamespaces(flag: string, direction: 'both' | 'source' | 'destination'): void {
    this.namespace(flag, direction, '');
  }

  /** --cel-expression: one more expression in both filters (a filter's expressions are ORed). */
  celExpression(flag: string, expr: string): void {
    this.side(flag).both((f) => {
      f.experimental ??= {};
      f.experimental.cel_expression = [...(f.experimental.cel_expression ?? []), expr];
    });
  }

  allowlist(): FlowFilter[] {
    return this.allow.filters();
  }

  denylist(): FlowFilter[] {
    return this.deny.filters();
  }

  private side(flag: string): Side {
    const s = this.negateNext ? this.deny : this.allow;
    this.negateNext = false;
    s.touch(flag);
    return s;
  }
}

/** Qualifies bare pod/service names with each namespace; with neither, filters the namespaces. */
function applyNamespaces(f: FlowFilter, side: 'source' | 'destination', namespaces: readonly string[]): void {
  const podKey = side === 'source' ? 'source_pod' : 'destination_pod';
  const svcKey = side === 'source' ? 'source_service' : 'destination_service';
  if ((f[podKey]?.length ?? 0) === 0 && (f[svcKey]?.length ?? 0) === 0) f[podKey] = [''];
  for (const key of [podKey, svcKey] as const) {
    const names = f[key];
    if (names === undefined || names.length === 0) continue;
    f[key] = names.flatMap((n) => (n.includes('/') ? [n] : namespaces.map((ns) => `${ns}/${n}`)));
  }
}

/** The namespace part of "ns/name", "" for a bare name. */
function namespaceOf(name: string): string {
  const i = name.indexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

function namespaceConflict(
  flag: string,
  namespaces: readonly string[],
  lists: readonly (readonly string[] | undefined)[],
): void {
  for (const ns of namespaces)
    for (const names of lists)
      for (const name of names ?? []) {
        const own = namespaceOf(name);
        if (own !== '' && own !== ns)
          throw new FilterError(`--${flag}`, `a name in the namespace ${JSON.stringify(ns)}`, name);
      }
}

function podServiceConflict(flag: string, pods: readonly string[] = [], services: readonly string[] = []): void {
  for (const pod of pods) {
    const ns = namespaceOf(pod);
    if (ns === '') continue;
    for (const svc of services)
      if (namespaceOf(svc) !== ns)
        throw new FilterError(`--${flag}`, `a service in the namespace of the pod ${JSON.stringify(pod)}`, svc);
  }
}

function push<K extends ListKey>(f: FlowFilter, key: K, value: unknown): void {
  const list = ((f[key] as unknown[] | undefined) ?? []) as unknown[];
  list.push(value);
  (f as Record<string, unknown>)[key] = list;
}
