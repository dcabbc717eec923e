// The proxy's rule set, the agent's diffs of it, the from-proxy marks and the wire format: pure.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { L7Policy } from '../../src/policy/policy-engine.js';
import { L7Rules, redirectKey, redirectsOf, rulesDiff } from '../../src/proxy/l7-rules.js';
import {
  fromProxyMark,
  MARK_FROM_EGRESS_PROXY,
  MARK_FROM_INGRESS_PROXY,
  markIdentity,
} from '../../src/proxy/proxy-marks.js';
import { encodeLine, lineReader } from '../../src/proxy/proxy-protocol.js';

function policy(over: Partial<L7Policy> = {}): L7Policy {
  return {
    endpointId: 7,
    direction: 'egress',
    protocol: 6,
    port: 80,
    portPrefixLen: 16,
    proxyPort: 10002,
    parser: 'http',
    remoteIdentities: [300],
    allowAll: false,
    http: [{ method: 'GET' }],
    derivedFrom: [{ kind: 'CiliumNetworkPolicy', namespace: 'a', name: 'p' }],
    ...over,
  };
}

describe('L7 rules of the node proxy', () => {
  it('finds the policies of a connection by endpoint, direction, port and peer', () => {
    const rules = new L7Rules();
    rules.apply({
      full: true,
      set: redirectsOf([
        policy(),
        policy({ remoteIdentities: [0], http: [{ path: '/public' }] }),
        policy({ port: 0, portPrefixLen: 0, remoteIdentities: [301] }),
      ]),
      deleted: [],
    });
    assert.equal(rules.size, 2);
    assert.deepEqual(
      rules.policiesFor(7, 'egress', 6, 80, 300).map((p) => p.http?.[0]),
      [{ method: 'GET' }, { path: '/public' }],
      'the exact port wins over any port; rules for the peer and for any peer',
    );
    assert.deepEqual(rules.policiesFor(7, 'egress', 6, 80, 999).length, 1, 'only the any-peer rules');
    assert.equal(rules.policiesFor(7, 'egress', 6, 81, 301).length, 1, 'the any-port redirect');
    assert.deepEqual(rules.policiesFor(7, 'ingress', 6, 80, 300), [], 'no redirect in that direction: deny');
    assert.deepEqual(rules.policiesFor(8, 'egress', 6, 80, 300), []);
  });

  it('sends only what changed per endpoint, and the removal of what is gone', () => {
    const sent = new Map<string, string>();
    const first = rulesDiff(sent, 7, redirectsOf([policy()]));
    assert.equal(first?.set.length, 1);
    assert.equal(rulesDiff(sent, 7, redirectsOf([policy()])), undefined, 'nothing changed: nothing sent');
    const changed = rulesDiff(sent, 7, redirectsOf([policy({ http: [{ method: 'POST' }] })]));
    assert.deepEqual(changed?.set[0].policies[0].http, [{ method: 'POST' }]);
    const gone = rulesDiff(sent, 7, []);
    assert.deepEqual(gone, { full: false, set: [], deleted: [redirectKey(policy())] });
    const rules = new L7Rules();
    rules.apply(first!);
    rules.apply(gone!);
    assert.equal(rules.size, 0);
  });

  it('keeps its copy on disk, and names the file of a damaged one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbr-l7rules-'));
    try {
      const file = join(dir, 'rules.json');
      assert.equal(L7Rules.load(file).size, 0, 'no file: no rules (deny)');
      const rules = new L7Rules();
      rules.apply({ full: true, set: redirectsOf([policy()]), deleted: [] });
      rules.save(file);
      assert.equal(L7Rules.load(file).policiesFor(7, 'egress', 6, 80, 300).length, 1);
      writeFileSync(file, '{"redirects":[{"endpointId":"x"}]}');
      assert.throws(() => L7Rules.load(file), new RegExp(`${file}: redirects\\[0\\]`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('from-proxy marks', () => {
  it('carry the magic and round-trip every identity size', () => {
    for (const id of [0, 1, 256, 65535, 65536, 0xabcdef, 1 << 24, (1 << 24) + 5]) {
      const m = fromProxyMark('egress', id);
      assert.equal(m & 0x0f00, MARK_FROM_EGRESS_PROXY);
      assert.equal(markIdentity(m), id);
    }
    assert.equal(fromProxyMark('ingress', 300) & 0x0f00, MARK_FROM_INGRESS_PROXY);
    assert.throws(() => fromProxyMark('egress', 1 << 25), RangeError);
  });
});

describe('agent-proxy wire format', () => {
  it('reads lines split anywhere, skips garbage and refuses an endless line', () => {
    const got: unknown[] = [];
    let overflow = 0;
    const feed = lineReader(
      (m) => got.push(m),
      () => overflow++,
    );
    const line = encodeLine({ t: 'rules', u: { full: true, set: [], deleted: [] } });
    feed(line.slice(0, 5));
    feed(`${line.slice(5)}not json\n[1,2]\n`);
    assert.deepEqual(got, [{ t: 'rules', u: { full: true, set: [], deleted: [] } }]);
    feed('x'.repeat(64 * 1024 * 1024 + 1));
    assert.equal(overflow, 1);
  });
});
