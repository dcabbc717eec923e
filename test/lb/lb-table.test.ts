// The load balancer's desired state: frontends and backends from services and pods, and each
// change as the minimal map writes (scale, relabel, backend death, terminating, service edit).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffLb, type LbDiff, type LbPod, LbTable } from '../../src/lb/lb-table.js';
import { parseServiceObject } from '../../src/lb/service.js';

function world() {
  const pods = new Map<string, LbPod>();
  const table = new LbTable({
    node: 'n1',
    nodeIp: '172.30.0.11',
    pods: (ns) => [...pods.values()].filter((p) => p.namespace === ns),
    maglevTableSize: 251,
  });
  const pod = (name: string, ip: string, node: string, labels = { app: 'web' }, extra: Partial<LbPod> = {}) => {
    pods.set(name, {
      namespace: 'alpha',
      name,
      labels,
      podIPs: [ip],
      ports: [{ name: 'http', containerPort: 8080, protocol: 6 }],
      nodeName: node,
      ...extra,
    });
    table.podChanged('alpha', name);
  };
  const drop = (name: string) => {
    pods.delete(name);
    table.podChanged('alpha', name);
  };
  return { table, pod, drop };
}

const svc = (spec: Record<string, unknown> = {}, annotations: Record<string, string> = {}) =>
  parseServiceObject(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'alpha', annotations },
      spec: { clusterIP: '10.96.0.50', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }], ...spec },
    },
    'test',
  );

const size = (d: LbDiff) =>
  d.backends.upserts.length +
  d.backends.deletes.length +
  d.revNat.upserts.length +
  d.revNat.deletes.length +
  d.services.upserts.length +
  d.services.deletes.length +
  d.maglev.upserts.length +
  d.maglev.deletes.length;

describe('LbTable', () => {
  it('realizes a service as backends, reverse NAT, slots, then the master', () => {
    const w = world();
    w.pod('a', '10.201.1.2', 'n1');
    w.pod('b', '10.201.2.2', 'n2');
    w.table.upsertService(svc());
    const d = w.table.takeDiff();
    assert.equal(d.backends.upserts.length, 2);
    assert.deepEqual(d.revNat.upserts, [[1, { address: '10.96.0.50', port: 80, protocol: 6 }]]);
    assert.deepEqual(
      d.services.upserts.map(([k, v]) => [k.slot, v.backendId, v.count]),
      [
        [1, 1, 0],
        [2, 2, 0],
        [0, 0, 2],
      ],
    );
    assert.equal(size(w.table.takeDiff()), 0, 'nothing changed, nothing written');
  });

  it('scales by writing only the new slot and the master, and a backend death by filling its hole', () => {
    const w = world();
    for (const [n, ip] of [
      ['a', '10.201.1.2'],
      ['b', '10.201.1.3'],
      ['c', '10.201.1.4'],
    ])
      w.pod(n, ip, 'n1');
    w.table.upsertService(svc());
    w.table.takeDiff();
    w.pod('d', '10.201.1.5', 'n1');
    const up = w.table.takeDiff();
    assert.deepEqual(
      up.services.upserts.map(([k, v]) => [k.slot, v.count]),
      [
        [4, 0],
        [0, 4],
      ],
    );
    assert.equal(up.backends.upserts.length, 1);
    w.drop('a'); // slot 1: the last backend (slot 4) moves into it
    const down = w.table.takeDiff();
    assert.deepEqual(
      down.services.upserts.map(([k, v]) => [k.slot, v.backendId, v.count]),
      [
        [1, 4, 0],
        [0, 0, 3],
      ],
    );
    assert.deepEqual(
      down.services.deletes.map((k) => k.slot),
      [4],
    );
    assert.deepEqual(down.backends.deletes, [1]);
  });

  it('keeps a terminating backend (its connections drain) but gives it no slot', () => {
    const w = world();
    w.pod('a', '10.201.1.2', 'n1');
    w.pod('b', '10.201.1.3', 'n1');
    w.table.upsertService(svc());
    w.table.takeDiff();
    w.pod('b', '10.201.1.3', 'n1', { app: 'web' }, { terminating: true });
    const d = w.table.takeDiff();
    assert.deepEqual(d.backends.upserts, [
      [2, { address: '10.201.1.3', port: 8080, protocol: 6, isTerminating: true }],
    ]);
    assert.deepEqual(d.backends.deletes, []);
    assert.deepEqual(
      d.services.deletes.map((k) => k.slot),
      [2],
    );
    const [view] = w.table.frontends();
    assert.deepEqual(
      view.backends.map((b) => b.state),
      ['active', 'terminating'],
    );
  });

  it('drops a relabelled pod and picks up a newly selected one', () => {
    const w = world();
    w.pod('a', '10.201.1.2', 'n1');
    w.pod('x', '10.201.1.9', 'n1', { app: 'other' });
    w.table.upsertService(svc());
    w.table.takeDiff();
    w.pod('a', '10.201.1.2', 'n1', { app: 'other' });
    w.pod('x', '10.201.1.9', 'n1', { app: 'web' });
    w.table.takeDiff();
    assert.deepEqual(
      w.table.frontends()[0].backends.map((b) => b.address),
      ['10.201.1.9'],
    );
  });

  it('limits NodePort with externalTrafficPolicy Local and ClusterIP with internalTrafficPolicy Local to this node', () => {
    const w = world();
    w.pod('a', '10.201.1.2', 'n1');
    w.pod('b', '10.201.2.2', 'n2');
    w.table.upsertService(
      svc({
        type: 'NodePort',
        externalTrafficPolicy: 'Local',
        ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }],
      }),
    );
    w.table.takeDiff();
    const views = new Map(w.table.frontends().map((f) => [f.type, f.backends.map((b) => b.address)]));
    assert.deepEqual(views.get('ClusterIP'), ['10.201.1.2', '10.201.2.2']);
    assert.deepEqual(views.get('NodePort'), ['10.201.1.2']);
    w.table.upsertService(svc({ internalTrafficPolicy: 'Local' }));
    w.table.takeDiff();
    assert.deepEqual(
      w.table.frontends().map((f) => f.backends.map((b) => b.address)),
      [['10.201.1.2']],
    );
  });

  it('skips pods without the named target port; a service edit rewrites only what changed', () => {
    const w = world();
    w.pod('a', '10.201.1.2', 'n1');
    w.pod('b', '10.201.1.3', 'n1', { app: 'web' }, { ports: [] });
    w.table.upsertService(svc());
    w.table.takeDiff();
    assert.equal(w.table.frontends()[0].backends.length, 1);
    w.table.upsertService(svc({ sessionAffinity: 'ClientIP' }));
    const d = w.table.takeDiff();
    assert.deepEqual(
      d.services.upserts.map(([k, v]) => [k.slot, v.flags, v.affinityTimeoutSeconds]),
      [[0, 2, 10800]],
    );
    assert.equal(d.backends.upserts.length + d.revNat.upserts.length, 0);
  });

  it('writes a Maglev table naming only active backends, rewritten when they change', () => {
    const w = world();
    w.pod('a', '10.201.1.2', 'n1');
    w.pod('b', '10.201.1.3', 'n1');
    w.table.upsertService(svc({}, { 'service.cilium.io/lb-algorithm': 'maglev' }));
    const d = w.table.takeDiff();
    assert.equal(d.maglev.upserts.length, 1);
    const [id, table] = d.maglev.upserts[0];
    assert.equal(id, 1);
    assert.equal(table.length, 251);
    assert.deepEqual(new Set(table), new Set([1, 2]));
    w.drop('b');
    assert.deepEqual(new Set(w.table.takeDiff().maglev.upserts[0][1]), new Set([1]));
    w.table.removeService('alpha', 'web');
    const gone = w.table.takeDiff();
    assert.deepEqual(gone.maglev.deletes, [1]);
    assert.deepEqual(gone.revNat.deletes, [1]);
    assert.deepEqual(gone.backends.deletes, [1]);
  });

  it('keeps realized IDs after a restart, so a resync with nothing changed writes nothing', () => {
    const w = world();
    w.pod('a', '10.201.1.2', 'n1');
    w.pod('b', '10.201.1.3', 'n1');
    w.table.upsertService(svc());
    const first = w.table.takeDiff();
    const realized = {
      services: first.services.upserts,
      backends: first.backends.upserts,
      revNat: first.revNat.upserts.map(
        ([id, f]) => [id, { address: f.address, port: f.port }] as [number, { address: string; port: number }],
      ),
    };
    // A fresh table (a restarted agent) seeded from the maps, fed the same state.
    const again = new LbTable({
      node: 'n1',
      nodeIp: '172.30.0.11',
      pods: () => [
        {
          namespace: 'alpha',
          name: 'b',
          labels: { app: 'web' },
          podIPs: ['10.201.1.3'],
          ports: [{ name: 'http', containerPort: 8080, protocol: 6 }],
          nodeName: 'n1',
        },
        {
          namespace: 'alpha',
          name: 'a',
          labels: { app: 'web' },
          podIPs: ['10.201.1.2'],
          ports: [{ name: 'http', containerPort: 8080, protocol: 6 }],
          nodeName: 'n1',
        },
      ],
      seed: {
        backends: realized.backends,
        frontends: realized.services.filter(([k]) => k.slot === 0).map(([k, v]) => [v.revNatIndex, k]),
      },
    });
    again.upsertService(svc());
    again.takeDiff();
    const d = diffLb(realized, again.desired());
    assert.equal(d.backends.upserts.length + d.revNat.upserts.length + d.services.deletes.length, 0);
    assert.equal(d.services.upserts.length, 0, JSON.stringify(d.services.upserts));
  });
});
