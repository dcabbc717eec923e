import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { expandVars, parseWorld } from '../../src/lab/world.js';

const REPO = new URL('../../../', import.meta.url).pathname;

const INVALID_WORLDS: ReadonlyArray<{ name: string; text: string; message: string }> = [
  {
    name: 'an unknown kind',
    text: 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n',
    message: 'w.yaml: document 1: kind: expected Namespace, Pod, Service, ConfigMap or Secret, got "Deployment"',
  },
  {
    name: 'a pod name that is not a DNS label',
    text: 'apiVersion: v1\nkind: Pod\nmetadata: {name: Web}\nspec: {containers: [{name: a, command: [x]}]}\n',
    message: 'w.yaml: document 1: metadata.name: expected a DNS label of at most 32 characters, got "Web"',
  },
  {
    name: 'a pod with two containers',
    text: 'kind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, command: [x]}, {name: b, command: [y]}]}\n',
    message:
      'w.yaml: document 1: spec.containers: expected exactly one container, got [{"name":"a","command":["x"]},{"name":"b","command":["y"]}]',
  },
  {
    name: 'a pod without a command',
    text: 'kind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a}]}\n',
    message: 'w.yaml: document 1: spec.containers[0].command: expected a command to run, got nothing',
  },
  {
    name: 'a container port out of range',
    text: 'kind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, command: [x], ports: [{containerPort: 70000}]}]}\n',
    message: 'w.yaml: document 1: spec.containers[0].ports[0].containerPort: expected a port 1-65535, got 70000',
  },
  {
    name: 'a ConfigMap that is not the world one',
    text: 'kind: ConfigMap\nmetadata: {name: other}\ndata: {}\n',
    message: 'w.yaml: document 1: metadata.name: expected membrane-lab-world, got "other"',
  },
  // Found by the fuzz tests (test/fuzz/world.test.ts): each used to throw a TypeError.
  {
    name: 'a command argument that is a mapping with a toString key',
    text: 'kind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, command: [{toString: 1}]}]}\n',
    message: 'w.yaml: document 1: spec.containers[0].command[0]: expected a string, got {"toString":1}',
  },
  {
    name: 'a namespace that is a mapping',
    text: 'kind: Pod\nmetadata: {name: web, namespace: {toString: x}}\nspec: {containers: [{name: a, command: [x]}]}\n',
    message: 'w.yaml: document 1: metadata.namespace: expected a string, got {"toString":"x"}',
  },
  {
    name: 'a container that is null',
    text: 'kind: Pod\nmetadata: {name: web}\nspec: {containers: [null]}\n',
    message: 'w.yaml: document 1: spec.containers[0]: expected a container, got null',
  },
  {
    name: 'container ports that are not a list',
    text: 'kind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, command: [x], ports: 80}]}\n',
    message: 'w.yaml: document 1: spec.containers[0].ports: expected a list, got 80',
  },
  {
    name: 'an env entry that is null',
    text: 'kind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, command: [x], env: [null]}]}\n',
    message: 'w.yaml: document 1: spec.containers[0].env[0]: expected a mapping, got null',
  },
];

describe('parseWorld', () => {
  it('reads the demo world: namespaces, pods with labels and ports, external hosts', () => {
    const w = parseWorld([{ file: 'demo.yaml', text: readFileSync(`${REPO}lab/worlds/demo.yaml`, 'utf8') }]);
    assert.equal(w.pods.length, 22);
    assert.deepEqual(w.externalHosts, [
      'api.example.com',
      'db.internal.example.com',
      'api.stripe.com',
      'api.github.com',
    ]);
    const backend = w.pods.find((p) => p.namespace === 'shop' && p.name === 'backend')!;
    assert.deepEqual(backend.labels, { app: 'backend' });
    assert.deepEqual(backend.ports, [{ containerPort: 8080, protocol: 'TCP' }]);
    assert.deepEqual(
      w.namespaces.find((n) => n.name === 'payments'),
      { name: 'payments', labels: { 'kubernetes.io/metadata.name': 'payments' } },
    );
  });

  for (const c of INVALID_WORLDS) {
    it(`rejects ${c.name}, naming the field`, () => {
      assert.throws(() => parseWorld([{ file: 'w.yaml', text: c.text }]), {
        code: 'MBR_WORLD_INVALID',
        message: c.message,
      });
    });
  }

  it("reads the demo world's Services through the Service parser, kube-dns included", () => {
    const w = parseWorld([{ file: 'demo.yaml', text: readFileSync(`${REPO}lab/worlds/demo.yaml`, 'utf8') }]);
    const dns = w.services.find((s) => s.spec.namespace === 'kube-system' && s.spec.name === 'kube-dns');
    assert.equal(dns?.spec.clusterIP, '10.96.0.10');
    assert.deepEqual(
      dns?.spec.ports.map((p) => [p.port, p.protocol, p.targetPort]),
      [
        [53, 17, 'dns'],
        [53, 6, 'dns-tcp'],
      ],
    );
    assert.equal(w.services.find((s) => s.spec.name === 'kafka')?.spec.algorithm, 'maglev');
    assert.throws(
      () =>
        parseWorld([
          {
            file: 'w.yaml',
            text: 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1}\n',
          },
        ]),
      {
        code: 'MBR_SERVICE_INVALID',
        message: 'w.yaml: document 1: spec.ports: expected a list of at least one port, got nothing',
      },
    );
  });

  it('rejects two pods with one name in one namespace', () => {
    const pod = 'kind: Pod\nmetadata: {name: web, namespace: a}\nspec: {containers: [{name: a, command: [x]}]}\n';
    assert.throws(() => parseWorld([{ file: 'w.yaml', text: `${pod}---\n${pod}` }]), {
      code: 'MBR_WORLD_INVALID',
      message: 'world: pod a/web: expected one pod per namespace and name, got "a duplicate"',
    });
  });
});

describe('parseWorld Secrets', () => {
  it('reads v1 Secrets through the policy parser, for L7 headerMatches', () => {
    const text = 'apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: shop}\ndata: {value: c2VjcmV0}\n';
    const w = parseWorld([{ file: 'w.yaml', text }]);
    assert.deepEqual(w.secrets, [{ namespace: 'shop', name: 'token', data: { value: 'secret' } }]);
  });
  it('refuses a Secret that is not base64, naming the field but not the value', () => {
    const text = 'apiVersion: v1\nkind: Secret\nmetadata: {name: token}\ndata: {value: "!!hidden!!"}\n';
    assert.throws(() => parseWorld([{ file: 'w.yaml', text }]), {
      code: 'MBR_POLICY_INVALID',
      message: 'w.yaml: document 1: data.value: expected base64 data, got a value that is not base64',
    });
  });
});

describe('expandVars', () => {
  it('expands $(VAR) as Kubernetes does and leaves unknown references as written', () => {
    assert.deepEqual(expandVars(['--listen=$(POD_IP)', '$(NOPE)', 'x$(A)$(A)'], { POD_IP: '10.0.0.2', A: 'b' }), [
      '--listen=10.0.0.2',
      '$(NOPE)',
      'xbb',
    ]);
  });
});
