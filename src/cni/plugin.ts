// The membrane CNI plugin's commands. runCni takes the environment and stdin and returns what to
// print and the exit code, so tests can drive it in-process as well as through the executable.
import { AgentApiError, AgentClient } from '../agent/api-client.js';
import type { Endpoint, EndpointRegistration } from '../agent/api-types.js';
import { CniCode, CniError } from './cni-error.js';
import { type CniEnv, type CniResult, isAtLeast, type MembraneNetConf, SUPPORTED_VERSIONS } from './cni-types.js';
import { FileIpam } from './ipam.js';
import { parseCniEnv, parseNetConf, peekCniVersion } from './net-conf.js';
import {
  assertNetns,
  checkPodLink,
  createPodLink,
  deletePodLink,
  ensureRouter,
  type RouterChanges,
  releaseRouter,
  validatePodNetns,
} from './pod-link.js';

export interface CniOutcome {
  readonly stdout: string;
  readonly exitCode: number;
}

export async function runCni(env: Readonly<Record<string, string | undefined>>, stdin: string): Promise<CniOutcome> {
  const version = peekCniVersion(stdin);
  try {
    const e = parseCniEnv(env);
    if (e.command === 'VERSION') {
      return ok({ cniVersion: version, supportedVersions: [...SUPPORTED_VERSIONS] });
    }
    const conf = parseNetConf(stdin);
    switch (e.command) {
      case 'ADD':
        return ok(await cmdAdd(e, conf));
      case 'DEL':
        await cmdDel(e, conf);
        return { stdout: '', exitCode: 0 };
      case 'CHECK':
        await cmdCheck(e, conf);
        return { stdout: '', exitCode: 0 };
      case 'GC':
      case 'STATUS':
        if (!isAtLeast(conf.cniVersion, '1.1.0'))
          throw new CniError(
            CniCode.incompatibleVersion,
            `cniVersion: ${e.command} needs 1.1.0 or later, got ${JSON.stringify(conf.cniVersion)}`,
          );
        if (e.command === 'GC') await cmdGc(conf);
        else await cmdStatus(conf);
        return { stdout: '', exitCode: 0 };
    }
  } catch (err) {
    // Anything that is not a CniError is a bug: the runtime gets its message, never a stack.
    const ce =
      err instanceof CniError
        ? err
        : new CniError(CniCode.internal, `internal error: ${(err as Error).message ?? String(err)}`);
    return { stdout: `${JSON.stringify(ce.toResult(version))}\n`, exitCode: 1 };
  }
}

// ADD validates everything it was given before it changes anything; after the first change, a
// failure undoes what this ADD did (reservation, veth pair, host route, and the node's gateway
// address and forwarding only if this ADD set them and no other pod holds an address).
async function cmdAdd(e: CniEnv, conf: MembraneNetConf): Promise<CniResult> {
  const chained = chainedInterface(e, conf.prevResult);
  if (chained) {
    // Chained after a plugin that already made the interface: only register the endpoint.
    assertNetns(e.netns);
    await register(conf, e, chained);
    return { ...conf.prevResult!, cniVersion: conf.cniVersion };
  }
  await validatePodNetns(e.netns, e.ifname);
  const ipam = new FileIpam(conf.ipamDataDir, conf.podCIDR);
  const lease = ipam.allocate(e.containerId, e.ifname);
  let router: RouterChanges = { addedGateway: false, enabledForwarding: false };
  // createPodLink removes its own half-made pair; a pair it finished is ours to remove here.
  let hasLink = false;
  try {
    router = await ensureRouter(lease.gateway);
    const link = await createPodLink({
      containerId: e.containerId,
      netns: e.netns,
      ifname: e.ifname,
      ip: lease.ip,
      gateway: lease.gateway,
      mtu: conf.mtu,
    });
    hasLink = true;
    await register(conf, e, { ipv4: lease.ip, ...link });
    const legacy = conf.cniVersion.startsWith('0.');
    return {
      cniVersion: conf.cniVersion,
      interfaces: [
        { name: link.hostIfname, mac: link.hostMac },
        { name: e.ifname, mac: link.podMac, sandbox: e.netns },
      ],
      ips: [
        {
          ...(legacy ? { version: '4' } : {}),
          address: `${lease.ip}/32`,
          gateway: lease.gateway,
          interface: 1,
        },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: lease.gateway }],
      dns: {},
    };
  } catch (err) {
    if (hasLink) await deletePodLink(e.containerId, e.ifname, lease.ip).catch(() => undefined);
    ipam.release(e.containerId, e.ifname);
    await releaseRouter(lease.gateway, router, () => ipam.list().size > 0).catch(() => undefined);
    throw err;
  }
}

async function cmdDel(e: CniEnv, conf: MembraneNetConf): Promise<void> {
  const ipam = new FileIpam(conf.ipamDataDir, conf.podCIDR);
  const held = ipam.find(e.containerId, e.ifname);
  if (held) await deletePodLink(e.containerId, e.ifname, held.ip);
  if (conf.agentSocket) {
    const q = `containerId=${encodeURIComponent(e.containerId)}&ifname=${encodeURIComponent(e.ifname)}`;
    try {
      await new AgentClient(conf.agentSocket).delete(`/v1/endpoint?${q}`);
    } catch (err) {
      // DEL must succeed when the agent is down: a restarted agent drops endpoints whose host
      // interface is gone. An unknown endpoint is what a repeated DEL finds.
      if (!(err instanceof AgentApiError) || (err.code !== 'MBR_AGENT_UNREACHABLE' && err.status !== 404)) throw err;
    }
  }
  ipam.release(e.containerId, e.ifname);
}

async function cmdCheck(e: CniEnv, conf: MembraneNetConf): Promise<void> {
  if (!conf.prevResult) throw new CniError(CniCode.invalidNetworkConfig, 'prevResult: required for CHECK, got nothing');
  const held = new FileIpam(conf.ipamDataDir, conf.podCIDR).find(e.containerId, e.ifname);
  const chained = chainedInterface(e, conf.prevResult);
  if (!held && !chained)
    throw new CniError(CniCode.checkFailed, `no address is reserved for ${e.containerId}/${e.ifname}`);
  if (held) {
    const inResult = (conf.prevResult.ips ?? []).some((i) => i.address === `${held.ip}/32`);
    if (!inResult) throw new CniError(CniCode.checkFailed, `prevResult.ips does not hold the reserved ${held.ip}/32`);
    await checkPodLink({
      containerId: e.containerId,
      netns: e.netns,
      ifname: e.ifname,
      ip: held.ip,
      gateway: held.gateway,
      mtu: conf.mtu,
    });
  }
  if (conf.agentSocket) {
    const q = `containerId=${encodeURIComponent(e.containerId)}&ifname=${encodeURIComponent(e.ifname)}`;
    try {
      await new AgentClient(conf.agentSocket).get(`/v1/endpoint?${q}`);
    } catch (err) {
      throw new CniError(CniCode.checkFailed, `endpoint is not registered with the agent: ${(err as Error).message}`);
    }
  }
}

/** How long STATUS waits for the agent's /v1/healthz. */
const STATUS_TIMEOUT_MS = 2000;

/**
 * STATUS (spec 1.1): ready when the next ADD can succeed, that is the agent answers (when one is
 * configured) and the pod CIDR has a free address. Otherwise code 50, "the plugin is not
 * available": existing pods keep their connectivity (the datapath runs without the agent), so
 * never 51.
 */
async function cmdStatus(conf: MembraneNetConf): Promise<void> {
  if (conf.agentSocket) {
    try {
      await new AgentClient(conf.agentSocket, STATUS_TIMEOUT_MS).get('/v1/healthz');
    } catch (err) {
      throw new CniError(CniCode.pluginNotAvailable, `agent is not ready: ${(err as Error).message}`);
    }
  }
  const { capacity, reserved } = new FileIpam(conf.ipamDataDir, conf.podCIDR).usage();
  if (reserved >= capacity)
    throw new CniError(
      CniCode.pluginNotAvailable,
      `no free address in ${conf.podCIDR} (${reserved} of ${capacity} reserved)`,
    );
}

/**
 * GC (spec 1.1): releases what belongs to attachments missing from cni.dev/valid-attachments:
 * the address reservation with its host interface and route, and the agent's endpoint. The
 * gateway address and forwarding are shared by the node's pods and stay. It goes on past a
 * failure and reports every one at the end. The agent's endpoints are all taken to be this
 * network's: a node runs one membrane network.
 */
async function cmdGc(conf: MembraneNetConf): Promise<void> {
  if (!conf.validAttachments)
    throw new CniError(
      CniCode.invalidNetworkConfig,
      'cni.dev/valid-attachments: expected a list of {containerID, ifname} for GC, got nothing',
    );
  const valid = new Set(conf.validAttachments.map((a) => `${a.containerID}\n${a.ifname}`));
  const isValid = (containerId: string, ifname: string) => valid.has(`${containerId}\n${ifname}`);
  const failures: CniError[] = [];
  const attempt = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (err) {
      const code = err instanceof CniError ? err.code : CniCode.ioFailure;
      failures.push(new CniError(code, `${what}: ${(err as Error).message}`));
    }
  };
  const ipam = new FileIpam(conf.ipamDataDir, conf.podCIDR);
  for (const r of ipam.reservations()) {
    if (isValid(r.containerId, r.ifname)) continue;
    await attempt(`release ${r.ip} of ${r.containerId}/${r.ifname}`, async () => {
      await deletePodLink(r.containerId, r.ifname, r.ip);
      ipam.release(r.containerId, r.ifname);
    });
  }
  if (conf.agentSocket) {
    const agent = new AgentClient(conf.agentSocket);
    await attempt("list the agent's endpoints", async () => {
      const endpoints = await agent.get<Endpoint[]>('/v1/endpoint').catch(agentError);
      for (const ep of endpoints) {
        if (isValid(ep.containerId, ep.ifname)) continue;
        const q = `containerId=${encodeURIComponent(ep.containerId)}&ifname=${encodeURIComponent(ep.ifname)}`;
        await attempt(`delete endpoint ${ep.id} of ${ep.containerId}/${ep.ifname}`, () =>
          agent.delete(`/v1/endpoint?${q}`).catch((err: AgentApiError) => {
            if (err.status !== 404) agentError(err);
          }),
        );
      }
    });
  }
  if (failures.length > 0)
    throw new CniError(
      failures[0].code,
      failures.length === 1
        ? failures[0].message
        : `${failures.length} failures: ${failures.map((f) => f.message).join('; ')}`,
    );
}

function agentError(err: AgentApiError): never {
  const code = err.code === 'MBR_AGENT_UNREACHABLE' ? CniCode.tryAgainLater : CniCode.agentRejected;
  throw new CniError(code, err.message);
}

interface ChainedLink {
  readonly ipv4: string;
  readonly hostIfname: string;
  readonly hostIfindex: number;
  readonly hostMac: string;
  readonly podMac: string;
}

/** In chained mode the previous result already holds this container's interface and address. */
function chainedInterface(e: CniEnv, prev: CniResult | undefined): ChainedLink | undefined {
  if (!prev?.interfaces) return undefined;
  const idx = prev.interfaces.findIndex((i) => i.name === e.ifname && i.sandbox !== undefined && i.sandbox !== '');
  if (idx < 0) return undefined;
  const ip = (prev.ips ?? []).find((i) => i.interface === idx && /^\d+\.\d+\.\d+\.\d+\//.test(i.address));
  if (!ip) throw new CniError(CniCode.invalidNetworkConfig, `prevResult.ips: no IPv4 address for interface ${idx}`);
  const host = prev.interfaces.find((i) => !i.sandbox);
  return {
    ipv4: ip.address.split('/')[0],
    hostIfname: host?.name ?? '',
    hostIfindex: 0,
    hostMac: host?.mac ?? '',
    podMac: prev.interfaces[idx].mac ?? '',
  };
}

async function register(conf: MembraneNetConf, e: CniEnv, link: ChainedLink): Promise<void> {
  if (!conf.agentSocket) return;
  const reg: EndpointRegistration = {
    containerId: e.containerId,
    ifname: e.ifname,
    netns: e.netns,
    hostIfname: link.hostIfname,
    hostIfindex: link.hostIfindex,
    hostMac: link.hostMac,
    podMac: link.podMac,
    ipv4: link.ipv4,
    podName: e.args.K8S_POD_NAME ?? e.containerId.slice(0, 12),
    namespace: e.args.K8S_POD_NAMESPACE ?? 'default',
    labels: conf.labels,
    ports: conf.ports,
  };
  try {
    await new AgentClient(conf.agentSocket).post('/v1/endpoint', reg);
  } catch (err) {
    const code =
      (err as AgentApiError).code === 'MBR_AGENT_UNREACHABLE' ? CniCode.tryAgainLater : CniCode.agentRejected;
    throw new CniError(code, `register endpoint with the agent: ${(err as Error).message}`);
  }
}

function ok(result: unknown): CniOutcome {
  return { stdout: `${JSON.stringify(result)}\n`, exitCode: 0 };
}
