// Protocol and ICMP type names accepted in policy, with their numbers.
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP } from './map-state-types.js';

export const L4_PROTOCOLS: Readonly<Record<string, number>> = { TCP: PROTO_TCP, UDP: PROTO_UDP, SCTP: PROTO_SCTP };

export function protocolName(proto: number): string {
  switch (proto) {
    case PROTO_TCP:
      return 'TCP';
    case PROTO_UDP:
      return 'UDP';
    case PROTO_SCTP:
      return 'SCTP';
    case PROTO_ICMP:
      return 'ICMP';
    case PROTO_ICMPV6:
      return 'ICMPv6';
    case 0:
      return 'ANY';
    default:
      return String(proto);
  }
}

export function parseProtocolName(name: string): number | undefined {
  const u = name.toUpperCase();
  if (u === 'ICMPV6') return PROTO_ICMPV6;
  if (u === 'ICMP') return PROTO_ICMP;
  if (u === 'ANY') return 0;
  return Object.hasOwn(L4_PROTOCOLS, u) ? L4_PROTOCOLS[u] : undefined;
}

export const ICMPV4_TYPES: Readonly<Record<string, number>> = {
  EchoReply: 0,
  DestinationUnreachable: 3,
  Redirect: 5,
  Echo: 8,
  EchoRequest: 8,
  RouterAdvertisement: 9,
  RouterSelection: 10,
  TimeExceeded: 11,
  ParameterProblem: 12,
  Timestamp: 13,
  TimestampReply: 14,
  Photuris: 40,
  ExtendedEchoRequest: 42,
  ExtendedEchoReply: 43,
};

export const ICMPV6_TYPES: Readonly<Record<string, number>> = {
  DestinationUnreachable: 1,
  PacketTooBig: 2,
  TimeExceeded: 3,
  ParameterProblem: 4,
  EchoRequest: 128,
  EchoReply: 129,
  MulticastListenerQuery: 130,
  MulticastListenerReport: 131,
  MulticastListenerDone: 132,
  RouterSolicitation: 133,
  RouterAdvertisement: 134,
  NeighborSolicitation: 135,
  NeighborAdvertisement: 136,
  RedirectMessage: 137,
  RouterRenumbering: 138,
  ICMPNodeInformationQuery: 139,
  ICMPNodeInformationResponse: 140,
  InverseNeighborDiscoverySolicitation: 141,
  InverseNeighborDiscoveryAdvertisement: 142,
  HomeAgentAddressDiscoveryRequest: 144,
  HomeAgentAddressDiscoveryReply: 145,
  MobilePrefixSolicitation: 146,
  MobilePrefixAdvertisement: 147,
  DuplicateAddressRequestCodeSuffix: 157,
  DuplicateAddressConfirmationCodeSuffix: 158,
  ExtendedEchoRequest: 160,
  ExtendedEchoReply: 161,
};

/** Kafka API key names in API key order (index = key). */
export const KAFKA_API_KEYS = [
  'produce',
  'fetch',
  'offsets',
  'metadata',
  'leaderandisr',
  'stopreplica',
  'updatemetadata',
  'controlledshutdown',
  'offsetcommit',
  'offsetfetch',
  'findcoordinator',
  'joingroup',
  'heartbeat',
  'leavegroup',
  'syncgroup',
  'describegroups',
  'listgroups',
  'saslhandshake',
  'apiversions',
  'createtopics',
  'deletetopics',
  'deleterecords',
  'initproducerid',
  'offsetforleaderepoch',
  'addpartitionstotxn',
  'addoffsetstotxn',
  'endtxn',
  'writetxnmarkers',
  'txnoffsetcommit',
  'describeacls',
  'createacls',
  'deleteacls',
  'describeconfigs',
  'alterconfigs',
] as const;

export const KAFKA_ROLE_KEYS: Readonly<Record<string, readonly number[]>> = {
  produce: [0, 3, 18],
  consume: [1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18],
};

/** The entities a policy may name, and what each one selects. */
export const ENTITIES = [
  'all',
  'world',
  'world-ipv4',
  'world-ipv6',
  'cluster',
  'cluster-mesh',
  'host',
  'init',
  'ingress',
  'unmanaged',
  'remote-node',
  'health',
  'none',
  'kube-apiserver',
] as const;
