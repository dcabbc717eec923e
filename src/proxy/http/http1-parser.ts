// HTTP/1.1 message framing for the L7 proxy (RFC 9112), pure and incremental over Buffers.
//
// Request heads are parsed as strictly as a hardened server: anything two parsers could read
// differently (request smuggling) is refused before a byte is forwarded. Bodies are never
// decoded or re-serialised: the reader only tracks where a message ends (Content-Length, or the
// chunked framing including trailers) and hands the body on as slices of the Buffers it was given.
// Responses (from the upstream server) are parsed just enough to find the status and the message
// boundaries.

/** One header field as received. `name` is lower-cased; `value` has its surrounding OWS removed. */
export interface HttpHeader {
  readonly name: string;
  readonly value: string;
}

export type BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  /** Responses only: the body runs until the server closes the connection. */
  | { readonly kind: 'close' };

export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** "HTTP/1.1" or "HTTP/1.0". */
  readonly version: string;
  readonly headers: readonly HttpHeader[];
  /** The exact bytes of the head, request line to the blank line inclusive. */
  readonly raw: Buffer;
  readonly body: BodyFraming;
  /** The connection stays open after this message (HTTP/1.1 default, 1.0 with keep-alive). */
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
  /** The protocol asked for in `Upgrade` when `Connection` lists `upgrade`; CONNECT gives "CONNECT". */
  readonly upgrade?: string;
  readonly host?: string;
}

export interface ResponseHead {
  readonly status: number;
  /** The exact bytes of the head. */
  readonly raw: Buffer;
  readonly version: string;
  /** Not collected (empty): only the framing fields are read from a response. */
  readonly headers: readonly HttpHeader[];
  readonly body: BodyFraming;
  readonly keepAlive: boolean;
  /** 1xx other than 101: another response to the same request follows. */
  readonly isInterim: boolean;
}

export interface Http1Limits {
  /** Largest request head accepted; beyond it the answer is 431. Default 65536. */
  readonly maxHeadBytes?: number;
  /** Most header fields accepted; beyond it the answer is 431. Default 100. */
  readonly maxHeaders?: number;
}

/** A framing error: the status the proxy answers with (400, 431, 501, 505) and why. */
export class HttpParseError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'HttpParseError';
    this.status = status;
  }
}

export const DEFAULT_MAX_HEAD_BYTES = 65536;
export const DEFAULT_MAX_HEADERS = 100;

/** Parses one complete request head (ending in CRLF CRLF). Throws HttpParseError. */
export function parseRequestHead(raw: Buffer, limits: Http1Limits = {}): RequestHead {
  const lines = splitHeadLines(raw);
  const requestLine = lines[0];
  const sp1 = requestLine.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : requestLine.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || requestLine.indexOf(' ', sp2 + 1) >= 0)
    throw new HttpParseError(400, 'malformed request line');
  const method = requestLine.slice(0, sp1);
  const target = requestLine.slice(sp1 + 1, sp2);
  const version = requestLine.slice(sp2 + 1);
  if (!isToken(method)) throw new HttpParseError(400, 'invalid method');
  if (target.length === 0 || !isTarget(target)) throw new HttpParseError(400, 'invalid request target');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') {
    if (/^HTTP\/\d\.\d$/.test(version)) throw new HttpParseError(505, 'HTTP version not supported');
    throw new HttpParseError(400, 'invalid HTTP version');
  }
  const maxHeaders = limits.maxHeaders ?? DEFAULT_MAX_HEADERS;
  if (lines.length - 1 > maxHeaders) throw new HttpParseError(431, 'too many header fields');
  const headers = parseFieldLines(lines, 1);
  let contentLength: number | undefined;
  let te: string[] | undefined;
  let host: string | undefined;
  let hostCount = 0;
  let connection = '';
  let expect: string | undefined;
  let upgradeProto: string | undefined;
  for (const h of headers) {
    switch (h.name) {
      case 'content-length':
        if (contentLength !== undefined) throw new HttpParseError(400, 'more than one Content-Length');
        contentLength = parseContentLength(h.value);
        break;
      case 'transfer-encoding':
        te = (te ?? []).concat(splitList(h.value));
        break;
      case 'host':
        hostCount++;
        host = h.value;
        break;
      case 'connection':
        connection = connection ? `${connection},${h.value}` : h.value;
        break;
      case 'expect':
        expect = h.value;
        break;
      case 'upgrade':
        upgradeProto = h.value;
        break;
    }
  }
  if (version === 'HTTP/1.1' && hostCount !== 1)
    throw new HttpParseError(400, hostCount === 0 ? 'no Host header' : 'more than one Host header');
  if (hostCount > 1) throw new HttpParseError(400, 'more than one Host header');
  if (host !== undefined && !isHostValue(host)) throw new HttpParseError(400, 'invalid Host header');
  let body: BodyFraming = NONE;
  if (te !== undefined) {
    if (contentLength !== undefined) throw new HttpParseError(400, 'Transfer-Encoding with Content-Length');
    if (version === 'HTTP/1.0') throw new HttpParseError(400, 'Transfer-Encoding in HTTP/1.0');
    checkTransferCodings(te);
    body = CHUNKED;
  } else if (contentLength !== undefined && contentLength > 0) body = { kind: 'length', length: contentLength };
  const conn = connection === '' ? NO_TOKENS : splitList(connection.toLowerCase());
  const keepAlive = version === 'HTTP/1.1' ? !conn.includes('close') : conn.includes('keep-alive');
  if (expect !== undefined && expect.toLowerCase() !== '100-continue')
    throw new HttpParseError(417, 'unsupported Expect');
  const upgrade =
    method === 'CONNECT'
      ? 'CONNECT'
      : upgradeProto !== undefined && conn.includes('upgrade')
        ? upgradeProto
        : undefined;
  const head: { -readonly [K in keyof RequestHead]: RequestHead[K] } = {
    method,
    target,
    version,
    headers,
    raw,
    body,
    keepAlive,
    expectContinue: expect !== undefined && version === 'HTTP/1.1',
  };
  if (upgrade !== undefined) head.upgrade = upgrade;
  if (host !== undefined) head.host = host;
  return head;
}

/**
 * Parses one complete response head. `requestMethod` is the method of the request it answers
 * (HEAD and CONNECT responses carry no body). Lenient where only the server is affected, but a
 * framing two parsers could read differently is refused (the proxy then closes both sides).
 */
export function parseResponseHead(raw: Buffer, requestMethod: string): ResponseHead {
  const text = raw.toString('latin1');
  let eol = text.indexOf('\r\n');
  if (eol < 0) throw new HttpParseError(502, 'incomplete head');
  const statusLine = text.slice(0, eol);
  if (
    statusLine.length < 12 ||
    !statusLine.startsWith('HTTP/1.') ||
    (statusLine[7] !== '0' && statusLine[7] !== '1') ||
    statusLine[8] !== ' ' ||
    (statusLine.length > 12 && statusLine[12] !== ' ')
  )
    throw new HttpParseError(502, 'malformed status line');
  const version = statusLine.slice(0, 8);
  const code = statusLine.slice(9, 12);
  if (!/^\d{3}$/.test(code)) throw new HttpParseError(502, 'malformed status line');
  const status = Number(code);
  let contentLength: number | undefined;
  let chunked = false;
  let hasTe = false;
  let connection = '';
  // Only the fields that frame the message are looked at (and only their names lower-cased).
  const end = text.length - 4;
  for (let at = eol + 2; at < end; at = eol + 2) {
    eol = text.indexOf('\r\n', at);
    if (eol < 0) eol = end;
    const c0 = text.charCodeAt(at) | 0x20;
    if (c0 !== 0x63 /* c */ && c0 !== 0x74 /* t */) continue;
    const colon = text.indexOf(':', at);
    if (colon < 0 || colon > eol) continue;
    const name = text.slice(at, colon).toLowerCase();
    if (name !== 'content-length' && name !== 'transfer-encoding' && name !== 'connection') continue;
    const value = text.slice(colon + 1, eol).trim();
    if (name === 'content-length') {
      const n = parseContentLength(value, 502);
      if (contentLength !== undefined && contentLength !== n)
        throw new HttpParseError(502, 'conflicting Content-Length');
      contentLength = n;
    } else if (name === 'transfer-encoding') {
      hasTe = true;
      const codings = splitList(value.toLowerCase());
      chunked = codings[codings.length - 1] === 'chunked';
    } else if (name === 'connection') connection = connection ? `${connection},${value}` : value;
  }
  const conn = connection === '' ? NO_TOKENS : splitList(connection.toLowerCase());
  let keepAlive = version === 'HTTP/1.1' ? !conn.includes('close') : conn.includes('keep-alive');
  const isInterim = status >= 100 && status < 200 && status !== 101;
  let body: BodyFraming;
  if (
    isInterim ||
    status === 101 ||
    status === 204 ||
    status === 304 ||
    requestMethod === 'HEAD' ||
    (requestMethod === 'CONNECT' && status >= 200 && status < 300)
  )
    body = NONE;
  else if (hasTe && chunked) body = CHUNKED;
  else if (hasTe) {
    body = CLOSE;
    keepAlive = false;
  } else if (contentLength !== undefined) body = contentLength > 0 ? { kind: 'length', length: contentLength } : NONE;
  else {
    body = CLOSE;
    keepAlive = false;
  }
  return { status, raw, version, headers: NO_HEADERS, body, keepAlive, isInterim };
}

/**
 * Finds the end of a head: the index just past CRLF CRLF in `buf` from `start`, or -1. Throws on
 * a bare LF, which no valid head contains (so a head terminated by LF LF is refused at once rather
 * than waited for).
 */
export function findHeadEnd(buf: Buffer, start: number): number {
  const i = buf.indexOf(CRLFCRLF, start);
  // A complete head is checked line by line when parsed; an incomplete one is checked here.
  if (i >= 0) return i + 4;
  let lf = buf.indexOf(LF, start);
  while (lf >= 0) {
    if (lf === 0 || buf[lf - 1] !== CR) throw new HttpParseError(400, 'bare LF in head');
    lf = buf.indexOf(LF, lf + 1);
  }
  return -1;
}

/**
 * Tracks one message body to find where it ends. `consume` takes bytes from `buf[start..]` and
 * returns the index just past the last body byte it took; when `done` is set the message has
 * ended there. The chunked framing (sizes, extensions, CRLFs, trailers) is checked byte by byte;
 * the chunk data itself is only counted.
 */
export class BodyTracker {
  done: boolean;
  private remaining: number;
  private state: ChunkState;
  private lineLen = 0;
  private sizeDigits = 0;
  private extState = 0;
  private trailerBytes = 0;
  private chunked: boolean;
  private toClose: boolean;

  constructor(framing: BodyFraming, maxTrailerBytes = DEFAULT_MAX_HEAD_BYTES) {
    this.maxTrailer = maxTrailerBytes;
    this.chunked = false;
    this.toClose = false;
    this.remaining = 0;
    this.done = true;
    this.state = ChunkState.Size;
    this.reset(framing);
  }
  private readonly maxTrailer: number;

  /** Starts tracking another message's body (one tracker serves a connection's messages). */
  reset(framing: BodyFraming): void {
    this.chunked = framing.kind === 'chunked';
    this.toClose = framing.kind === 'close';
    this.remaining = framing.kind === 'length' ? framing.length : 0;
    this.done = framing.kind === 'none';
    this.state = ChunkState.Size;
    this.lineLen = 0;
    this.sizeDigits = 0;
    this.extState = 0;
    this.trailerBytes = 0;
  }

  consume(buf: Buffer, start: number): number {
    if (this.done) return start;
    if (this.toClose) return buf.length;
    if (!this.chunked) {
      const n = Math.min(this.remaining, buf.length - start);
      this.remaining -= n;
      if (this.remaining === 0) this.done = true;
      return start + n;
    }
    let i = start;
    const len = buf.length;
    while (i < len) {
      switch (this.state) {
        case ChunkState.Data: {
          const n = Math.min(this.remaining, len - i);
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = ChunkState.DataCr;
          break;
        }
        case ChunkState.DataCr:
          if (buf[i++] !== CR) throw new HttpParseError(400, 'chunk data not followed by CRLF');
          this.state = ChunkState.DataLf;
          break;
        case ChunkState.DataLf:
          if (buf[i++] !== LF) throw new HttpParseError(400, 'chunk data not followed by CRLF');
          this.state = ChunkState.Size;
          this.sizeDigits = 0;
          this.remaining = 0;
          this.lineLen = 0;
          break;
        case ChunkState.Size: {
          const c = buf[i++];
          if (++this.lineLen > MAX_CHUNK_LINE) throw new HttpParseError(400, 'chunk size line too long');
          if (c === CR) {
            if (this.sizeDigits === 0 || !chunkExtComplete(this.extState))
              throw new HttpParseError(400, 'invalid chunk size');
            this.state = ChunkState.SizeLf;
          } else if (this.extState !== 0 || (this.sizeDigits > 0 && (c === SEMI || c === SP || c === HTAB))) {
            this.extState = stepChunkExt(this.extState, c);
            if (this.extState < 0) throw new HttpParseError(400, 'invalid chunk extension');
          } else {
            const d = hexValue(c);
            if (d < 0) throw new HttpParseError(400, 'invalid chunk size');
            if (++this.sizeDigits > MAX_CHUNK_SIZE_DIGITS) throw new HttpParseError(400, 'chunk size too large');
            this.remaining = this.remaining * 16 + d;
          }
          break;
        }
        case ChunkState.SizeLf:
          if (buf[i++] !== LF) throw new HttpParseError(400, 'chunk size not followed by CRLF');
          this.extState = 0;
          this.lineLen = 0;
          if (this.remaining === 0) {
            this.state = ChunkState.TrailerStart;
            this.trailerBytes = 0;
          } else this.state = ChunkState.Data;
          break;
        case ChunkState.TrailerStart: {
          // Either the blank line that ends the message or a trailer field line.
          const c = buf[i++];
          this.trailerBytes++;
          if (c === CR) this.state = ChunkState.EndLf;
          else if (c === SP || c === HTAB) throw new HttpParseError(400, 'obsolete line folding in trailer');
          else if (!isTchar(c)) throw new HttpParseError(400, 'invalid trailer field');
          else {
            this.state = ChunkState.TrailerName;
          }
          break;
        }
        case ChunkState.TrailerName: {
          const c = buf[i++];
          if (++this.trailerBytes > this.maxTrailer) throw new HttpParseError(431, 'trailer section too large');
          if (c === COLON) this.state = ChunkState.TrailerValue;
          else if (!isTchar(c)) throw new HttpParseError(400, 'invalid trailer field name');
          break;
        }
        case ChunkState.TrailerValue: {
          const c = buf[i++];
          if (++this.trailerBytes > this.maxTrailer) throw new HttpParseError(431, 'trailer section too large');
          if (c === CR) this.state = ChunkState.TrailerLf;
          else if (!isFieldValueByte(c)) throw new HttpParseError(400, 'invalid trailer field value');
          break;
        }
        case ChunkState.TrailerLf:
          if (buf[i++] !== LF) throw new HttpParseError(400, 'bare CR in trailer');
          this.state = ChunkState.TrailerStart;
          break;
        case ChunkState.EndLf:
          if (buf[i++] !== LF) throw new HttpParseError(400, 'bare CR after last chunk');
          this.done = true;
          return i;
      }
    }
    return i;
  }
}

/** What a reader reports, synchronously, while it is fed. */
export interface MessageSink<H> {
  /** A complete head. Return false to stop reading: push then returns the unread rest. */
  onHead(head: H): boolean;
  /** Body bytes: slices of the Buffers pushed (for chunked bodies, the framing bytes too). */
  onBody(data: Buffer): void;
  /** The message ended. Return false to stop reading after it. */
  onEnd(): boolean;
}

/**
 * Reads a stream of HTTP/1.x messages: heads (accumulated across chunks, bounded), then bodies
 * tracked to their end. Throws HttpParseError; after an error the reader must not be used again.
 */
export class Http1Reader<H extends { readonly body: BodyFraming }> {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private body: BodyTracker | undefined;
  private tracker: BodyTracker | undefined;
  private readonly maxHead: number;

  constructor(
    private readonly parseHead: (raw: Buffer) => H,
    private readonly isRequest: boolean,
    maxHeadBytes = DEFAULT_MAX_HEAD_BYTES,
  ) {
    this.maxHead = maxHeadBytes;
  }

  /** Bytes of a head received so far (0 between messages): for the header timeout. */
  get partialHeadBytes(): number {
    return this.pendingLen;
  }

  /** Inside a message body. */
  get inBody(): boolean {
    return this.body !== undefined;
  }

  /** Feeds bytes. Returns the unread rest when a sink callback stopped the reader, else undefined. */
  push(chunk: Buffer, sink: MessageSink<H>): Buffer | undefined {
    let buf = chunk;
    let i = 0;
    while (i < buf.length) {
      if (this.body !== undefined) {
        const j = this.body.consume(buf, i);
        if (j > i) sink.onBody(buf.subarray(i, j));
        i = j;
        if (this.body.done) {
          this.body = undefined;
          if (!sink.onEnd()) return buf.subarray(i);
        }
        continue;
      }
      let searchFrom = i;
      if (this.pendingLen > 0) {
        const prev = this.pendingLen;
        buf = Buffer.concat([...this.pending, buf.subarray(i)]);
        this.pending = [];
        this.pendingLen = 0;
        i = 0;
        searchFrom = Math.max(0, prev - 3);
      }
      if (this.isRequest) {
        // A server should ignore empty lines before a request line (RFC 9112 2.2).
        while (i + 1 < buf.length && buf[i] === CR && buf[i + 1] === LF) i += 2;
        if (i >= buf.length) break;
        if (buf.length - i === 1 && buf[i] === CR) {
          this.pending = [buf.subarray(i)];
          this.pendingLen = 1;
          break;
        }
        searchFrom = Math.max(searchFrom, i);
      }
      const end = findHeadEnd(buf, searchFrom);
      if (end < 0) {
        if (buf.length - i > this.maxHead) throw new HttpParseError(431, 'head too large');
        this.pending = [buf.subarray(i)];
        this.pendingLen = buf.length - i;
        return undefined;
      }
      if (end - i > this.maxHead) throw new HttpParseError(431, 'head too large');
      const head = this.parseHead(buf.subarray(i, end));
      i = end;
      let tracker: BodyTracker | undefined;
      if (head.body.kind !== 'none') {
        tracker = this.tracker ??= new BodyTracker(head.body);
        tracker.reset(head.body);
      }
      this.body = tracker;
      if (!sink.onHead(head)) return buf.subarray(i);
      if (tracker === undefined && !sink.onEnd()) return buf.subarray(i);
    }
    return undefined;
  }
}

// Private helpers.

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
const SEMI = 59;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const NONE: BodyFraming = { kind: 'none' };
const CHUNKED: BodyFraming = { kind: 'chunked' };
const CLOSE: BodyFraming = { kind: 'close' };
const NO_TOKENS: readonly string[] = [];
const NO_HEADERS: readonly HttpHeader[] = [];
/** 15 hex digits stay below 2^60, well inside exact doubles. */
const MAX_CHUNK_SIZE_DIGITS = 15;
const MAX_CHUNK_LINE = 4096;

enum ChunkState {
  Size,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  EndLf,
}

// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

function isTchar(c: number): boolean {
  return TCHAR[c] === 1;
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (TCHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** field-vchar / SP / HTAB; obs-text (0x80-0xff) is allowed, every other control byte is not. */
function isFieldValueByte(c: number): boolean {
  return c === HTAB || (c >= 0x20 && c !== 0x7f);
}

/** Visible ASCII only: no spaces, controls or raw non-ASCII in a request target. */
function isTarget(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

function isHostValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x2f /* / */ || c === 0x40 /* @ */) return false;
  }
  return true;
}

/**
 * Splits a head into lines (without the CRLFs). The head is decoded as latin1 so each byte is one
 * character and nothing is lost. Every line must end in CRLF; a CR or LF anywhere else is refused.
 */
function splitHeadLines(raw: Buffer): string[] {
  const text = raw.toString('latin1');
  if (!text.endsWith('\r\n\r\n')) throw new HttpParseError(400, 'incomplete head');
  const body = text.slice(0, text.length - 4);
  const lines = body.split('\r\n');
  for (const l of lines) {
    if (l.includes('\r')) throw new HttpParseError(400, 'bare CR in head');
    if (l.includes('\n')) throw new HttpParseError(400, 'bare LF in head');
  }
  return lines;
}

function parseFieldLines(lines: readonly string[], from: number): HttpHeader[] {
  const out: HttpHeader[] = [];
  for (let i = from; i < lines.length; i++) {
    const line = lines[i];
    const c0 = line.charCodeAt(0);
    if (c0 === SP || c0 === HTAB) throw new HttpParseError(400, 'obsolete line folding');
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpParseError(400, 'header field without a name and colon');
    const name = line.slice(0, colon);
    if (!isToken(name)) throw new HttpParseError(400, 'invalid header field name');
    let a = colon + 1;
    let b = line.length;
    while (a < b && (line.charCodeAt(a) === SP || line.charCodeAt(a) === HTAB)) a++;
    while (b > a && (line.charCodeAt(b - 1) === SP || line.charCodeAt(b - 1) === HTAB)) b--;
    for (let k = a; k < b; k++)
      if (!isFieldValueByte(line.charCodeAt(k))) throw new HttpParseError(400, 'invalid byte in header value');
    out.push({ name: name.toLowerCase(), value: line.slice(a, b) });
  }
  return out;
}

function parseContentLength(v: string, status = 400): number {
  if (!/^\d{1,15}$/.test(v)) throw new HttpParseError(status, 'invalid Content-Length');
  return Number(v);
}

function splitList(v: string): string[] {
  if (v === '') return [];
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Every coding a token, "chunked" exactly once and last. */
function checkTransferCodings(codings: readonly string[]): void {
  if (codings.length === 0) throw new HttpParseError(400, 'empty Transfer-Encoding');
  codings.forEach((raw, i) => {
    const c = raw.toLowerCase();
    const name = c.split(';')[0].trim();
    if (!isToken(name)) throw new HttpParseError(400, 'invalid transfer coding');
    const isLast = i === codings.length - 1;
    if (name === 'chunked' && (!isLast || c !== 'chunked'))
      throw new HttpParseError(400, 'chunked must be the last transfer coding, once');
    if (isLast && name !== 'chunked') throw new HttpParseError(400, 'chunked is not the last transfer coding');
  });
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string.
// States: 0 none, 1 after-size BWS, 2 after ";" BWS, 3 in name, 4 after name BWS, 5 after "=" BWS,
// 6 in token value, 7 in quoted value, 8 quoted escape, 9 after value BWS.
function stepChunkExt(s: number, c: number): number {
  const ws = c === SP || c === HTAB;
  switch (s) {
    case 0:
    case 1:
      return ws ? 1 : c === SEMI ? 2 : -1;
    case 2:
      return ws ? 2 : isTchar(c) ? 3 : -1;
    case 3:
      return isTchar(c) ? 3 : ws ? 4 : c === 61 ? 5 : c === SEMI ? 2 : -1;
    case 4:
      return ws ? 4 : c === 61 ? 5 : c === SEMI ? 2 : -1;
    case 5:
      return ws ? 5 : c === 34 ? 7 : isTchar(c) ? 6 : -1;
    case 6:
      return isTchar(c) ? 6 : ws ? 9 : c === SEMI ? 2 : -1;
    case 7:
      return c === 34 ? 9 : c === 92 ? 8 : c === HTAB || (c >= 0x20 && c !== 0x7f) ? 7 : -1;
    case 8:
      return c === HTAB || (c >= 0x20 && c !== 0x7f) ? 7 : -1;
    case 9:
      return ws ? 9 : c === SEMI ? 2 : -1;
  }
  return -1;
}

/** The size line may end (CR) after the digits, a complete name, or a complete value. */
function chunkExtComplete(s: number): boolean {
  return s === 0 || s === 3 || s === 4 || s === 6 || s === 9;
}
