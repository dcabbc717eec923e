// Errors of the datapath layer: one stable `code` from DATAPATH_ERROR_CODES, the errno of the failed
// syscall when there was one, and for program loads the libbpf/verifier log (the message keeps only
// its last lines). A layer that adds what it was doing wraps the error (DatapathError.wrap: same
// code and errno, `cause` set) rather than rewriting its message. Code is read through
// isDatapathError, never by casting an unknown error.

/** Every code a DatapathError can carry; tests and the CLI rely on these strings. */
export const DATAPATH_ERROR_CODES = [
  'MBR_DATAPATH_NOT_BUILT',
  'MBR_DATAPATH_SYSCALL',
  'MBR_DATAPATH_LOAD',
  'MBR_DATAPATH_MAP_FULL',
  'MBR_DATAPATH_BAD_INPUT',
  'MBR_DATAPATH_NO_ENDPOINT',
  'MBR_DATAPATH_NOT_PINNED',
  'MBR_DATAPATH_STALE_PINS',
  'MBR_DATAPATH_CLOSED',
] as const;

export type DatapathErrorCode = (typeof DATAPATH_ERROR_CODES)[number];

export interface DatapathErrorOptions {
  readonly errno?: number;
  readonly log?: string;
  /** A failed batch write: how many leading elements were written before the failure. */
  readonly done?: number;
  readonly cause?: unknown;
}

export class DatapathError extends Error {
  readonly code: DatapathErrorCode;
  readonly errno: number | undefined;
  /** Full libbpf + verifier log of a failed load. */
  readonly log: string | undefined;
  /** A failed batch write: how many leading elements were written before the failure. */
  readonly done: number | undefined;

  constructor(code: DatapathErrorCode, message: string, opts: DatapathErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DatapathError';
    this.code = code;
    this.errno = opts.errno;
    this.log = opts.log;
    this.done = opts.done;
  }

  /**
   * A failure of the native addon as a DatapathError naming what we were doing: MBR_DATAPATH_LOAD
   * when it carries a load log, else MBR_DATAPATH_SYSCALL. A DatapathError passes through unchanged.
   */
  static fromNative(doing: string, err: unknown, opts: { done?: number } = {}): DatapathError {
    if (err instanceof DatapathError) return err;
    const e = nativeFailure(err);
    const isLoad = e.log !== undefined && e.log.length > 0;
    const tail = isLoad ? `\n${lastLines(e.log ?? '', 8)}` : '';
    return new DatapathError(isLoad ? 'MBR_DATAPATH_LOAD' : 'MBR_DATAPATH_SYSCALL', `${doing}: ${e.message}${tail}`, {
      errno: e.errno,
      log: e.log,
      done: opts.done,
      cause: err,
    });
  }

  /** Adds a layer's context, `<doing>: <cause's message>`, keeping the cause's code and errno. */
  static wrap(doing: string, cause: DatapathError): DatapathError {
    return new DatapathError(cause.code, `${doing}: ${cause.message}`, {
      errno: cause.errno,
      log: cause.log,
      done: cause.done,
      cause,
    });
  }
}

/** True for a DatapathError, and when `code` is given, one with that code. */
export function isDatapathError(err: unknown, code?: DatapathErrorCode): err is DatapathError {
  return err instanceof DatapathError && (code === undefined || err.code === code);
}

/** A DatapathError caused by a full map (E2BIG from an LPM trie or hash, ENOSPC). */
export function isMapFullErrno(err: unknown): err is DatapathError {
  return isDatapathError(err) && (err.errno === E2BIG || err.errno === ENOSPC);
}

/** What the addon's thrown errors carry (native/src/membrane_bpf.c sets errno, log and done). */
export interface NativeFailure {
  readonly message: string;
  readonly errno: number | undefined;
  readonly log: string | undefined;
  readonly done: number | undefined;
}

/** Reads the addon's error fields once, by type, at the one place native errors enter. */
export function nativeFailure(err: unknown): NativeFailure {
  const o = (typeof err === 'object' && err !== null ? err : {}) as Record<string, unknown>;
  return {
    message: typeof o.message === 'string' ? o.message : String(err),
    errno: typeof o.errno === 'number' ? o.errno : undefined,
    log: typeof o.log === 'string' ? o.log : undefined,
    done: typeof o.done === 'number' ? o.done : undefined,
  };
}

const E2BIG = 7;
const ENOSPC = 28;

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}
