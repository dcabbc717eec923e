// Entry point of the membrane-cni executable: environment and stdin in, spec JSON out.
import { runCni } from './plugin.js';

export async function main(): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const out = await runCni(process.env, Buffer.concat(chunks).toString('utf8'));
  process.stdout.write(out.stdout);
  return out.exitCode;
}
