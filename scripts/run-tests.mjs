#!/usr/bin/env node
// Runs the compiled test files under dist/test with node's test runner.
//   --unit        only unit tests (no root needed)
//   --privileged  only privileged tests (*.priv.test.js: netns, BPF; need root)
//   any other argument is a substring filter on the test file path.
// Privileged files are named *.priv.test.ts. After node's own summary it prints how many
// privileged tests ran, and a closing `tests: N passed, N failed, N skipped` line.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const onlyUnit = args.includes('--unit');
const onlyPriv = args.includes('--privileged');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : [],
  );
}

const files = walk(join(root, 'dist/test'))
  .filter((f) => !onlyUnit || !f.endsWith('.priv.test.js'))
  .filter((f) => !onlyPriv || f.endsWith('.priv.test.js'))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files found (did the build run?)');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'mbr-tests-'));
const countsFile = join(work, 'counts.json');
const child = spawn(
  process.execPath,
  [
    '--enable-source-maps',
    '--test',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${join(root, 'scripts/count-reporter.mjs')}`,
    `--test-reporter-destination=${countsFile}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
const code = await new Promise((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
let counts = { passed: 0, failed: 0, skipped: 0, privileged: { passed: 0, failed: 0, skipped: 0 } };
try {
  counts = JSON.parse(readFileSync(countsFile, 'utf8'));
} catch {
  // The reporter writes nothing when the runner dies early; the exit code says so.
}
rmSync(work, { recursive: true, force: true });
const p = counts.privileged;
console.log(`privileged: ${p.passed + p.failed} ran (${p.passed} passed, ${p.failed} failed), ${p.skipped} skipped`);
console.log(`tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
process.exit(code === 0 && counts.failed === 0 ? 0 : 1);
