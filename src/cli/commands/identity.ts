// `membrane identity`: security identities (reserved ones and those allocated for label sets).
import type { Command } from 'commander';
import type { IdentityRecord } from '../../agent/api-types.js';
import { addTargetOptions, resolveTargets, wantsJson } from '../agent-target.js';
import { CliError } from '../errors.js';
import { renderTable } from '../table.js';

export function registerIdentity(program: Command): void {
  const group = program.command('identity').description('Security identities');
  addTargetOptions(
    group
      .command('list')
      .description('List identities')
      .option('-o, --output <format>', 'output format: table or json'),
  ).action(async (o) => {
    // Identities live in the cluster store: any one node answers for all.
    const [t] = resolveTargets(o);
    const ids = await t.client.get<IdentityRecord[]>('/v1/identity');
    if (wantsJson(o)) {
      process.stdout.write(`${JSON.stringify(ids, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      renderTable(
        ['ID', 'LABELS'],
        ids.map((i) => [String(i.id), i.labels]),
      ),
    );
  });
  addTargetOptions(
    group
      .command('get')
      .description('Show one identity')
      .argument('<id>', 'numeric identity')
      .option('-o, --output <format>', 'output format: table or json'),
  ).action(async (id: string, o) => {
    if (!/^\d+$/.test(id)) throw new CliError('MBR_USAGE', `identity: expected a number, got "${id}"`, 2);
    const [t] = resolveTargets(o);
    const ids = await t.client.get<IdentityRecord[]>('/v1/identity');
    const rec = ids.find((i) => i.id === Number(id));
    if (!rec) throw new CliError('MBR_NOT_FOUND', `identity ${id} not found`);
    if (wantsJson(o)) process.stdout.write(`${JSON.stringify(rec, null, 2)}\n`);
    else process.stdout.write(renderTable(['ID', 'LABELS'], [[String(rec.id), rec.labels]]));
  });
}
