// Kafka L7 rules with Cilium's semantics (pkg/kafka: RequestMessage.MatchesRule). A rule matches a
// request when its API keys (a role expanded, or one apiKey; none = any) hold the request's key,
// its apiVersion and clientID (when set) are equal, and its topic (when set) is one the request
// names. A request naming no topic (an API without topics, or Metadata for every topic) is allowed
// by any rule that matches it otherwise. A request naming several topics is allowed when every
// topic is allowed by some rule; different rules may allow different topics. Pure.

import type { PolicyRef } from '../../policy/map-state-types.js';
import type { L7Policy } from '../../policy/policy-engine.js';
import type { KafkaRule } from '../../policy/policy-rule.js';
import type { KafkaRequest } from './kafka-request.js';

export type KafkaVerdict = { readonly allowed: true } | { readonly allowed: false; readonly deniedTopics: string[] };

export interface KafkaDecision {
  readonly allowed: boolean;
  /** The policies that decided: those whose rules allowed, or every applicable one when denied. */
  readonly policies: readonly PolicyRef[];
}

/**
 * Decides one request against the L7 policies of its redirect (empty = deny all). A policy that
 * allows the request alone decides it; otherwise the rules of all policies are taken together, so
 * topics of one request may be allowed by rules of different policies.
 */
export function decideKafkaRequest(req: KafkaRequest, policies: readonly L7Policy[]): KafkaDecision {
  if (policies.length === 0) return DENY_NONE;
  for (const p of policies) if (p.allowAll) return allowedBy(p);
  for (const p of policies) if (matchKafkaRules(req, p.kafka ?? []).allowed) return allowedBy(p);
  if (
    policies.length > 1 &&
    matchKafkaRules(
      req,
      policies.flatMap((p) => p.kafka ?? []),
    ).allowed
  ) {
    const names = new Set((req.topics ?? []).map((t) => t.name));
    const by = policies.filter((p) => (p.kafka ?? []).some((r) => r.topic !== undefined && names.has(r.topic)));
    return { allowed: true, policies: refsOf(by) };
  }
  return { allowed: false, policies: refsOf(policies) };
}

export function matchKafkaRules(req: KafkaRequest, rules: readonly KafkaRule[]): KafkaVerdict {
  const topics = req.topics ?? [];
  if (topics.length <= 1) {
    // The common case (one topic or none) needs no set of topics still to allow.
    const only = topics[0]?.name;
    for (const rule of rules) {
      if (!matchesHeader(req, rule)) continue;
      if (only === undefined || rule.topic === undefined || rule.topic === '' || rule.topic === only) return ALLOWED;
    }
    return { allowed: false, deniedTopics: only === undefined ? [] : [only] };
  }
  const pending = new Set<string>();
  for (const t of topics) pending.add(t.name);
  for (const rule of rules) {
    if (!matchesHeader(req, rule)) continue;
    if (rule.topic === undefined || rule.topic === '') return ALLOWED;
    pending.delete(rule.topic);
    if (pending.size === 0) return ALLOWED;
  }
  return { allowed: false, deniedTopics: [...pending] };
}

const ALLOWED: KafkaVerdict = { allowed: true };
const DENY_NONE: KafkaDecision = { allowed: false, policies: [] };
/** One allowed decision per policy object, shared by every request it allows. */
const allowedCache = new WeakMap<L7Policy, KafkaDecision>();

function allowedBy(p: L7Policy): KafkaDecision {
  let d = allowedCache.get(p);
  if (d === undefined) {
    d = { allowed: true, policies: p.derivedFrom };
    allowedCache.set(p, d);
  }
  return d;
}

function refsOf(policies: readonly L7Policy[]): readonly PolicyRef[] {
  if (policies.length === 1) return policies[0]!.derivedFrom;
  const out: PolicyRef[] = [];
  for (const p of policies) for (const r of p.derivedFrom) if (!out.includes(r)) out.push(r);
  return out;
}

function matchesHeader(req: KafkaRequest, rule: KafkaRule): boolean {
  if (rule.apiKeys.length > 0 && !rule.apiKeys.includes(req.apiKey)) return false;
  if (rule.apiVersion !== undefined && rule.apiVersion !== req.apiVersion) return false;
  if (rule.clientID !== undefined && rule.clientID !== '' && rule.clientID !== req.clientId) return false;
  return true;
}
