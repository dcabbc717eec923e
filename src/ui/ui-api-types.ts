// The UI's HTTP API as types: what the server sends and the web app (ui/) reads. Types only, no
// imports with effects, so the browser build can import it.
import type { Card, CardColumn, MapEdge } from './flow-aggregator.js';

export type { Card, CardColumn, MapEdge };

export interface RowEndpoint {
  readonly namespace?: string;
  readonly pod?: string;
  readonly identity: number;
  readonly identityName?: string;
  readonly ip?: string;
  readonly port?: number;
  readonly names?: readonly string[];
}

/** One row: Hubble UI's columns plus the policy that allowed or denied the flow. */
export interface FlowRow {
  readonly seq: number;
  readonly timeMs: number;
  readonly node: string;
  readonly source: RowEndpoint;
  readonly destination: RowEndpoint;
  readonly protocol: string;
  readonly dport: number;
  readonly type: string;
  readonly l7: string;
  readonly direction: string;
  readonly verdict: string;
  readonly dropReason: string;
  readonly tcpFlags: string;
  /** "DROPPED BY ns/name (Kind)" style attribution, without the verdict: "ns/name (Kind), ...". */
  readonly policy: string;
  readonly isReply: boolean;
  readonly auth: string;
}

export interface RowPage {
  readonly rows: FlowRow[];
  /** The newest seq in the ring when the page was read. */
  readonly newestSeq: number;
  /** Flows looked at; scanned < available means rows are a sample of the newest. */
  readonly scanned: number;
  /** Whether the scan stopped at scanLimit before reaching the bound. */
  readonly truncated: boolean;
}

/**
 * `event: map` on /api/events: what changed since the last one (map-delta.ts). Cards come in full
 * once (newCards); `cards` (every card's id and column) only when that list changed; `edges` are
 * the new or changed ones, `removedEdges` the ids gone. `full`: the first event of a connection.
 */
export interface MapEvent {
  readonly atMs: number;
  readonly windowSeconds: number;
  readonly namespaces: readonly string[];
  readonly flowsInWindow: number;
  readonly full: boolean;
  readonly newCards: readonly Card[];
  readonly cards?: ReadonlyArray<readonly [string, CardColumn]>;
  readonly edges: readonly MapEdge[];
  readonly removedEdges: readonly string[];
}

/** `event: rows` on /api/events: the newest matching rows since the last batch, newest first. */
export interface RowsEvent {
  readonly rows: readonly FlowRow[];
  readonly newestSeq: number;
  readonly truncated: boolean;
  readonly initial: boolean;
}

export interface RelayState {
  readonly connected: boolean;
  readonly server: string;
  readonly sinceMs?: number;
  readonly error?: string;
  readonly nodes: Readonly<Record<string, string>>;
  readonly flowsReceived?: number;
  readonly lostEvents?: number;
}

/** `event: status` and GET /api/status. */
export interface StatusEvent {
  readonly relay: RelayState;
  readonly ring: { readonly capacity: number; readonly newestSeq: number; readonly oldestSeq: number };
  readonly windowSeconds: number;
  readonly clients: number;
  readonly policyView: boolean;
}

/** GET /api/flow?seq=N */
export interface FlowDetails {
  readonly row: FlowRow;
  readonly jsonpb: Record<string, unknown>;
  readonly allowRule?: { readonly direction: 'ingress' | 'egress'; readonly yaml: string };
  readonly trace?: unknown;
}

export interface CardPolicy {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly revision: number;
  readonly directions: readonly string[];
  readonly yaml: string;
}

/** GET /api/policies?card=ID */
export interface CardPolicies {
  readonly card: Card;
  readonly policies: readonly CardPolicy[];
}
