// `membrane service`: load-balanced services.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerService(program: Command): void {
  const group = program.command('service').description('Load-balanced services');
  group
    .command('list')
    .description('List services')
    .action(() => notBuiltYet('membrane service list'));
}
