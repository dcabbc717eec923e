// `membrane fqdn`: DNS-based policy state, as `cilium fqdn` prints it: the FQDN cache the DNS
// proxy fills (`cache list`, `cache clean`) and the names each toFQDNs selector selects (`names`).
import type { Command } from 'commander';
import type { FqdnSelectorNames } from '../../agent/fqdn-manager.js';
import type { FqdnCacheEntry } from '../../fqdn/dns-cache.js';
import { addTargetOptions, resolveTargets, wantsJson } from '../agent-target.js';
import { CliError } from '../errors.js';
import { renderTable } from '../table.js';

export function registerFqdn(program: Command): void {
  const group = program.command('fqdn').description('DNS-based policy state');
  const cache = group.command('cache').description('The FQDN cache: what DNS answers told each endpoint');
  addTargetOptions(
    cache
      .command('list')
      .description('List the FQDN cache')
      .option('-e, --endpoint <id>', 'only this endpoint')
      .option('-p, --matchpattern <pattern>', 'only names this matchPattern selects')
      .option('-o, --output <format>', 'output format: table or json'),
  ).action(async (o) => {
    const targets = resolveTargets(o);
    const query = filterQuery(o);
    const rows = (
      await Promise.all(
        targets.map(async (t) =>
          (await t.client.get<FqdnCacheEntry[]>(`/v1/fqdn/cache${query}`)).map((r) => ({ ...r, node: t.node })),
        ),
      )
    ).flat();
    if (wantsJson(o)) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    process.stdout.write(formatFqdnCache(rows, targets.length > 1));
  });
  addTargetOptions(
    cache
      .command('clean')
      .description('Forget FQDN cache entries (all, or one endpoint, or names a pattern selects)')
      .option('-e, --endpoint <id>', 'only this endpoint')
      .option('-p, --matchpattern <pattern>', 'only names this matchPattern selects')
      .option('-f, --force', 'accepted for compatibility with cilium (no prompt is asked)'),
  ).action(async (o) => {
    const query = filterQuery(o);
    for (const t of resolveTargets(o)) {
      const r = await t.client.delete<{ cleaned: number }>(`/v1/fqdn/cache${query}`);
      process.stdout.write(`${t.node}: ${r.cleaned} names cleaned\n`);
    }
  });
  addTargetOptions(
    group
      .command('names')
      .description('The names each toFQDNs selector selects, from the FQDN cache')
      .option('-o, --output <format>', 'output format: table or json'),
  ).action(async (o) => {
    const targets = resolveTargets(o);
    const all = await Promise.all(
      targets.map(async (t) => ({ node: t.node, sels: await t.client.get<FqdnSelectorNames[]>('/v1/fqdn/names') })),
    );
    if (wantsJson(o)) {
      process.stdout.write(`${JSON.stringify(all.length === 1 ? all[0]!.sels : all, null, 2)}\n`);
      return;
    }
    const withNode = targets.length > 1;
    const rows = all.flatMap(({ node, sels }) =>
      sels.flatMap((s) =>
        s.names.length === 0
          ? [[...(withNode ? [node] : []), s.selector, '', '']]
          : s.names.map((n) => [...(withNode ? [node] : []), s.selector, n.name, n.ips]),
      ),
    );
    process.stdout.write(renderTable([...(withNode ? ['NODE'] : []), 'SELECTOR', 'NAME', 'IPS'], rows));
  });
}

/** Cilium's columns: Endpoint, Source, FQDN, TTL, ExpirationTime, IPs. */
export function formatFqdnCache(rows: ReadonlyArray<FqdnCacheEntry & { node: string }>, withNode: boolean): string {
  return renderTable(
    [...(withNode ? ['NODE'] : []), 'Endpoint', 'Source', 'FQDN', 'TTL', 'ExpirationTime', 'IPs'],
    rows.map((r) => [
      ...(withNode ? [r.node] : []),
      String(r.endpointId),
      r.source,
      r.fqdn,
      String(r.ttlSeconds),
      r.expirationTime,
      r.ips.join(','),
    ]),
  );
}

function filterQuery(o: { endpoint?: string; matchpattern?: string }): string {
  const p = new URLSearchParams();
  if (o.endpoint !== undefined) {
    if (!/^\d+$/.test(o.endpoint))
      throw new CliError('MBR_USAGE', `--endpoint: expected an endpoint ID, got "${o.endpoint}"`, 2);
    p.set('endpoint', o.endpoint);
  }
  if (o.matchpattern !== undefined) p.set('matchpattern', o.matchpattern);
  const s = p.toString();
  return s ? `?${s}` : '';
}
