// The one error a flow filter raises: which field of which filter, what was expected, what was found.
export class FilterError extends Error {
  readonly code = 'MBR_FILTER_INVALID';
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${path}: expected ${expected}, got ${JSON.stringify(got)}`);
    this.name = 'FilterError';
  }
}
