// A node:test reporter that counts leaf tests (not suites) as JSON, split out for
// privileged test files (*.priv.test.ts, or .js without source maps). Used by scripts/run-tests.mjs.
export default async function* countReporter(source) {
  const all = { passed: 0, failed: 0, skipped: 0 };
  const privileged = { passed: 0, failed: 0, skipped: 0 };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    if (d.details?.type === 'suite') continue;
    const bucket = d.skip || d.todo ? 'skipped' : event.type === 'test:pass' ? 'passed' : 'failed';
    all[bucket]++;
    if (String(d.file ?? '').includes('.priv.test.')) privileged[bucket]++;
  }
  yield JSON.stringify({ ...all, privileged });
}
