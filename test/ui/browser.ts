// Debian's chromium, headless, driven by playwright-core (no browser download): the one way the
// UI tests and the UI benchmark open a page. Each launch gets a fresh profile directory (as
// --user-data-dir, through playwright's persistent context), removed on close.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM = process.env.MEMBRANE_CHROMIUM ?? '/usr/bin/chromium';

export interface HeadlessBrowser {
  /** A persistent context on the fresh profile (playwright takes the profile this way, not as --user-data-dir). */
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** undefined when chromium is not installed (scripts/bootstrap.sh installs it). */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `needs ${CHROMIUM} (apt-get install chromium)`;
}

export async function launchChromium(extraArgs: readonly string[] = []): Promise<HeadlessBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'mbr-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 720 },
    acceptDownloads: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where tests write screenshots (not committed). */
export function artifactsDir(): string {
  return process.env.MEMBRANE_TEST_ARTIFACTS ?? join(process.cwd(), 'test-artifacts', 'ui');
}
