import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import type { Endpoint, EndpointRegistration, SubsystemHealth } from '../../src/agent/api-types.js';
import type {
  DatapathPort,
  EndpointPolicy,
  IpcacheEntry,
  PolicyInput,
  PolicyPort,
} from '../../src/agent/subsystem-ports.js';
import { StructuralPolicyPort } from '../../src/agent/unavailable-ports.js';
import type { MapStateDiff, PolicyEntry, PolicyKey } from '../../src/policy/map-state-types.js';
import { ClusterStore } from '../../src/store/cluster-store.js';

/** A datapath that keeps its maps in memory across agent restarts, like pinned maps do. */
class MemoryDatapath implements DatapathPort {
  readonly maps = new Map<number, Map<string, readonly [PolicyKey, PolicyEntry]>>();
  ipcache: IpcacheEntry[] = [];
  writes: MapStateDiff[] = [];
  attached = new Set<number>();
  health(): SubsystemHealth {
    return { name: 'datapath', state: 'Ok', message: 'memory' };
  }
  async attachEndpoint(ep: Endpoint): Promise<void> {
    this.attached.add(ep.id);
  }
  async detachEndpoint(ep: Endpoint): Promise<void> {
    this.attached.delete(ep.id);
    this.maps.delete(ep.id);
  }
  async syncIpcache(entries: readonly IpcacheEntry[]): Promise<void> {
    this.ipcache = [...entries];
  }
  async applyPolicy(diff: MapStateDiff): Promise<void> {
    this.writes.push(diff);
    const m = this.maps.get(diff.endpointId) ?? new Map();
    for (const k of diff.deletes) m.delete(JSON.stringify(k));
    for (const kv of diff.adds) m.set(JSON.stringify(kv[0]), kv);
    this.maps.set(diff.endpointId, m);
  }
  async dumpPolicy(id: number): Promise<unknown[]> {
    return [...(this.maps.get(id)?.values() ?? [])];
  }
  async dumpIpcache(): Promise<unknown[]> {
    return this.ipcache;
  }
  async dumpCt(): Promise<unknown[]> {
    return [];
  }
  onEvent(): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {}
}

/** A policy port that allows TCP/8080 from each identity listed in the policy names "allow-<id>". */
class TablePolicy extends StructuralPolicyPort implements PolicyPort {
  constructor() {
    super('test');
  }
  override health(): SubsystemHealth {
    return { name: 'policy', state: 'Ok', message: 'table' };
  }
  override compute(input: PolicyInput): readonly EndpointPolicy[] {
    const ids = input.policies.map((p) => Number(p.name.replace('allow-', '')));
    return input.endpoints.map((e) => ({
      endpointId: e.id,
      ingressEnforced: ids.length > 0,
      egressEnforced: false,
      entries: ids.map(
        (id) =>
          [
            { identity: id, direction: 'ingress', protocol: 6, port: 8080, portPrefixLen: 16 },
            { isDeny: false, proxyPort: 0, authType: 0, derivedFrom: [] },
          ] as const,
      ),
    }));
  }
}

function fixture(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-agent-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cluster = new ClusterStore(join(dir, 'cluster'));
  const datapath = new MemoryDatapath();
  const make = (node: string) =>
    new Agent({
      lab: 'unit',
      node,
      stateDir: join(dir, node),
      podCIDR: '10.201.1.0/24',
      nodeIp: '172.30.0.11',
      cluster,
      policy: new TablePolicy(),
      datapath,
    });
  return { dir, cluster, datapath, make };
}

function reg(n: number, labels: Record<string, string>, namespace = 'shop'): EndpointRegistration {
  return {
    containerId: `c${n}`,
    ifname: 'eth0',
    netns: '',
    hostIfname: `mbr-${n}`,
    hostIfindex: n,
    hostMac: '',
    podMac: '',
    ipv4: `10.201.1.${n + 1}`,
    podName: `pod${n}`,
    namespace,
    labels,
  };
}

const POLICY = (name: string) => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name, namespace: 'shop' },
  spec: { endpointSelector: {} },
});

describe('Agent', () => {
  it('gives endpoints with the same labels one identity, across nodes sharing the cluster store', async (t) => {
    const { make } = fixture(t);
    const a = make('n1');
    const b = make('n2');
    const e1 = await a.registerEndpoint(reg(1, { app: 'web' }));
    const e2 = await b.registerEndpoint(reg(2, { app: 'web' }));
    const e3 = await a.registerEndpoint(reg(3, { app: 'db' }));
    assert.equal(e1.identity, 256);
    assert.equal(e2.identity, e1.identity);
    assert.equal(e3.identity, 257);
    assert.deepEqual(e1.identityLabels, [
      'k8s:app=web',
      'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop',
      'k8s:io.cilium.k8s.policy.cluster=default',
      'k8s:io.kubernetes.pod.namespace=shop',
    ]);
    await a.stop();
    await b.stop();
  });

  it('registers idempotently and refuses a second endpoint with the same address', async (t) => {
    const { make } = fixture(t);
    const a = make('n1');
    const e1 = await a.registerEndpoint(reg(1, { app: 'web' }));
    assert.deepEqual(await a.registerEndpoint(reg(1, { app: 'web' })), e1);
    await assert.rejects(a.registerEndpoint({ ...reg(2, {}), ipv4: e1.ipv4 }), {
      code: 'MBR_ENDPOINT_CONFLICT',
      message: 'address 10.201.1.2 already belongs to another endpoint',
    });
  });

  it('writes policy changes to the datapath as diffs, never as flush-and-refill', async (t) => {
    const { make, datapath } = fixture(t);
    const a = make('n1');
    const e = await a.registerEndpoint(reg(1, { app: 'web' }));
    await a.applyPolicies([POLICY('allow-300')], 'p1.yaml');
    await a.applyPolicies([POLICY('allow-301')], 'p2.yaml');
    await a.deletePolicies([POLICY('allow-300')], 'p1.yaml');
    const shape = datapath.writes.map((w) => ({
      adds: w.adds.map(([k]) => k.identity),
      deletes: w.deletes.map((k) => k.identity),
    }));
    assert.deepEqual(shape, [
      { adds: [300], deletes: [] },
      { adds: [301], deletes: [] },
      { adds: [], deletes: [300] },
    ]);
    const now = a.endpoint(e.id)!;
    assert.equal(now.policyEnabledIngress, true);
    assert.equal(now.policyRevision, 4);
  });

  it('rejects a file with one bad document whole, leaving the running policy as it was', async (t) => {
    const { make } = fixture(t);
    const a = make('n1');
    await a.applyPolicies([POLICY('allow-300')], 'good.yaml');
    const before = a.policies();
    assert.throws(
      () => a.opts.policy.validate([POLICY('allow-301'), { ...POLICY('x'), metadata: { name: 'Bad' } }], 'bad.yaml'),
      { code: 'MBR_POLICY_INVALID', message: 'bad.yaml: [1].metadata.name: expected a DNS-1123 name, got "Bad"' },
    );
    await assert.rejects(
      a.applyPolicies([POLICY('allow-301'), { ...POLICY('x'), metadata: { name: 'Bad' } }], 'bad.yaml'),
      {
        code: 'MBR_POLICY_INVALID',
      },
    );
    assert.deepEqual(a.policies(), before);
  });

  it('comes back after a restart with the same endpoints and rewrites nothing the datapath already holds', async (t) => {
    const { make, datapath } = fixture(t);
    const a = make('n1');
    const e = await a.registerEndpoint(reg(1, { app: 'web' }));
    await a.applyPolicies([POLICY('allow-300')], 'p.yaml');
    await a.stop();
    const writes = datapath.writes.length;
    const restarted = make('n1');
    await restarted.start();
    assert.deepEqual(restarted.endpoints(), a.endpoints());
    assert.equal(restarted.endpoint(e.id)?.identity, e.identity);
    assert.equal(datapath.writes.length, writes, 'no map writes on a restart with nothing changed');
    assert.deepEqual(
      datapath.ipcache.filter((x) => x.identity >= 256),
      [{ prefix: '10.201.1.2/32', identity: 256 }],
    );
    await restarted.stop();
  });
});
