// What the proxy reads from the datapath's own pinned maps, read-only: for a redirected
// connection, the endpoint it acts for and both identities (Cilium's proxy does the same with its
// bpf_metadata: conntrack first, the ipcache as the fallback), and whether an address is an
// endpoint of this node (its upstream binds to the client's address only when it is not).

import type { BpfMap } from '../datapath/bpf-map.js';
import { openPinnedMap } from '../datapath/bpf-object.js';
import { decodeCtEntry, encodeCtKey } from '../datapath/maps/ct-map.js';
import { decodeEndpointInfo, encodeIfindexKey } from '../datapath/maps/endpoint-map.js';
import {
  decodeIpcacheFlags,
  decodeIpcacheIfindex,
  decodeIpcacheValue,
  encodeIpcacheKey,
  IpcacheFlags,
} from '../datapath/maps/ipcache-map.js';
import type { TrafficDirection } from '../policy/map-state-types.js';
import type { OriginalTuple } from './l7-handler.js';

/** The world identity: what an address no ipcache prefix covers is. */
const WORLD = 2;

export interface ConnectionIdentity {
  readonly endpointId: number;
  readonly srcIdentity: number;
  readonly dstIdentity: number;
}

interface IpcacheHit {
  readonly identity: number;
  readonly localEndpoint: boolean;
  readonly ifindex: number;
}

export class DatapathView {
  #ct: BpfMap;
  #ipcache: BpfMap;
  #endpoints: BpfMap;
  #ctKey = Buffer.alloc(16);
  #ipKey = Buffer.alloc(8);

  private constructor(ct: BpfMap, ipcache: BpfMap, endpoints: BpfMap) {
    this.#ct = ct;
    this.#ipcache = ipcache;
    this.#endpoints = endpoints;
  }

  /** Opens the maps pinned under the node's datapath pin directory. */
  static open(pinDir: string): DatapathView {
    return new DatapathView(
      openPinnedMap(pinDir, 'mbr_ct4'),
      openPinnedMap(pinDir, 'mbr_ipcache'),
      openPinnedMap(pinDir, 'mbr_endpoints'),
    );
  }

  close(): void {
    this.#ct.close();
    this.#ipcache.close();
    this.#endpoints.close();
  }

  /**
   * The endpoint a redirected connection belongs to (the client's for egress, the server's for
   * ingress) and both identities; undefined when that address is no endpoint of this node.
   */
  resolve(t: OriginalTuple, direction: TrafficDirection, protocol = 6): ConnectionIdentity | undefined {
    const egress = direction === 'egress';
    const local = this.#ipcacheLookup(egress ? t.srcIp : t.dstIp);
    if (!local?.localEndpoint) return undefined;
    const ev = this.#endpoints.lookup(encodeIfindexKey(local.ifindex));
    if (!ev) return undefined;
    const ep = decodeEndpointInfo(ev);
    const remoteIp = egress ? t.dstIp : t.srcIp;
    encodeCtKey(
      { saddr: t.srcIp, daddr: t.dstIp, sport: t.srcPort, dport: t.dstPort, protocol, direction },
      this.#ctKey,
    );
    const cv = this.#ct.lookup(this.#ctKey);
    const remote = cv ? decodeCtEntry(cv).sourceSecurityId : (this.#ipcacheLookup(remoteIp)?.identity ?? WORLD);
    return {
      endpointId: ep.endpointId,
      srcIdentity: egress ? ep.identity : remote,
      dstIdentity: egress ? remote : ep.identity,
    };
  }

  /** Whether ip is the address of an endpoint of this node. */
  isLocalEndpoint(ip: string): boolean {
    return this.#ipcacheLookup(ip)?.localEndpoint ?? false;
  }

  #ipcacheLookup(ip: string): IpcacheHit | undefined {
    encodeIpcacheKey({ addr: ip, prefixLen: 32 }, this.#ipKey);
    const v = this.#ipcache.lookup(this.#ipKey);
    if (!v) return undefined;
    return {
      identity: decodeIpcacheValue(v),
      localEndpoint: (decodeIpcacheFlags(v) & IpcacheFlags.localEndpoint) !== 0,
      ifindex: decodeIpcacheIfindex(v),
    };
  }
}
