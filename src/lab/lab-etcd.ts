// The lab's etcd cluster (`membrane lab up --store etcd`): three etcd members, each in its own
// network namespace on the lab's underlay (172.30.0.2-4, private to the lab), with its data under
// the lab's state directory. The agents reach it on the underlay through Cilium's etcd config
// file (<lab>/etcd/etcd.config); the lab itself and the tests, which run in the host's network
// namespace, reach each member on a unix socket in the member's directory. `lab down` stops the
// members with every other process in the lab's namespaces and removes their data with the
// state directory.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterStore } from '../store/cluster-store.js';
import { EtcdStore } from '../store/etcd-store.js';
import { formatEtcdConfig, openClusterStore, type StoreSpec } from '../store/open-store.js';
import { clusterDir, labDir, netnsPath, netnsPrefix } from './lab-paths.js';
import { isAlive, startPodProcess } from './pod-process.js';

export type LabStoreKind = 'embedded' | 'etcd';

export const ETCD_MEMBER_COUNT = 3;
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

export interface EtcdMember {
  readonly name: string;
  readonly ip: string;
  readonly netns: string;
  readonly dir: string;
}

export function etcdDir(lab: string): string {
  return join(labDir(lab), 'etcd');
}

/** The etcd config file the agents are given (client URLs on the underlay). */
export function etcdConfigFile(lab: string): string {
  return join(etcdDir(lab), 'etcd.config');
}

export function etcdMembers(lab: string, underlayPrefix: string): EtcdMember[] {
  return Array.from({ length: ETCD_MEMBER_COUNT }, (_, i) => ({
    name: `etcd${i + 1}`,
    ip: `${underlayPrefix}.${2 + i}`,
    netns: `${netnsPrefix(lab)}etcd${i + 1}`,
    dir: join(etcdDir(lab), `etcd${i + 1}`),
  }));
}

/** Which store a lab runs on: etcd once its etcd config exists, else the embedded one. */
export function labStoreKind(lab: string): LabStoreKind {
  return existsSync(etcdConfigFile(lab)) ? 'etcd' : 'embedded';
}

/** How a process in the host's network namespace reaches the lab's store. */
export function labHostStoreSpec(lab: string, underlayPrefix: string): StoreSpec {
  if (labStoreKind(lab) === 'embedded') return { kind: 'embedded', dir: clusterDir(lab), options: { leaseSweepMs: 0 } };
  return {
    kind: 'etcd',
    endpoints: etcdMembers(lab, underlayPrefix).map((m) => memberSocketUrl(m)),
    dialTimeoutMs: 2000,
  };
}

export function openLabStore(lab: string, underlayPrefix: string): Promise<ClusterStore> {
  return openClusterStore(labHostStoreSpec(lab, underlayPrefix));
}

/** The agent flags that select the lab's store. */
export function labAgentStoreArgs(lab: string): string[] {
  return labStoreKind(lab) === 'etcd'
    ? ['--kvstore', 'etcd', '--kvstore-opt', `etcd.config=${etcdConfigFile(lab)}`]
    : [];
}

/**
 * Starts every member not running yet (each in its netns, attached to the underlay by `attach`)
 * and waits until all three answer and one leads (bounded: 30 s).
 */
export async function ensureEtcdCluster(
  lab: string,
  underlayPrefix: string,
  attach: (netns: string, port: string, ip: string) => Promise<void>,
): Promise<EtcdMember[]> {
  const members = etcdMembers(lab, underlayPrefix);
  mkdirSync(etcdDir(lab), { recursive: true });
  const initialCluster = members.map((m) => `${m.name}=http://${m.ip}:${ETCD_PEER_PORT}`).join(',');
  for (const m of members) {
    await attach(m.netns, `mbr-${m.name}`, m.ip);
    const pidFile = join(m.dir, 'etcd.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (pid && isAlive(pid)) continue;
    mkdirSync(m.dir, { recursive: true });
    // A member killed earlier leaves its socket file behind, and etcd will not listen over it.
    rmSync(join(m.dir, 'client.sock:0'), { force: true });
    const started = startPodProcess({
      netnsPath: netnsPath(m.netns),
      resolvConf: undefined,
      argv: etcdArgv(lab, m, initialCluster, existsSync(join(m.dir, 'data'))),
      env: {},
      logFile: join(m.dir, 'etcd.log'),
      // etcd makes a unix listener relative to its working directory.
      cwd: m.dir,
    });
    writeFileSync(pidFile, String(started));
  }
  writeFileSync(etcdConfigFile(lab), formatEtcdConfig(members.map((m) => `http://${m.ip}:${ETCD_CLIENT_PORT}`)));
  await waitHealthy(lab, members);
  return members;
}

/** The argv of one member (also used to start a member again after a test killed it). */
export function etcdArgv(lab: string, m: EtcdMember, initialCluster: string, hasData: boolean): string[] {
  const client = `http://${m.ip}:${ETCD_CLIENT_PORT}`;
  const peer = `http://${m.ip}:${ETCD_PEER_PORT}`;
  return [
    'etcd',
    ...['--name', m.name, '--data-dir', join(m.dir, 'data')],
    ...['--listen-client-urls', `${client},unix://client.sock:0`, '--advertise-client-urls', client],
    ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer],
    ...['--initial-cluster', initialCluster, '--initial-cluster-token', `mbr-${lab}`],
    ...['--initial-cluster-state', hasData ? 'existing' : 'new'],
    // A lab's cluster is small and short-lived: keep its history bounded, answer fast.
    ...['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '100000'],
    ...['--heartbeat-interval', '100', '--election-timeout', '1000'],
  ];
}

/** Starts one member again (a test that killed it); its data dir makes it rejoin. */
export function restartEtcdMember(lab: string, m: EtcdMember, underlayPrefix: string): number {
  const all = etcdMembers(lab, underlayPrefix);
  const initialCluster = all.map((x) => `${x.name}=http://${x.ip}:${ETCD_PEER_PORT}`).join(',');
  rmSync(join(m.dir, 'client.sock:0'), { force: true });
  const pid = startPodProcess({
    netnsPath: netnsPath(m.netns),
    resolvConf: undefined,
    argv: etcdArgv(lab, m, initialCluster, true),
    env: {},
    logFile: join(m.dir, 'etcd.log'),
    cwd: m.dir,
  });
  writeFileSync(join(m.dir, 'etcd.pid'), String(pid));
  return pid;
}

export function memberPid(m: EtcdMember): number {
  const pidFile = join(m.dir, 'etcd.pid');
  return existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
}

function memberSocketUrl(m: EtcdMember): string {
  return `unix://${join(m.dir, 'client.sock:0')}`;
}

async function waitHealthy(lab: string, members: readonly EtcdMember[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last = 'no answer';
  for (;;) {
    if (members.every((m) => existsSync(join(m.dir, 'client.sock:0')))) {
      const store = await EtcdStore.open({ endpoints: members.map(memberSocketUrl), dialTimeoutMs: 1000 }).catch(
        (err: Error) => {
          last = err.message;
          return undefined;
        },
      );
      if (store) {
        const h = await store.health();
        await store.close();
        last = h.message;
        if (h.state === 'Ok' && h.message.startsWith(`etcd: ${members.length}/${members.length} connected`)) return;
      }
    }
    if (Date.now() > deadline)
      throw Object.assign(
        new Error(`etcd cluster of lab ${lab} not healthy within 30 s: ${last} (see ${etcdDir(lab)}/*/etcd.log)`),
        { code: 'MBR_LAB_ETCD' },
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}
