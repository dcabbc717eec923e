// `membrane lab demo`: placeholder until the demo script lands in this module.
import { CliError } from '../errors.js';

export async function runDemo(_lab: string, _policies: string | undefined): Promise<void> {
  throw new CliError('MBR_NOT_IMPLEMENTED', 'membrane lab demo is not implemented in this build yet');
}
