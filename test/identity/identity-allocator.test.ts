import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryIdentityAllocator } from '../../src/identity/identity-allocator.js';
import {
  isIdentityRelevantLabel,
  makeLabelSet,
  parseSelectorKey,
  podIdentityLabels,
} from '../../src/identity/labels.js';
import {
  IDENTITY_HOST,
  IDENTITY_INGRESS,
  IDENTITY_KUBE_APISERVER,
  IDENTITY_REMOTE_NODE,
  IDENTITY_WORLD,
  IDENTITY_WORLD_IPV6,
  isLocalIdentity,
  RESERVED_IDENTITIES,
  reservedIdentityLabels,
} from '../../src/identity/reserved-identities.js';

describe('reserved identities', () => {
  it('numbers the reserved identities as the datapath expects', () => {
    assert.deepEqual(
      RESERVED_IDENTITIES.map((r) => `${r.id}:${r.name}`),
      [
        '1:host',
        '2:world',
        '3:unmanaged',
        '4:health',
        '5:init',
        '6:remote-node',
        '7:kube-apiserver',
        '8:ingress',
        '9:world-ipv4',
        '10:world-ipv6',
      ],
    );
    assert.equal(IDENTITY_HOST, 1);
    assert.equal(IDENTITY_WORLD, 2);
    assert.equal(IDENTITY_REMOTE_NODE, 6);
    assert.equal(IDENTITY_KUBE_APISERVER, 7);
    assert.equal(IDENTITY_INGRESS, 8);
  });
  it('gives the split world identities the reserved:world label too', () => {
    assert.equal(reservedIdentityLabels(IDENTITY_WORLD_IPV6)?.key, 'reserved:world;reserved:world-ipv6');
  });
});

describe('MemoryIdentityAllocator', () => {
  const labels = (app: string) => makeLabelSet([{ source: 'k8s', key: 'app', value: app }]);
  it('allocates global identities from 256 and local ones from 1<<24, deterministically', () => {
    const a = new MemoryIdentityAllocator();
    assert.equal(a.acquire(labels('a'), 'global'), 256);
    assert.equal(a.acquire(labels('b'), 'global'), 257);
    assert.equal(a.acquire(labels('a'), 'global'), 256);
    const local = a.acquire(makeLabelSet([{ source: 'cidr', key: '10.0.0.0/8', value: '' }]), 'local');
    assert.equal(local, 16777217);
    assert.ok(isLocalIdentity(local));
  });
  it('frees an identity when its last reference goes, and never reuses the number', () => {
    const a = new MemoryIdentityAllocator();
    const id = a.acquire(labels('a'), 'global');
    a.acquire(labels('a'), 'global');
    assert.equal(a.release(id), false);
    assert.equal(a.release(id), true);
    assert.equal(a.lookup(id), undefined);
    assert.equal(a.acquire(labels('a'), 'global'), 257);
  });
});

describe('identity labels', () => {
  it('keeps only identity-relevant pod labels', () => {
    for (const [k, want] of [
      ['app', true],
      ['app.kubernetes.io/name', true],
      ['pod-template-hash', false],
      ['controller-revision-hash', false],
      ['statefulset.kubernetes.io/pod-name', false],
      ['kubernetes.io/hostname', false],
      ['io.kubernetes.pod.namespace', true],
      ['topology.kubernetes.io/zone', false],
      ['annotation.foo', false],
    ] as const)
      assert.equal(isIdentityRelevantLabel(k), want, k);
  });
  it('builds the same identity labels whatever the label order, with namespace labels prefixed', () => {
    const a = podIdentityLabels({ b: '2', a: '1', 'pod-template-hash': 'x' }, 'shop', { team: 't' });
    const b = podIdentityLabels({ a: '1', b: '2' }, 'shop', { team: 't' });
    assert.equal(a.key, b.key);
    assert.match(a.key, /k8s:io\.cilium\.k8s\.namespace\.labels\.team=t/);
    assert.match(a.key, /k8s:io\.kubernetes\.pod\.namespace=shop/);
    assert.doesNotMatch(a.key, /pod-template-hash/);
  });
  it('reads a selector key source prefix', () => {
    assert.deepEqual(parseSelectorKey('k8s:app'), { source: 'k8s', key: 'app' });
    assert.deepEqual(parseSelectorKey('app'), { source: 'any', key: 'app' });
    assert.deepEqual(parseSelectorKey('reserved:host'), { source: 'reserved', key: 'host' });
    assert.deepEqual(parseSelectorKey('example.com/x:y'), { source: 'any', key: 'example.com/x:y' });
  });
});
