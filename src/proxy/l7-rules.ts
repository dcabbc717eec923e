// The L7 policies the node's proxy enforces, per redirect: (endpoint, direction, protocol, port).
// The agent owns them (engine.l7Policies); the proxy holds the last set it was sent, applies the
// agent's diffs (rulesDiff computes them) and keeps a copy on disk so a restarted proxy enforces
// before the agent is back. Pure apart from load/save.
import type { TrafficDirection } from '../policy/map-state-types.js';
import type { L7Policy } from '../policy/policy-engine.js';
import { readJsonFile, writeJsonFile } from '../store/json-file.js';

/** One redirect: the L7 policies of an (endpoint, direction, protocol, port/prefix). */
export interface L7Redirect {
  readonly endpointId: number;
  readonly direction: TrafficDirection;
  readonly protocol: number;
  readonly port: number;
  readonly portPrefixLen: number;
  readonly policies: readonly L7Policy[];
}

/** What the agent sends: redirects set (replaced whole) and removed; `full` replaces everything. */
export interface L7RulesUpdate {
  readonly full: boolean;
  readonly set: readonly L7Redirect[];
  readonly deleted: readonly string[];
}

export function redirectKey(r: Pick<L7Redirect, 'endpointId' | 'direction' | 'protocol' | 'port' | 'portPrefixLen'>) {
  return `${r.endpointId}/${r.direction}/${r.protocol}/${r.port}/${r.portPrefixLen}`;
}

/** Groups an endpoint's L7 policies (engine.l7Policies) into its redirects. */
export function redirectsOf(policies: readonly L7Policy[]): L7Redirect[] {
  const byKey = new Map<string, { r: Omit<L7Redirect, 'policies'>; policies: L7Policy[] }>();
  for (const p of policies) {
    const k = redirectKey(p);
    const g = byKey.get(k);
    if (g) g.policies.push(p);
    else
      byKey.set(k, {
        r: {
          endpointId: p.endpointId,
          direction: p.direction,
          protocol: p.protocol,
          port: p.port,
          portPrefixLen: p.portPrefixLen,
        },
        policies: [p],
      });
  }
  return [...byKey.values()].map((g) => ({ ...g.r, policies: g.policies }));
}

/**
 * The update that takes the redirects of one endpoint from `before` (key -> JSON as last sent) to
 * `after`; `before` is updated in place to the new state. Empty when nothing changed.
 */
export function rulesDiff(
  before: Map<string, string>,
  endpointId: number,
  after: readonly L7Redirect[],
): L7RulesUpdate | undefined {
  const set: L7Redirect[] = [];
  const deleted: string[] = [];
  const now = new Map(after.map((r) => [redirectKey(r), r] as const));
  const prefix = `${endpointId}/`;
  for (const k of [...before.keys()])
    if (k.startsWith(prefix) && !now.has(k)) {
      before.delete(k);
      deleted.push(k);
    }
  for (const [k, r] of now) {
    const json = JSON.stringify(r);
    if (before.get(k) === json) continue;
    before.set(k, json);
    set.push(r);
  }
  return set.length || deleted.length ? { full: false, set, deleted } : undefined;
}

/** Whether a policy's port (with its prefix length: 16 exact, 0 any) covers `port`. */
function portMatches(p: { port: number; portPrefixLen: number }, port: number): boolean {
  if (p.portPrefixLen <= 0) return true;
  const mask = (0xffff << (16 - Math.min(16, p.portPrefixLen))) & 0xffff;
  return (port & mask) === (p.port & mask);
}

export class L7Rules {
  #redirects = new Map<string, L7Redirect>();
  #byEndpoint = new Map<number, L7Redirect[]>();

  apply(u: L7RulesUpdate): void {
    if (u.full) this.#redirects.clear();
    for (const k of u.deleted) this.#redirects.delete(k);
    for (const r of u.set) this.#redirects.set(redirectKey(r), r);
    this.#byEndpoint.clear();
    for (const r of this.#redirects.values()) {
      const list = this.#byEndpoint.get(r.endpointId);
      if (list) list.push(r);
      else this.#byEndpoint.set(r.endpointId, [r]);
    }
  }

  /** Number of redirects (endpoint, direction, port) with L7 rules. */
  get size(): number {
    return this.#redirects.size;
  }

  all(): L7Redirect[] {
    return [...this.#redirects.values()];
  }

  /**
   * The policies that apply to one connection: the endpoint's redirect in this direction whose
   * port covers `port`, with rules for the peer's identity (or for any peer). The longest port
   * prefix wins, as in the datapath's lookup.
   */
  policiesFor(
    endpointId: number,
    direction: TrafficDirection,
    protocol: number,
    port: number,
    remoteIdentity: number,
  ): L7Policy[] {
    let best: L7Redirect | undefined;
    for (const r of this.#byEndpoint.get(endpointId) ?? []) {
      if (r.direction !== direction || (r.protocol !== 0 && r.protocol !== protocol) || !portMatches(r, port)) continue;
      if (!best || r.portPrefixLen > best.portPrefixLen) best = r;
    }
    if (!best) return [];
    return best.policies.filter((p) => p.remoteIdentities.includes(0) || p.remoteIdentities.includes(remoteIdentity));
  }

  /** Writes the rule set atomically (the proxy's restart copy). */
  save(file: string): void {
    writeJsonFile(file, { version: 1, redirects: this.all() });
  }

  /** Reads a saved rule set; a missing file is an empty set, a damaged one an error naming it. */
  static load(file: string): L7Rules {
    const rules = new L7Rules();
    const doc = readJsonFile<unknown>(file);
    if (doc === undefined) return rules;
    const redirects = (doc as { redirects?: unknown } | null)?.redirects;
    if (!Array.isArray(redirects)) throw new Error(`${file}: redirects: expected an array`);
    for (const [i, r] of redirects.entries())
      if (
        typeof r !== 'object' ||
        r === null ||
        !Number.isInteger(r.endpointId) ||
        (r.direction !== 'ingress' && r.direction !== 'egress') ||
        !Number.isInteger(r.port) ||
        !Array.isArray(r.policies)
      )
        throw new Error(`${file}: redirects[${i}]: expected {endpointId, direction, protocol, port, policies}`);
    rules.apply({ full: true, set: redirects as L7Redirect[], deleted: [] });
    return rules;
  }
}
