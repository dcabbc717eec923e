// Gate for datapath tests: root (via requireRoot), then a built addon and BPF object, then a
// kernel that lets this process create a BPF map. Skips with the reason outside CI; fails in CI.
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { ADDON_PATH, BPF_OBJECT_PATH, nativeBpf } from '../../../src/datapath/native.js';
import { isCi, requireRoot } from '../../support/privileged.js';

let bpfGap: string | undefined | null = null;

export function requireBpf(t: TestContext, why: string, needs: readonly string[] = []): boolean {
  if (!requireRoot(t, why, needs)) return false;
  const gap = bpfUnavailable();
  if (gap === undefined) return true;
  if (isCi()) throw new Error(`datapath test cannot run under CI: ${gap} (${why})`);
  t.skip(`${gap}: ${why}`);
  return false;
}

export function bpfUnavailable(): string | undefined {
  if (bpfGap !== null) return bpfGap;
  if (!existsSync(ADDON_PATH)) bpfGap = `needs the native addon (${ADDON_PATH}; npm run build)`;
  else if (!existsSync(BPF_OBJECT_PATH)) bpfGap = `needs the BPF object (${BPF_OBJECT_PATH}; npm run build)`;
  else {
    try {
      const n = nativeBpf();
      n.closeFd(n.mapCreate(2 /* array */, 4, 4, 1, 0, 'mbr_probe'));
      bpfGap = undefined;
    } catch (err) {
      bpfGap = `BPF unavailable: ${(err as Error).message}`;
    }
  }
  return bpfGap;
}
