// CNI 1.1 data shapes: the runtime's environment, the plugin config and the ADD result.

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';

export const CNI_VERSION = '1.1.0';
/** Config versions the plugin accepts, oldest first; results are written in the config's version. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** GC and STATUS exist from spec 1.1.0 on. */
export function isAtLeast(version: string, min: (typeof SUPPORTED_VERSIONS)[number]): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).indexOf(version) >= SUPPORTED_VERSIONS.indexOf(min);
}

/** One entry of GC's cni.dev/valid-attachments. */
export interface CniAttachment {
  readonly containerID: string;
  readonly ifname: string;
}

export interface CniInterface {
  readonly name: string;
  readonly mac?: string;
  readonly sandbox?: string;
}

export interface CniIpConfig {
  readonly address: string;
  readonly gateway?: string;
  readonly interface?: number;
}

export interface CniRoute {
  readonly dst: string;
  readonly gw?: string;
}

export interface CniResult {
  readonly cniVersion: string;
  readonly interfaces?: readonly CniInterface[];
  readonly ips?: readonly CniIpConfig[];
  readonly routes?: readonly CniRoute[];
  readonly dns?: Readonly<Record<string, unknown>>;
}

/** What the runtime passes in CNI_* variables. */
export interface CniEnv {
  readonly command: CniCommand;
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  /** CNI_ARGS parsed from "K=V;K=V". */
  readonly args: Readonly<Record<string, string>>;
  readonly path: readonly string[];
}

/** The membrane plugin's config after validation. */
export interface MembraneNetConf {
  readonly cniVersion: string;
  readonly name: string;
  readonly type: string;
  /** The node's pod CIDR (IPv4); the first host address is the pods' gateway. */
  readonly podCIDR: string;
  /** Where the IPAM keeps one reservation file per address. */
  readonly ipamDataDir: string;
  /** The node agent's API socket; empty = do not register endpoints. */
  readonly agentSocket: string;
  readonly mtu: number;
  /** Labels the runtime passes in args.cni.labels (the CNI conventions' shape). */
  readonly labels: Readonly<Record<string, string>>;
  /** Container ports the runtime passes in args.cni.ports, with their names (named ports in policy). */
  readonly ports: ReadonlyArray<{ readonly name?: string; readonly containerPort: number; readonly protocol: number }>;
  readonly prevResult?: CniResult;
  /** GC: cni.dev/valid-attachments, the attachments the runtime still knows. */
  readonly validAttachments?: readonly CniAttachment[];
}
