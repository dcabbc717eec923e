// Validation of what a runtime hands the plugin: the CNI_* environment and the JSON config on
// stdin. Pure: the caller passes the environment and the text in. Every error names the field.
import { CniCode, CniError, invalidField } from './cni-error.js';
import {
  type CniAttachment,
  type CniCommand,
  type CniEnv,
  type CniResult,
  type MembraneNetConf,
  SUPPORTED_VERSIONS,
} from './cni-types.js';
import { parseCidr } from './ipv4.js';

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];
const DEFAULT_IPAM_DIR = '/var/lib/cni/membrane';

export function parseCniEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (!COMMANDS.includes(command as CniCommand))
    throw new CniError(
      CniCode.invalidEnvironment,
      `CNI_COMMAND: expected one of ${COMMANDS.join(', ')}, got ${JSON.stringify(command)}`,
    );
  const cmd = command as CniCommand;
  const needs = (name: string): string => {
    const v = env[name] ?? '';
    if (v === '') throw new CniError(CniCode.invalidEnvironment, `${name}: required for ${cmd}, got nothing`);
    return v;
  };
  // VERSION, GC and STATUS concern the plugin or the network, not one attachment.
  const perAttachment = cmd === 'ADD' || cmd === 'DEL' || cmd === 'CHECK';
  const containerId = perAttachment ? needs('CNI_CONTAINERID') : (env.CNI_CONTAINERID ?? '');
  const netns = cmd === 'ADD' || cmd === 'CHECK' ? needs('CNI_NETNS') : (env.CNI_NETNS ?? '');
  const ifname = perAttachment ? needs('CNI_IFNAME') : (env.CNI_IFNAME ?? '');
  if (ifname.length > 15 || /[/\s:]/.test(ifname))
    throw new CniError(
      CniCode.invalidEnvironment,
      `CNI_IFNAME: expected an interface name of at most 15 characters, got ${JSON.stringify(ifname)}`,
    );
  return {
    command: cmd,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ''),
    path: (env.CNI_PATH ?? '').split(':').filter((p) => p !== ''),
  };
}

/** CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=frontend". */
export function parseCniArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new CniError(CniCode.invalidEnvironment, `CNI_ARGS: expected KEY=VALUE pairs, got ${JSON.stringify(part)}`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** Only the cniVersion, for VERSION and for writing errors in the caller's version. */
export function peekCniVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : '1.0.0';
  } catch {
    return '1.0.0';
  }
}

export function parseNetConf(stdin: string): MembraneNetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.decodingFailure, `network config: expected JSON, ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw invalidField('network config', 'a JSON object', raw);
  const c = raw as Record<string, unknown>;
  const cniVersion = c.cniVersion;
  if (typeof cniVersion !== 'string') throw invalidField('cniVersion', 'a version string', cniVersion);
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion))
    throw new CniError(
      CniCode.incompatibleVersion,
      `cniVersion: expected one of ${SUPPORTED_VERSIONS.join(', ')}, got ${JSON.stringify(cniVersion)}`,
    );
  const name = c.name;
  if (typeof name !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name))
    throw invalidField('name', 'a network name of letters, digits, "_", "." or "-"', name);
  const type = c.type;
  if (typeof type !== 'string' || type === '') throw invalidField('type', 'the plugin type', type);

  const ipam = c.ipam ?? {};
  if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam)) throw invalidField('ipam', 'an object', ipam);
  const ip = ipam as Record<string, unknown>;
  const podCIDR = ip.podCIDR;
  if (typeof podCIDR !== 'string') throw invalidField('ipam.podCIDR', 'an IPv4 CIDR such as 10.201.1.0/24', podCIDR);
  const cidr = parseCidr(podCIDR);
  if (cidr === undefined || cidr.prefixLen > 29 || cidr.prefixLen < 8)
    throw invalidField('ipam.podCIDR', 'an IPv4 CIDR with a prefix length of 8 to 29', podCIDR);
  const dataDir = ip.dataDir ?? `${DEFAULT_IPAM_DIR}/${name}`;
  if (typeof dataDir !== 'string' || !dataDir.startsWith('/'))
    throw invalidField('ipam.dataDir', 'an absolute directory path', dataDir);

  const agentSocket = c.agentSocket ?? '';
  if (typeof agentSocket !== 'string') throw invalidField('agentSocket', 'a unix socket path', agentSocket);
  const mtu = c.mtu ?? 1500;
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535)
    throw invalidField('mtu', 'an integer 576-65535', mtu);

  return {
    cniVersion,
    name,
    type,
    podCIDR: `${cidr.network}/${cidr.prefixLen}`,
    ipamDataDir: dataDir,
    agentSocket,
    mtu,
    labels: parseArgsLabels(c.args),
    ports: parseArgsPorts(c.args),
    prevResult: parsePrevResult(c.prevResult),
    validAttachments: parseValidAttachments(c),
  };
}

/**
 * GC's cni.dev/valid-attachments: [{"containerID": "...", "ifname": "eth0"}]. libcni also sets
 * the earlier spelling cni.dev/attachments to the same value; either is read.
 */
function parseValidAttachments(c: Record<string, unknown>): CniAttachment[] | undefined {
  const key = c['cni.dev/valid-attachments'] !== undefined ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  const list = c[key];
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) throw invalidField(key, 'a list of {containerID, ifname}', list);
  return list.map((raw, i) => {
    const a = asObject(`${key}[${i}]`, raw, 'an object {containerID, ifname}');
    if (typeof a.containerID !== 'string' || a.containerID === '')
      throw invalidField(`${key}[${i}].containerID`, 'a container ID', a.containerID);
    if (typeof a.ifname !== 'string' || a.ifname === '')
      throw invalidField(`${key}[${i}].ifname`, 'an interface name', a.ifname);
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

/** args.cni.labels: [{"key": "app", "value": "frontend"}] (the CNI conventions' labels). */
function parseArgsLabels(args: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (args === undefined) return out;
  if (typeof args !== 'object' || args === null) throw invalidField('args', 'an object', args);
  const cni = (args as Record<string, unknown>).cni;
  if (cni === undefined) return out;
  if (typeof cni !== 'object' || cni === null) throw invalidField('args.cni', 'an object', cni);
  const labels = (cni as Record<string, unknown>).labels;
  if (labels === undefined) return out;
  if (!Array.isArray(labels)) throw invalidField('args.cni.labels', 'a list of {key, value}', labels);
  labels.forEach((l, i) => {
    const { key, value } = (l ?? {}) as Record<string, unknown>;
    if (typeof key !== 'string' || key === '') throw invalidField(`args.cni.labels[${i}].key`, 'a label key', key);
    if (typeof value !== 'string') throw invalidField(`args.cni.labels[${i}].value`, 'a string', value);
    out[key] = value;
  });
  return out;
}

/**
 * args.cni.ports: [{"name": "http", "containerPort": 8080, "protocol": "TCP"}], the pod's
 * container ports as Kubernetes writes them (protocol TCP when omitted).
 */
function parseArgsPorts(args: unknown): Array<{ name?: string; containerPort: number; protocol: number }> {
  const cni = (args as { cni?: Record<string, unknown> } | undefined)?.cni;
  const ports = cni?.ports;
  if (ports === undefined) return [];
  if (!Array.isArray(ports)) throw invalidField('args.cni.ports', 'a list of {name, containerPort, protocol}', ports);
  return ports.map((raw, i) => {
    const p = (raw ?? {}) as Record<string, unknown>;
    const at = `args.cni.ports[${i}]`;
    if (typeof p !== 'object' || Array.isArray(p)) throw invalidField(at, 'an object', raw);
    const port = p.containerPort;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw invalidField(`${at}.containerPort`, 'a port 1-65535', port);
    const proto = p.protocol ?? 'TCP';
    const protocol = typeof proto === 'string' ? PORT_PROTOCOLS[proto.toUpperCase()] : undefined;
    if (protocol === undefined) throw invalidField(`${at}.protocol`, 'TCP, UDP or SCTP', proto);
    const name = p.name;
    if (name !== undefined && (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/.test(name)))
      throw invalidField(`${at}.name`, 'an IANA service name (1-15 lowercase letters, digits, -)', name);
    return { ...(name !== undefined ? { name } : {}), containerPort: port, protocol };
  });
}

const PORT_PROTOCOLS: Readonly<Record<string, number>> = { TCP: 6, UDP: 17, SCTP: 132 };

/**
 * prevResult: the previous plugin's result, checked in full so that a malformed one is rejected
 * here with the field's path (prevResult.interfaces[0], ...) instead of failing later.
 */
function parsePrevResult(prev: unknown): CniResult | undefined {
  if (prev === undefined) return undefined;
  const p = asObject('prevResult', prev, 'a CNI result object');
  if (p.cniVersion !== undefined && typeof p.cniVersion !== 'string')
    throw invalidField('prevResult.cniVersion', 'a version string', p.cniVersion);
  const interfaces = optionalList('prevResult.interfaces', p.interfaces);
  interfaces?.forEach((raw, i) => {
    const at = `prevResult.interfaces[${i}]`;
    const f = asObject(at, raw, 'an interface object');
    if (typeof f.name !== 'string' || f.name === '') throw invalidField(`${at}.name`, 'an interface name', f.name);
    for (const k of ['mac', 'sandbox'] as const)
      if (f[k] !== undefined && typeof f[k] !== 'string') throw invalidField(`${at}.${k}`, 'a string', f[k]);
  });
  optionalList('prevResult.ips', p.ips)?.forEach((raw, i) => {
    const at = `prevResult.ips[${i}]`;
    const f = asObject(at, raw, 'an IP config object');
    if (typeof f.address !== 'string' || !/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(f.address))
      throw invalidField(`${at}.address`, 'an address in CIDR notation', f.address);
    if (f.gateway !== undefined && typeof f.gateway !== 'string')
      throw invalidField(`${at}.gateway`, 'an IP address', f.gateway);
    const n = interfaces?.length ?? 0;
    if (
      f.interface !== undefined &&
      (!Number.isInteger(f.interface) || (f.interface as number) < 0 || (f.interface as number) >= n)
    )
      throw invalidField(`${at}.interface`, `an index into prevResult.interfaces (0-${n - 1})`, f.interface);
  });
  optionalList('prevResult.routes', p.routes)?.forEach((raw, i) => {
    const at = `prevResult.routes[${i}]`;
    const f = asObject(at, raw, 'a route object');
    if (typeof f.dst !== 'string') throw invalidField(`${at}.dst`, 'a destination in CIDR notation', f.dst);
    if (f.gw !== undefined && typeof f.gw !== 'string') throw invalidField(`${at}.gw`, 'an IP address', f.gw);
  });
  if (p.dns !== undefined) asObject('prevResult.dns', p.dns, 'an object');
  return p as unknown as CniResult;
}

function asObject(path: string, v: unknown, expected: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidField(path, expected, v);
  return v as Record<string, unknown>;
}

function optionalList(path: string, v: unknown): readonly unknown[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalidField(path, 'a list', v);
  return v;
}
