// `membrane policy get`: the policy documents the lab's agents hold, then "Revision: N" (as
// Cilium prints it). Registered into the policy group by src/cli/commands/policy.ts.
import type { Command } from 'commander';
import type { StoredPolicy } from '../../agent/api-types.js';
import { addTargetOptions, resolveTargets, wantsJson } from '../agent-target.js';

export function registerPolicyGet(group: Command): void {
  addTargetOptions(
    group
      .command('get')
      .description('Show the policy rules loaded in the agent')
      .argument('[name]', 'only policies with this name (NAMESPACE/NAME or NAME)')
      .option('-o, --output <format>', 'output format: json (the default) or table'),
  ).action(async (name: string | undefined, o) => {
    wantsJson(o);
    const [t] = resolveTargets(o);
    const set = await t.client.get<{ revision: number; policies: StoredPolicy[] }>('/v1/policy');
    const picked = set.policies.filter(
      (p) => name === undefined || p.name === name || `${p.namespace}/${p.name}` === name,
    );
    if (o.output === 'json') {
      process.stdout.write(`${JSON.stringify({ revision: set.revision, policies: picked }, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `${JSON.stringify(
        picked.map((p) => p.doc),
        null,
        2,
      )}\nRevision: ${set.revision}\n`,
    );
  });
}
