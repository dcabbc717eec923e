// `membrane monitor`: live datapath events.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerMonitor(program: Command): void {
  program
    .command('monitor')
    .description('Show live datapath events (drop, trace, policy-verdict)')
    .option('-t, --type <type...>', 'event types: drop, trace, policy-verdict')
    .option('-o, --output <format>', 'output format: text or json', 'text')
    .action(() => notBuiltYet('membrane monitor'));
}
