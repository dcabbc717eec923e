// `membrane observe` and `membrane hubble ...`: flows, with hubble's flags and output formats.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerObserve(program: Command): void {
  program
    .command('observe')
    .description('Observe flows (the same flags and output as `hubble observe`)')
    .action(() => notBuiltYet('membrane observe'));
  const hubble = program.command('hubble').description('Hubble-compatible observability commands');
  hubble
    .command('status')
    .description('Show the flow server status')
    .action(() => notBuiltYet('membrane hubble status'));
  hubble
    .command('list')
    .description('List Hubble objects')
    .command('nodes')
    .action(() => notBuiltYet('membrane hubble list nodes'));
}
