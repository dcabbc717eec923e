// Turns `observe` filter flags, in the order given, into allowlist and denylist FlowFilters the
// way hubble's CLI does: a direction-less flag (--pod, --ip, --label, ...) fills the source field
// of one filter and the destination field of another, and the two are OR-ed; --from-X and --to-X
// (one field) and flags without a direction (--verdict, --protocol, ...) apply to both. --not sends the next
// filter flag to the denylist.
import type { FlowFilter } from './flow-filter.js';

type ListKey = {
  [K in keyof FlowFilter]-?: NonNullable<FlowFilter[K]> extends unknown[] ? K : never;
}[keyof FlowFilter];

class Side {
  left: FlowFilter | undefined;
  right: FlowFilter | undefined;

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

  filters(): FlowFilter[] {
    if (this.left === undefined && this.right === undefined) return [];
    if (JSON.stringify(this.left) === JSON.stringify(this.right)) return [this.left!];
    return [this.left, this.right].filter((f): f is FlowFilter => f !== undefined);
  }
}

export class FilterTracker {
  private readonly allow = new Side();
  private readonly deny = new Side();
  private negateNext = false;

  /** --not: the next filter flag goes to the denylist. */
  not(): void {
    this.negateNext = true;
  }

  /** A flag with one direction (--from-pod, --to-ip) or none (--verdict): the same field in both filters. */
  all<K extends ListKey>(key: K, value: NonNullable<FlowFilter[K]>[number]): void {
    this.side().both((f) => push(f, key, value));
  }

  /** A direction-less endpoint flag: source field on the left, destination field on the right. */
  either<K extends ListKey, L extends ListKey>(
    sourceKey: K,
    destinationKey: L,
    value: NonNullable<FlowFilter[K]>[number],
  ): void {
    this.side().split(
      (f) => push(f, sourceKey, value),
      (f) => push(f, destinationKey, value as NonNullable<FlowFilter[L]>[number]),
    );
  }

  allowlist(): FlowFilter[] {
    return this.allow.filters();
  }

  denylist(): FlowFilter[] {
    return this.deny.filters();
  }

  private side(): Side {
    const s = this.negateNext ? this.deny : this.allow;
    this.negateNext = false;
    return s;
  }
}

function push<K extends ListKey>(f: FlowFilter, key: K, value: unknown): void {
  const list = ((f[key] as unknown[] | undefined) ?? []) as unknown[];
  if (!list.some((v) => JSON.stringify(v) === JSON.stringify(value))) list.push(value);
  (f as Record<string, unknown>)[key] = list;
}
