// The response to a request the policy denies: the API's own response at the request's version,
// with error 29 TOPIC_AUTHORIZATION_FAILED on every topic and partition the request named, so the
// client reports an authorization error. Only the six topic APIs have one (at the versions
// kafka-request.ts reads); for every other request the connection is closed instead. Pure.
import {
  API_FETCH,
  API_LIST_OFFSETS,
  API_METADATA,
  API_OFFSET_COMMIT,
  API_OFFSET_FETCH,
  API_PRODUCE,
  type KafkaRequest,
  TOPIC_API_VERSIONS,
} from './kafka-request.js';
import { KafkaWriter } from './kafka-wire.js';

export const TOPIC_AUTHORIZATION_FAILED = 29;

const NO_OFFSET = -1n;
/** Metadata's "authorized operations not requested". */
const NO_OPERATIONS = -2147483648;

/** The deny response frame, or undefined when the API has none (close the connection). */
export function buildDenyResponse(req: KafkaRequest): Buffer | undefined {
  const spec = TOPIC_API_VERSIONS[req.apiKey];
  if (spec === undefined || req.topics === undefined || req.apiVersion > spec.max) return undefined;
  if (!req.expectsResponse) return undefined;
  const v = req.apiVersion;
  const flex = req.isFlexible;
  const w = new KafkaWriter().int32(req.correlationId).tags(flex);
  const err = TOPIC_AUTHORIZATION_FAILED;
  const topics = req.topics;
  const eachTopic = (partition: (index: number) => void): void => {
    w.arrayLength(topics.length, flex);
    for (const t of topics) {
      w.string(t.name, flex).arrayLength(t.partitions.length, flex);
      for (const p of t.partitions) {
        partition(p);
        w.tags(flex);
      }
      w.tags(flex);
    }
  };
  switch (req.apiKey) {
    case API_PRODUCE:
      eachTopic((p) => {
        w.int32(p).int16(err).int64(NO_OFFSET);
        if (v >= 2) w.int64(NO_OFFSET); // log_append_time_ms
        if (v >= 5) w.int64(NO_OFFSET); // log_start_offset
        if (v >= 8) w.arrayLength(0, flex).string(null, flex); // record_errors, error_message
      });
      if (v >= 1) w.int32(0); // throttle_time_ms
      break;
    case API_FETCH:
      if (v >= 1) w.int32(0); // throttle_time_ms
      if (v >= 7) w.int16(0).int32(0); // error_code, session_id
      eachTopic((p) => {
        w.int32(p).int16(err).int64(NO_OFFSET); // high_watermark
        if (v >= 4) w.int64(NO_OFFSET); // last_stable_offset
        if (v >= 5) w.int64(NO_OFFSET); // log_start_offset
        if (v >= 4) w.arrayLength(0, flex); // aborted_transactions
        if (v >= 11) w.int32(-1); // preferred_read_replica
        if (flex) w.uvarint(1);
        else w.int32(0); // records: empty
      });
      break;
    case API_LIST_OFFSETS:
      if (v >= 2) w.int32(0);
      eachTopic((p) => {
        w.int32(p).int16(err);
        if (v === 0)
          w.arrayLength(0, flex); // old_style_offsets
        else w.int64(NO_OFFSET).int64(NO_OFFSET); // timestamp, offset
        if (v >= 4) w.int32(-1); // leader_epoch
      });
      break;
    case API_METADATA:
      if (v >= 3) w.int32(0);
      w.arrayLength(0, flex); // brokers
      if (v >= 2) w.string(null, flex); // cluster_id
      if (v >= 1) w.int32(-1); // controller_id
      w.arrayLength(topics.length, flex);
      for (const t of topics) {
        w.int16(err).string(t.name, flex);
        if (v >= 10) w.int64(0n).int64(0n); // topic_id
        if (v >= 1) w.int8(0); // is_internal
        w.arrayLength(0, flex); // partitions
        if (v >= 8) w.int32(NO_OPERATIONS);
        w.tags(flex);
      }
      if (v >= 8 && v <= 10) w.int32(NO_OPERATIONS); // cluster_authorized_operations
      break;
    case API_OFFSET_COMMIT:
      if (v >= 3) w.int32(0);
      eachTopic((p) => {
        w.int32(p).int16(err);
      });
      break;
    case API_OFFSET_FETCH:
      if (v >= 3) w.int32(0);
      eachTopic((p) => {
        w.int32(p).int64(NO_OFFSET);
        if (v >= 5) w.int32(-1); // committed_leader_epoch
        w.string('', flex).int16(err); // metadata, error_code
      });
      if (v >= 2) w.int16(0); // error_code
      break;
    default:
      return undefined;
  }
  return w.tags(flex).frame();
}
