import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tracePolicy } from '../../src/policy/policy-trace.js';
import { labPod, PolicyLab } from './policy-lab.js';

describe('tracePolicy errors', () => {
  const cases: Array<{ name: string; q: Parameters<typeof tracePolicy>[1]; code: string; message: string }> = [
    {
      name: 'an unknown pod',
      q: { src: 'x/zz', dst: 'x/a', dport: 80 },
      code: 'MBR_TRACE_UNKNOWN_POD',
      message: 'peer: expected a pod of the world, got "x/zz" (no such pod)',
    },
    {
      name: 'a peer that is neither a pod nor an IP',
      q: { src: 'x/a', dst: 'not-a-peer', dport: 80 },
      code: 'MBR_TRACE_BAD_PEER',
      message: 'peer: expected NAMESPACE/POD or an IP address, got "not-a-peer"',
    },
    {
      name: 'an unknown protocol',
      q: { src: 'x/a', dst: 'x/b', dport: 80, protocol: 'QUIC' },
      code: 'MBR_TRACE_BAD_PROTOCOL',
      message: 'protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got "QUIC"',
    },
  ];
  for (const c of cases)
    it(`rejects ${c.name}`, () => {
      const lab = new PolicyLab();
      assert.throws(() => tracePolicy(lab.engine, c.q), { code: c.code, message: c.message });
    });

  it('rejects an endpoint ID already in use', () => {
    const lab = new PolicyLab();
    const used = lab.engine.endpointByPod('x', 'a')!.endpointId;
    assert.throws(() => lab.engine.upsertPod({ ...labPod('w', 'new'), endpointId: used }), {
      code: 'MBR_ENDPOINT_ID_IN_USE',
      message: `pod w/new: endpoint ID ${used} is already in use by x/a`,
    });
    // Nothing changed: the identity the pod would have had was never allocated.
    assert.equal(lab.engine.endpointByPod('w', 'new'), undefined);
    assert.ok(!lab.engine.identityList().some((i) => i.labels.key.includes('io.kubernetes.pod.namespace=w')));
  });

  it('resolves a pod IP to the pod, and a pod to itself as loopback', () => {
    const lab = new PolicyLab();
    const r = lab.trace('10.0.1.1', 'x/b', 80);
    assert.equal(r.src.endpoint?.name, 'a');
    assert.equal(lab.trace('x/a', '10.0.1.1', 80).egress.reason, 'loopback');
  });

  it('leaves the side of a pod on another node to that node, without failing', () => {
    const lab = new PolicyLab();
    lab.engine.upsertPod({ ...labPod('w', 'far'), remote: true });
    const out = lab.trace('x/a', 'w/far', 80);
    assert.equal(out.ingress.reason, 'other-node');
    assert.equal(out.ingress.enforced, false);
    assert.equal(out.egress.reason, 'allowed');
    assert.equal(lab.trace('w/far', 'x/a', 80).egress.reason, 'other-node');
  });
});
