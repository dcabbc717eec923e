// What the DNS proxy reads from and writes into DNS messages (RFC 1035), over dns-packet. Pure;
// every function takes untrusted bytes and returns undefined instead of throwing.
import dnsPacket from 'dns-packet';

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_REFUSED = 5;

/** A query: its ID, flags and questions (names normalised: lower case, trailing dot). */
export interface DnsQuery {
  readonly id: number;
  readonly flags: number;
  readonly questions: ReadonlyArray<{ readonly name: string; readonly type: string; readonly class: string }>;
}

/** What an answer says, as flows and the FQDN cache need it. */
export interface DnsAnswer {
  readonly id: number;
  readonly rcode: number;
  readonly query: string;
  readonly qtypes: readonly string[];
  /** A and AAAA addresses of the final name of the CNAME chain. */
  readonly ips: readonly string[];
  /** The lowest TTL along the chain and of the addresses (0 without addresses). */
  readonly ttlSeconds: number;
  /** The CNAME targets, in chain order. */
  readonly cnames: readonly string[];
  /** Record types of the answer section. */
  readonly rrtypes: readonly string[];
  /** Every name of the chain (the queried name first): each is learned with the addresses. */
  readonly names: readonly string[];
}

/** Decodes a query; undefined when the bytes are no DNS query with at least one question. */
export function decodeQuery(buf: Buffer): DnsQuery | undefined {
  const p = safeDecode(buf);
  if (p?.type !== 'query' || !p.questions || p.questions.length === 0) return undefined;
  return {
    id: p.id ?? 0,
    flags: p.flags ?? 0,
    questions: p.questions.map((q) => ({ name: fqdn(q.name), type: String(q.type), class: String(q.class ?? 'IN') })),
  };
}

/** Decodes a response; undefined when the bytes are no DNS response. */
export function decodeAnswer(buf: Buffer): DnsAnswer | undefined {
  const p = safeDecode(buf);
  if (p?.type !== 'response') return undefined;
  const q = p.questions?.[0];
  const query = q ? fqdn(q.name) : '.';
  const answers = (p.answers ?? []) as Array<{ name: string; type: string; ttl?: number; data?: unknown }>;
  const cnameOf = new Map<string, { target: string; ttl: number }>();
  for (const a of answers)
    if (a.type === 'CNAME' && typeof a.data === 'string')
      cnameOf.set(fqdn(a.name), { target: fqdn(a.data), ttl: a.ttl ?? 0 });
  // Follow the chain from the queried name; a loop or a chain longer than the answer ends it.
  const names = [query];
  const cnames: string[] = [];
  let ttl = Number.POSITIVE_INFINITY;
  let cur = query;
  for (let i = 0; i < answers.length; i++) {
    const next = cnameOf.get(cur);
    if (!next || names.includes(next.target)) break;
    cnames.push(next.target);
    names.push(next.target);
    ttl = Math.min(ttl, next.ttl);
    cur = next.target;
  }
  const ips: string[] = [];
  for (const a of answers)
    if ((a.type === 'A' || a.type === 'AAAA') && typeof a.data === 'string' && fqdn(a.name) === cur) {
      ips.push(a.data);
      ttl = Math.min(ttl, a.ttl ?? 0);
    }
  return {
    id: p.id ?? 0,
    rcode: (p.flags ?? 0) & 0xf,
    query,
    qtypes: (p.questions ?? []).map((x) => String(x.type)),
    ips,
    ttlSeconds: ips.length > 0 && Number.isFinite(ttl) ? ttl : 0,
    cnames,
    rrtypes: [...new Set(answers.map((a) => String(a.type)))],
    names,
  };
}

/**
 * The response that answers a query with only a status (REFUSED, SERVFAIL): ID, RD and questions
 * kept. Never throws: a question that does not encode again gives a header-only response.
 */
export function encodeStatusResponse(q: DnsQuery, rcode: number): Buffer {
  const RD = 0x0100;
  const RA = 0x0080;
  const flags = (q.flags & RD) | RA | (rcode & 0xf);
  try {
    return dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags,
      questions: q.questions.map((x) => ({ name: x.name.slice(0, -1) || '.', type: x.type, class: x.class })),
    } as dnsPacket.Packet);
  } catch {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(q.id & 0xffff, 0);
    b.writeUInt16BE(0x8000 | flags, 2);
    return b;
  }
}

/** The DNS ID of a message (its first two bytes), or undefined when it is too short. */
export function messageId(buf: Buffer): number | undefined {
  return buf.length >= 12 ? buf.readUInt16BE(0) : undefined;
}

function safeDecode(buf: Buffer): dnsPacket.DecodedPacket | undefined {
  if (buf.length < 12) return undefined;
  try {
    return dnsPacket.decode(buf);
  } catch {
    return undefined;
  }
}

function fqdn(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}
