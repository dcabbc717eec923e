// `membrane status`: health of each agent subsystem.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description("Show the agent's health, subsystem by subsystem")
    .option('--verbose', 'show every subsystem in detail')
    .option('-o, --output <format>', 'output format: table or json', 'table')
    .action(() => notBuiltYet('membrane status'));
}
