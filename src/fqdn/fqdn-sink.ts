// The message the DNS proxy sends to the owner of the ipcache (the agent) for one answer, and the
// interface it is sent through. The proxy waits for `observe` to resolve (bounded by its
// response-max-delay) before releasing the answer to the pod, so the first connection to a
// newly learned IP finds it in the ipcache.

/** One DNS answer's names for one endpoint (the queried name and every name of its CNAME chain). */
export interface DnsObservation {
  readonly endpointId: number;
  /** Each name with the answer's A/AAAA addresses and the lowest TTL along its chain. */
  readonly names: ReadonlyArray<{
    readonly name: string;
    readonly ips: readonly string[];
    readonly ttlSeconds: number;
  }>;
}

export interface FqdnSink {
  /** Resolves once the ipcache (and every policy map that selects the names) holds the IPs. */
  observe(obs: DnsObservation): Promise<void>;
}
