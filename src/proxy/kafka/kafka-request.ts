// Kafka request parsing: the request header (v0-v2) and the topic lists of the six APIs that carry
// topics, at every version whose layout is known here. Pure; never throws on bad bytes.
//
// What is read of each API (field layouts from Apache Kafka's clients/src/main/resources/common/message):
//   Produce 0-12 (flexible from 9), Fetch 0-12 (12), ListOffsets 0-9 (6), Metadata 0-12 (9),
//   OffsetCommit 0-9 (8), OffsetFetch 0-7 (6): topic names and partition indexes, enough to answer
//   a denied request for every partition it named.
// Every other API key is decided on its header alone (key, version, client id): Cilium's rules
// name no topic for FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup or ApiVersions.
import { KAFKA_API_KEYS } from '../../policy/protocol-names.js';
import { KafkaReader, KafkaWireError } from './kafka-wire.js';

export const API_PRODUCE = 0;
export const API_FETCH = 1;
export const API_LIST_OFFSETS = 2;
export const API_METADATA = 3;
export const API_OFFSET_COMMIT = 8;
export const API_OFFSET_FETCH = 9;
export const API_API_VERSIONS = 18;

/** Highest version of each topic-carrying API this parser reads, and the first flexible one. */
export const TOPIC_API_VERSIONS: Readonly<Record<number, { readonly max: number; readonly flexibleFrom: number }>> = {
  [API_PRODUCE]: { max: 12, flexibleFrom: 9 },
  [API_FETCH]: { max: 12, flexibleFrom: 12 },
  [API_LIST_OFFSETS]: { max: 9, flexibleFrom: 6 },
  [API_METADATA]: { max: 12, flexibleFrom: 9 },
  [API_OFFSET_COMMIT]: { max: 9, flexibleFrom: 8 },
  [API_OFFSET_FETCH]: { max: 7, flexibleFrom: 6 },
};

export interface TopicPartitions {
  readonly name: string;
  readonly partitions: readonly number[];
}

export interface KafkaRequest {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  /** null when the client sent none. */
  readonly clientId: string | null;
  /**
   * The topics the request names, for the six topic APIs; undefined for API keys that carry none.
   * Empty when the request names none (Metadata or OffsetFetch for every topic).
   */
  readonly topics?: readonly TopicPartitions[];
  /** The request uses the flexible encoding (KIP-482): its response header has tagged fields. */
  readonly isFlexible: boolean;
  /** false for a Produce with acks=0: the broker sends no response. */
  readonly expectsResponse: boolean;
}

export type KafkaRequestParse =
  | { readonly ok: true; readonly request: KafkaRequest }
  /** malformed: the bytes do not follow the layout; unsupported-version: a topic API at a version not read here. */
  | {
      readonly ok: false;
      readonly reason: 'malformed' | 'unsupported-version';
      readonly detail: string;
      readonly header?: KafkaRequestHeader;
      /** unsupported-version: false for a Produce with acks=0 (read where every version keeps it). */
      readonly expectsResponse?: boolean;
    };

export interface KafkaRequestHeader {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  readonly clientId: string | null;
}

/** The smallest request: length, api_key, api_version, correlation_id, client_id length. */
export const MIN_REQUEST_FRAME = 4 + 2 + 2 + 4 + 2;

/** Parses one request frame (the 4-byte length included). */
export function parseKafkaRequest(frame: Buffer): KafkaRequestParse {
  let header: KafkaRequestHeader | undefined;
  try {
    const r = new KafkaReader(frame, 4);
    const apiKey = r.int16();
    const apiVersion = r.int16();
    const correlationId = r.int32();
    // Header v1 and v2 both carry client_id as a classic nullable string (v0 is ControlledShutdown v0 only).
    const clientId = r.string(false);
    header = { apiKey, apiVersion, correlationId, clientId };
    if (apiKey < 0 || apiVersion < 0) return bad('malformed', `api key ${apiKey} version ${apiVersion}`, header);
    const spec = TOPIC_API_VERSIONS[apiKey];
    if (spec === undefined) return accept(apiKey, apiVersion, correlationId, clientId, undefined, false, true);
    if (apiVersion > spec.max) {
      const detail = `${apiKeyName(apiKey)} version ${apiVersion} (read up to ${spec.max})`;
      const expectsResponse = laterProduceExpectsResponse(r, apiKey);
      return { ok: false, reason: 'unsupported-version', detail, header, expectsResponse };
    }
    const flex = apiVersion >= spec.flexibleFrom;
    if (flex) r.taggedFields();
    const body = readTopics(r, apiKey, apiVersion, flex);
    return accept(apiKey, apiVersion, correlationId, clientId, body.topics, flex, body.expectsResponse);
  } catch (err) {
    if (err instanceof KafkaWireError) return bad('malformed', err.message, header);
    throw err;
  }
}

/** Cilium's name of an API key (pkg/kafka), as Hubble's l7.kafka.api_key shows it. */
export function apiKeyName(apiKey: number): string {
  return (KAFKA_API_KEYS as readonly string[])[apiKey] ?? String(apiKey);
}

/** One object shape for every parsed request (all fields present), so the handler's reads stay monomorphic. */
function accept(
  apiKey: number,
  apiVersion: number,
  correlationId: number,
  clientId: string | null,
  topics: readonly TopicPartitions[] | undefined,
  isFlexible: boolean,
  expectsResponse: boolean,
): KafkaRequestParse {
  const request: KafkaRequest = { apiKey, apiVersion, correlationId, clientId, topics, isFlexible, expectsResponse };
  return { ok: true, request };
}

function bad(
  reason: 'malformed' | 'unsupported-version',
  detail: string,
  header?: KafkaRequestHeader,
): KafkaRequestParse {
  return { ok: false, reason, detail, ...(header ? { header } : {}) };
}

/**
 * Whether a Produce of a later version than read here waits for a response: every flexible version
 * so far starts its body with transactional_id and acks. Other API keys always answer.
 */
function laterProduceExpectsResponse(r: KafkaReader, apiKey: number): boolean {
  if (apiKey !== API_PRODUCE) return true;
  try {
    r.taggedFields();
    r.string(true);
    return r.int16() !== 0;
  } catch {
    return true;
  }
}

interface TopicBody {
  readonly topics: TopicPartitions[];
  readonly expectsResponse: boolean;
}

function readTopics(r: KafkaReader, apiKey: number, v: number, flex: boolean): TopicBody {
  switch (apiKey) {
    case API_PRODUCE: {
      if (v >= 3) r.string(flex); // transactional_id
      const acks = r.int16();
      r.int32(); // timeout_ms
      const topics = readArray(r, flex, () => {
        const name = topicName(r, flex);
        const partitions = readArray(r, flex, () => {
          const index = r.int32();
          r.skipBytes(flex); // records
          if (flex) r.taggedFields();
          return index;
        });
        if (flex) r.taggedFields();
        return { name, partitions };
      });
      return { topics, expectsResponse: acks !== 0 };
    }
    case API_FETCH: {
      r.skip(12); // replica_id, max_wait_ms, min_bytes
      if (v >= 3) r.int32(); // max_bytes
      if (v >= 4) r.int8(); // isolation_level
      if (v >= 7) r.skip(8); // session_id, session_epoch
      const topics = readArray(r, flex, () => {
        const name = topicName(r, flex);
        const partitions = readArray(r, flex, () => {
          const index = r.int32();
          if (v >= 9) r.int32(); // current_leader_epoch
          r.skip(8); // fetch_offset
          if (v >= 12) r.int32(); // last_fetched_epoch
          if (v >= 5) r.skip(8); // log_start_offset
          r.int32(); // partition_max_bytes
          if (flex) r.taggedFields();
          return index;
        });
        if (flex) r.taggedFields();
        return { name, partitions };
      });
      return { topics, expectsResponse: true };
    }
    case API_LIST_OFFSETS: {
      r.int32(); // replica_id
      if (v >= 2) r.int8(); // isolation_level
      const topics = readArray(r, flex, () => {
        const name = topicName(r, flex);
        const partitions = readArray(r, flex, () => {
          const index = r.int32();
          if (v >= 4) r.int32(); // current_leader_epoch
          r.skip(8); // timestamp
          if (v === 0) r.int32(); // max_num_offsets
          if (flex) r.taggedFields();
          return index;
        });
        if (flex) r.taggedFields();
        return { name, partitions };
      });
      return { topics, expectsResponse: true };
    }
    case API_METADATA: {
      const topics = readArray(r, flex, () => {
        if (v >= 10) r.skip(16); // topic_id
        const name = r.string(flex);
        if (flex) r.taggedFields();
        // v10+: a topic asked for by id alone has no name; it names no topic a rule could match.
        return { name: name ?? '', partitions: [] };
      });
      return { topics: topics.filter((t) => t.name !== ''), expectsResponse: true };
    }
    case API_OFFSET_COMMIT: {
      r.string(flex); // group_id
      if (v >= 1) {
        r.int32(); // generation_id
        r.string(flex); // member_id
      }
      if (v >= 7) r.string(flex); // group_instance_id
      if (v >= 2 && v <= 4) r.skip(8); // retention_time_ms
      const topics = readArray(r, flex, () => {
        const name = topicName(r, flex);
        const partitions = readArray(r, flex, () => {
          const index = r.int32();
          r.skip(8); // committed_offset
          if (v >= 6) r.int32(); // committed_leader_epoch
          if (v === 1) r.skip(8); // commit_timestamp
          r.string(flex); // committed_metadata
          if (flex) r.taggedFields();
          return index;
        });
        if (flex) r.taggedFields();
        return { name, partitions };
      });
      return { topics, expectsResponse: true };
    }
    case API_OFFSET_FETCH: {
      r.string(flex); // group_id
      const topics = readArray(r, flex, () => {
        const name = topicName(r, flex);
        const partitions = readArray(r, flex, () => r.int32());
        if (flex) r.taggedFields();
        return { name, partitions };
      });
      return { topics, expectsResponse: true };
    }
    default:
      throw new KafkaWireError(`API key ${apiKey} carries no topics`);
  }
}

/** An array; null (-1) reads as empty. */
function readArray<T>(r: KafkaReader, flex: boolean, item: () => T): T[] {
  const n = r.arrayLength(flex);
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(item());
  return out;
}

function topicName(r: KafkaReader, flex: boolean): string {
  const name = r.string(flex);
  if (name === null) throw new KafkaWireError('a null topic name');
  return name;
}
