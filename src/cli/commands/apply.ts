// `membrane apply -f` / `membrane delete -f`: load policy files into the running agent.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerApply(program: Command): void {
  program
    .command('apply')
    .description('Validate policy files and apply them to the running agent (all or nothing)')
    .requiredOption('-f, --file <path...>', 'policy file or directory')
    .action(() => notBuiltYet('membrane apply'));
  program
    .command('delete')
    .description('Remove the policies named in files from the running agent')
    .requiredOption('-f, --file <path...>', 'policy file or directory')
    .action(() => notBuiltYet('membrane delete'));
}
