// Errors in the CNI spec's shape: a numeric code from the spec's table, a short message and
// details. The plugin prints them as JSON on stdout and exits non-zero; the executor parses them
// back, so a runtime (and the lab) sees the same code the plugin chose.
export const CniCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodingFailure: 6,
  invalidNetworkConfig: 7,
  tryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD now. */
  pluginNotAvailable: 50,
  /** 100+ are plugin-specific. */
  ipamExhausted: 100,
  checkFailed: 101,
  agentUnreachable: 102,
  agentRejected: 103,
  /** libcni's ErrInternal: a bug in the plugin. */
  internal: 999,
} as const;

export interface CniErrorResult {
  readonly cniVersion: string;
  readonly code: number;
  readonly msg: string;
  readonly details?: string;
}

export class CniError extends Error {
  readonly code: number;
  readonly details: string;
  constructor(code: number, msg: string, details = '') {
    super(msg);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }

  toResult(cniVersion: string): CniErrorResult {
    return this.details
      ? { cniVersion, code: this.code, msg: this.message, details: this.details }
      : { cniVersion, code: this.code, msg: this.message };
  }
}

/** A config field that is missing or has the wrong shape: names the field path, expected and found. */
export function invalidField(path: string, expected: string, got: unknown): CniError {
  const found = got === undefined ? 'nothing' : JSON.stringify(got);
  return new CniError(CniCode.invalidNetworkConfig, `${path}: expected ${expected}, got ${found}`);
}
