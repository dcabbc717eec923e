// The contract between the datapath and flow observability, as Cilium's pkg/monitor holds it:
// src/monitor/event-codec.ts decodes ring-buffer records into these events, src/hubble turns
// them into flows. Neither side imports the other. Numbers follow Cilium's monitor API: drop
// reasons (DROP_*), trace observation points, policy match types.
//
// Times are nanoseconds of CLOCK_MONOTONIC (bpf_ktime_get_ns) as a JS number (exact for ~104
// days of uptime); src/datapath converts to wall time with a boot-time offset it measures.

export const EventKind = { drop: 1, trace: 4, policyVerdict: 5 } as const;

export const TraceObservationPoint = {
  toEndpoint: 0,
  toProxy: 1,
  toHost: 2,
  toStack: 3,
  toOverlay: 4,
  fromEndpoint: 5,
  fromProxy: 6,
  fromHost: 7,
  fromStack: 8,
  fromOverlay: 9,
  fromNetwork: 10,
  toNetwork: 11,
} as const;

/** Connection tracking state of a traced packet (Cilium's TraceReason). */
export const CtState = { unknown: 0, new: 1, established: 2, reply: 3, related: 4, reopened: 5 } as const;

export const DropReason = {
  policyDenied: 133,
  invalidPacket: 134,
  ctTruncatedOrInvalidHeader: 135,
  ctUnknownL4Protocol: 137,
  ctCannotCreateEntry: 138,
  unsupportedL3Protocol: 139,
  unknownL4Protocol: 142,
  ipFragmentationNotSupported: 157,
  /** The L7 redirect found no proxy socket (the proxy is down: L7-policed traffic fails closed). */
  proxyLookupFailed: 178,
  proxySetFailed: 179,
  proxyUnknownProtocol: 180,
  policyDeny: 181,
  authRequired: 189,
} as const;

interface EventBase {
  /** CLOCK_MONOTONIC nanoseconds. */
  readonly monoNs: number;
  /** Membrane endpoint ID of the pod whose veth saw the packet. */
  readonly endpointId: number;
  readonly ifindex: number;
  readonly srcIdentity: number;
  readonly dstIdentity: number;
  /** 0: not an IP packet (a drop of an unsupported L3 protocol): addresses are '' and ports 0. */
  readonly ipVersion: 0 | 4 | 6;
  readonly srcIp: string;
  readonly dstIp: string;
  /** The frame's EtherType, given when ipVersion is 0. */
  readonly etherType?: number;
  /** IP protocol number. */
  readonly protocol: number;
  readonly srcPort: number;
  readonly dstPort: number;
  /** TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80). */
  readonly tcpFlags: number;
  readonly icmpType: number;
  readonly icmpCode: number;
  /** Original packet length in bytes. */
  readonly length: number;
  readonly isReply: boolean;
}

export interface DropEvent extends EventBase {
  readonly kind: typeof EventKind.drop;
  /** Cilium drop reason code (DropReason). */
  readonly reason: number;
  readonly direction: 'ingress' | 'egress';
}

export interface TraceEvent extends EventBase {
  readonly kind: typeof EventKind.trace;
  readonly observationPoint: number;
  readonly ctState: number;
}

export interface PolicyVerdictEvent extends EventBase {
  readonly kind: typeof EventKind.policyVerdict;
  readonly direction: 'ingress' | 'egress';
  /** MatchType from src/policy/map-state-types.ts. */
  readonly matchType: number;
  /** 0 allowed, < 0 minus a drop reason, > 0 redirected to this proxy port. */
  readonly verdict: number;
  readonly isAudit: boolean;
  readonly authType: number;
}

export type DatapathEvent = DropEvent | TraceEvent | PolicyVerdictEvent;

/** Events lost before user space saw them, by source. */
export interface LostEvents {
  readonly source: 'datapath-ring' | 'event-queue';
  readonly count: number;
}
