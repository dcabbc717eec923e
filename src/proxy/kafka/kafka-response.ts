// What the proxy reads of a broker's response: its correlation id (bytes 4-8) and, for the APIs
// whose response carries one top-level error code at a fixed place, that code. Topic APIs answer
// per partition; their responses are relayed unread and recorded without an error code. Pure.
import { API_API_VERSIONS, API_FETCH, type KafkaRequestHeader } from './kafka-request.js';

const API_FIND_COORDINATOR = 10;
const API_JOIN_GROUP = 11;
const API_HEARTBEAT = 12;
const API_LEAVE_GROUP = 13;
const API_SYNC_GROUP = 14;

/**
 * The response's top-level error code, when `peek` (the frame's first bytes, length included)
 * holds it; undefined for APIs without one at a fixed place.
 */
export function responseErrorCode(req: KafkaRequestHeader, peek: Buffer): number | undefined {
  const at = errorCodeOffset(req.apiKey, req.apiVersion);
  if (at === undefined) return undefined;
  let body = 8;
  if (at.flexible) {
    // Response header v1: a tagged-field section, one zero byte when empty.
    if (peek.length <= body || peek[body] !== 0) return undefined;
    body += 1;
  }
  const pos = body + at.offset;
  return pos + 2 <= peek.length ? peek.readInt16BE(pos) : undefined;
}

function errorCodeOffset(apiKey: number, v: number): { offset: number; flexible: boolean } | undefined {
  switch (apiKey) {
    case API_API_VERSIONS:
      return { offset: 0, flexible: false }; // ApiVersions answers with header v0 at every version
    case API_FETCH:
      return v >= 7 ? { offset: 4, flexible: v >= 12 } : undefined;
    case API_FIND_COORDINATOR:
      return v >= 4 ? undefined : { offset: v >= 1 ? 4 : 0, flexible: v >= 3 };
    case API_JOIN_GROUP:
      return { offset: v >= 2 ? 4 : 0, flexible: v >= 6 };
    case API_HEARTBEAT:
    case API_LEAVE_GROUP:
    case API_SYNC_GROUP:
      return { offset: v >= 1 ? 4 : 0, flexible: v >= 4 };
    default:
      return undefined;
  }
}
