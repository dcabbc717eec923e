// `membrane identity`: security identities.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerIdentity(program: Command): void {
  const group = program.command('identity').description('Security identities');
  group
    .command('list')
    .description('List identities')
    .action(() => notBuiltYet('membrane identity list'));
  group
    .command('get')
    .description('Show one identity')
    .action(() => notBuiltYet('membrane identity get'));
}
