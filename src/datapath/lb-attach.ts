// The load balancer's node-wide hooks, as pinned bpf_links under <pinDir>/links/ (they outlive the
// agent; removing the pin directory detaches them):
//   netdev-<ifname>-ingress / -egress   mbr_from_netdev / mbr_to_netdev on the node's underlay
//                                        device (NodePort), tcx, ahead of any other program there
//                                        (mbr_from_net, attached 'last', sees translated packets)
//   sock-<connect4|sendmsg4|recvmsg4|getpeername4>   the socket-LB programs on a cgroup v2
// A hook whose link is pinned already is left as it is (a restarted agent of the same build: the
// programs never stopped; the kernel refuses the same program twice on one hook, EEXIST).
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { nativeBpf, sys } from './native.js';

export const SOCK_HOOKS = [
  ['connect4', 'mbr_sock4_connect'],
  ['sendmsg4', 'mbr_sock4_sendmsg'],
  ['recvmsg4', 'mbr_sock4_recvmsg'],
  ['getpeername4', 'mbr_sock4_getpeername'],
] as const;

export function attachNetdev(pinDir: string, ifname: string, progs: { ingress: number; egress: number }): void {
  const n = nativeBpf();
  for (const dir of ['ingress', 'egress'] as const) {
    const pin = `${pinDir}/links/netdev-${ifname}-${dir}`;
    if (existsSync(pin)) continue;
    const link = sys(`attach NodePort: tcx ${dir} on ${ifname}`, () =>
      n.tcxAttach(progs[dir], '', ifname, dir, 'first'),
    );
    replacePin(pin, link.linkFd);
  }
}

export function attachSocketLb(pinDir: string, cgroupDir: string, progFd: (prog: string) => number): void {
  const n = nativeBpf();
  for (const [type, prog] of SOCK_HOOKS) {
    const pin = `${pinDir}/links/sock-${type}`;
    if (existsSync(pin)) continue;
    const fd = sys(`attach socket LB: ${type} on cgroup ${cgroupDir}`, () =>
      n.cgroupAttach(progFd(prog), cgroupDir, type),
    );
    replacePin(pin, fd);
  }
}

export function detachLbLinks(pinDir: string, ifname?: string): void {
  const pins = SOCK_HOOKS.map(([t]) => `${pinDir}/links/sock-${t}`);
  if (ifname) pins.push(`${pinDir}/links/netdev-${ifname}-ingress`, `${pinDir}/links/netdev-${ifname}-egress`);
  for (const p of pins) detachPin(p);
}

/** The cgroup v2 mount point (the root cgroup), from /proc/mounts; undefined without cgroup v2. */
export function cgroup2Root(): string | undefined {
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, dir, type] = line.split(' ');
      if (type === 'cgroup2') return dir;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function replacePin(pin: string, linkFd: number): void {
  const n = nativeBpf();
  detachPin(pin);
  try {
    sys(`pin link ${pin}`, () => n.objPin(linkFd, pin));
  } finally {
    n.closeFd(linkFd);
  }
}

function detachPin(pin: string): void {
  if (!existsSync(pin)) return;
  const n = nativeBpf();
  const fd = sys(`open pinned link ${pin}`, () => n.objGet(pin));
  try {
    n.linkDetach(fd);
  } catch {
    // A defunct link (its device went away): removing the pin frees it.
  }
  n.closeFd(fd);
  unlinkSync(pin);
}
