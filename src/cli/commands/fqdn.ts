// `membrane fqdn`: dns-based policy state.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerFqdn(program: Command): void {
  const group = program.command('fqdn').description('DNS-based policy state');
  group
    .command('cache')
    .description('Show the FQDN cache')
    .action(() => notBuiltYet('membrane fqdn cache'));
}
