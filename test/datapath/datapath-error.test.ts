import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DATAPATH_ERROR_CODES, DatapathError, isDatapathError } from '../../src/datapath/datapath-error.js';

describe('DatapathError', () => {
  it('reads a code through isDatapathError, not a cast', () => {
    const err: unknown = new DatapathError('MBR_DATAPATH_STALE_PINS', 'stale');
    assert.ok(isDatapathError(err));
    assert.ok(isDatapathError(err, 'MBR_DATAPATH_STALE_PINS'));
    assert.ok(!isDatapathError(err, 'MBR_DATAPATH_MAP_FULL'));
    assert.ok(!isDatapathError(Object.assign(new Error('x'), { code: 'MBR_DATAPATH_STALE_PINS' })));
  });

  it('wraps with what the layer was doing, keeping code, errno and the cause', () => {
    const inner = new DatapathError('MBR_DATAPATH_MAP_FULL', 'ipcache upsert 10.1.0.7/32: map is full', { errno: 7 });
    const outer = DatapathError.wrap('attach endpoint 7', inner);
    assert.equal(outer.message, 'attach endpoint 7: ipcache upsert 10.1.0.7/32: map is full');
    assert.equal(outer.code, 'MBR_DATAPATH_MAP_FULL');
    assert.equal(outer.errno, 7);
    assert.equal(outer.cause, inner);
  });

  it('turns a native failure into a syscall error naming what was done, with its errno and done count', () => {
    const native = Object.assign(new Error('No space left on device'), { errno: 28, done: 3 });
    const e = DatapathError.fromNative('batch update of mbr_ipcache', native, { done: 8195 });
    assert.equal(e.code, 'MBR_DATAPATH_SYSCALL');
    assert.equal(e.message, 'batch update of mbr_ipcache: No space left on device');
    assert.equal(e.errno, 28);
    assert.equal(e.done, 8195);
    assert.equal(e.cause, native);
  });

  it('keeps every code string the CLI and tests rely on', () => {
    assert.deepEqual(DATAPATH_ERROR_CODES, [
      'MBR_DATAPATH_NOT_BUILT',
      'MBR_DATAPATH_SYSCALL',
      'MBR_DATAPATH_LOAD',
      'MBR_DATAPATH_MAP_FULL',
      'MBR_DATAPATH_BAD_INPUT',
      'MBR_DATAPATH_NO_ENDPOINT',
      'MBR_DATAPATH_NOT_PINNED',
      'MBR_DATAPATH_STALE_PINS',
      'MBR_DATAPATH_CLOSED',
    ]);
  });
});
