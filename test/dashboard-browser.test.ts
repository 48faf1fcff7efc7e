// The dashboard in a real browser (Debian chromium through playwright-core) against a running
// head node with a fake fleet: log in with the token, the pages render, and a rollout is paused
// from its page: the button, the confirmation dialog, the CSRF token and the journal. A page
// per screenshot for review (test-artifacts/screenshots).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requires } from './requires.ts';
import { launchBrowser, logIn, screenshot, chromiumPath } from './browser.ts';
import { tempDir } from './fixtures.ts';
import { fakeFleet, platformB } from './rollout-fleet.ts';

const skip = requires({ commands: [chromiumPath] });

test('in chromium: log in, every page renders, and a rollout is paused from its page', { skip, timeout: 180_000 }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2', 'cn3'], { traits: { cn1: { rack: 'b12' }, cn2: { rack: 'b12' }, cn3: { rack: 'b13' } } });
  f.machines.get('cn1')!.silent = true;
  const browser = await launchBrowser(t);
  const page = await browser.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.accept();
  });

  // Without a session every page sends the browser to the login form.
  await page.goto(`${f.h.url}/ui/rollouts`);
  assert.match(page.url(), /\/ui\/login\?next=/);
  await screenshot(page, 'login');
  await page.fill('input[name="token"]', 'not-the-token');
  await page.click('form.login button');
  assert.match(await page.content(), /wrong|refused|token/i);
  await logIn(page, f.h.url, f.h.token);
  assert.ok((await page.context().cookies()).some((c) => c.name === 'fleetboot_session' && c.httpOnly && c.sameSite === 'Strict'));
  await page.waitForSelector('#live-status.on, #live-status:has-text("live")', { timeout: 15_000 });
  assert.equal(await page.locator('table tbody tr[data-node]').count(), 3);
  await screenshot(page, 'nodes');

  const started = await fetch(`${f.h.url}/api/v1/rollouts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${f.h.token}` },
    body: JSON.stringify({ target: platformB, selector: 'all', canary: 1, maxInFlight: 1, failureDomain: { trait: 'rack' } }),
  });
  assert.equal(started.status, 201);
  const id = ((await started.json()) as { rollout: { id: number } }).rollout.id;

  await page.goto(`${f.h.url}/ui/rollouts/${id}`);
  // The step table follows the rollout live: the canary's step moves past pending without a reload.
  await page.waitForSelector('#steps tr[data-node] .badge.state-power_cycled, #steps tr[data-node] .badge.state-power_cycling', { timeout: 60_000 });
  await screenshot(page, 'rollout');
  await Promise.all([page.waitForURL(/message=/), page.click('button[value="pause"]')]);
  assert.deepEqual(dialogs, ['Pause this rollout? Nodes rebooting now finish; no more start.']);
  assert.equal(f.h.head.store.rollouts.get(id)!.state, 'paused');
  assert.match(await page.locator('p.message').innerText(), /is paused/);
  assert.deepEqual(await Promise.all((await page.locator('section.actions button').all()).map((b) => b.getAttribute('value'))), ['resume', 'cancel']);

  await page.goto(`${f.h.url}/ui/rollouts`);
  await screenshot(page, 'rollouts');
  await page.goto(`${f.h.url}/ui/platforms`);
  assert.match(await page.content(), new RegExp(platformB));
  await screenshot(page, 'platforms');
  await page.goto(`${f.h.url}/ui/headnode`);
  await screenshot(page, 'headnode');
  await page.goto(`${f.h.url}/ui/nodes/${f.node('cn1').id}`);
  await screenshot(page, 'node');
});
