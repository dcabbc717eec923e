// The agent's pipeline with the embedded store and a datapath that records its writes:
// store events → engine diffs → exactly those map writes; restarts that write nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import type { EndpointRegistration } from '../../src/agent/api-types.js';
import { mapStateKey } from '../../src/policy/map-state.js';
import { endpointKey, identityValuePrefix, namespaceKey, nodeKey } from '../../src/store/cluster-resources.js';
import { EmbeddedStore } from '../../src/store/embedded-store.js';
import { MemoryDatapath } from '../support/memory-datapath.js';
import { until } from '../support/until.js';

interface Cluster {
  readonly dir: string;
  node(name: string, nodeIp: string, dp?: MemoryDatapath): Promise<{ agent: Agent; dp: MemoryDatapath }>;
}

function cluster(t: TestContext): Cluster {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-agent-'));
  const running: Agent[] = [];
  const stores: EmbeddedStore[] = [];
  t.after(async () => {
    for (const a of running) await a.stop();
    for (const s of stores) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    async node(name, nodeIp, dp = new MemoryDatapath()) {
      const store = EmbeddedStore.open(join(dir, 'cluster'));
      stores.push(store);
      const index = Number(name.replace(/\D/g, ''));
      const agent = new Agent({
        lab: 'test',
        node: name,
        stateDir: join(dir, name),
        podCIDR: `10.201.${index}.0/24`,
        nodeIp,
        store,
        datapath: dp,
      });
      await agent.start();
      running.push(agent);
      return { agent, dp };
    },
  };
}

function reg(name: string, ip: string, labels: Record<string, string>, extra: Partial<EndpointRegistration> = {}) {
  return {
    containerId: `c-${name}`,
    ifname: 'eth0',
    netns: '',
    hostIfname: `mbr-${name}`,
    hostIfindex: 0,
    hostMac: '',
    podMac: '',
    ipv4: ip,
    podName: name,
    namespace: 'shop',
    labels,
    ...extra,
  } satisfies EndpointRegistration;
}

/** The map key of an ingress TCP allow on one port, as the engine and the reconcilers key it. */
function tcpIn(identity: number, port: number): string {
  return mapStateKey({ identity, direction: 'ingress', protocol: 6, port, portPrefixLen: 16 });
}

const WEB_SERVICE = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: {
    type: 'NodePort',
    clusterIP: '10.96.0.50',
    externalTrafficPolicy: 'Local',
    selector: { app: 'web' },
    ports: [{ port: 80, targetPort: 'http', nodePort: 30080 }],
  },
};

const ALLOW_WEB_FROM_CLIENT = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'web-from-client', namespace: 'shop' },
  spec: {
    endpointSelector: { matchLabels: { app: 'web' } },
    ingress: [
      { fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] },
    ],
  },
};

function withPort(port: string): typeof ALLOW_WEB_FROM_CLIENT {
  const p = structuredClone(ALLOW_WEB_FROM_CLIENT);
  p.spec.ingress[0].toPorts[0].ports.push({ port, protocol: 'TCP' });
  return p;
}

describe('Agent', () => {
  it('load-balances a stored Service to its pods on every node, and a restart writes no LB entry', async (t) => {
    const c = cluster(t);
    const n1 = await c.node('n1', '172.30.0.11');
    const n2 = await c.node('n2', '172.30.0.12');
    await n1.agent.registerEndpoint(
      reg('web-a', '10.201.1.10', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080, protocol: 6 }] }),
    );
    await n2.agent.registerEndpoint(
      reg('web-b', '10.201.2.10', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080, protocol: 6 }] }),
    );
    const { revision } = await n1.agent.applyServices([WEB_SERVICE], 'web-service.yaml');
    // With a deadline: the store's watch does not hold the event loop open by itself.
    assert.ok(await n2.agent.waitRealizedFor(revision, 5000));
    for (const { agent, dp } of [n1, n2]) {
      const [clusterIp, nodePort] = agent.serviceList();
      assert.deepEqual(clusterIp.backends.map((b) => `${b.address}:${b.port}`).sort(), [
        '10.201.1.10:8080',
        '10.201.2.10:8080',
      ]);
      assert.equal(nodePort.type, 'NodePort');
      assert.equal(nodePort.frontend.address, agent.opts.nodeIp);
      assert.equal(nodePort.backends.length, 1, 'externalTrafficPolicy Local: this node only');
      assert.equal(dp.lbBackends.size, 2);
      assert.equal(dp.lbServices.size, 2 + 1 + 1 + 1, 'two slots and a master, one slot and a master');
    }
    assert.deepEqual(n1.agent.serviceOfAddress('10.201.2.10', 8080), { namespace: 'shop', name: 'web' });
    // Restart n1 on the same maps: the same IDs, nothing written.
    await n1.agent.stop();
    const writes = n1.dp.lbWrites.length;
    const again = await c.node('n1', '172.30.0.11', n1.dp);
    assert.ok(await again.agent.waitRealizedFor(revision, 5000));
    assert.deepEqual(n1.dp.lbWrites.slice(writes), []);
    await assert.rejects(
      again.agent.applyServices([{ ...WEB_SERVICE, spec: { ...WEB_SERVICE.spec, type: 'Balanced' } }], 'bad.yaml'),
      {
        code: 'MBR_SERVICE_INVALID',
        message: 'bad.yaml: document 1: spec.type: expected ClusterIP or NodePort, got "Balanced"',
      },
    );
  });

  it('gives pods with the same labels one identity across nodes sharing the cluster store', async (t) => {
    const c = cluster(t);
    const n1 = await c.node('n1', '172.30.0.11');
    const n2 = await c.node('n2', '172.30.0.12');
    const a = await n1.agent.registerEndpoint(reg('web-a', '10.201.1.10', { app: 'web' }));
    const b = await n2.agent.registerEndpoint(reg('web-b', '10.201.2.10', { app: 'web' }));
    const other = await n2.agent.registerEndpoint(reg('db', '10.201.2.11', { app: 'db' }));
    assert.equal(a.identity, b.identity);
    assert.notEqual(a.identity, other.identity);
    assert.ok(a.identity >= 256);
    assert.ok(a.identityLabels.includes('k8s:app=web'));
    // Each node learns the other's pods through the watch: its ipcache maps them.
    await until(() => n1.dp.ipcache.get('10.201.2.11/32') === other.identity, { what: 'n1 ipcache' });
    assert.equal(n1.dp.ipcache.get('172.30.0.12/32'), 6, 'the other node is remote-node');
    assert.equal(n1.dp.ipcache.get('172.30.0.11/32'), 1, 'this node is host');
    assert.equal(n2.dp.ipcache.get('10.201.1.10/32'), a.identity);
  });

  it('registers idempotently and refuses a second endpoint with the same address', async (t) => {
    const { agent } = await cluster(t).node('n1', '172.30.0.11');
    const a = await agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' }));
    assert.deepEqual(await agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' })), a);
    await assert.rejects(agent.registerEndpoint(reg('other', '10.201.1.10', { app: 'x' })), {
      code: 'MBR_ENDPOINT_CONFLICT',
    });
  });

  it("writes a policy change as exactly the engine's diff, never the whole map again", async (t) => {
    const { agent, dp } = await cluster(t).node('n1', '172.30.0.11');
    const web = await agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' }));
    const client = await agent.registerEndpoint(reg('client', '10.201.1.11', { app: 'client' }));
    await agent.applyPolicies([ALLOW_WEB_FROM_CLIENT], 'web.yaml');
    const before = dp.entries(web.id);
    assert.ok(before.includes(tcpIn(client.identity, 80)), before.join(' '));
    dp.policyWrites = [];
    await agent.applyPolicies([withPort('443')], 'web.yaml');
    // One endpoint changed, by one entry: the map was not rewritten.
    assert.deepEqual(
      dp.policyWrites.map((w) => [w.endpointId, w.adds.map((kv) => mapStateKey(kv[0])), w.deletes.length]),
      [[web.id, [tcpIn(client.identity, 443)], 0]],
    );
    assert.deepEqual(dp.entries(web.id), [...before, tcpIn(client.identity, 443)].sort());
    // And the same entries as the engine's own map state: the datapath holds desired state.
    assert.deepEqual(
      dp.entries(web.id),
      [...agent.engine.endpointMapState(web.id).values()].map((kv) => mapStateKey(kv[0])).sort(),
    );
    const st = await agent.status();
    assert.equal(st.realizedPolicyRevision, st.policyRevision);
    // `policy wait`: at once for a realized revision, false at the deadline for a future one.
    assert.equal(await agent.waitRealizedFor(st.policyRevision, 1000), true);
    assert.equal(await agent.waitRealizedFor(st.policyRevision + 1, 20), false);
  });

  it('writes a file whose policies change one endpoint several times as one change holding them all', async (t) => {
    const { agent, dp } = await cluster(t).node('n1', '172.30.0.11');
    const web = await agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' }));
    const client = await agent.registerEndpoint(reg('client', '10.201.1.11', { app: 'client' }));
    const second = { ...withPort('443'), metadata: { name: 'web-443', namespace: 'shop' } };
    const third = { ...withPort('8443'), metadata: { name: 'web-8443', namespace: 'shop' } };
    dp.policyWrites = [];
    await agent.applyPolicies([ALLOW_WEB_FROM_CLIENT, second, third], 'three.yaml');
    assert.deepEqual(
      dp.policyWrites.map((w) => w.endpointId),
      [web.id],
      'one write for the endpoint, not one per policy',
    );
    for (const port of [80, 443, 8443])
      assert.ok(dp.entries(web.id).includes(tcpIn(client.identity, port)), `port ${port}`);
    assert.deepEqual(
      dp.entries(web.id),
      [...agent.engine.endpointMapState(web.id).values()].map((kv) => mapStateKey(kv[0])).sort(),
    );
  });

  it('rejects a file with one bad document whole, leaving the running policy as it was', async (t) => {
    const { agent, dp } = await cluster(t).node('n1', '172.30.0.11');
    const web = await agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' }));
    await agent.applyPolicies([ALLOW_WEB_FROM_CLIENT], 'web.yaml');
    const before = dp.entries(web.id);
    const bad = withPort('99999');
    await assert.rejects(
      agent.applyPolicies([withPort('443'), { ...bad, metadata: { name: 'b', namespace: 'shop' } }], 'bad.yaml'),
      {
        code: 'MBR_POLICY_INVALID',
      },
    );
    assert.deepEqual(dp.entries(web.id), before);
    assert.deepEqual(
      (await agent.policies()).policies.map((p) => p.name),
      ['web-from-client'],
    );
  });

  it('brings a policy another node wrote to this node by the watch alone', async (t) => {
    const c = cluster(t);
    const n1 = await c.node('n1', '172.30.0.11');
    const n2 = await c.node('n2', '172.30.0.12');
    const web = await n1.agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' }));
    const client = await n2.agent.registerEndpoint(reg('client', '10.201.2.10', { app: 'client' }));
    await n2.agent.applyPolicies([ALLOW_WEB_FROM_CLIENT], 'web.yaml');
    await until(() => n1.dp.entries(web.id).includes(tcpIn(client.identity, 80)), {
      what: "n1's web map to allow the remote client",
    });
    // The remote client is no endpoint here: no map of its own.
    assert.equal(n1.dp.maps.size, 1);
  });

  it('resolves a named port from the pod that declares it', async (t) => {
    const { agent, dp } = await cluster(t).node('n1', '172.30.0.11');
    const web = await agent.registerEndpoint(
      reg('web', '10.201.1.10', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080, protocol: 6 }] }),
    );
    const client = await agent.registerEndpoint(reg('client', '10.201.1.11', { app: 'client' }));
    const named = structuredClone(ALLOW_WEB_FROM_CLIENT);
    named.spec.ingress[0].toPorts[0].ports = [{ port: 'http', protocol: 'TCP' }];
    await agent.applyPolicies([named], 'named.yaml');
    assert.ok(dp.entries(web.id).includes(tcpIn(client.identity, 8080)), dp.entries(web.id).join(' '));
  });

  it('writes nothing on a restart when nothing changed, and only the difference when something did', async (t) => {
    const c = cluster(t);
    const first = await c.node('n1', '172.30.0.11');
    const web = await first.agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' }));
    await first.agent.registerEndpoint(reg('client', '10.201.1.11', { app: 'client' }));
    await first.agent.applyPolicies([ALLOW_WEB_FROM_CLIENT], 'web.yaml');
    await first.agent.stop();
    const dp = first.dp;
    const maps = dp.entries(web.id);
    dp.policyWrites = [];
    dp.ipcacheWrites = [];
    const again = await c.node('n1', '172.30.0.11', dp);
    assert.deepEqual(dp.policyWrites, []);
    assert.deepEqual(dp.ipcacheWrites, []);
    assert.deepEqual(dp.entries(web.id), maps);
    assert.deepEqual(
      again.agent.endpoints().map((e) => e.podName),
      ['web', 'client'],
    );
    // While it was down, a policy changed in the store: the restart writes just that.
    await again.agent.stop();
    const store = EmbeddedStore.open(join(c.dir, 'cluster'), { leaseSweepMs: 0 });
    t.after(() => store.close());
    await store.put(namespaceKey('shop'), JSON.stringify({ name: 'shop', labels: {} }));
    const third = await c.node('n1', '172.30.0.11', dp);
    await third.agent.applyPolicies([withPort('443')], 'web.yaml');
    dp.policyWrites = [];
    await third.agent.stop();
    const fourth = await c.node('n1', '172.30.0.11', dp);
    assert.deepEqual(dp.policyWrites, []);
    assert.ok((await fourth.agent.status()).subsystems.every((s) => s.state === 'Ok'));
  });

  it('registers again with a fresh lease when its lease is gone, its endpoints and holds with it, counted once', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mbr-agent-lease-'));
    const store = EmbeddedStore.open(join(dir, 'cluster'));
    const other = EmbeddedStore.open(join(dir, 'cluster'));
    const agent = new Agent({
      lab: 'test',
      node: 'n1',
      stateDir: join(dir, 'n1'),
      podCIDR: '10.201.1.0/24',
      nodeIp: '172.30.0.11',
      store,
      datapath: new MemoryDatapath(),
      nodeLeaseTtlSeconds: 3,
    });
    t.after(async () => {
      await agent.stop();
      await store.close();
      await other.close();
      rmSync(dir, { recursive: true, force: true });
    });
    await agent.start();
    const ep = await agent.registerEndpoint(reg('web', '10.201.1.5', { app: 'web' }));
    const lease = (await other.get(nodeKey('n1')))!.lease;
    const slaves = async () => (await other.list(identityValuePrefix(ep.identityLabels))).items.map((kv) => kv.lease);
    assert.deepEqual(await slaves(), [lease]);
    await other.revokeLease(lease);
    assert.equal(await other.get(endpointKey('n1', ep.id)), undefined, 'the endpoint went with the lease');
    await until(
      async () => {
        const n = await other.get(nodeKey('n1'));
        const e = await other.get(endpointKey('n1', ep.id));
        const held = await slaves();
        return n && n.lease !== lease && e?.lease === n.lease && held.length === 1 && held[0] === n.lease;
      },
      { timeoutMs: 5000, intervalMs: 50, what: 'node, endpoint and hold written again on a fresh lease' },
    );
    await agent.deleteEndpoint(ep.containerId, ep.ifname);
    assert.deepEqual(await slaves(), [], 'the hold was counted once: the last endpoint drops it');
  });

  it('shows a failed map write in status and heals it by diff', async (t) => {
    const { agent, dp } = await cluster(t).node('n1', '172.30.0.11');
    const web = await agent.registerEndpoint(reg('web', '10.201.1.10', { app: 'web' }));
    const client = await agent.registerEndpoint(reg('client', '10.201.1.11', { app: 'client' }));
    dp.failNext = 1;
    await assert.rejects(agent.applyPolicies([ALLOW_WEB_FROM_CLIENT], 'web.yaml'), {
      code: 'MBR_NOT_REALIZED',
      message: /stored at revision \d+, but node n1's datapath did not take it yet \(retrying\): map update: ENOSPC/,
    });
    const failed = await agent.status();
    const rec = failed.subsystems.find((s) => s.name === 'reconciler')!;
    assert.equal(rec.state, 'Degraded');
    assert.match(rec.message, /map update: ENOSPC/);
    assert.equal(failed.reconciler.failures, 1);
    await until(() => dp.entries(web.id).includes(tcpIn(client.identity, 80)), {
      what: 'the retry to write the policy',
      timeoutMs: 5000,
    });
    await until(async () => (await agent.status()).subsystems.find((s) => s.name === 'reconciler')?.state === 'Ok', {
      what: 'the reconciler to report Ok',
    });
  });
});
