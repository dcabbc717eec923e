// Attaching the datapath's programs to an endpoint's host-side veth: mbr_from_pod on ingress (what
// the pod sends), mbr_to_pod on egress (what it receives). tcx links where the kernel has them
// (>= 6.6), pinned at links/<endpointId>-<ingress|egress> so they outlive the process; else legacy
// tc (cls_bpf) filters, which need no pin but are found again only by netns and device.
import { existsSync, unlinkSync } from 'node:fs';
import { isDatapathError } from './datapath-error.js';
import { EndpointFlags, type EndpointInfo, parseMac } from './maps/endpoint-map.js';
import { nativeBpf, sys } from './native.js';

export interface EndpointAttachment {
  readonly endpointId: number;
  /** The netns holding the host-side veth ('' = this process's netns). */
  readonly netnsPath: string;
  /** Host-side veth name. */
  readonly ifname: string;
  readonly ipv4: string;
  /** The pod's security identity; also written to the ipcache for ipv4/32. */
  readonly identity: number;
  /** Policy drops are reported as audit verdicts and let through. */
  readonly audit?: boolean;
  readonly enforceIngress?: boolean;
  readonly enforceEgress?: boolean;
  /** The pod's eth0 MAC and the host-side veth's MAC: with both, the endpoint takes local delivery. */
  readonly podMac?: string;
  readonly hostMac?: string;
}

export interface AttachedEndpoint extends EndpointInfo {
  readonly ifindex: number;
}

/** Where a legacy-tc endpoint's filters are (they are not pinned objects). */
export interface TcLocation {
  readonly netnsPath: string;
  readonly ifname: string;
}

/** Program fds per hook: ingress runs mbr_from_pod, egress mbr_to_pod. */
export interface HookPrograms {
  readonly ingress: number;
  readonly egress: number;
}

/** Checks the attachment's MACs and finds the host-side veth's ifindex. */
export function resolveAttachment(a: EndpointAttachment): number {
  if (a.podMac !== undefined) parseMac(a.podMac, `attach endpoint ${a.endpointId}: podMac`);
  if (a.hostMac !== undefined) parseMac(a.hostMac, `attach endpoint ${a.endpointId}: hostMac`);
  const n = nativeBpf();
  return sys(`attach endpoint ${a.endpointId}: find ${a.ifname}`, () => n.ifIndex(a.netnsPath, a.ifname));
}

/** The mbr_endpoints entry of an attachment; the policy revision moves on from the previous one. */
export function endpointInfoFor(
  a: EndpointAttachment,
  ifindex: number,
  prev: AttachedEndpoint | undefined,
  hasLocalDelivery: boolean,
): AttachedEndpoint {
  return {
    endpointId: a.endpointId,
    identity: a.identity,
    ipv4: a.ipv4,
    flags:
      (a.audit ? EndpointFlags.audit : 0) |
      (a.enforceIngress === false ? EndpointFlags.noEnforceIngress : 0) |
      (a.enforceEgress === false ? EndpointFlags.noEnforceEgress : 0) |
      (hasLocalDelivery ? EndpointFlags.localDelivery : 0),
    policyRevision: (prev?.policyRevision ?? 0) + 1,
    ...(a.podMac !== undefined ? { podMac: a.podMac.toLowerCase() } : {}),
    ...(a.hostMac !== undefined ? { hostMac: a.hostMac.toLowerCase() } : {}),
    ifindex,
  };
}

/**
 * Attaches both hooks as tcx links and pins them. Re-attaching replaces the links without a gap:
 * the new link first, then the old one is detached.
 */
export function attachTcx(pinDir: string, progs: HookPrograms, a: EndpointAttachment): void {
  const n = nativeBpf();
  for (const dir of HOOKS) {
    const pin = linkPin(pinDir, a.endpointId, dir);
    const link = sys(`attach endpoint ${a.endpointId}: tcx ${dir} on ${a.ifname}`, () =>
      n.tcxAttach(progs[dir], a.netnsPath, a.ifname, dir),
    );
    detachPinnedLink(pin);
    sys(`pin link ${pin}`, () => n.objPin(link.linkFd, pin));
    n.closeFd(link.linkFd);
  }
}

/** Kernels before 6.6 reject the tcx attach types (EINVAL, EOPNOTSUPP, ENOTSUPP). */
export function isTcxUnsupported(err: unknown): boolean {
  return isDatapathError(err) && (err.errno === 22 || err.errno === 95 || err.errno === 524);
}

/** Attaches both hooks as legacy tc (cls_bpf) filters. */
export function attachLegacyTc(progs: HookPrograms, a: EndpointAttachment): void {
  const n = nativeBpf();
  for (const dir of HOOKS)
    sys(`attach endpoint ${a.endpointId}: tc ${dir} on ${a.ifname}`, () =>
      n.tcAttach(progs[dir], a.netnsPath, a.ifname, dir),
    );
}

export function detachLegacyTc(endpointId: number, at: TcLocation): void {
  const n = nativeBpf();
  for (const dir of HOOKS)
    sys(`detach endpoint ${endpointId}: tc ${dir} on ${at.ifname}`, () => n.tcDetach(at.netnsPath, at.ifname, dir));
}

/** Detaches and unpins the endpoint's tcx links, if it has any. */
export function detachTcx(pinDir: string, endpointId: number): void {
  for (const dir of HOOKS) detachPinnedLink(linkPin(pinDir, endpointId, dir));
}

const HOOKS = ['ingress', 'egress'] as const;

function linkPin(pinDir: string, endpointId: number, dir: (typeof HOOKS)[number]): string {
  return `${pinDir}/links/${endpointId}-${dir}`;
}

/** Detaches the link pinned at `pin` (if any) and removes the pin. */
export function detachPinnedLink(pin: string): void {
  if (!existsSync(pin)) return;
  const n = nativeBpf();
  const fd = sys(`open pinned link ${pin}`, () => n.objGet(pin));
  try {
    n.linkDetach(fd);
  } catch {
    // The link's device may be gone already (a defunct link): removing the pin frees it.
  }
  n.closeFd(fd);
  unlinkSync(pin);
}
