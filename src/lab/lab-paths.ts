// Where a lab keeps things: every name and path derives from the lab name, so `lab down` can
// find all of it again even when the state directory is gone.

export const DEFAULT_LAB = 'lab';

export function stateRoot(): string {
  return process.env.MEMBRANE_STATE_DIR ?? '/run/membrane';
}

export function labDir(lab: string): string {
  return `${stateRoot()}/${lab}`;
}

export function nodeDir(lab: string, node: string): string {
  return `${labDir(lab)}/nodes/${node}`;
}

export function agentSocket(lab: string, node: string): string {
  return `${nodeDir(lab, node)}/agent.sock`;
}

/** The lab's flow relay (all nodes' flows), for `membrane observe --server unix://...`. */
export function relaySocket(lab: string): string {
  return `${labDir(lab)}/relay.sock`;
}

export function clusterDir(lab: string): string {
  return `${labDir(lab)}/cluster`;
}

export function bpffsDir(lab: string): string {
  return `/sys/fs/bpf/membrane/${lab}`;
}

/** Every netns of the lab starts with this. */
export function netnsPrefix(lab: string): string {
  return `mbr-${lab}-`;
}

export function underlayNetns(lab: string): string {
  return `mbr-${lab}-ul`;
}

export function worldNetns(lab: string): string {
  return `mbr-${lab}-world`;
}

export function nodeNetns(lab: string, node: string): string {
  return `mbr-${lab}-${node}`;
}

export function podNetns(lab: string, namespace: string, pod: string): string {
  return `mbr-${lab}-p-${namespace}-${pod}`;
}

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** Lab names become netns and path parts: keep them short and plain. */
export function checkLabName(lab: string): string | undefined {
  return /^[a-z][a-z0-9]{0,11}$/.test(lab)
    ? undefined
    : `expected 1-12 lowercase letters or digits starting with a letter, got "${lab}"`;
}
