// Kafka L7 rules with Cilium's semantics (pkg/kafka: RequestMessage.MatchesRule). A rule matches a
// request when its API keys (a role expanded, or one apiKey; none = any) hold the request's key,
// its apiVersion and clientID (when set) are equal, and its topic (when set) is one the request
// names. A request naming no topic (an API without topics, or Metadata for every topic) is allowed
// by any rule that matches it otherwise. A request naming several topics is allowed when every
// topic is allowed by some rule; different rules may allow different topics. Pure.

import type { L7Policy } from '../../policy/policy-engine.js';
import type { KafkaRule } from '../../policy/policy-rule.js';
import type { KafkaRequest } from './kafka-request.js';

export type KafkaVerdict = { readonly allowed: true } | { readonly allowed: false; readonly deniedTopics: string[] };

/** Decides one request against the L7 policies of its redirect (OR-ed; empty = deny all). */
export function decideKafkaRequest(req: KafkaRequest, policies: readonly L7Policy[]): KafkaVerdict {
  for (const p of policies) if (p.allowAll) return ALLOWED;
  const rules = policies.length === 1 ? (policies[0]!.kafka ?? []) : policies.flatMap((p) => p.kafka ?? []);
  return matchKafkaRules(req, rules);
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

function matchesHeader(req: KafkaRequest, rule: KafkaRule): boolean {
  if (rule.apiKeys.length > 0 && !rule.apiKeys.includes(req.apiKey)) return false;
  if (rule.apiVersion !== undefined && rule.apiVersion !== req.apiVersion) return false;
  if (rule.clientID !== undefined && rule.clientID !== '' && rule.clientID !== req.clientId) return false;
  return true;
}
