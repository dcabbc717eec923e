// `membrane bpf ...`: inspect the datapath's BPF maps.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';

export function registerBpf(program: Command): void {
  const bpf = program.command('bpf').description("Inspect the datapath's BPF maps");
  bpf
    .command('policy')
    .description('Per-endpoint policy maps')
    .command('get')
    .argument('<endpoint>', 'endpoint ID')
    .action(() => notBuiltYet('membrane bpf policy get'));
  bpf
    .command('ipcache')
    .description('IP to identity cache')
    .command('list')
    .action(() => notBuiltYet('membrane bpf ipcache list'));
  bpf
    .command('ct')
    .description('Connection tracking table')
    .command('list')
    .argument('<scope>', 'global')
    .action(() => notBuiltYet('membrane bpf ct list'));
}
