// `membrane bpf ...`: read the datapath's pinned BPF maps directly, as `cilium bpf ...` does; no
// agent needed. --instance picks /sys/fs/bpf/membrane/<name>; --pin-dir gives the directory.
import type { Command } from 'commander';
import { BpfMap } from '../../datapath/bpf-map.js';
import { type MapName, openPinnedMap } from '../../datapath/bpf-object.js';
import { pinDirFor } from '../../datapath/bpffs.js';
import { monotonicSeconds } from '../../datapath/ct-gc.js';
import { isDatapathError } from '../../datapath/datapath-error.js';
import { activePolicyMapId, u32Key } from '../../datapath/endpoint-policy.js';
import { type CtEntry, CtFlags, type CtKey, decodeCt } from '../../datapath/maps/ct-map.js';
import { decodeEndpointInfo, EndpointFlags } from '../../datapath/maps/endpoint-map.js';
import {
  decodeIpcacheFlags,
  decodeIpcacheIfindex,
  decodeIpcacheKey,
  decodeIpcacheValue,
  formatIpcacheFlags,
  formatIpv4Prefix,
  type IpcacheEntry,
} from '../../datapath/maps/ipcache-map.js';
import { decodePolicyEntry, decodePolicyKey, type PolicyMapValue } from '../../datapath/maps/policy-map.js';
import type { PolicyKey } from '../../policy/map-state-types.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { registerBpfLb } from './bpf-lb.js';

interface MapOptions {
  instance: string;
  pinDir?: string;
  output: string;
}

export function registerBpf(program: Command): void {
  const bpf = program.command('bpf').description("Inspect the datapath's BPF maps");
  const withMapOptions = (c: Command) =>
    c
      .option('--instance <name>', 'datapath instance (pins under /sys/fs/bpf/membrane/<name>)', 'default')
      .option('--pin-dir <dir>', 'pin directory of the datapath (overrides --instance)')
      .option('-o, --output <format>', 'output format: table or json', 'table');

  withMapOptions(
    bpf.command('policy').description('Per-endpoint policy maps').command('get').argument('<endpoint>', 'endpoint ID'),
  ).action((endpoint: string, o: MapOptions) => {
    const id = Number(endpoint);
    if (!/^\d+$/.test(endpoint))
      throw new CliError('MBR_CLI_USAGE', `endpoint: expected a numeric endpoint ID, got "${endpoint}"`, EXIT_USAGE);
    // The slot the programs read (the endpoint's entry), else the one recorded at its last change.
    const slot =
      readMap(o, 'mbr_endpoints', (eps) => {
        for (const [, v] of eps.entries()) {
          const info = decodeEndpointInfo(v);
          if (info.endpointId === id) return info.flags & EndpointFlags.policySlotB ? 1 : 0;
        }
        return undefined;
      }) ??
      readMap(o, 'mbr_policy_slot', (slots) => {
        const v = slots.lookup(u32Key(id))?.readUInt32LE(0);
        return v === 0 || v === 1 ? v : undefined;
      });
    const rows = readMap(o, 'mbr_policy', (outer) => {
      const mapId = activePolicyMapId(outer, slot, id);
      if (mapId === undefined)
        throw new CliError('MBR_CLI_NOT_FOUND', `endpoint ${id} has no policy map in ${dirOf(o)}`);
      const inner = BpfMap.fromId(mapId);
      try {
        return [...inner.entries()].map(([kb, vb]) => ({ key: decodePolicyKey(kb), value: decodePolicyEntry(vb) }));
      } finally {
        inner.close();
      }
    });
    print(o, policyJson(rows), () => formatPolicyTable(rows));
  });

  withMapOptions(bpf.command('ipcache').description('IP to identity cache').command('list')).action((o: MapOptions) => {
    const rows = readMap(o, 'mbr_ipcache', (m) =>
      [...m.entries()].map(([k, v]) => ({
        prefix: decodeIpcacheKey(k),
        identity: decodeIpcacheValue(v),
        flags: decodeIpcacheFlags(v),
        ifindex: decodeIpcacheIfindex(v),
      })),
    );
    print(
      o,
      rows.map((r) => ({
        prefix: formatIpv4Prefix(r.prefix),
        identity: r.identity,
        flags: r.flags ?? 0,
        ifindex: r.ifindex ?? 0,
      })),
      () => formatIpcacheTable(rows),
    );
  });

  withMapOptions(
    bpf.command('ct').description('Connection tracking table').command('list').argument('<scope>', 'global'),
  ).action((scope: string, o: MapOptions) => {
    if (scope !== 'global') throw new CliError('MBR_CLI_USAGE', `scope: expected "global", got "${scope}"`, EXIT_USAGE);
    const rows = readMap(o, 'mbr_ct4', (m) => [...m.entries()].map(([k, v]) => decodeCt(k, v)));
    const now = monotonicSeconds();
    print(
      o,
      rows.map((r) => ({ ...r.key, ...r.entry, remainingSeconds: Math.max(0, r.entry.lifetime - now) })),
      () => formatCtList(rows, now),
    );
  });
  registerBpfLb(bpf, withMapOptions);
}

export interface PolicyRow {
  readonly key: PolicyKey;
  readonly value: PolicyMapValue;
}

const AUTH_NAMES = ['disabled', 'spire', 'always-fail'];
const PROTO_NAMES: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

export function formatPolicyTable(rows: readonly PolicyRow[]): string {
  const sorted = [...rows].sort(
    (a, b) =>
      a.key.direction.localeCompare(b.key.direction) ||
      a.key.identity - b.key.identity ||
      a.key.protocol - b.key.protocol ||
      a.key.port - b.key.port,
  );
  return table(
    ['POLICY', 'DIRECTION', 'IDENTITY', 'PORT/PROTO', 'PROXY PORT', 'AUTH TYPE', 'PREFIX'],
    sorted.map(({ key, value }) => [
      value.isDeny ? 'Deny' : 'Allow',
      key.direction === 'egress' ? 'Egress' : 'Ingress',
      key.identity === 0 ? 'ANY' : String(key.identity),
      portProto(key),
      value.proxyPort ? String(value.proxyPort) : 'NONE',
      AUTH_NAMES[value.authType] ?? String(value.authType),
      String(value.l4PrefixLen),
    ]),
  );
}

export function formatIpcacheTable(rows: readonly IpcacheEntry[]): string {
  return table(
    ['IP PREFIX/ADDRESS', 'IDENTITY'],
    rows.map((r) => [
      formatIpv4Prefix(r.prefix),
      `identity=${r.identity} encryptkey=0 tunnelendpoint=0.0.0.0 flags=${formatIpcacheFlags(r.flags ?? 0)}` +
        (r.ifindex ? ` ifindex=${r.ifindex}` : ''),
    ]),
  );
}

export function formatCtList(rows: ReadonlyArray<{ key: CtKey; entry: CtEntry }>, nowSeconds: number): string {
  return rows
    .map(({ key: k, entry: e }) => {
      const flags = Object.entries({
        RxClosing: CtFlags.rxClosing,
        TxClosing: CtFlags.txClosing,
        SeenNonSyn: CtFlags.seenNonSyn,
        ProxyRedirect: CtFlags.proxyRedirect,
        SeenReply: CtFlags.seenReply,
        RemoteLocal: CtFlags.remoteLocal,
      })
        .filter(([, bit]) => e.flags & bit)
        .map(([n]) => n);
      const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
      return (
        `${PROTO_NAMES[k.protocol] ?? String(k.protocol)} ${k.direction === 'egress' ? 'OUT' : 'IN'} ` +
        `${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport} ` +
        `expires=${e.lifetime} (remaining: ${Math.max(0, e.lifetime - nowSeconds)} sec(s)) ` +
        `RxPackets=${e.rxPackets} RxBytes=${e.rxBytes} RxFlagsSeen=${hex(e.rxFlagsSeen)} ` +
        `TxPackets=${e.txPackets} TxBytes=${e.txBytes} TxFlagsSeen=${hex(e.txFlagsSeen)} ` +
        `Flags=${hex(e.flags)} [ ${flags.join(' ')}${flags.length ? ' ' : ''}] ` +
        `ProxyPort=${e.proxyPort} PolicyRevision=${e.policyRevision} SourceSecurityID=${e.sourceSecurityId} ` +
        `IfIndex=${e.peerIfindex}`
      );
    })
    .join('\n')
    .concat(rows.length ? '\n' : '');
}

function portProto(k: PolicyKey): string {
  if (k.protocol === 0) return 'ANY';
  const proto = PROTO_NAMES[k.protocol] ?? String(k.protocol);
  if (k.portPrefixLen === 0) return `ANY/${proto}`;
  if (k.portPrefixLen === 16) return `${k.port}/${proto}`;
  const last = k.port + (1 << (16 - k.portPrefixLen)) - 1;
  return `${k.port}-${last}/${proto}`;
}

function policyJson(rows: readonly PolicyRow[]) {
  return rows.map(({ key, value }) => ({ ...key, ...value }));
}

function table(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n').concat('\n');
}

function dirOf(o: MapOptions): string {
  return o.pinDir ?? pinDirFor(o.instance);
}

function readMap<T>(o: MapOptions, name: MapName, read: (m: BpfMap) => T): T {
  if (o.output !== 'table' && o.output !== 'json')
    throw new CliError('MBR_CLI_USAGE', `--output: expected table or json, got "${o.output}"`, EXIT_USAGE);
  let m: BpfMap | undefined;
  try {
    m = openPinnedMap(dirOf(o), name);
    return read(m);
  } catch (err) {
    if (isDatapathError(err)) throw new CliError(err.code, err.message);
    throw err;
  } finally {
    m?.close();
  }
}

function print(o: MapOptions, json: unknown, text: () => string): void {
  process.stdout.write(o.output === 'json' ? `${JSON.stringify(json, null, 2)}\n` : text());
}
