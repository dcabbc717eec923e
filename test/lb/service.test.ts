// The one parser of v1 Service manifests: what it reads, its defaults, and every refusal with its
// code and exact message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseServiceObject } from '../../src/lb/service.js';

const base = (spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'alpha', ...meta },
  spec: { clusterIP: '10.96.0.50', selector: { app: 'web' }, ports: [{ port: 80 }], ...spec },
});

describe('parseServiceObject', () => {
  it('reads a ClusterIP service with defaults as Kubernetes has them', () => {
    assert.deepEqual(parseServiceObject(base({}), 'f.yaml: document 1'), {
      namespace: 'alpha',
      name: 'web',
      type: 'ClusterIP',
      clusterIP: '10.96.0.50',
      ports: [{ name: '', port: 80, targetPort: 80, protocol: 6 }],
      selector: { app: 'web' },
      affinityTimeoutSeconds: 0,
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      algorithm: 'random',
    });
  });

  it('reads NodePort, named targetPorts, UDP, ClientIP affinity, traffic policies and the Maglev annotation', () => {
    const s = parseServiceObject(
      base(
        {
          type: 'NodePort',
          sessionAffinity: 'ClientIP',
          externalTrafficPolicy: 'Local',
          internalTrafficPolicy: 'Local',
          ports: [
            { name: 'http', port: 80, targetPort: 'http', nodePort: 30080 },
            { name: 'dns', port: 53, protocol: 'UDP', targetPort: '5353', nodePort: 30053 },
          ],
        },
        { annotations: { 'service.cilium.io/lb-algorithm': 'maglev' } },
      ),
      'f',
    );
    assert.deepEqual(s.ports, [
      { name: 'http', port: 80, targetPort: 'http', protocol: 6, nodePort: 30080 },
      { name: 'dns', port: 53, targetPort: 5353, protocol: 17, nodePort: 30053 },
    ]);
    assert.equal(s.affinityTimeoutSeconds, 10800);
    assert.equal(s.externalTrafficPolicy, 'Local');
    assert.equal(s.internalTrafficPolicy, 'Local');
    assert.equal(s.algorithm, 'maglev');
  });

  const INVALID: Array<{ name: string; doc: Record<string, unknown>; message: string }> = [
    {
      name: 'a missing clusterIP',
      doc: base({ clusterIP: 'None' }),
      message: 'f: spec.clusterIP: expected an IPv4 address (this build allocates none), got "None"',
    },
    {
      name: 'no ports',
      doc: base({ ports: [] }),
      message: 'f: spec.ports: expected a list of at least one port, got []',
    },
    {
      name: 'a bad port',
      doc: base({ ports: [{ port: 99999 }] }),
      message: 'f: spec.ports[0].port: expected a port 1-65535, got 99999',
    },
    {
      name: 'SCTP',
      doc: base({ ports: [{ port: 80, protocol: 'SCTP' }] }),
      message: 'f: spec.ports[0].protocol: expected TCP or UDP, got "SCTP"',
    },
    {
      name: 'unnamed ports among several',
      doc: base({ ports: [{ port: 80 }, { port: 81 }] }),
      message: 'f: spec.ports[0].name: expected a name (required when a service has several ports), got nothing',
    },
    {
      name: 'a nodePort out of range',
      doc: base({ type: 'NodePort', ports: [{ port: 80, nodePort: 80 }] }),
      message: 'f: spec.ports[0].nodePort: expected a port 30000-32767, got 80',
    },
    {
      name: 'an unknown type',
      doc: base({ type: 'LoadBalancer' }),
      message: 'f: spec.type: expected ClusterIP or NodePort, got "LoadBalancer"',
    },
    {
      name: 'an unknown algorithm',
      doc: base({}, { annotations: { 'service.cilium.io/lb-algorithm': 'round-robin' } }),
      message: 'f: metadata.annotations.service.cilium.io/lb-algorithm: expected random or maglev, got "round-robin"',
    },
    {
      name: 'an affinity timeout of 0',
      doc: base({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }),
      message: 'f: spec.sessionAffinityConfig.clientIP.timeoutSeconds: expected seconds 1-86400, got 0',
    },
    {
      name: 'a bad traffic policy',
      doc: base({ externalTrafficPolicy: 'Nearest' }),
      message: 'f: spec.externalTrafficPolicy: expected Cluster or Local, got "Nearest"',
    },
  ];
  for (const c of INVALID)
    it(`rejects ${c.name}`, () =>
      assert.throws(() => parseServiceObject(c.doc, 'f'), { code: 'MBR_SERVICE_INVALID', message: c.message }));
});
