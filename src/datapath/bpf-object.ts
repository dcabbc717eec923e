// The compiled BPF object (bpf/build/membrane.bpf.o) as one instance holds it: its maps and
// programs, either loaded fresh (reusing maps already pinned) and pinned, or re-opened from the pins
// of the same build.
import { existsSync, unlinkSync } from 'node:fs';
import { BpfMap } from './bpf-map.js';
import { assertSameBuild, objectDigest, recordBuild } from './bpffs.js';
import { DatapathError } from './datapath-error.js';
import { BPF_OBJECT_PATH, nativeBpf, sys } from './native.js';

export const MAP_NAMES = [
  'mbr_ipcache',
  'mbr_policy',
  'mbr_policy_slot',
  'mbr_endpoints',
  'mbr_ct4',
  'mbr_auth',
  'mbr_metrics',
  'mbr_lost',
  'mbr_config',
  'mbr_events',
  'mbr_proxy_socks',
  'mbr_lb4_services',
  'mbr_lb4_backends',
  'mbr_lb4_reverse_nat',
  'mbr_lb4_affinity',
  'mbr_lb4_ct',
  'mbr_lb4_reverse_sk',
  'mbr_lb_config',
  'mbr_lb4_maglev',
] as const;
export type MapName = (typeof MAP_NAMES)[number];
export const PROGRAM_NAMES = [
  'mbr_from_pod',
  'mbr_to_pod',
  'mbr_from_net',
  'mbr_proxy_lookup',
  'mbr_pass',
  'mbr_from_netdev',
  'mbr_to_netdev',
  'mbr_sock4_connect',
  'mbr_sock4_sendmsg',
  'mbr_sock4_recvmsg',
  'mbr_sock4_getpeername',
] as const;
export type ProgramName = (typeof PROGRAM_NAMES)[number];

/** Sizes used only when the maps are first created (pinned maps keep theirs). */
export interface ObjectSizes {
  readonly ipcacheMaxEntries?: number;
  readonly ctMaxEntries?: number;
}

export interface OpenedObject {
  readonly maps: Map<MapName, BpfMap>;
  /** Program fds. */
  readonly progs: Map<ProgramName, number>;
}

/** Re-opens the pins of this build, or loads the object and pins it; refuses another build's pins. */
export function openBpfObject(pinDir: string, sizes: ObjectSizes): OpenedObject {
  nativeBpf(); // MBR_DATAPATH_NOT_BUILT before anything reads the object
  const build = objectDigest();
  const isPinned =
    PROGRAM_NAMES.every((p) => existsSync(`${pinDir}/progs/${p}`)) &&
    MAP_NAMES.every((m) => existsSync(`${pinDir}/maps/${m}`));
  if (isPinned) {
    assertSameBuild(pinDir, build);
    return reopenPinned(pinDir);
  }
  const opened = loadAndPin(pinDir, sizes);
  recordBuild(pinDir, build);
  return opened;
}

/** Opens only one pinned map of an instance, read side (the CLI's `membrane bpf ...`). */
export function openPinnedMap(pinDir: string, name: MapName): BpfMap {
  const p = `${pinDir}/maps/${name}`;
  if (!existsSync(p))
    throw new DatapathError('MBR_DATAPATH_NOT_PINNED', `no datapath pinned at ${pinDir} (${p} does not exist)`);
  if (existsSync(BPF_OBJECT_PATH)) assertSameBuild(pinDir, objectDigest());
  return BpfMap.fromPinned(p);
}

function reopenPinned(pinDir: string): OpenedObject {
  const n = nativeBpf();
  const maps = new Map<MapName, BpfMap>();
  const progs = new Map<ProgramName, number>();
  for (const m of MAP_NAMES) maps.set(m, BpfMap.fromPinned(`${pinDir}/maps/${m}`));
  for (const p of PROGRAM_NAMES)
    progs.set(
      p,
      sys(`open pinned program ${p}`, () => n.objGet(`${pinDir}/progs/${p}`)),
    );
  return { maps, progs };
}

function loadAndPin(pinDir: string, sizes: ObjectSizes): OpenedObject {
  const n = nativeBpf();
  const maps = new Map<MapName, BpfMap>();
  const progs = new Map<ProgramName, number>();
  const pinMaps: Record<string, string> = {};
  for (const m of MAP_NAMES) pinMaps[m] = `${pinDir}/maps/${m}`;
  const maxEntries: Record<string, number> = {};
  if (sizes.ipcacheMaxEntries) maxEntries.mbr_ipcache = sizes.ipcacheMaxEntries;
  if (sizes.ctMaxEntries) maxEntries.mbr_ct4 = sizes.ctMaxEntries;
  const obj = sys(`load ${BPF_OBJECT_PATH}`, () => n.loadObject(BPF_OBJECT_PATH, { pinMaps, maxEntries }));
  for (const m of obj.maps) {
    if ((MAP_NAMES as readonly string[]).includes(m.name)) maps.set(m.name as MapName, new BpfMap(m.fd, m));
    else n.closeFd(m.fd);
  }
  for (const p of obj.programs) {
    const name = p.name as ProgramName;
    progs.set(name, p.fd);
    const path = `${pinDir}/progs/${name}`;
    if (existsSync(path)) unlinkSync(path);
    sys(`pin program ${name}`, () => n.objPin(p.fd, path));
  }
  return { maps, progs };
}
