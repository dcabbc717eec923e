// `membrane endpoint`: manage endpoints (pods).
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerEndpoint(program: Command): void {
  const group = program.command('endpoint').description('Manage endpoints (pods)');
  group
    .command('list')
    .description('List endpoints')
    .action(() => notBuiltYet('membrane endpoint list'));
  group
    .command('get')
    .description('Show one endpoint')
    .action(() => notBuiltYet('membrane endpoint get'));
}
