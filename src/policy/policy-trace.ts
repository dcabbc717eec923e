// The verdict function: (source pod or IP, destination pod or IP, protocol, port) -> ALLOWED or
// DENIED, at egress of the source and at ingress of the destination, with the policies that
// decided. It reads the same map state the datapath gets, through the same lookup, so a trace
// answers what the datapath will do. IPs outside every pod take their ipcache identity (a CIDR
// identity or world).
import { parseIp } from '../identity/cidr.js';
import { type LookupResult, lookupMapState } from './map-state.js';
import { MatchType, type PolicyKey, type PolicyRef, type TrafficDirection } from './map-state-types.js';
import { type EndpointInfo, type PolicyEngine, PolicyEngineError } from './policy-engine.js';
import { readPortProtocol } from './port-protocol.js';
import { protocolName } from './protocol-names.js';

export type Verdict = 'ALLOWED' | 'DENIED';

export interface TraceQuery {
  /** `namespace/pod` or an IP address. */
  readonly src: string;
  readonly dst: string;
  /** A port number, or a port name resolved on the destination pod. */
  readonly dport: number | string;
  /** TCP (default), UDP, SCTP, ICMP, ICMPv6, or one of their protocol numbers. */
  readonly protocol?: string | number;
}

export interface TracePolicy extends PolicyRef {
  readonly direction: TrafficDirection;
  readonly effect: 'allow' | 'deny';
}

export interface TracePeer {
  readonly input: string;
  readonly identity: number;
  readonly endpoint?: EndpointInfo;
  readonly ip?: string;
}

export interface DirectionTrace {
  readonly verdict: Verdict;
  /** Whether policy is enforced on this side in this direction (false: not an endpoint, or no policy). */
  readonly enforced: boolean;
  readonly reason:
    | 'not-an-endpoint'
    | 'other-node'
    | 'loopback'
    | 'allowed'
    | 'redirected'
    | 'auth-required'
    | 'deny-rule'
    | 'default-deny'
    | 'unresolved-port';
  readonly matchType: number;
  readonly key?: PolicyKey;
  readonly proxyPort: number;
  readonly authType: number;
  readonly policies: readonly TracePolicy[];
}

export interface TraceResult {
  readonly verdict: Verdict;
  readonly src: TracePeer;
  readonly dst: TracePeer;
  readonly protocol: number;
  readonly dport: number;
  readonly egress: DirectionTrace;
  readonly ingress: DirectionTrace;
  /** The deciding policies of both directions: egress first, then ingress. */
  readonly policies: readonly TracePolicy[];
}

/**
 * Throws PolicyEngineError (MBR_TRACE_UNKNOWN_POD, MBR_TRACE_BAD_PEER, MBR_TRACE_BAD_PORT,
 * MBR_TRACE_BAD_PROTOCOL). dport and protocol are checked by readPortProtocol (port-protocol.ts).
 */
export function tracePolicy(engine: PolicyEngine, q: TraceQuery): TraceResult {
  const src = resolvePeer(engine, q.src);
  const dst = resolvePeer(engine, q.dst);
  const { port, protocol } = readPortProtocol(q.dport, q.protocol, { port: 'dport', protocol: 'protocol' });
  let dport: number | undefined;
  if (typeof port === 'number') dport = port;
  else if (dst.endpoint) {
    const ports = engine.podPorts(dst.endpoint.namespace, dst.endpoint.name) ?? [];
    dport = ports.find((p) => p.name === port && p.protocol === protocol)?.containerPort;
  }
  if (dport === undefined) {
    const none: DirectionTrace = {
      verdict: 'DENIED',
      enforced: false,
      reason: 'unresolved-port',
      matchType: MatchType.none,
      proxyPort: 0,
      authType: 0,
      policies: [],
    };
    return { verdict: 'DENIED', src, dst, protocol, dport: 0, egress: none, ingress: none, policies: [] };
  }
  // A pod talking to itself never leaves its network namespace: no policy applies.
  if (src.endpoint && src.endpoint.endpointId === dst.endpoint?.endpointId) {
    const self: DirectionTrace = {
      verdict: 'ALLOWED',
      enforced: false,
      reason: 'loopback',
      matchType: MatchType.none,
      proxyPort: 0,
      authType: 0,
      policies: [],
    };
    return { verdict: 'ALLOWED', src, dst, protocol, dport, egress: self, ingress: self, policies: [] };
  }
  const egress = traceDirection(engine, src, dst, 'egress', protocol, dport);
  const ingress = traceDirection(engine, dst, src, 'ingress', protocol, dport);
  const verdict = egress.verdict === 'ALLOWED' && ingress.verdict === 'ALLOWED' ? 'ALLOWED' : 'DENIED';
  return { verdict, src, dst, protocol, dport, egress, ingress, policies: [...egress.policies, ...ingress.policies] };
}

export function describeMatchType(m: number): string {
  return ['none', 'L3-Only', 'L3-L4', 'L4-Only', 'all', 'L3-Proto', 'Proto-Only'][m] ?? String(m);
}

export function describeKey(k: PolicyKey): string {
  const port = k.protocol === 0 ? 'ANY' : k.portPrefixLen === 0 ? `ANY/${protocolName(k.protocol)}` : portText(k);
  return `identity ${k.identity === 0 ? 'ANY' : k.identity} ${port}`;
}

// Private helpers.

function portText(k: PolicyKey): string {
  if (k.portPrefixLen === 16) return `${k.port}/${protocolName(k.protocol)}`;
  const end = k.port + (1 << (16 - k.portPrefixLen)) - 1;
  return `${k.port}-${end}/${protocolName(k.protocol)}`;
}

function resolvePeer(engine: PolicyEngine, input: string): TracePeer {
  if (parseIp(input)) {
    const ep = engine.endpointByIp(input);
    if (ep) return { input, identity: ep.identity, endpoint: ep, ip: input };
    const hit = engine.ipcacheLookup(input);
    return { input, identity: hit?.identity ?? 2, ip: input };
  }
  const slash = input.indexOf('/');
  if (slash <= 0 || slash === input.length - 1 || input.indexOf('/', slash + 1) >= 0)
    throw new PolicyEngineError('MBR_TRACE_BAD_PEER', `peer: expected NAMESPACE/POD or an IP address, got "${input}"`);
  const ep = engine.endpointByPod(input.slice(0, slash), input.slice(slash + 1));
  if (!ep)
    throw new PolicyEngineError(
      'MBR_TRACE_UNKNOWN_POD',
      `peer: expected a pod of the world, got "${input}" (no such pod)`,
    );
  return { input, identity: ep.identity, endpoint: ep, ...(ep.podIPs[0] ? { ip: ep.podIPs[0] } : {}) };
}

function traceDirection(
  engine: PolicyEngine,
  local: TracePeer,
  remote: TracePeer,
  direction: TrafficDirection,
  protocol: number,
  dport: number,
): DirectionTrace {
  if (!local.endpoint)
    return {
      verdict: 'ALLOWED',
      enforced: false,
      reason: 'not-an-endpoint',
      matchType: MatchType.none,
      proxyPort: 0,
      authType: 0,
      policies: [],
    };
  const epId = local.endpoint.endpointId;
  const status = engine.endpointPolicyStatus(epId);
  // A pod of another node is enforced by that node's agent: this engine holds no map state for it.
  if (!local.endpoint.isLocal || !status)
    return {
      verdict: 'ALLOWED',
      enforced: false,
      reason: 'other-node',
      matchType: MatchType.none,
      proxyPort: 0,
      authType: 0,
      policies: [],
    };
  const r: LookupResult = lookupMapState(engine.endpointMapState(epId), remote.identity, direction, protocol, dport);
  const enforced = status[direction].enforced;
  const tag = (refs: readonly PolicyRef[], effect: 'allow' | 'deny'): TracePolicy[] =>
    refs.map((p) => ({ kind: p.kind, namespace: p.namespace, name: p.name, direction, effect }));
  if (r.verdict === 'no-match')
    return {
      verdict: 'DENIED',
      enforced,
      reason: 'default-deny',
      matchType: MatchType.none,
      proxyPort: 0,
      authType: 0,
      policies: tag(status[direction].defaultDenyBy, 'deny'),
    };
  const entry = r.entry!;
  if (r.verdict === 'deny')
    return {
      verdict: 'DENIED',
      enforced,
      reason: 'deny-rule',
      matchType: r.matchType,
      key: r.key!,
      proxyPort: 0,
      authType: 0,
      policies: tag(entry.derivedFrom, 'deny'),
    };
  return {
    verdict: 'ALLOWED',
    enforced,
    reason: entry.proxyPort > 0 ? 'redirected' : r.authType > 0 ? 'auth-required' : 'allowed',
    matchType: r.matchType,
    key: r.key!,
    proxyPort: entry.proxyPort,
    authType: r.authType,
    policies: tag(entry.derivedFrom, 'allow'),
  };
}
