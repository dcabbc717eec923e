// Program-level tests: each fixture of fixtures/prog-cases.ts gets a fresh datapath instance, its
// maps set up, and its packet run through BPF_PROG_TEST_RUN; then the verdict, the events and the
// conntrack table are checked. A runner that finds no cases fails.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCtKey } from '../../src/datapath/maps/ct-map.js';
import { policyKeyId } from '../../src/datapath/maps/policy-map.js';
import { EventKind } from '../../src/monitor/event-types.js';
import { PROG_CASES } from './fixtures/prog-cases.js';
import { EP, openTestDatapath, setUpCase } from './support/prog-setup.js';
import { requireBpf } from './support/require-bpf.js';

describe('datapath programs under BPF_PROG_TEST_RUN', () => {
  it('has fixture cases', () => assert.ok(PROG_CASES.length > 0, 'no fixture cases found'));

  for (const c of PROG_CASES) {
    it(c.name, (t) => {
      if (!requireBpf(t, 'loads BPF programs')) return;
      const { dp, events } = openTestDatapath(t, 'prog', { traceLevel: 'all' });
      setUpCase(dp, c);
      for (const b of c.before ?? []) dp.testRun(b.program, b.packet);
      if (c.policyAfterBefore) {
        const want = new Set(c.policyAfterBefore.map(([k]) => policyKeyId(k)));
        const deletes = dp
          .policyEntries(EP)
          .map((e) => e.key)
          .filter((k) => !want.has(policyKeyId(k)));
        // The datapath bumps the endpoint's policy revision with the change, as for an attached one.
        dp.applyPolicy({ endpointId: EP, adds: c.policyAfterBefore, deletes });
      }
      dp.drainEvents();
      const from = events.length;
      const r = dp.testRun(c.program, c.packet);
      dp.drainEvents();
      const mine = events.slice(from);
      assert.equal(r.retval, c.expect.retval, 'program return value');
      const drop = mine.find((e) => e.kind === EventKind.drop);
      if (c.expect.dropReason === undefined) assert.equal(drop, undefined, 'no drop event');
      else assert.equal(drop?.kind === EventKind.drop ? drop.reason : undefined, c.expect.dropReason);
      if (c.expect.drop && drop) {
        const got = drop as unknown as Record<string, unknown>;
        assert.deepEqual(Object.fromEntries(Object.keys(c.expect.drop).map((k) => [k, got[k]])), c.expect.drop);
      }
      if (c.expect.verdict) {
        const v = mine.find((e) => e.kind === EventKind.policyVerdict);
        assert.ok(v && v.kind === EventKind.policyVerdict, 'a policy-verdict event');
        assert.deepEqual(
          { matchType: v.matchType, verdict: v.verdict, isAudit: v.isAudit },
          { isAudit: false, ...c.expect.verdict },
        );
      }
      if (c.expect.ctState !== undefined) {
        const tr = mine.find((e) => e.kind === EventKind.trace);
        assert.equal(tr?.kind === EventKind.trace ? tr.ctState : undefined, c.expect.ctState, 'traced CT state');
      }
      for (const k of c.expect.ctAfter ?? [])
        assert.ok(dp.map('mbr_ct4').lookup(encodeCtKey(k)), `conntrack entry ${JSON.stringify(k)}`);
    });
  }
});
