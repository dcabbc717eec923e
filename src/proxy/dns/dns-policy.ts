// The DNS proxy's verdict for one query: allowed when a policy of the redirect allows every
// question's name (rules.dns matchName / matchPattern, Cilium's semantics), or allows the port
// without L7 rules. Pure.
import { fqdnSelectorMatches } from '../../policy/fqdn-pattern.js';
import type { PolicyRef } from '../../policy/map-state-types.js';
import type { L7Policy } from '../../policy/policy-engine.js';

export interface DnsVerdict {
  readonly isAllowed: boolean;
  /** The policies whose rules allowed the query (empty when refused). */
  readonly derivedFrom: readonly PolicyRef[];
}

/** Rules of different policies are OR-ed; no policy at all refuses. */
export function decideDnsQuery(policies: readonly L7Policy[], names: readonly string[]): DnsVerdict {
  const by: PolicyRef[] = [];
  for (const p of policies) {
    const ok = p.allowAll || names.every((n) => (p.dns ?? []).some((r) => fqdnSelectorMatches(r, n)));
    if (ok) for (const r of p.derivedFrom) if (!by.includes(r)) by.push(r);
  }
  return { isAllowed: by.length > 0 || policies.some((p) => p.allowAll), derivedFrom: by };
}
