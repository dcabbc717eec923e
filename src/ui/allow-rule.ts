// The smallest rule that would allow a dropped flow: one CiliumNetworkPolicy in the namespace of
// the endpoint that dropped it, selecting that endpoint by its app label (or all of its k8s
// labels), with one ingress (or egress) entry naming the peer as narrowly as the flow allows
// (its app label and namespace, an FQDN, a /32 or an entity) and the one port and protocol. Pure.
import { stringify } from 'yaml';
import { type Endpoint, type Flow, RESERVED_IDENTITY_NAMES, TrafficDirection } from '../hubble/flow/flow.js';

export interface AllowRule {
  readonly direction: 'ingress' | 'egress';
  readonly policy: Record<string, unknown>;
  readonly yaml: string;
}

/** undefined when the flow was not dropped at a pod (nothing a namespaced policy could change). */
export function smallestAllowRule(f: Flow): AllowRule | undefined {
  const direction = f.traffic_direction === TrafficDirection.INGRESS ? 'ingress' : 'egress';
  const subject = direction === 'ingress' ? f.destination : f.source;
  const peer = direction === 'ingress' ? f.source : f.destination;
  const peerIp = direction === 'ingress' ? f.IP?.source : f.IP?.destination;
  const peerNames = direction === 'ingress' ? f.source_names : f.destination_names;
  if (subject?.namespace === undefined || subject.namespace === '') return undefined;
  const l4 = f.l4;
  const ports = l4?.TCP ?? l4?.UDP ?? l4?.SCTP;
  const protocol = l4?.TCP ? 'TCP' : l4?.UDP ? 'UDP' : l4?.SCTP ? 'SCTP' : undefined;
  const port = ports?.destination_port ?? 0;
  const toPorts = protocol !== undefined && port > 0 ? [{ ports: [{ port: String(port), protocol }] }] : undefined;
  const entry: Record<string, unknown> = peerSelector(direction, subject, peer, peerIp, peerNames);
  if (toPorts !== undefined) entry.toPorts = toPorts;
  const peerName = slug(nameOf(peer, peerNames, peerIp));
  const subjectName = slug(nameOf(subject));
  const [from, to] = direction === 'ingress' ? [peerName, subjectName] : [subjectName, peerName];
  const name = `allow-${from}-to-${to}${port > 0 ? `-${port}` : ''}`;
  const policy = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: name.slice(0, 63).replace(/-+$/, ''), namespace: subject.namespace },
    spec: {
      endpointSelector: { matchLabels: selectorLabels(subject) },
      [direction]: [entry],
    },
  };
  return { direction, policy, yaml: stringify(policy) };
}

function peerSelector(
  direction: 'ingress' | 'egress',
  subject: Endpoint,
  peer: Endpoint | undefined,
  ip: string | undefined,
  names: readonly string[] | undefined,
): Record<string, unknown> {
  const side = direction === 'ingress' ? 'from' : 'to';
  const identity = peer?.identity ?? 0;
  const reserved = RESERVED_IDENTITY_NAMES[identity];
  if (peer?.namespace) {
    const labels = selectorLabels(peer);
    if (peer.namespace !== subject.namespace) labels['k8s:io.kubernetes.pod.namespace'] = peer.namespace;
    return { [`${side}Endpoints`]: [{ matchLabels: labels }] };
  }
  if (direction === 'egress' && names !== undefined && names.length > 0)
    return { toFQDNs: [{ matchName: names[0]!.replace(/\.$/, '') }] };
  if (reserved === 'host' || reserved === 'remote-node' || reserved === 'kube-apiserver')
    return { [`${side}Entities`]: [reserved] };
  if (ip !== undefined && ip !== '') return { [`${side}CIDR`]: [`${ip}/${ip.includes(':') ? 128 : 32}`] };
  return { [`${side}Entities`]: ['world'] };
}

/** The app label when there is one, else every k8s label but the namespace's. */
function selectorLabels(ep: Endpoint): Record<string, string> {
  const k8s = (ep.labels ?? [])
    .filter((l) => l.startsWith('k8s:'))
    .map((l) => {
      const eq = l.indexOf('=');
      return eq < 0 ? [l.slice(4), ''] : [l.slice(4, eq), l.slice(eq + 1)];
    })
    .filter(([k]) => !k!.startsWith('io.kubernetes.') && !k!.startsWith('io.cilium.'));
  for (const key of ['app', 'k8s-app', 'app.kubernetes.io/name']) {
    const hit = k8s.find(([k]) => k === key);
    if (hit !== undefined) return { [key]: hit[1]! };
  }
  return Object.fromEntries(k8s);
}

function nameOf(ep: Endpoint | undefined, names?: readonly string[], ip?: string): string {
  const labels = ep?.namespace ? selectorLabels(ep) : {};
  return (
    labels.app ??
    labels['k8s-app'] ??
    ep?.pod_name ??
    names?.[0] ??
    RESERVED_IDENTITY_NAMES[ep?.identity ?? 0] ??
    ip ??
    'peer'
  );
}

function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}
