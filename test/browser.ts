// Headless Debian chromium driven by playwright-core, for the dashboard's browser tests. No
// download: playwright-core drives the installed /usr/bin/chromium (the `chromium` package).
// Flags keep the browser off the network except for the page under test: no background
// networking, component updates, sync or proxy. `namespace` runs chromium inside a test's
// network namespace (through `ip netns exec`), for a head node that listens only there.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from './fixtures.ts';

export const chromiumPath = '/usr/bin/chromium';
/** Screenshots for review land here (git-ignored), one per page and test. */
export const screenshotDir = join(repoRoot, 'test-artifacts', 'screenshots');

const flags = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--disable-extensions',
  '--no-first-run',
  '--no-proxy-server',
  '--metrics-recording-only',
  '--disable-dev-shm-usage',
];

export async function launchBrowser(t: { after: (fn: () => Promise<void> | void) => void }, options: { namespace?: string; wrapperDir?: string } = {}): Promise<Browser> {
  let executablePath = chromiumPath;
  if (options.namespace) {
    if (!options.wrapperDir) throw new Error('launchBrowser: a namespace needs wrapperDir for the wrapper script');
    executablePath = join(options.wrapperDir, 'chromium-in-netns');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${options.namespace} ${chromiumPath} "$@"\n`, { mode: 0o755 });
  }
  const browser = await chromium.launch({ executablePath, headless: true, args: flags, timeout: 60_000 });
  t.after(() => browser.close());
  return browser;
}

/** Logs in through the form with the API token; the page ends on the nodes list. */
export async function logIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/ui/login`);
  await page.fill('input[name="token"]', token);
  await Promise.all([page.waitForURL(`${url}/`), page.click('form.login button')]);
}

/** A full-page screenshot for review: test-artifacts/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
}
