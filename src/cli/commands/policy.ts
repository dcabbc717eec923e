// `membrane policy`: validate, trace and show network policy.
import type { Command } from 'commander';
import { notBuiltYet } from '../not-built.js';
import { registerPolicyGet } from './policy-get.js';

export function registerPolicy(program: Command): void {
  const group = program.command('policy').description('Validate, trace and show network policy');
  group
    .command('validate')
    .description('Validate policy files (YAML/JSON, K8s NetworkPolicy, CNP, CCNP)')
    .action(() => notBuiltYet('membrane policy validate'));
  group
    .command('trace')
    .description('Trace a connection through policy: which rules allow or deny it')
    .action(() => notBuiltYet('membrane policy trace'));
  registerPolicyGet(group);
}
