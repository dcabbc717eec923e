// `membrane lab`: run the embedded lab: a cluster of network namespaces.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerLab(program: Command): void {
  const group = program.command('lab').description('Run the embedded lab: a cluster of network namespaces');
  group
    .command('up')
    .description('Create the lab (idempotent)')
    .action(() => notBuiltYet('membrane lab up'));
  group
    .command('down')
    .description('Remove the lab and everything it created')
    .action(() => notBuiltYet('membrane lab down'));
  group
    .command('status')
    .description('Show the nodes and pods of the lab')
    .action(() => notBuiltYet('membrane lab status'));
  group
    .command('exec')
    .description('Run a command inside a lab pod: lab exec NS/POD -- CMD')
    .action(() => notBuiltYet('membrane lab exec'));
  group
    .command('demo')
    .description('Bring the lab up, apply the seed policies in stages and show traffic')
    .action(() => notBuiltYet('membrane lab demo'));
}
