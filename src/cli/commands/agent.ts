// `membrane agent`: run the node agent.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerAgent(program: Command): void {
  const group = program.command('agent').description('Run the node agent');
  group
    .command('run')
    .description('Run the agent in the foreground')
    .action(() => notBuiltYet('membrane agent run'));
}
