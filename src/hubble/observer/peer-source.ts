// The cluster's flow servers, for the peer.Peer service: the agent feeds it from its node list;
// StaticPeers serves tests and single-node setups.

export const PeerChange = { PEER_ADDED: 1, PEER_DELETED: 2, PEER_UPDATED: 3 } as const;

export interface PeerChangeNotification {
  readonly name: string;
  readonly address: string;
  readonly type: number;
}

export interface PeerSource {
  /** Calls `fn` with PEER_ADDED for every current peer, then with every change; returns unsubscribe. */
  subscribe(fn: (c: PeerChangeNotification) => void): () => void;
}

export class StaticPeers implements PeerSource {
  private readonly peers = new Map<string, string>();
  private readonly subs = new Set<(c: PeerChangeNotification) => void>();

  constructor(initial: readonly { name: string; address: string }[] = []) {
    for (const p of initial) this.peers.set(p.name, p.address);
  }

  set(name: string, address: string): void {
    const type = this.peers.has(name) ? PeerChange.PEER_UPDATED : PeerChange.PEER_ADDED;
    this.peers.set(name, address);
    for (const s of this.subs) s({ name, address, type });
  }

  delete(name: string): void {
    const address = this.peers.get(name);
    if (address === undefined) return;
    this.peers.delete(name);
    for (const s of this.subs) s({ name, address, type: PeerChange.PEER_DELETED });
  }

  subscribe(fn: (c: PeerChangeNotification) => void): () => void {
    for (const [name, address] of this.peers) fn({ name, address, type: PeerChange.PEER_ADDED });
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }
}
