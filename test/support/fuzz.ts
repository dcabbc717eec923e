// Runs one fast-check property as a fuzz target. In CI (`npm test`) a property runs a small, fixed
// number of cases from a fixed seed, so a failure reproduces; fast-check's failure message names
// the seed and the shrunk counterexample. `npm run fuzz -- --minutes N` (scripts/fuzz.mjs) runs the
// same properties for a time budget from random seeds instead.
//   MEMBRANE_FUZZ_RUNS         cases per property (default 200)
//   MEMBRANE_FUZZ_SEED         seed (default FUZZ_CI_SEED; scripts/fuzz.mjs picks a random one)
//   MEMBRANE_FUZZ_BUDGET_MS    run for this long per property instead of a count
import assert from 'node:assert/strict';
import fc from 'fast-check';

export const FUZZ_CI_SEED = 20261207;
/** Each case must finish in this long: a parser that slows down this much on one input is a hang. */
export const FUZZ_CASE_LIMIT_MS = 1000;

/** Asserts the property over arbitrary inputs; `check` throws to fail a case. */
export function fuzzProperty<T>(arb: fc.Arbitrary<T>, check: (input: T) => void): void {
  const budgetMs = Number(process.env.MEMBRANE_FUZZ_BUDGET_MS ?? 0);
  const seed = Number(process.env.MEMBRANE_FUZZ_SEED ?? FUZZ_CI_SEED);
  const timed = (input: T) => {
    const start = performance.now();
    check(input);
    const ms = performance.now() - start;
    assert.ok(ms < FUZZ_CASE_LIMIT_MS, `one case took ${ms.toFixed(0)} ms (limit ${FUZZ_CASE_LIMIT_MS} ms)`);
  };
  const params: fc.Parameters<[T]> =
    budgetMs > 0
      ? { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: budgetMs, markInterruptAsFailure: false }
      : { seed, numRuns: Number(process.env.MEMBRANE_FUZZ_RUNS ?? 200) };
  fc.assert(fc.property(arb, timed), params);
}

/**
 * Runs `parse` and accepts a return or a throw of one of the project's typed errors (`accepted`
 * says which); anything else (a TypeError, a RangeError, a stack overflow) fails the case with the
 * error it threw.
 */
export function returnsOrThrowsTyped(parse: () => unknown, accepted: (err: unknown) => boolean): void {
  try {
    parse();
  } catch (err) {
    if (accepted(err)) return;
    throw new Error(`threw an untyped error: ${(err as Error)?.stack ?? String(err)}`);
  }
}

/** An error carrying a stable `MBR_*` code, as every Membrane module's error does. */
export function hasMembraneCode(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('MBR_');
}

/** Keys that reach past an object's own fields when looked up or assigned. */
export const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];

/**
 * JSON-like values of the kinds a hostile document holds: hostile keys, huge and odd numbers,
 * long strings, nesting up to `maxDepth`.
 */
export function hostileJson(maxDepth = 6): fc.Arbitrary<unknown> {
  const key = fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 12 }));
  const leaf = fc.oneof(
    fc.constantFrom(null, true, false, 0, -1, 1e308, -1e308, 2 ** 53, 2 ** 64, 0.5, 65536, 4294967296),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.constantFrom(...HOSTILE_KEYS),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.constant('x'.repeat(10_000)),
  );
  return fc.letrec<{ v: unknown }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small', maxDepth, withCrossShrink: true },
      leaf,
      fc.array(tie('v'), { maxLength: 5 }),
      fc.dictionary(key, tie('v'), { maxKeys: 6 }).map(withOwnProto),
    ),
  })).v;
}

/**
 * Replaces one value somewhere in `seed` (a JSON value) with `replacement`, at the position picked
 * by `pick` (a fraction in [0, 1) of the seed's nodes), or adds `replacement` under `key` to the
 * chosen mapping. A structure-aware mutation of a valid input.
 */
export function mutateJson(seed: unknown, pick: number, key: string | undefined, replacement: unknown): unknown {
  const copy = structuredClone(seed);
  const nodes: Array<{ parent: Record<string, unknown> | unknown[]; key: string | number }> = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v))
      v.forEach((x, i) => {
        nodes.push({ parent: v, key: i });
        walk(x);
      });
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        nodes.push({ parent: v as Record<string, unknown>, key: k });
        walk(x);
      }
  };
  walk(copy);
  if (nodes.length === 0) return replacement;
  const at = nodes[Math.floor(pick * nodes.length)] as (typeof nodes)[number];
  const target = (at.parent as Record<string | number, unknown>)[at.key];
  if (key !== undefined && target !== null && typeof target === 'object' && !Array.isArray(target))
    defineOwn(target as Record<string, unknown>, key, replacement);
  else if (Array.isArray(at.parent)) at.parent[at.key as number] = replacement;
  else defineOwn(at.parent, at.key as string, replacement);
  return copy;
}

/** A mutation of `seed` as mutateJson makes it, drawn by fast-check. */
export function mutatedJson(seed: unknown): fc.Arbitrary<unknown> {
  return fc
    .tuple(
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.option(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 10 }))),
      hostileJson(4),
    )
    .map(([pick, key, value]) => mutateJson(seed, pick, key ?? undefined, value));
}

// Private helpers.

/** JSON.parse makes `__proto__` an own key; a dictionary built by assignment would not. */
function withOwnProto(d: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) defineOwn(out, k, v);
  return out;
}

function defineOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
