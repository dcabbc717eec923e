// The destination port and protocol of a traced packet: `membrane policy trace --dport PORT[/PROTO]`,
// the "dport" and "protocol" fields of a --queries line, and the agent's trace API all go through
// readPortProtocol, so they accept and reject the same inputs. Bad input is an error, never port 0
// (which policy reads as "any port").
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP } from './map-state-types.js';
import { PolicyEngineError } from './policy-engine.js';
import { showValue } from './policy-error.js';
import { parseProtocolName } from './protocol-names.js';

export interface TracePort {
  /** A port 1-65535 (TCP, UDP, SCTP), an ICMP type 0-255, or a container port name of the destination. */
  readonly port: number | string;
  readonly protocol: number;
}

/** Names of the fields being read, as they appear in error messages. */
export interface PortProtocolFields {
  readonly port: string;
  readonly protocol: string;
}

const PROTOCOL_NUMBERS: ReadonlySet<number> = new Set([PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6]);

/**
 * Parses `PORT` or `PORT/PROTOCOL` (protocol TCP when left out), as typed on the command line.
 * Throws PolicyEngineError MBR_TRACE_BAD_PORT or MBR_TRACE_BAD_PROTOCOL naming `field`.
 */
export function parsePortProtocol(text: string, field: string): TracePort {
  const parts = text.split('/');
  if (parts.length > 2 || parts[0] === '')
    throw new PolicyEngineError(
      'MBR_TRACE_BAD_PORT',
      `${field}: expected PORT or PORT/PROTOCOL, got ${showValue(text)}`,
    );
  return readPortProtocol(parts[0], parts.length === 2 ? parts[1] : undefined, { port: field, protocol: field });
}

/**
 * Checks a port and a protocol given as separate values (JSON numbers or strings; a missing
 * protocol is TCP). Throws PolicyEngineError MBR_TRACE_BAD_PORT or MBR_TRACE_BAD_PROTOCOL.
 */
export function readPortProtocol(port: unknown, protocol: unknown, fields: PortProtocolFields): TracePort {
  const proto = readProtocol(protocol, fields.protocol);
  const isIcmp = proto === PROTO_ICMP || proto === PROTO_ICMPV6;
  const [min, max] = isIcmp ? [0, 255] : [1, 65535];
  const expected = isIcmp ? 'an ICMP type 0-255' : 'a port 1-65535 or a container port name';
  let n: number | undefined;
  if (typeof port === 'number') n = port;
  else if (typeof port === 'string' && /^\d{1,6}$/.test(port)) n = Number(port);
  else if (typeof port === 'string' && !isIcmp && isIanaSvcName(port)) return { port, protocol: proto };
  if (n === undefined || !Number.isInteger(n) || n < min || n > max)
    throw new PolicyEngineError('MBR_TRACE_BAD_PORT', `${fields.port}: expected ${expected}, got ${showValue(port)}`);
  return { port: n, protocol: proto };
}

/** IANA service name: 1-15 of [a-z0-9-], at least one letter, no leading/trailing/double hyphen. */
export function isIanaSvcName(s: string): boolean {
  return (
    s.length >= 1 &&
    s.length <= 15 &&
    /^[a-z0-9-]+$/.test(s) &&
    /[a-z]/.test(s) &&
    !s.startsWith('-') &&
    !s.endsWith('-') &&
    !s.includes('--')
  );
}

function readProtocol(p: unknown, field: string): number {
  if (p === undefined) return PROTO_TCP;
  let n: number | undefined;
  if (typeof p === 'number') n = p;
  else if (typeof p === 'string') n = /^\d{1,3}$/.test(p) ? Number(p) : parseProtocolName(p);
  if (n === undefined || !PROTOCOL_NUMBERS.has(n))
    throw new PolicyEngineError(
      'MBR_TRACE_BAD_PROTOCOL',
      `${field}: expected TCP, UDP, SCTP, ICMP or ICMPv6, got ${showValue(p)}`,
    );
  return n;
}
