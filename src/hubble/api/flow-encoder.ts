// A hand-written protobuf encoder for GetFlowsResponse{flow} — the one message the flow API sends
// in bulk. protobufjs's reflective encoder costs ~7 µs per flow; this one writes the fields the
// flow model has straight into a reused buffer, in field-number order and with protobufjs's rule
// for presence (a field is written when it is set, even to its default), so both produce the same
// bytes; test/hubble/flow-encoder.test.ts holds them to it. Flows carrying fields outside the
// model fall back to protobufjs.
import type protobuf from 'protobufjs';
import type { Endpoint, Flow, FlowsResponse, IP, Layer4, Layer7, Policy, Timestamp } from '../flow/flow.js';
import { protoType } from './proto-root.js';

/**
 * Encodes a GetFlowsResponse. The result is a view into a shared buffer, valid until the next
 * call: copy it (GrpcServer's send does) before encoding another.
 */
export function encodeFlowsResponse(r: FlowsResponse): Uint8Array {
  if (r.flow === undefined || !isModelled(r.flow))
    return fallback()
      .encode(r as unknown as protobuf.Message)
      .finish();
  const w = writer;
  w.pos = 0;
  w.message(1, r.flow, writeFlow);
  if (r.node_name !== undefined) w.string(1000, r.node_name);
  if (r.time !== undefined) w.message(1001, r.time, writeTimestamp);
  return w.buf.subarray(0, w.pos);
}

let fallbackType: protobuf.Type | undefined;
function fallback(): protobuf.Type {
  fallbackType ??= protoType('observer.GetFlowsResponse');
  return fallbackType;
}

const MODELLED = new Set([
  'time',
  'uuid',
  'emitter',
  'verdict',
  'drop_reason',
  'auth_type',
  'ethernet',
  'IP',
  'l4',
  'source',
  'destination',
  'Type',
  'node_name',
  'node_labels',
  'source_names',
  'destination_names',
  'l7',
  'reply',
  'event_type',
  'source_service',
  'destination_service',
  'traffic_direction',
  'policy_match_type',
  'trace_observation_point',
  'trace_reason',
  'drop_reason_desc',
  'is_reply',
  'interface',
  'proxy_port',
  'trace_context',
  'ip_trace_id',
  'Summary',
  'egress_allowed_by',
  'ingress_allowed_by',
  'egress_denied_by',
  'ingress_denied_by',
  'policy_log',
]);

function isModelled(f: Flow): boolean {
  for (const k in f) if (!MODELLED.has(k)) return false;
  const l4 = f.l4;
  return l4 === undefined || (l4.VRRP === undefined && l4.IGMP === undefined);
}

class Writer {
  buf = new Uint8Array(64 << 10);
  pos = 0;
  /** Where the content of the submessage message() wrote last starts and ends. */
  private contentStart = 0;
  private contentEnd = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  varint(v: number): void {
    this.ensure(10);
    const b = this.buf;
    if (v < 0x80 && v >= 0) {
      b[this.pos++] = v;
      return;
    }
    if (v < 0) {
      // int32/enum negatives are ten-byte two's complement.
      const lo = v >>> 0;
      this.varint64(lo, 0xffffffff);
      return;
    }
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }

  private varint64(lo: number, hi: number): void {
    const b = this.buf;
    for (let i = 0; i < 9; i++) {
      b[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[this.pos++] = 1;
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  uint(field: number, v: number | undefined): void {
    if (v === undefined || v === null) return;
    this.tag(field, 0);
    this.varint(Number(v));
  }

  bool(field: number, v: boolean | undefined): void {
    if (v === undefined || v === null) return;
    this.tag(field, 0);
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  string(field: number, s: string | undefined): void {
    if (s === undefined || s === null) return;
    this.tag(field, 2);
    const n = s.length;
    this.ensure(n * 3 + 5);
    if (n < 0x80) {
      // One pass for the common short ASCII string; anything else takes the Buffer path.
      const b = this.buf;
      const start = this.pos;
      let p = start + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[p++] = c;
      }
      if (i === n) {
        b[start] = n;
        this.pos = p;
        return;
      }
    }
    const bytes = Buffer.from(s, 'utf8');
    this.varint(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  strings(field: number, xs: readonly string[] | undefined): void {
    if (xs === undefined) return;
    for (const s of xs) this.string(field, s);
  }

  /** A length-delimited submessage; the length is patched in after the content is written. */
  message<T>(field: number, v: T | undefined, write: (w: Writer, v: T) => void): void {
    if (v === undefined || v === null) return;
    this.tag(field, 2);
    this.ensure(1);
    const start = this.pos;
    this.pos++;
    write(this, v);
    const len = this.pos - start - 1;
    if (len < 0x80) {
      this.buf[start] = len;
      this.contentStart = start + 1;
      this.contentEnd = this.pos;
      return;
    }
    let extra = 0;
    for (let x = len; x >= 0x80; x = Math.floor(x / 0x80)) extra++;
    this.ensure(extra);
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    const end = this.pos + extra;
    this.pos = start;
    this.varint(len);
    this.pos = end;
    this.contentStart = end - len;
    this.contentEnd = end;
  }

  /**
   * A submessage whose encoding is kept per object: flows share endpoint objects (the parser
   * reuses them), so their bytes are encoded once.
   */
  cachedMessage<T extends object>(
    field: number,
    v: T | undefined,
    write: (w: Writer, v: T) => void,
    cache: WeakMap<T, Uint8Array>,
  ): void {
    if (v === undefined || v === null) return;
    const hit = cache.get(v);
    if (hit !== undefined) {
      this.tag(field, 2);
      this.varint(hit.length);
      this.ensure(hit.length);
      this.buf.set(hit, this.pos);
      this.pos += hit.length;
      return;
    }
    this.message(field, v, write);
    cache.set(v, this.buf.slice(this.contentStart, this.contentEnd));
  }

  messages<T>(field: number, vs: readonly T[] | undefined, write: (w: Writer, v: T) => void): void {
    if (vs === undefined) return;
    for (const v of vs) this.message(field, v, write);
  }
}

const writer = new Writer();
const ENDPOINT_BYTES = new WeakMap<Endpoint, Uint8Array>();

function writeTimestamp(w: Writer, t: Timestamp): void {
  w.uint(1, t.seconds);
  w.uint(2, t.nanos);
}

function writeFlow(w: Writer, f: Flow): void {
  w.message(1, f.time, writeTimestamp);
  w.uint(2, f.verdict);
  w.uint(3, f.drop_reason);
  w.message(4, f.ethernet, (w2, e) => {
    w2.string(1, e.source);
    w2.string(2, e.destination);
  });
  w.message(5, f.IP, writeIp);
  w.message(6, f.l4, writeLayer4);
  w.cachedMessage(8, f.source, writeEndpoint, ENDPOINT_BYTES);
  w.cachedMessage(9, f.destination, writeEndpoint, ENDPOINT_BYTES);
  w.uint(10, f.Type);
  w.string(11, f.node_name);
  w.strings(13, f.source_names);
  w.strings(14, f.destination_names);
  w.message(15, f.l7, writeLayer7);
  w.bool(16, f.reply);
  w.message(19, f.event_type, (w2, e) => {
    w2.uint(1, e.type);
    w2.uint(2, e.sub_type);
  });
  w.message(20, f.source_service, writeService);
  w.message(21, f.destination_service, writeService);
  w.uint(22, f.traffic_direction);
  w.uint(23, f.policy_match_type);
  w.uint(24, f.trace_observation_point);
  w.uint(25, f.drop_reason_desc);
  w.message(26, f.is_reply, (w2, b) => w2.bool(1, b.value));
  w.message(28, f.interface, (w2, i) => {
    w2.uint(1, i.index);
    w2.string(2, i.name);
  });
  w.uint(29, f.proxy_port);
  w.message(30, f.trace_context, (w2, t) =>
    w2.message(1, t.parent, (w3, p) => {
      w3.string(1, p.trace_id);
    }),
  );
  w.string(34, f.uuid);
  w.uint(35, f.auth_type);
  w.uint(36, f.trace_reason);
  w.strings(37, f.node_labels);
  w.message(40, f.ip_trace_id, (w2, t) => {
    w2.uint(1, t.trace_id);
    w2.uint(2, t.ip_option_type);
  });
  w.message(41, f.emitter, (w2, e) => {
    w2.string(1, e.name);
    w2.string(2, e.version);
  });
  w.messages(21001, f.egress_allowed_by, writePolicy);
  w.messages(21002, f.ingress_allowed_by, writePolicy);
  w.messages(21004, f.egress_denied_by, writePolicy);
  w.messages(21005, f.ingress_denied_by, writePolicy);
  w.strings(21006, f.policy_log);
  w.string(100000, f.Summary);
}

function writeIp(w: Writer, ip: IP): void {
  w.string(1, ip.source);
  w.string(2, ip.destination);
  w.uint(3, ip.ipVersion);
  w.bool(4, ip.encrypted);
  w.string(5, ip.source_xlated);
}

function writePorts(w: Writer, p: { source_port?: number; destination_port?: number }): void {
  w.uint(1, p.source_port);
  w.uint(2, p.destination_port);
}

function writeLayer4(w: Writer, l4: Layer4): void {
  w.message(1, l4.TCP, (w2, t) => {
    writePorts(w2, t);
    w2.message(3, t.flags, (w3, fl) => {
      w3.bool(1, fl.FIN);
      w3.bool(2, fl.SYN);
      w3.bool(3, fl.RST);
      w3.bool(4, fl.PSH);
      w3.bool(5, fl.ACK);
      w3.bool(6, fl.URG);
      w3.bool(7, fl.ECE);
      w3.bool(8, fl.CWR);
      w3.bool(9, fl.NS);
    });
  });
  w.message(2, l4.UDP, writePorts);
  w.message(3, l4.ICMPv4, writeIcmp);
  w.message(4, l4.ICMPv6, writeIcmp);
  w.message(5, l4.SCTP, writePorts);
}

function writeIcmp(w: Writer, i: { type?: number; code?: number }): void {
  w.uint(1, i.type);
  w.uint(2, i.code);
}

function writeEndpoint(w: Writer, e: Endpoint): void {
  w.uint(1, e.ID);
  w.uint(2, e.identity);
  w.string(3, e.namespace);
  w.strings(4, e.labels);
  w.string(5, e.pod_name);
  w.messages(6, e.workloads, (w2, wl) => {
    w2.string(1, wl.name);
    w2.string(2, wl.kind);
  });
  w.string(7, e.cluster_name);
}

function writeLayer7(w: Writer, l7: Layer7): void {
  w.uint(1, l7.type);
  w.uint(2, l7.latency_ns);
  w.message(100, l7.dns, (w2, d) => {
    w2.string(1, d.query);
    w2.strings(2, d.ips);
    w2.uint(3, d.ttl);
    w2.strings(4, d.cnames);
    w2.string(5, d.observation_source);
    w2.uint(6, d.rcode);
    w2.strings(7, d.qtypes);
    w2.strings(8, d.rrtypes);
  });
  w.message(101, l7.http, (w2, h) => {
    w2.uint(1, h.code);
    w2.string(2, h.method);
    w2.string(3, h.url);
    w2.string(4, h.protocol);
    w2.messages(5, h.headers, (w3, hd) => {
      w3.string(1, hd.key);
      w3.string(2, hd.value);
    });
  });
  w.message(102, l7.kafka, (w2, k) => {
    w2.uint(1, k.error_code);
    w2.uint(2, k.api_version);
    w2.string(3, k.api_key);
    w2.uint(4, k.correlation_id);
    w2.string(5, k.topic);
  });
}

function writeService(w: Writer, s: { name?: string; namespace?: string }): void {
  w.string(1, s.name);
  w.string(2, s.namespace);
}

function writePolicy(w: Writer, p: Policy): void {
  w.string(1, p.name);
  w.string(2, p.namespace);
  w.strings(3, p.labels);
  w.uint(4, p.revision);
  w.string(5, p.kind);
}
