import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DnsObservation } from '../../src/fqdn/fqdn-sink.js';
import {
  answerFqdnMessage,
  type FqdnAckMessage,
  type FqdnObserveMessage,
  LinkedFqdnSink,
  validObservation,
} from '../../src/fqdn/fqdn-sink-link.js';

const OBS: DnsObservation = {
  endpointId: 3,
  names: [{ name: 'api.stripe.com.', ips: ['10.0.0.1', '::1'], ttlSeconds: 30 }],
};

describe('FqdnSink over the agent–proxy channel', () => {
  it('resolves the proxy side once the agent side acks, after the sink is done', async () => {
    const seen: DnsObservation[] = [];
    let proxy: LinkedFqdnSink;
    // The channel: JSON both ways, as the line protocol carries it.
    const agentSide = (m: FqdnObserveMessage) => {
      void answerFqdnMessage({ observe: async (o) => void seen.push(o) }, JSON.parse(JSON.stringify(m)), (ack) =>
        proxy.onAck(JSON.parse(JSON.stringify(ack)) as FqdnAckMessage),
      );
      return true;
    };
    proxy = new LinkedFqdnSink(agentSide);
    await proxy.observe(OBS);
    assert.deepEqual(seen, [OBS]);
    assert.equal(proxy.waiting, 0);
  });

  it('fails at once without an agent, and fails what waits when the channel closes', async () => {
    await assert.rejects(new LinkedFqdnSink(() => false).observe(OBS), {
      code: 'MBR_FQDN_LINK',
      message: 'no agent connected',
    });
    const s = new LinkedFqdnSink(() => true);
    const p = s.observe(OBS);
    s.disconnected();
    await assert.rejects(p, { message: 'agent connection closed' });
  });

  it("passes the agent's error back", async () => {
    let proxy: LinkedFqdnSink;
    proxy = new LinkedFqdnSink((m) => {
      void answerFqdnMessage({ observe: async () => Promise.reject(new Error('map full')) }, { ...m }, (a) =>
        proxy.onAck(a),
      );
      return true;
    });
    await assert.rejects(proxy.observe(OBS), { message: 'map full' });
  });

  const BAD: Array<[unknown, string]> = [
    [null, 'o: expected an observation object'],
    [{ endpointId: -1, names: [] }, 'o.endpointId: expected an endpoint ID'],
    [{ endpointId: 1, names: 'x' }, 'o.names: expected at most 64 names'],
    [{ endpointId: 1, names: [{ name: '', ips: [], ttlSeconds: 1 }] }, 'o.names[0].name: expected a DNS name'],
    [
      { endpointId: 1, names: [{ name: 'a.', ips: ['1.2.3'], ttlSeconds: 1 }] },
      'o.names[0].ips[0]: expected an IP address',
    ],
    [
      { endpointId: 1, names: [{ name: 'a.', ips: [], ttlSeconds: Number.NaN }] },
      'o.names[0].ttlSeconds: expected a TTL in seconds',
    ],
  ];
  for (const [v, msg] of BAD)
    it(`rejects ${JSON.stringify(v)}: ${msg}`, async () => {
      assert.equal(validObservation(v), msg);
      const acks: FqdnAckMessage[] = [];
      await answerFqdnMessage(
        { observe: async () => assert.fail('observed a bad message') },
        { t: 'fqdn', id: 7, o: v },
        (a) => acks.push(a),
      );
      assert.deepEqual(acks, [{ t: 'fqdn-ack', id: 7, error: msg }]);
    });
});
