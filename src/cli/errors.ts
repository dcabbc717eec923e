// Errors the CLI reports to the user: a message and an exit code. Exit codes follow the
// convention of the tools people already use: 1 for a failed operation, 2 for bad usage.
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class CliError extends Error {
  readonly exitCode: number;
  readonly code: string;
  constructor(code: string, message: string, exitCode: number = EXIT_FAILURE) {
    super(message);
    this.name = 'CliError';
    this.code = code;
    this.exitCode = exitCode;
  }
}
