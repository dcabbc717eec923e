// Typed view of the native addon (native/src/membrane_bpf.c). Every call is synchronous and runs on
// the JS thread. Nothing here owns fds: the classes in bpf-map.ts and datapath.ts do.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { DatapathError } from './datapath-error.js';

export interface LoadedMap {
  name: string;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface MapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export interface ProgInfo {
  id: number;
  type: number;
  runCount: number;
  runTimeNs: number;
  name: string;
}

export interface TestRunResult {
  retval: number;
  durationNs: number;
  data: Buffer;
}

export interface NativeBpf {
  loadObject(
    path: string,
    opts: { pinMaps?: Record<string, string>; maxEntries?: Record<string, number> },
  ): { maps: LoadedMap[]; programs: { name: string; fd: number }[] };
  closeFd(fd: number): void;
  objPin(fd: number, path: string): void;
  objGet(path: string): number;
  mapCreate(type: number, keySize: number, valueSize: number, maxEntries: number, flags: number, name: string): number;
  mapInfo(fd: number): MapInfo;
  progInfo(fd: number): ProgInfo;
  mapFdById(id: number): number;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags: number): void;
  mapLookup(fd: number, key: Uint8Array, valueOut: Uint8Array): boolean;
  mapDelete(fd: number, key: Uint8Array): boolean;
  mapNextKey(fd: number, key: Uint8Array | null, nextOut: Uint8Array): boolean;
  mapUpdateBatch(fd: number, keys: Uint8Array, values: Uint8Array, count: number, flags: number): number;
  mapDeleteBatch(fd: number, keys: Uint8Array, count: number): number;
  mapLookupBatch(
    fd: number,
    inBatch: Uint8Array | null,
    outBatch: Uint8Array,
    keys: Uint8Array,
    values: Uint8Array,
    count: number,
  ): { count: number; more: boolean };
  numPossibleCpus(): number;
  ifIndex(netns: string, ifname: string): number;
  tcxAttach(
    progFd: number,
    netns: string,
    ifname: string,
    direction: 'ingress' | 'egress',
    /** Where among the hook's programs: 'first' ahead of all, 'last' (as without one) behind all. */
    position?: 'first' | 'last',
  ): {
    linkFd: number;
    ifindex: number;
  };
  linkDetach(fd: number): void;
  tcAttach(progFd: number, netns: string, ifname: string, direction: 'ingress' | 'egress'): { ifindex: number };
  tcDetach(netns: string, ifname: string, direction: 'ingress' | 'egress'): boolean;
  progTestRun(fd: number, packet: Uint8Array, repeat: number, ctx: Uint8Array | null): TestRunResult;
  /** cb gets `count` framed records in `buf`, one Buffer reused for every batch: decode it before returning. */
  ringOpen(
    mapFd: number,
    cb: (buf: Buffer, count: number) => void,
    opts: { intervalMs?: number; maxBatch?: number },
  ): object;
  ringDrain(handle: object): void;
  ringStats(handle: object): { delivered: number; batches: number };
  ringClose(handle: object): void;
  /** A bpf_link of a cgroup sock_addr program; returns the link fd. */
  cgroupAttach(
    progFd: number,
    cgroupDir: string,
    attachType: 'connect4' | 'sendmsg4' | 'recvmsg4' | 'getpeername4',
  ): number;
  /** The calling thread's network namespace cookie (SO_NETNS_COOKIE). */
  netnsCookie(): number;
  // The L7 proxy's sockets (native/src/proxy_sockets.c; typed for use in src/proxy/proxy-sockets.ts).
  tcpListen(netns: string, ip: string, port: number, backlog: number, transparent: boolean): number;
  tcpConnect(
    netns: string,
    dstIp: string,
    dstPort: number,
    srcIp: string,
    mark: number,
    cb: (errno: number, fd: number) => void,
  ): object;
  tcpConnectCancel(handle: object): void;
  udpOpen(
    netns: string,
    ip: string,
    port: number,
    transparent: boolean,
    mark: number,
    cb: (data: Buffer, srcIp: string, srcPort: number, dstIp: string, dstPort: number) => void,
  ): object;
  udpSendTo(handle: object, data: Uint8Array, toIp: string, toPort: number): void;
  udpSend(
    handle: object,
    data: Uint8Array,
    fromIp: string,
    fromPort: number,
    toIp: string,
    toPort: number,
    mark: number,
  ): void;
  udpClose(handle: object): void;
  socketPair(): [number, number];
  shutdownWrite(fd: number): void;
  netnsAttach(progFd: number, netns: string): number;
}

/** The package root (where bpf/ and native/ live), from dist/src/datapath/. */
export const PACKAGE_ROOT = new URL('../../../', import.meta.url).pathname;
export const ADDON_PATH = `${PACKAGE_ROOT}native/build/Release/membrane_bpf.node`;
export const BPF_OBJECT_PATH = `${PACKAGE_ROOT}bpf/build/membrane.bpf.o`;

let cached: NativeBpf | undefined;

/** Loads the addon once; throws MBR_DATAPATH_NOT_BUILT when `npm run build` has not built it. */
export function nativeBpf(): NativeBpf {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH))
    throw new DatapathError(
      'MBR_DATAPATH_NOT_BUILT',
      `native addon not built: ${ADDON_PATH} is missing (run npm run build)`,
    );
  cached = createRequire(import.meta.url)(ADDON_PATH) as NativeBpf;
  return cached;
}

/** Runs a native call and rethrows its failure as a DatapathError naming what we were doing. */
export function sys<T>(doing: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw DatapathError.fromNative(doing, err);
  }
}
