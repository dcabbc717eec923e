#!/usr/bin/env node
// Runs the fuzz properties of test/fuzz for a time budget from a random seed, instead of the small
// fixed count and seed `npm test` runs: `npm run fuzz -- --minutes 10`. The budget is shared evenly
// between the properties. A failure prints fast-check's counterexample with its seed and path;
// the line printed first reruns the same cases.
//   --minutes N   total budget (default 1)
//   --seed S      a given seed instead of a random one
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const minutes = Number(option('--minutes', '1'));
if (!(minutes > 0)) {
  console.error(`fuzz: --minutes: expected a positive number, got ${JSON.stringify(option('--minutes', ''))}`);
  process.exit(2);
}
const seed = Number(option('--seed', String(Math.floor(Math.random() * 2 ** 31))));

const dir = join(root, 'dist/test/fuzz');
let files = [];
try {
  files = readdirSync(dir)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => join(dir, f));
} catch {
  // reported below
}
if (files.length === 0) {
  console.error('fuzz: no fuzz tests under dist/test/fuzz (did the build run?)');
  process.exit(1);
}
// Each property is one fuzzProperty(...) call; the count shares the budget out.
const properties = files.reduce((n, f) => n + (readFileSync(f, 'utf8').match(/\bfuzzProperty\(/g) ?? []).length, 0);
const budgetMs = Math.max(1000, Math.floor((minutes * 60_000) / Math.max(properties, 1)));
console.log(
  `fuzz: ${properties} properties in ${files.length} files, ${(budgetMs / 1000).toFixed(1)} s each, seed ${seed}`,
);
console.log(`fuzz: rerun with: npm run fuzz -- --minutes ${minutes} --seed ${seed}`);

const child = spawn(process.execPath, ['--enable-source-maps', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, MEMBRANE_FUZZ_SEED: String(seed), MEMBRANE_FUZZ_BUDGET_MS: String(budgetMs) },
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
