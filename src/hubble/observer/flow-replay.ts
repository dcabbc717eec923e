// `observe --input-file`: a GetFlows answer read straight off a stream of jsonpb lines, as
// hubble's IOReaderObserver does. The input is streamed: filters are applied line by line,
// --first stops reading after N matches, --last keeps a ring of N and --all passes everything,
// so a file of any length is read whole at bounded memory. No ring of 65535 in between: nothing
// is dropped. A line that does not decode stops the replay with its line number (see
// docs/observe.md for why this differs from hubble, which logs a warning and skips the line).
import { fromProtoJson, ProtoJsonError } from '../api/proto-json.js';
import { protoType } from '../api/proto-root.js';
import type { FlowPredicate } from '../filters/flow-filter.js';
import { compareTimestamps, type Flow, type FlowsResponse, type Timestamp } from '../flow/flow.js';
import { lostResponse } from './flow-reader.js';

export interface ReplayQuery {
  /** 0 for all; otherwise the first or the last N. */
  readonly number: number;
  readonly first: boolean;
  readonly since?: Timestamp;
  readonly until?: Timestamp;
  /**
   * A line that does not decode: as hubble's reader does, it is skipped and reported here (the
   * CLI warns on stderr, naming the line). Without it, the replay stops with the error.
   */
  readonly onBadLine?: (err: ReplayError) => void;
}

/** hubble's bound on --last for a replay: the ring of N is held in memory until the end. */
export const MAX_REPLAY_LAST = 1_000_000;

/** hubble's bufio.Scanner stops at 64 KiB; a flow line is never near this, a corrupt file can be. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class ReplayError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ReplayError';
  }
}

/**
 * Splits a stream of chunks (a Readable, stdin) into lines without holding more than one line
 * and one chunk. A trailing "\r" is dropped. Throws on a line longer than maxLineBytes.
 */
export async function* readLines(
  chunks: AsyncIterable<Buffer | string>,
  source: string,
  maxLineBytes: number = MAX_LINE_BYTES,
): AsyncGenerator<string> {
  let carry: Buffer[] = [];
  let carryBytes = 0;
  let lineNo = 0;
  for await (const chunk of chunks) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      lineNo++;
      let line: string;
      if (carryBytes === 0) line = buf.toString('utf8', start, nl);
      else {
        if (carryBytes + nl - start > maxLineBytes) throw tooLong(source, lineNo, maxLineBytes);
        carry.push(buf.subarray(start, nl));
        line = Buffer.concat(carry).toString('utf8');
        carry = [];
        carryBytes = 0;
      }
      if (line.length > maxLineBytes) throw tooLong(source, lineNo, maxLineBytes);
      yield line.endsWith('\r') ? line.slice(0, -1) : line;
      start = nl + 1;
    }
    if (start < buf.length) {
      carryBytes += buf.length - start;
      if (carryBytes > maxLineBytes) throw tooLong(source, lineNo + 1, maxLineBytes);
      // Copy: the stream may reuse its buffer for the next chunk.
      carry.push(Buffer.from(buf.subarray(start)));
    }
  }
  if (carryBytes > 0) {
    const line = Buffer.concat(carry).toString('utf8');
    yield line.endsWith('\r') ? line.slice(0, -1) : line;
  }
}

/**
 * One input line as a response: a GetFlowsResponse (`hubble observe -o jsonpb`) or a bare Flow
 * (`-o json` with legacy-json-output). Blank lines and node status events give undefined.
 * `where` is "file:line" and starts every error message.
 */
export function decodeFlowLine(text: string, where: string): FlowsResponse | undefined {
  if (text.trim() === '') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ReplayError(
      'MBR_FLOW_JSON_INVALID',
      `${where}: expected a JSON object per line, got ${(err as Error).message}`,
    );
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new ReplayError(
      'MBR_FLOW_JSON_INVALID',
      `${where}: expected a JSON object per line (a GetFlowsResponse or a Flow), got ${describeLine(json)}`,
    );
  const o = json as Record<string, unknown>;
  try {
    if (RESPONSE_KEYS.some((k) => Object.hasOwn(o, k))) {
      const r = fromProtoJson(RESPONSE(), o, where, { ignoreUnknown: true }) as FlowsResponse;
      if (r.flow !== undefined)
        return { flow: r.flow, node_name: r.flow.node_name ?? r.node_name ?? '', time: r.flow.time ?? r.time };
      if (r.lost_events !== undefined)
        return lostResponse(
          r.lost_events.source ?? 0,
          r.lost_events.num_events_lost ?? 0,
          r.node_name ?? '',
          r.time ?? ZERO,
        );
      return undefined;
    }
    const f = fromProtoJson(FLOW(), o, where, { ignoreUnknown: true }) as Flow;
    return { flow: f, node_name: f.node_name ?? '', time: f.time };
  } catch (err) {
    if (err instanceof ProtoJsonError) {
      // "file:7: flow.l4.TCP.source_port: expected ..." rather than "file:7.flow.l4...".
      const field = err.path === where ? '' : `${err.path.slice(where.length + 1)}: `;
      throw new ReplayError(err.code, `${where}: ${field}expected ${err.expected}, got ${err.got}`);
    }
    throw err;
  }
}

/**
 * The GetFlows answer over a stream of lines. Flows outside since/until or not matching are
 * skipped; lost-event records always pass (a replay must not hide that events were lost) and,
 * as in hubble's reader, count towards --first/--last N like flows do.
 */
export async function* replayFlows(
  lines: AsyncIterable<string>,
  source: string,
  match: FlowPredicate,
  q: ReplayQuery,
): AsyncGenerator<FlowsResponse> {
  if (!q.first && q.number > MAX_REPLAY_LAST)
    throw new ReplayError(
      'MBR_CLI_USAGE',
      `--last: expected at most ${MAX_REPLAY_LAST} with --input-file, got ${q.number}`,
    );
  const isLast = !q.first && q.number > 0;
  const ring: FlowsResponse[] = [];
  let written = 0;
  let sent = 0;
  let lineNo = 0;
  for await (const text of lines) {
    lineNo++;
    let r: FlowsResponse | undefined;
    try {
      r = decodeFlowLine(text, `${source}:${lineNo}`);
    } catch (err) {
      if (!(err instanceof ReplayError) || q.onBadLine === undefined) throw err;
      q.onBadLine(err);
      continue;
    }
    if (r === undefined) continue;
    if (r.flow !== undefined) {
      const f = r.flow;
      if (q.since !== undefined && compareTimestamps(f.time, q.since) < 0) continue;
      if (q.until !== undefined && compareTimestamps(f.time, q.until) > 0) continue;
      if (!match(f)) continue;
    }
    if (isLast) {
      ring[written % q.number] = r;
      written++;
      continue;
    }
    yield r;
    sent++;
    if (q.first && sent >= q.number) return;
  }
  if (!isLast) return;
  const held = Math.min(written, q.number);
  for (let i = written - held; i < written; i++) yield ring[i % q.number]!;
}

const RESPONSE_KEYS = ['flow', 'lost_events', 'lostEvents', 'node_status', 'nodeStatus'];
const ZERO: Timestamp = { seconds: 0, nanos: 0 };
let responseType: ReturnType<typeof protoType> | undefined;
let flowType: ReturnType<typeof protoType> | undefined;
// Looked up once: a lookup walks the proto root, and a replay decodes millions of lines.
const RESPONSE = () => (responseType ??= protoType('observer.GetFlowsResponse'));
const FLOW = () => (flowType ??= protoType('flow.Flow'));

function tooLong(source: string, lineNo: number, max: number): ReplayError {
  return new ReplayError(
    'MBR_FLOW_JSON_INVALID',
    `${source}:${lineNo}: expected a line of at most ${max} bytes, got a longer one`,
  );
}

function describeLine(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}
