// `membrane bpf lb list` and `membrane bpf lb maglev list <id>`: the load balancer's pinned maps
// read directly, as `cilium bpf lb list` does (SERVICE ADDRESS, BACKEND ADDRESS (REVNAT_ID) (SLOT)).
import type { Command } from 'commander';
import type { BpfMap } from '../../datapath/bpf-map.js';
import { type MapName, openPinnedMap } from '../../datapath/bpf-object.js';
import { pinDirFor } from '../../datapath/bpffs.js';
import { isDatapathError } from '../../datapath/datapath-error.js';
import { LbRealizer } from '../../datapath/lb-realizer.js';
import { LbFlags, protocolName, type RealizedLb } from '../../lb/lb-table.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { renderTable } from '../table.js';

interface MapOptions {
  instance: string;
  pinDir?: string;
  output: string;
}

export function registerBpfLb(bpf: Command, withMapOptions: (c: Command) => Command): void {
  const lb = bpf.command('lb').description('Load-balancing maps (services, backends, Maglev tables)');
  withMapOptions(lb.command('list').description('List services and their backend slots')).action((o: MapOptions) => {
    const realized = withRealizer(o, (r) => r.dump());
    print(o, realized, () => formatLbList(realized));
  });
  withMapOptions(
    lb.command('maglev').description('Maglev lookup tables').command('list').argument('<id>', 'service ID (REVNAT_ID)'),
  ).action((id: string, o: MapOptions) => {
    if (!/^\d+$/.test(id))
      throw new CliError('MBR_CLI_USAGE', `id: expected a numeric service ID, got "${id}"`, EXIT_USAGE);
    const table = withRealizer(o, (r) => r.maglevTable(Number(id)));
    if (!table) throw new CliError('MBR_CLI_NOT_FOUND', `service ${id} has no Maglev table`);
    print(o, { id: Number(id), size: table.length, table: [...table] }, () => formatMaglev(Number(id), table));
  });
}

export function formatLbList(r: RealizedLb): string {
  const backends = new Map(r.backends);
  const byFrontend = new Map<string, Array<(typeof r.services)[number]>>();
  for (const e of r.services) {
    const f = `${e[0].address}:${e[0].port}/${protocolName(e[0].protocol)}`;
    byFrontend.set(f, [...(byFrontend.get(f) ?? []), e]);
  }
  const rows: string[][] = [];
  for (const [f, entries] of [...byFrontend].sort(([a], [b]) => a.localeCompare(b))) {
    const lines = entries
      .sort((a, b) => a[0].slot - b[0].slot)
      .map(([k, v]) => {
        if (k.slot === 0) {
          const type = v.flags & LbFlags.nodePort ? 'NodePort' : 'ClusterIP';
          return `0.0.0.0:0 (${v.revNatIndex}) (0) [${type}${v.flags & LbFlags.affinity ? ', sessionAffinity' : ''}${v.algorithm === 2 ? ', maglev' : ''}]`;
        }
        const b = backends.get(v.backendId);
        const addr = b ? `${b.address}:${b.port}/${protocolName(b.protocol)}` : `backend ${v.backendId} (missing)`;
        return `${addr} (${v.revNatIndex}) (${k.slot})`;
      });
    rows.push([f, lines.join('\n')]);
  }
  return renderTable(['SERVICE ADDRESS', 'BACKEND ADDRESS (REVNAT_ID) (SLOT)'], rows);
}

function formatMaglev(id: number, table: Uint32Array): string {
  const counts = new Map<number, number>();
  for (const b of table) counts.set(b, (counts.get(b) ?? 0) + 1);
  const head = `${id}: table size ${table.length}\n`;
  const rows = [...counts].sort((a, b) => a[0] - b[0]).map(([b, n]) => [String(b), String(n)]);
  return head + renderTable(['BACKEND ID', 'CELLS'], rows);
}

function withRealizer<T>(o: MapOptions, read: (r: LbRealizer) => T): T {
  if (o.output !== 'table' && o.output !== 'json')
    throw new CliError('MBR_CLI_USAGE', `--output: expected table or json, got "${o.output}"`, EXIT_USAGE);
  const dir = o.pinDir ?? pinDirFor(o.instance);
  const open = new Map<MapName, BpfMap>();
  try {
    return read(
      new LbRealizer((name) => {
        const m = open.get(name) ?? openPinnedMap(dir, name);
        open.set(name, m);
        return m;
      }),
    );
  } catch (err) {
    if (isDatapathError(err)) throw new CliError(err.code, err.message);
    throw err;
  } finally {
    for (const m of open.values()) m.close();
  }
}

function print(o: MapOptions, json: unknown, text: () => string): void {
  process.stdout.write(o.output === 'json' ? `${JSON.stringify(json, null, 2)}\n` : text());
}
