// A subcommand whose implementation has not landed yet says so plainly and fails,
// instead of pretending to work.
import { CliError } from './errors.js';

export function notBuiltYet(what: string): never {
  throw new CliError('MBR_NOT_IMPLEMENTED', `${what} is not implemented in this build yet`);
}
