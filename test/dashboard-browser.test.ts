// The dashboard in a real browser (Debian chromium through playwright-core) against a running
// head node with a fake fleet: log in with the token, the pages render, and a rollout is paused
// from its page: the button, the confirmation dialog, the CSRF token and the journal. A page
// per screenshot for review (test-artifacts/screenshots).
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { parseMac } from '../src/mac.ts';
import { importSmartosTarball } from '../src/platforms/import.ts';
import { Store } from '../src/store/store.ts';
import { requires } from './requires.ts';
import { launchBrowser, logIn, screenshot, chromiumPath } from './browser.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { smartosEntries, tarOf } from './platform-fixtures.ts';
import { rawGet } from './tftp-rawclient.ts';
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

test('in chromium: the platforms page follows an import, and the head node page charts its rates and patches its counters after TFTP and HTTP traffic, without a reload', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const ipxe = join(dir, 'ipxe');
  mkdirSync(ipxe);
  writeFileSync(join(ipxe, 'undionly.kpxe'), Buffer.alloc(5000, 7));
  const h = await startHeadNode(t, dir, { ipxeDir: ipxe, tftp: { enabled: true, listen: '127.0.0.1', port: 0 } });
  const browser = await launchBrowser(t);
  const page = await browser.newPage();
  await logIn(page, h.url, h.token);

  // An import in progress through a FIFO (its own registry connection, as the CLI has), then done.
  await page.goto(`${h.url}/ui/platforms`);
  await page.waitForSelector('#live-status.on', { timeout: 15_000 });
  // A marker in the page's window: gone if the page were reloaded.
  await page.evaluate('window.fbMarker = 1');
  const stamp = '20240601T000000Z';
  const archive = Buffer.alloc(8 << 20);
  for (let i = 0; i < archive.length; i += 4) archive.writeUInt32LE((i * 2654435761) >>> 0, i);
  const whole = gzipSync(tarOf(smartosEntries({ stamp, bootArchive: archive })), { level: 1 });
  const fifo = join(dir, `platform-${stamp}.tgz`);
  await execa('mkfifo', [fifo]);
  const cli = Store.open(Store.fileIn(h.head.config.dataDir));
  t.after(() => cli.close());
  const importing = importSmartosTarball(fifo, { store: cli, platformImagesDir: h.head.config.platformImagesDir });
  // If the test fails before the import is awaited, its rejection is not left unhandled.
  importing.catch(() => undefined);
  const writer = createWriteStream(fifo);
  t.after(() => writer.destroy());
  writer.write(whole.subarray(0, whole.length >> 1));
  await page.waitForSelector('#imports table.imports.active tr[data-stage="unpacking"] progress', { timeout: 15_000 });
  // The row appears at 0 B and fills in as the import reports progress.
  await page.waitForFunction(`/unpacking[\\s\\S]*MiB/.test(document.querySelector('#imports table.imports.active')?.innerText ?? '')`, null, { timeout: 15_000 });
  await screenshot(page, 'platforms-import');
  writer.end(whole.subarray(whole.length >> 1));
  assert.equal((await importing).stamp, stamp);
  await page.waitForSelector('#imports table.imports.done tr[data-stage="done"]', { timeout: 15_000 });
  await page.waitForSelector(`#platforms-table tr[data-stamp="${stamp}"]`, { timeout: 15_000 });
  assert.equal(await page.locator('#imports table.imports.active').count(), 0);
  // A node assigned the platform: the `node` event brings the table back with it counted.
  const { node } = h.head.store.nodes.discover({ mac: parseMac('52:54:00:dd:00:01')! });
  const assigned = await fetch(`${h.url}/api/v1/nodes/${node.id}/platform`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${h.token}` },
    body: JSON.stringify({ stamp }),
  });
  assert.equal(assigned.status, 200);
  await page.waitForFunction(`document.querySelector('#platforms-table tr[data-stamp="${stamp}"] td:nth-child(5) strong')?.textContent === '1'`, null, { timeout: 15_000 });
  assert.equal(await page.evaluate('window.fbMarker'), 1, 'no reload');
  await screenshot(page, 'platforms-imported');

  await page.goto(`${h.url}/ui/headnode`);
  await page.waitForSelector('#live-status.on', { timeout: 15_000 });
  for (const chart of ['chart-packets', 'chart-bytes', 'chart-inflight']) await page.waitForSelector(`#${chart} canvas`, { timeout: 15_000 });
  assert.equal(await page.locator('td[data-counter="tftp.served"]').innerText(), '0');
  assert.equal(await page.locator('td[data-counter="http.platformBytesSent"]').innerText(), '0');
  await page.evaluate('window.fbMarker = 2');
  const got = await rawGet(h.head.tftp.address()!.port, 'undionly.kpxe', {});
  assert.equal(got.data.length, 5000);
  const res = await fetch(`${h.url}/os/${stamp}/platform/i86pc/amd64/boot_archive`);
  assert.equal((await res.arrayBuffer()).byteLength, archive.length);
  // The counters tick after the transfers: the table cells change, and the rates worked out in
  // the page from two ticks went above zero (each series' peak in the window).
  await page.waitForFunction('document.querySelector(\'td[data-counter="tftp.served"]\')?.textContent === "1"', null, { timeout: 15_000 });
  assert.equal(await page.locator('td[data-counter="tftp.bytesServed"]').innerText(), '5000');
  await page.waitForFunction(`document.querySelector('td[data-counter="http.platformBytesSent"]')?.textContent === "${archive.length}"`, null, { timeout: 15_000 });
  for (const series of ['tftp.bytesServed', 'http.platformBytesSent']) {
    await page.waitForFunction(`/\\(peak [1-9]/.test(document.querySelector('#chart-bytes ~ .latest [data-series="${series}"]')?.textContent ?? '')`, null, { timeout: 15_000 });
  }
  assert.equal(await page.evaluate('window.fbMarker'), 2, 'no reload');
  await screenshot(page, 'headnode-live');
});
