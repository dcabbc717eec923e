// The FqdnSink across the agent–proxy channel (the node proxy is its own process): the proxy
// sends each DnsObservation as a message with an ID and waits for the agent's ack, which the
// agent sends once the ipcache holds the addresses. Pure: the channel's send is passed in, and
// the agent side validates what arrives (it is another process's JSON).
import { parseIp } from '../identity/cidr.js';
import { FQDN_MAX_LENGTH } from '../policy/fqdn-pattern.js';
import type { DnsObservation, FqdnSink } from './fqdn-sink.js';

export interface FqdnObserveMessage {
  readonly t: 'fqdn';
  readonly id: number;
  readonly o: DnsObservation;
}

export interface FqdnAckMessage {
  readonly t: 'fqdn-ack';
  readonly id: number;
  readonly error?: string;
}

/** Limits of one observation on the wire (a CNAME chain, an answer's addresses). */
export const MAX_OBSERVATION_NAMES = 64;
export const MAX_OBSERVATION_IPS = 4096;

export class FqdnLinkError extends Error {
  readonly code = 'MBR_FQDN_LINK';
}

/** The proxy's side: observe() sends the message and resolves on the agent's ack. */
export class LinkedFqdnSink implements FqdnSink {
  readonly #send: (m: FqdnObserveMessage) => boolean;
  readonly #pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  #nextId = 1;

  /** send returns false when no agent is connected (observe then fails at once). */
  constructor(send: (m: FqdnObserveMessage) => boolean) {
    this.#send = send;
  }

  observe(o: DnsObservation): Promise<void> {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0x7fffffff ? 1 : this.#nextId + 1;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      if (!this.#send({ t: 'fqdn', id, o })) {
        this.#pending.delete(id);
        reject(new FqdnLinkError('no agent connected'));
      }
    });
  }

  /** An ack from the agent (unknown IDs, e.g. of a previous connection, are ignored). */
  onAck(m: FqdnAckMessage): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (m.error === undefined) p.resolve();
    else p.reject(new FqdnLinkError(m.error));
  }

  /** The channel closed: every observation waiting for an ack fails. */
  disconnected(): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) p.reject(new FqdnLinkError('agent connection closed'));
  }

  get waiting(): number {
    return this.#pending.size;
  }
}

/**
 * The agent's side: checks an `fqdn` message from the proxy, gives it to the sink and replies
 * with the ack when the sink is done (with the error when it failed or the message is bad).
 */
export async function answerFqdnMessage(
  sink: FqdnSink,
  m: Record<string, unknown>,
  reply: (ack: FqdnAckMessage) => void,
): Promise<void> {
  const id = typeof m.id === 'number' && Number.isInteger(m.id) ? m.id : -1;
  const obs = validObservation(m.o);
  if (typeof obs === 'string') {
    reply({ t: 'fqdn-ack', id, error: obs });
    return;
  }
  try {
    await sink.observe(obs);
    reply({ t: 'fqdn-ack', id });
  } catch (err) {
    reply({ t: 'fqdn-ack', id, error: (err as Error).message });
  }
}

/** The observation, or what is wrong with it (field path, what was expected). */
export function validObservation(v: unknown): DnsObservation | string {
  const o = v as Partial<DnsObservation> | null;
  if (!o || typeof o !== 'object') return 'o: expected an observation object';
  if (typeof o.endpointId !== 'number' || !Number.isInteger(o.endpointId) || o.endpointId < 0)
    return 'o.endpointId: expected an endpoint ID';
  if (!Array.isArray(o.names) || o.names.length > MAX_OBSERVATION_NAMES)
    return `o.names: expected at most ${MAX_OBSERVATION_NAMES} names`;
  for (let i = 0; i < o.names.length; i++) {
    const n = o.names[i] as { name?: unknown; ips?: unknown; ttlSeconds?: unknown } | null;
    const at = `o.names[${i}]`;
    if (!n || typeof n.name !== 'string' || n.name.length === 0 || n.name.length > FQDN_MAX_LENGTH)
      return `${at}.name: expected a DNS name`;
    if (!Array.isArray(n.ips) || n.ips.length > MAX_OBSERVATION_IPS)
      return `${at}.ips: expected at most ${MAX_OBSERVATION_IPS} addresses`;
    for (let k = 0; k < n.ips.length; k++)
      if (typeof n.ips[k] !== 'string' || !parseIp(n.ips[k] as string))
        return `${at}.ips[${k}]: expected an IP address`;
    if (typeof n.ttlSeconds !== 'number' || !Number.isFinite(n.ttlSeconds) || n.ttlSeconds < 0)
      return `${at}.ttlSeconds: expected a TTL in seconds`;
  }
  return { endpointId: o.endpointId, names: o.names };
}
