// End to end: the dashboard watching a lab VM boot, in Debian chromium (playwright-core) run
// inside the lab's namespace. The VM is power-cycled from its node page (the button and its
// confirmation); then, with no reload, the page's timeline fills in event by event over the
// live feed and the newest waterfall goes from "in progress" to "checked in". Needs root,
// qemu-system-x86_64 and chromium.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { assignLabPower, labUp } from '../../src/lab/lab.ts';
import type { LabState, LabVm } from '../../src/lab/state.ts';
import type { Mac } from '../../src/mac.ts';
import { Store } from '../../src/store/store.ts';
import { chromiumPath, launchBrowser, logIn, screenshot } from '../browser.ts';
import { testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { labDiagnosis, labOptions, removeLab, waitFor } from './lab-fixtures.ts';

const skip = requires({ ...labBootNeeds, commands: [...(labBootNeeds.commands ?? []), chromiumPath] });

describe('e2e: the dashboard shows a lab VM boot live', { skip, timeout: 420_000 }, () => {
  const ns = testNamespace('dash1');
  let dir: string;
  let lab: LabState;
  let vm: LabVm;
  let store: Store;
  const closers: (() => Promise<void> | void)[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-e2e-dash-'));
    lab = await labUp(labOptions(dir, ns));
    vm = lab.vms[0]!;
    store = Store.open(Store.fileIn(join(dir, 'var')));
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
    store?.close();
    await removeLab(dir, ns);
  });

  it('power-cycled from its page, the node boots on screen: timeline rows arrive one by one and the waterfall completes, without a reload', async () => {
    const diagnose = (): string => labDiagnosis(dir, [vm]);
    const node = await waitFor('the first check-in', 180_000, () => {
      const n = store.nodes.findByMac(vm.mac as Mac);
      return n && store.events.timeline(n.id).some((e) => e.event === 'checkin') ? n : undefined;
    }, diagnose);
    assert.equal(assignLabPower(lab).length, 1, 'the lab VM got its qemu power spec');
    const url = `http://${lab.address}:${lab.httpPort}`;
    const token = readFileSync(join(dir, 'var', 'api-token'), 'utf8').trim();
    const browser: Browser = await launchBrowser({ after: (fn) => void closers.push(fn) }, { namespace: ns, wrapperDir: dir });
    const page = await browser.newPage();
    page.on('dialog', (d) => void d.accept());
    await logIn(page, url, token);
    assert.match(await page.locator(`tr[data-node="${node.id}"]`).innerText(), new RegExp(vm.mac));

    await page.goto(`${url}/ui/nodes/${node.id}`);
    const rowsBefore = await page.locator('table.timeline tbody tr').count();
    const cycledAt = Date.now();
    await Promise.all([page.waitForURL(/message=/), page.click('form[action$="/power"] button')]);
    assert.match(await page.locator('p.message').innerText(), /power cycle done/);
    // From here on the page must never load again: a reload would reset this marker.
    await page.evaluate('window.fbMarker = 1');
    await page.waitForSelector('#live-status.on, #live-status:has-text("live")', { timeout: 15_000 });

    // Sample the DOM while the VM boots: which events the timeline shows, and when.
    const seen: { at: number; rows: number; events: string[]; waterfall: string }[] = [];
    const deadline = Date.now() + 240_000;
    for (;;) {
      // A string, run in the page (the tests compile without the DOM's types).
      const sample = await page.evaluate<{ rows: number; events: string[]; waterfall: string; marker: number }>(`({
        rows: document.querySelectorAll('table.timeline tbody tr').length,
        events: [...document.querySelectorAll('table.timeline tbody tr td:nth-child(2)')].map((td) => td.textContent ?? ''),
        waterfall: document.querySelector('#waterfall .boot')?.textContent ?? '',
        marker: window.fbMarker ?? 0,
      })`);
      assert.equal(sample.marker, 1, 'the page was reloaded');
      seen.push({ at: Date.now(), rows: sample.rows, events: sample.events, waterfall: sample.waterfall });
      const after = sample.events.slice(rowsBefore);
      if (after.includes('checkin') && /checked in after/.test(sample.waterfall)) break;
      if (Date.now() > deadline) throw new Error(`no check-in on the page: ${JSON.stringify(seen.at(-1))}\n${diagnose()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const final = seen.at(-1)!;
    const arrived = final.events.slice(rowsBefore);
    for (const event of ['power', 'dhcp_discover', 'dhcp_ack', 'script', 'kernel', 'initrd', 'checkin']) {
      assert.ok(arrived.includes(event), `${event} appeared on the page live: ${arrived.join(', ')}`);
    }
    // The rows came in over time, not at once: several samples saw a count between before and final.
    const distinct = new Set(seen.map((s) => s.rows).filter((n) => n > rowsBefore && n < final.rows));
    assert.ok(distinct.size >= 2, `timeline grew in steps (${[...distinct].join(', ')} rows on the way to ${final.rows})`);
    assert.ok(seen.some((s) => /in progress/.test(s.waterfall)), 'the waterfall showed the boot in progress');
    const steps = (await Promise.all((await page.locator('#waterfall .boot').first().locator('tr.step').all()).map((tr) => tr.getAttribute('class')))).map((c) => (c ?? '').replace('step step-', ''));
    for (const step of ['power', 'dhcp', 'script', 'kernel', 'initrd', 'checkin']) assert.ok(steps.includes(step), `waterfall row ${step}: ${steps.join(',')}`);
    assert.ok(final.at - cycledAt < 240_000);
    await screenshot(page, 'node-after-live-boot');
    await page.goto(`${url}/`);
    await screenshot(page, 'nodes-lab');
  });
});
