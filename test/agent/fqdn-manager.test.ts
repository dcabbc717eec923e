// The agent's FQDN state: what reaches the engine (selected names only, batched), the deferred
// delete against CT, selectors added after a lookup, and persistence through snapshot + journal.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { FqdnManager } from '../../src/agent/fqdn-manager.js';
import { FqdnCache } from '../../src/fqdn/dns-cache.js';
import type { FqdnSelectorSpec } from '../../src/policy/fqdn-pattern.js';
import { until } from '../support/until.js';

function setup(t: TestContext, o: { selectors?: FqdnSelectorSpec[]; dir?: string } = {}) {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'mbr-fqdn-'));
  if (!o.dir) t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = { t: Date.UTC(2026, 0, 1) };
  const applied: Array<Map<string, readonly string[]>> = [];
  const inUse = new Set<string>();
  const selectors = o.selectors ?? [{ matchPattern: '*.stripe.com' }];
  const m = new FqdnManager({
    cache: new FqdnCache({ now: () => clock.t }),
    statePath: join(dir, 'fqdn-cache.json'),
    apply: async (names) => {
      applied.push(new Map(names));
    },
    selectors: () => selectors,
    ipsInUse: async () => inUse,
  });
  return { dir, clock, applied, inUse, selectors, m };
}

const obs = (name: string, ips: string[], ttlSeconds = 30) => ({ endpointId: 1, names: [{ name, ips, ttlSeconds }] });

describe('FqdnManager', () => {
  it('writes only names a toFQDNs selector matches, and only when they bring new IPs', async (t) => {
    const s = setup(t);
    await s.m.observe(obs('api.stripe.com', ['10.0.0.1']));
    await s.m.observe(obs('api.github.com', ['10.0.0.9']));
    await s.m.observe(obs('api.stripe.com', ['10.0.0.1']));
    assert.deepEqual(s.applied, [new Map([['api.stripe.com.', ['10.0.0.1']]])]);
  });

  it('batches answers that arrive during a write into the next write', async (t) => {
    const s = setup(t);
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.m.observe(obs(`n${i}.stripe.com`, [`10.0.1.${i}`]))));
    assert.ok(s.applied.length < 20, `${s.applied.length} writes`);
    assert.equal(
      s.applied.reduce((n, b) => n + b.size, 0),
      20,
    );
  });

  it('makes a second answer for a name wait for the write the first one started', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const m = new FqdnManager({
      cache: new FqdnCache({ now: () => 0 }),
      apply: () => gate,
      selectors: () => [{ matchPattern: '*.stripe.com' }],
      ipsInUse: async () => new Set(),
    });
    const done: string[] = [];
    const first = m.observe(obs('api.stripe.com', ['10.0.0.1'])).then(() => done.push('first'));
    const second = m.observe(obs('API.stripe.com', ['10.0.0.1'])).then(() => done.push('second'));
    const other = m.observe(obs('api.github.com', ['10.0.0.9'])).then(() => done.push('other'));
    await other;
    assert.deepEqual(done, ['other']);
    release();
    await Promise.all([first, second]);
    assert.deepEqual(done.sort(), ['first', 'other', 'second']);
  });

  it('drops an expired IP only once no connection uses it', async (t) => {
    const s = setup(t);
    await s.m.observe(obs('api.stripe.com', ['10.0.0.1'], 5));
    await s.m.gc();
    s.applied.length = 0;
    s.clock.t += 10_000;
    s.inUse.add('10.0.0.1');
    await s.m.gc();
    assert.deepEqual(s.applied, []);
    s.inUse.clear();
    await s.m.gc();
    assert.deepEqual(s.applied, [new Map([['api.stripe.com.', []]])]);
  });

  it('learns cached names for a selector added after the lookup, at the next gc', async (t) => {
    const s = setup(t, { selectors: [] });
    await s.m.observe(obs('api.stripe.com', ['10.0.0.1']));
    await s.m.gc();
    assert.deepEqual(s.applied, [new Map([['api.stripe.com.', []]])], 'no selector: emptied (a no-op)');
    s.selectors.push({ matchName: 'api.stripe.com' });
    await s.m.gc();
    assert.deepEqual(s.applied.at(-1), new Map([['api.stripe.com.', ['10.0.0.1']]]));
    assert.deepEqual(s.m.names(), [
      { selector: 'matchName: api.stripe.com', names: [{ name: 'api.stripe.com.', ips: ['10.0.0.1'] }] },
    ]);
  });

  it('restores from snapshot and journal after a crash (no stop, no flush)', async (t) => {
    const a = setup(t);
    await a.m.observe(obs('api.stripe.com', ['10.0.0.1']));
    a.m.flush();
    await a.m.observe(obs('www.stripe.com', ['10.0.0.2']));
    assert.equal(await a.m.clean({ matchPattern: 'api.*.com' }), 1);
    const journal = join(a.dir, 'fqdn-cache.json.journal');
    await until(() => readFileSync(journal, 'utf8').split('\n').length === 3, { what: 'journal appended' });
    // A torn last line, as a crash mid-append leaves it.
    writeFileSync(journal, `${readFileSync(journal, 'utf8')}{"t":1,"l":[{"endp`);
    const b = setup(t, { dir: a.dir });
    assert.deepEqual(b.m.list(), a.m.list());
    assert.deepEqual(b.m.selectedNames(b.selectors), new Map([['www.stripe.com.', ['10.0.0.2']]]));
  });
});
