import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeLabelSet } from '../../src/identity/labels.js';
import { makeLabelSelector, selectorMatches } from '../../src/policy/label-selector.js';
import { SelectorCache } from '../../src/policy/selector-cache.js';

const labels = (ns: string, app: string) =>
  makeLabelSet([
    { source: 'k8s', key: 'io.kubernetes.pod.namespace', value: ns },
    { source: 'k8s', key: 'app', value: app },
  ]);

describe('SelectorCache', () => {
  const web = makeLabelSelector([{ source: 'any', key: 'app', operator: 'In', values: ['web'] }]);
  it('tracks selections incrementally and reports exactly what flipped', () => {
    const c = new SelectorCache();
    c.upsertIdentity({ id: 256, labels: labels('a', 'web'), namespace: 'a' });
    assert.deepEqual([...c.addSelector('web', (i) => selectorMatches(web, i.labels))], [256]);
    assert.deepEqual(c.upsertIdentity({ id: 257, labels: labels('b', 'web'), namespace: 'b' }), [
      { selector: 'web', identity: 257, added: true },
    ]);
    assert.deepEqual(c.upsertIdentity({ id: 257, labels: labels('b', 'db'), namespace: 'b' }), [
      { selector: 'web', identity: 257, added: false },
    ]);
    assert.deepEqual(c.removeIdentity(256), [{ selector: 'web', identity: 256, added: false }]);
    assert.deepEqual([...c.selections('web')], []);
  });
  it('only looks at identities of its namespace for a namespace-bound selector', () => {
    const c = new SelectorCache();
    c.addSelector('ns-a', () => true, 'a');
    c.upsertIdentity({ id: 256, labels: labels('a', 'web'), namespace: 'a' });
    c.upsertIdentity({ id: 257, labels: labels('b', 'web'), namespace: 'b' });
    assert.deepEqual([...c.selections('ns-a')], [256]);
  });
  it('counts references and forgets a selector with its last user', () => {
    const c = new SelectorCache();
    c.addSelector('x', () => true);
    c.addSelector('x', () => true);
    c.releaseSelector('x');
    assert.ok(c.has('x'));
    c.releaseSelector('x');
    assert.ok(!c.has('x'));
  });
});
