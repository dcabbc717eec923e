// Entry point of the membrane-cni executable: environment and stdin in, spec JSON out.
import type { Readable } from 'node:stream';
import { CniCode, CniError } from './cni-error.js';
import { CNI_VERSION } from './cni-types.js';
import { runCni } from './plugin.js';

/** A network config is a few KiB; anything past this is refused before it is parsed. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export async function main(): Promise<number> {
  const read = await readConfig(process.stdin, MAX_CONFIG_BYTES);
  if (typeof read !== 'string') {
    process.stdout.write(`${JSON.stringify(read.toResult(CNI_VERSION))}\n`);
    return 1;
  }
  const out = await runCni(process.env, read);
  process.stdout.write(out.stdout);
  return out.exitCode;
}

/**
 * Reads stdin up to limitBytes. Past the limit it stops reading (the writer gets EPIPE, which
 * runtimes ignore) and returns the error to print: code 7, the config is not one we accept.
 */
export async function readConfig(input: Readable, limitBytes: number): Promise<string | CniError> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const c of input) {
      total += (c as Buffer).length;
      if (total > limitBytes) {
        input.destroy();
        return new CniError(
          CniCode.invalidNetworkConfig,
          `network config: expected at most ${limitBytes} bytes on stdin, got more`,
        );
      }
      chunks.push(c as Buffer);
    }
  } catch (err) {
    return new CniError(CniCode.ioFailure, `read network config from stdin: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}
