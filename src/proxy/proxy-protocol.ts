// The one wire format between the agent and its node's proxy, over the unix socket `proxy.sock`
// next to the agent's API socket: JSON lines. The agent sends the L7 rules (the full set when a
// proxy worker connects, then diffs per redirect); each proxy worker sends its access records
// (they become L7 flows) and its counters. The Secrets headerMatches compare against travel on the
// same channel (the whole set the node's rules name, each time it changes); the proxy keeps them in
// memory only. A line that does not parse is dropped, never thrown.
import type { FqdnAckMessage, FqdnObserveMessage } from '../fqdn/fqdn-sink-link.js';
import type { L7Record } from '../hubble/flow/parser.js';
import type { Secret } from '../policy/world.js';
import type { L7RulesUpdate } from './l7-rules.js';
import type { ProxyStats } from './node-proxy.js';

export type AgentToProxy =
  | { readonly t: 'rules'; readonly u: L7RulesUpdate }
  | { readonly t: 'secrets'; readonly s: readonly Secret[] }
  | FqdnAckMessage;
export type ProxyToAgent =
  | { readonly t: 'record'; readonly r: L7Record }
  | { readonly t: 'stats'; readonly pid: number; readonly s: ProxyStats }
  // The DNS proxy's answers for the FQDN cache, each acked once the ipcache holds its addresses.
  | FqdnObserveMessage;

/** At most this many bytes in one line: a longer one is a broken peer. */
export const MAX_LINE = 64 * 1024 * 1024;

export function encodeLine(m: AgentToProxy | ProxyToAgent): string {
  return `${JSON.stringify(m)}\n`;
}

/** Splits a byte stream into parsed JSON objects; returns a feed function. */
export function lineReader(onMessage: (m: Record<string, unknown>) => void, onOverflow: () => void) {
  let buf = '';
  return (chunk: Buffer | string) => {
    buf += chunk.toString();
    if (buf.length > MAX_LINE) {
      buf = '';
      onOverflow();
      return;
    }
    for (;;) {
      const i = buf.indexOf('\n');
      if (i < 0) return;
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof m === 'object' && m !== null && !Array.isArray(m)) onMessage(m as Record<string, unknown>);
    }
  };
}
