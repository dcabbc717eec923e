// The flag and level constants of bpf/include/membrane/maps.h against the TypeScript tables that
// mirror them, by name (MBR_CT_F_SEEN_REPLY <-> CtFlags.seenReply): a define added, renumbered or
// dropped on one side only fails here. Unprivileged: it reads the header's text.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TraceLevel } from '../../src/datapath/maps/config-map.js';
import { CtFlags } from '../../src/datapath/maps/ct-map.js';
import { EndpointFlags } from '../../src/datapath/maps/endpoint-map.js';
import { IpcacheFlags } from '../../src/datapath/maps/ipcache-map.js';
import { LbBackendFlags, LbCtFlags } from '../../src/datapath/maps/lb-map.js';
import { LbAlgorithmCode, LbFlags } from '../../src/lb/lb-table.js';
import { EventFlags } from '../../src/monitor/event-codec.js';

const header = readFileSync(new URL('../../../bpf/include/membrane/maps.h', import.meta.url), 'utf8');

function defines(prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of header.matchAll(/^#define (MBR_[A-Z0-9_]+)\s+(0x[0-9a-fA-F]+|\d+)\b/gm)) {
    const [, name = '', value = ''] = m;
    if (!name.startsWith(prefix)) continue;
    const camel = name
      .slice(prefix.length)
      .toLowerCase()
      .replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    out[camel] = Number(value);
  }
  return out;
}

const TABLES: ReadonlyArray<readonly [string, Record<string, number>]> = [
  ['MBR_IPCACHE_F_', IpcacheFlags],
  ['MBR_CT_F_', CtFlags],
  ['MBR_EP_F_', EndpointFlags],
  ['MBR_EVENT_F_', EventFlags],
  ['MBR_TRACE_', TraceLevel],
  ['MBR_LB_F_', LbFlags],
  ['MBR_LB_ALG_', LbAlgorithmCode],
  ['MBR_LB_BACKEND_F_', LbBackendFlags],
  ['MBR_LB_CT_F_', LbCtFlags],
];

describe('maps.h constants', () => {
  for (const [prefix, table] of TABLES)
    it(`${prefix}* match the TypeScript table`, () => {
      const c = defines(prefix);
      assert.ok(Object.keys(c).length > 0, `no ${prefix} defines found`);
      assert.deepEqual(c, { ...table });
    });
});
