// `membrane version`: the build's version and the runtime it runs on.
import type { Command } from 'commander';
import { VERSION } from '../../version.js';

export function registerVersion(program: Command): void {
  program.version(VERSION, '-v, --version', 'print the version');
  program
    .command('version')
    .description('Print the version')
    .option('-o, --output <format>', 'output format: text or json', 'text')
    .action((opts: { output: string }) => {
      const info = { version: VERSION, node: process.version, platform: `${process.platform}/${process.arch}` };
      if (opts.output === 'json') process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else process.stdout.write(`membrane ${info.version} (node ${info.node}, ${info.platform})\n`);
    });
}
