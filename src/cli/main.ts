// The `membrane` executable: one commander program, one module per command group.
// Usage errors (unknown command or flag, missing argument) exit 2; help and version exit 0.
import { Command, CommanderError } from 'commander';
import { registerAgent } from './commands/agent.js';
import { registerApply } from './commands/apply.js';
import { registerBpf } from './commands/bpf.js';
import { registerConnectivity } from './commands/connectivity.js';
import { registerEndpoint } from './commands/endpoint.js';
import { registerFqdn } from './commands/fqdn.js';
import { registerIdentity } from './commands/identity.js';
import { registerLab } from './commands/lab.js';
import { registerMonitor } from './commands/monitor.js';
import { registerNode } from './commands/node.js';
import { registerObserve } from './commands/observe.js';
import { registerPolicy } from './commands/policy.js';
import { registerProxy } from './commands/proxy.js';
import { registerRelay } from './commands/relay.js';
import { registerService } from './commands/service.js';
import { registerStatus } from './commands/status.js';
import { registerUi } from './commands/ui.js';
import { registerVersion } from './commands/version.js';
import { CliError, EXIT_USAGE } from './errors.js';

export function buildProgram(): Command {
  const program = new Command('membrane')
    .description('eBPF networking, identity-based network policy and flow observability')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of [
    registerPolicy,
    registerLab,
    registerApply,
    registerStatus,
    registerEndpoint,
    registerIdentity,
    registerNode,
    registerBpf,
    registerMonitor,
    registerObserve,
    registerRelay,
    registerService,
    registerFqdn,
    registerAgent,
    registerProxy,
    registerConnectivity,
    registerUi,
    registerVersion,
  ]) {
    register(program);
  }
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are "errors" to commander; everything else is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
        return 0;
      return EXIT_USAGE;
    }
    if (err instanceof CliError) {
      process.stderr.write(`membrane: ${err.message}\n`);
      return err.exitCode;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`membrane: ${e.message ?? String(err)}\n`);
    if (process.env.MEMBRANE_VERBOSE) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
