// The agent's local API: HTTP/1.1 + JSON on a unix socket (mode 0600: root only), for the CLI and
// the CNI plugin. Errors come back as {code, message} with a fitting HTTP status.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { DatapathError } from '../datapath/datapath-error.js';
import { ServiceError } from '../lb/service.js';
import { FQDN_MAX_LENGTH, FQDN_PATTERN_SHAPE } from '../policy/fqdn-pattern.js';
import { PolicyEngineError } from '../policy/policy-engine.js';
import { PolicyError } from '../policy/policy-error.js';
import { tracePolicy } from '../policy/policy-trace.js';
import { StoreError } from '../store/cluster-store.js';
import { type Agent, AgentError } from './agent.js';
import type { ApiErrorBody, EndpointRegistration } from './api-types.js';

export async function serveAgentApi(agent: Agent, socketPath: string): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true });
  const server = createServer((req, res) => {
    handle(agent, req, res).catch((err: Error) => send(res, ...errorReply(err)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

async function handle(agent: Agent, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const q = (k: string) => url.searchParams.get(k) ?? '';

  if (method === 'GET' && path === '/v1/healthz') return send(res, 200, { ok: true });
  if (method === 'GET' && path === '/v1/status') return send(res, 200, await agent.status());
  // Like `cilium policy wait`: answers once this node's maps hold every store change up to the revision.
  if (method === 'GET' && path === '/v1/policy/wait') {
    const revision = Number(q('revision'));
    const timeoutMs = Math.min(Number(q('timeoutMs') || 10_000), 60_000);
    if (!Number.isInteger(revision) || revision < 0 || !Number.isFinite(timeoutMs))
      throw new AgentError('MBR_BAD_REQUEST', 'revision: expected a non-negative integer', 400);
    const realized = await agent.waitRealizedFor(revision, timeoutMs);
    if (!realized)
      throw new AgentError(
        'MBR_NOT_REALIZED',
        `node ${agent.opts.node} has not realized revision ${revision} within ${timeoutMs} ms`,
        504,
      );
    return send(res, 200, { revision, realized });
  }

  if (path === '/v1/endpoint') {
    if (method === 'GET') {
      if (q('containerId')) {
        const ep = agent.endpointFor(q('containerId'), q('ifname') || 'eth0');
        if (!ep) throw notFound(`no endpoint for container ${q('containerId')}/${q('ifname') || 'eth0'}`);
        return send(res, 200, ep);
      }
      return send(res, 200, agent.endpoints());
    }
    if (method === 'POST')
      return send(res, 201, await agent.registerEndpoint((await body(req)) as EndpointRegistration));
    if (method === 'DELETE') return send(res, 200, await agent.deleteEndpoint(q('containerId'), q('ifname') || 'eth0'));
  }
  const epMatch = /^\/v1\/endpoint\/(\d+)$/.exec(path);
  if (method === 'GET' && epMatch) {
    const ep = agent.endpoint(Number(epMatch[1]));
    if (!ep) throw notFound(`endpoint ${epMatch[1]} not found`);
    return send(res, 200, ep);
  }

  if (method === 'GET' && path === '/v1/node') return send(res, 200, await agent.nodes());
  if (method === 'GET' && path === '/v1/identity') return send(res, 200, agent.identityList());
  const idMatch = /^\/v1\/identity\/(\d+)$/.exec(path);
  if (method === 'GET' && idMatch) {
    const rec = agent.identityList().find((i) => i.id === Number(idMatch[1]));
    if (!rec) throw notFound(`identity ${idMatch[1]} not found`);
    return send(res, 200, rec);
  }

  if (method === 'GET' && path === '/v1/policy/trace') {
    const answer = tracePolicy(agent.engine, {
      src: q('src'),
      dst: q('dst'),
      dport: q('dport'),
      protocol: q('protocol') || 'TCP',
    });
    return send(res, 200, answer);
  }
  if (path === '/v1/policy') {
    if (method === 'GET') return send(res, 200, await agent.policies());
    const b = (await body(req)) as { docs: Record<string, unknown>[]; source: string };
    if (method === 'PUT') return send(res, 200, await agent.applyPolicies(b.docs, b.source));
    if (method === 'DELETE') return send(res, 200, await agent.deletePolicies(b.docs, b.source));
  }

  if (path === '/v1/fqdn/cache' || path === '/v1/fqdn/names') {
    const fqdn = agent.opts.fqdn;
    if (!fqdn) throw new AgentError('MBR_FQDN_DISABLED', `node ${agent.opts.node} runs no FQDN cache`, 503);
    if (method === 'GET' && path === '/v1/fqdn/names') return send(res, 200, fqdn.names());
    const filter = fqdnFilter(q('endpoint'), q('matchpattern'));
    if (method === 'GET') return send(res, 200, fqdn.list(filter));
    if (method === 'DELETE') return send(res, 200, { cleaned: await fqdn.clean(filter) });
  }
  // Services (load balancing): `membrane service list/get`, `bpf lb list`, `bpf lb maglev list`.
  if (path === '/v1/service') {
    if (method === 'GET') return send(res, 200, agent.serviceList());
    const b = (await body(req)) as { docs: Record<string, unknown>[]; source: string };
    if (method === 'PUT') return send(res, 200, await agent.applyServices(b.docs, b.source));
    if (method === 'DELETE') return send(res, 200, await agent.deleteServices(b.docs, b.source));
  }
  if (method === 'GET' && path === '/v1/bpf/lb') return send(res, 200, await agent.opts.datapath.dumpLb());
  const maglev = /^\/v1\/bpf\/lb\/maglev\/(\d+)$/.exec(path);
  if (method === 'GET' && maglev) {
    const table = await agent.opts.datapath.lbMaglevTable(Number(maglev[1]));
    if (!table) throw notFound(`service ${maglev[1]} has no Maglev table`);
    return send(res, 200, { id: Number(maglev[1]), size: table.length, table });
  }

  const bpfPolicy = /^\/v1\/bpf\/policy\/(\d+)$/.exec(path);
  if (method === 'GET' && bpfPolicy) return send(res, 200, await agent.opts.datapath.dumpPolicy(Number(bpfPolicy[1])));
  if (method === 'GET' && path === '/v1/bpf/ipcache') return send(res, 200, await agent.opts.datapath.dumpIpcache());
  if (method === 'GET' && path === '/v1/bpf/ct') return send(res, 200, await agent.opts.datapath.dumpCt());

  if (method === 'GET' && path === '/v1/monitor') {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write(`${JSON.stringify({ type: 'start', node: agent.opts.node })}\n`);
    const off = agent.opts.datapath.onEvent((ev) => res.write(`${JSON.stringify(ev)}\n`));
    // The node proxy's access records, with the labels of both identities (`cilium monitor -t l7`).
    const offL7 = agent.onL7((record) =>
      res.write(
        `${JSON.stringify({ type: 'l7', record, srcLabels: agent.identityLabels(record.srcIdentity), dstLabels: agent.identityLabels(record.dstIdentity) })}\n`,
      ),
    );
    req.on('close', () => {
      off();
      offL7();
    });
    return;
  }
  throw notFound(`no route ${method} ${path}`);
}

/** `?endpoint=ID&matchpattern=PATTERN` of the fqdn cache routes, validated. */
function fqdnFilter(endpoint: string, matchPattern: string): { endpointId?: number; matchPattern?: string } {
  if (endpoint !== '' && !/^\d+$/.test(endpoint))
    throw new AgentError('MBR_BAD_REQUEST', `endpoint: expected an endpoint ID, got "${endpoint}"`, 400);
  if (matchPattern !== '' && (matchPattern.length > FQDN_MAX_LENGTH || !FQDN_PATTERN_SHAPE.test(matchPattern)))
    throw new AgentError('MBR_BAD_REQUEST', `matchpattern: expected a DNS pattern, got "${matchPattern}"`, 400);
  return {
    ...(endpoint !== '' ? { endpointId: Number(endpoint) } : {}),
    ...(matchPattern !== '' ? { matchPattern } : {}),
  };
}

/** The HTTP status and body of an error: typed errors keep their code, anything else is a 500. */
function errorReply(err: Error): [number, ApiErrorBody] {
  if (err instanceof AgentError) return [err.status, { code: err.code, message: err.message }];
  if (err instanceof PolicyError || err instanceof PolicyEngineError || err instanceof ServiceError)
    return [400, { code: err.code, message: err.message }];
  if (err instanceof StoreError || err instanceof DatapathError) return [503, { code: err.code, message: err.message }];
  return [500, { code: 'MBR_AGENT_ERROR', message: err.message }];
}

function notFound(message: string): AgentError {
  return new AgentError('MBR_NOT_FOUND', message, 404);
}

async function body(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const c of req) text += c;
  try {
    return JSON.parse(text);
  } catch {
    throw new AgentError('MBR_BAD_REQUEST', 'request body: expected JSON', 400);
  }
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
