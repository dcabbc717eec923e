// Errors of the datapath layer: a stable `code`, the errno of the failed syscall when there was
// one, and for program loads the libbpf/verifier log (the message keeps only its last lines).
export type DatapathErrorCode =
  | 'MBR_DATAPATH_NOT_BUILT'
  | 'MBR_DATAPATH_SYSCALL'
  | 'MBR_DATAPATH_LOAD'
  | 'MBR_DATAPATH_MAP_FULL'
  | 'MBR_DATAPATH_BAD_INPUT'
  | 'MBR_DATAPATH_NO_ENDPOINT'
  | 'MBR_DATAPATH_NOT_PINNED'
  | 'MBR_DATAPATH_STALE_PINS'
  | 'MBR_DATAPATH_CLOSED';

export class DatapathError extends Error {
  readonly code: DatapathErrorCode;
  readonly errno: number | undefined;
  /** Full libbpf + verifier log of a failed load. */
  readonly log: string | undefined;

  constructor(code: DatapathErrorCode, message: string, opts: { errno?: number; log?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DatapathError';
    this.code = code;
    this.errno = opts.errno;
    this.log = opts.log;
  }

  static fromNative(doing: string, err: unknown): DatapathError {
    if (err instanceof DatapathError) return err;
    const e = err as Error & { errno?: number; log?: string };
    const isLoad = typeof e.log === 'string' && e.log.length > 0;
    const tail = isLoad ? `\n${lastLines(e.log ?? '', 8)}` : '';
    return new DatapathError(isLoad ? 'MBR_DATAPATH_LOAD' : 'MBR_DATAPATH_SYSCALL', `${doing}: ${e.message}${tail}`, {
      errno: e.errno,
      log: e.log,
      cause: err,
    });
  }
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}
