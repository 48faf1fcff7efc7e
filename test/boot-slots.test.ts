// Boot storm admission (boot/boot-slots.ts): the slot book alone on a fake clock, and a head
// node whose limit is 1 handing a second node a wait script until the first has its files.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BootSlots, largeFilesOf, resolveSlotLimit } from '../src/boot/boot-slots.ts';
import { parseMac, type Mac } from '../src/mac.ts';
import { importSmartosTarball } from '../src/platforms/import.ts';
import { join } from 'node:path';
import { BootTemplates } from '../src/boot/templates.ts';
import { renderWaitScript } from '../src/boot/render.ts';
import { repoRoot, startHeadNode, tempDir } from './fixtures.ts';
import { writeSmartosTarball } from './platform-fixtures.ts';

const mac = (n: number): Mac => parseMac(`52:54:00:5e:00:${n.toString(16).padStart(2, '0')}`)!;
const files = ['/os/S/kernel', '/os/S/boot_archive'];

function book(limit: number, clock: { now: number }, random = 0.5): BootSlots {
  return new BootSlots({ limit, holdSeconds: 60, retryMinSeconds: 5, retryMaxSeconds: 15, now: () => clock.now, random: () => random });
}

test('slots: the limit admits, the rest wait in the order they first asked, and a freed slot goes to the longest waiter', () => {
  const clock = { now: 1_000_000 };
  const slots = book(2, clock);
  assert.deepEqual(slots.request(mac(1), 1, files), { admitted: true, inFlight: 1 });
  assert.deepEqual(slots.request(mac(2), 2, files), { admitted: true, inFlight: 2 });
  assert.deepEqual(slots.request(mac(3), 3, files), { admitted: false, waitSeconds: 5, position: 1, waiting: 1, inFlight: 2 });
  assert.deepEqual(slots.request(mac(4), 4, files), { admitted: false, waitSeconds: 5, position: 2, waiting: 2, inFlight: 2 });
  // A holder asking again (a retried chain) keeps its slot.
  assert.equal(slots.request(mac(1), 1, files).admitted, true);
  // mac 1 gets its kernel, then loses the archive half way: still holding.
  slots.fetched(mac(1), '/os/S/kernel', true);
  slots.fetched(mac(1), '/os/S/boot_archive', false);
  assert.equal(slots.stats().inFlight, 2);
  slots.fetched(mac(1), '/os/S/boot_archive', true);
  assert.equal(slots.stats().inFlight, 1);
  // mac 4's retry lands first, but mac 3 asked first: the slot waits for it.
  assert.equal(slots.request(mac(4), 4, files).admitted, false);
  assert.equal(slots.request(mac(3), 3, files).admitted, true);
  assert.deepEqual(slots.request(mac(4), 4, files), { admitted: false, waitSeconds: 5, position: 1, waiting: 1, inFlight: 2 });
  // A check-in frees what the node holds.
  slots.checkedIn(2);
  assert.equal(slots.request(mac(4), 4, files).admitted, true);
  // A script with no platform files (an exit) needs no slot, and gives up a place in line.
  assert.equal(slots.request(mac(8), 8, files).admitted, false);
  assert.equal(slots.stats().waiting, 1);
  assert.equal(slots.request(mac(8), 8, []).admitted, true);
  assert.equal(slots.stats().waiting, 0);
  assert.equal(slots.request(mac(9), 9, []).admitted, true);
  assert.deepEqual(slots.stats(), { limit: 2, inFlight: 2, waiting: 0, admitted: 7, deferred: 5, freedDownloaded: 1, freedCheckedIn: 1, freedIdle: 0 });
});

test('slots: an idle holder is taken back, a waiter that stopped asking loses its place, jitter spans the window, 0 is no limit', () => {
  const clock = { now: 0 };
  const slots = book(1, clock, 0);
  assert.equal(slots.request(mac(1), 1, files).admitted, true);
  const waits = [book(1, clock, 0), book(1, clock, 1)].map((b) => {
    b.request(mac(1), 1, files);
    return (b.request(mac(2), 2, files) as { waitSeconds: number }).waitSeconds;
  });
  // No turnover seen yet: the shortest wait, jittered by x0.75..x1.25 and kept in the window.
  assert.deepEqual(waits, [5, 6]);
  assert.equal(slots.request(mac(3), 3, files).admitted, false);
  assert.equal(slots.request(mac(2), 2, files).admitted, false);
  clock.now = 30_000;
  assert.equal((slots.request(mac(2), 2, files) as { position: number }).position, 2);
  clock.now = 59_000;
  slots.fetched(mac(1), '/os/S/kernel', false); // activity: still held
  // mac 2 kept asking, mac 3 did not: past twice the longest wait (+10 s), 3 has lost its place.
  clock.now = 60_000;
  assert.equal((slots.request(mac(2), 2, files) as { position: number }).position, 1);
  clock.now = 118_000;
  assert.equal(slots.stats().inFlight, 1);
  // 61 s without activity: the slot is taken back and goes to mac 2.
  clock.now = 120_000;
  assert.equal(slots.request(mac(2), 2, files).admitted, true);
  const s = slots.stats();
  assert.deepEqual([s.inFlight, s.freedIdle, s.waiting], [1, 1, 0]);
  const open = book(0, clock);
  for (let i = 1; i < 50; i++) assert.equal(open.request(mac(i), i, files).admitted, true);
  assert.throws(() => new BootSlots({ limit: 1, holdSeconds: 60, retryMinSeconds: 10, retryMaxSeconds: 5, now: () => 0 }), /retry window/);
});

test('slots: `auto` divides the served links\' speed by the share per boot, at least 4; a number is taken as given', () => {
  const speeds: Record<string, string> = { '/sys/class/net/eth1/speed': '1000\n', '/sys/class/net/eth2/speed': '10000\n', '/sys/class/net/veth0/speed': '-1\n' };
  const read = (p: string): string => {
    const v = speeds[p];
    if (v === undefined) throw new Error('ENOENT');
    return v;
  };
  assert.deepEqual(resolveSlotLimit({ maxConcurrentBoots: 'auto', perBootMbps: 400 }, ['eth1', 'eth2'], read), { limit: 27, linkMbps: 11_000 });
  assert.deepEqual(resolveSlotLimit({ maxConcurrentBoots: 'auto', perBootMbps: 400 }, ['eth1'], read), { limit: 4, linkMbps: 1000 });
  // No speed (-1, a missing device, relays only): taken as 10 GbE.
  assert.deepEqual(resolveSlotLimit({ maxConcurrentBoots: 'auto', perBootMbps: 400 }, ['veth0', 'nope'], read), { limit: 50, linkMbps: 20_000 });
  assert.deepEqual(resolveSlotLimit({ maxConcurrentBoots: 'auto', perBootMbps: 400 }, [], read), { limit: 25, linkMbps: 10_000 });
  assert.deepEqual(resolveSlotLimit({ maxConcurrentBoots: 7, perBootMbps: 400 }, ['eth1'], read), { limit: 7, linkMbps: null });
  assert.deepEqual(largeFilesOf({ kernelPath: '/os/S/k', modules: [{ path: '/os/S/a' }, { path: '/nodes/m/networking.json' }, { path: '/os/S/a' }] }), ['/os/S/k', '/os/S/a']);
});

test('a head node at its boot limit hands the next node a wait script that asks again, and boots it once the first has its files', async (t) => {
  const dir = tempDir(t);
  const { head, url, token } = await startHeadNode(t, dir, { boot: { admission: { maxConcurrentBoots: 1, retryMinSeconds: 2, retryMaxSeconds: 4 } } });
  await importSmartosTarball(writeSmartosTarball(dir), { store: head.store, platformImagesDir: head.config.platformImagesDir });
  const script = async (m: Mac): Promise<string> => (await fetch(`${url}/boot/node.ipxe?mac=${m}&uuid=&serial=&arch=x86_64&platform=pcbios`)).text();
  const first = await script(mac(1));
  const osUrls = [...first.matchAll(/^(?:kernel|module) (http\S+\/os\/\S+?)(?:\s|$)/gm)].map((m) => m[1]!);
  assert.ok(osUrls.length >= 2, first);

  const second = await script(mac(2));
  assert.match(second, /^#!ipxe\n/);
  assert.match(second, /^echo fleetboot: head node busy: 1 of 1 boots downloading, 1 of 1 waiting$/m);
  const sleep = Number(/^sleep (\d+)$/m.exec(second)?.[1]);
  assert.ok(sleep >= 2 && sleep <= 4, second);
  assert.ok(second.includes(`chain --replace --autofree ${url}/boot/node.ipxe?mac=${mac(2)}&uuid=&serial=&arch=x86_64&platform=pcbios || goto wait`), second);
  assert.doesNotMatch(second, /^kernel /m);
  assert.match(await script(mac(3)), /1 of 1 boots downloading, 2 of 2 waiting/);

  // The first node downloads its kernel and boot archive; its slot frees when the last byte is sent.
  for (const u of osUrls) assert.equal((await fetch(u)).status, 200);
  const counters = async (): Promise<{ inFlight: number; freedDownloaded: number; waiting: number }> =>
    ((await (await fetch(`${url}/api/v1/counters`, { headers: { authorization: `Bearer ${token}` } })).json()) as { bootSlots: { inFlight: number; freedDownloaded: number; waiting: number } }).bootSlots;
  const deadline = Date.now() + 5000;
  while ((await counters()).freedDownloaded < 1) {
    assert.ok(Date.now() < deadline, 'the slot was not freed after the downloads');
    await new Promise((r) => setTimeout(r, 20));
  }
  // The third node's retry comes first, but the second asked first.
  assert.match(await script(mac(3)), /^sleep \d+$/m);
  assert.match(await script(mac(2)), /^kernel http/m);
  const now = await counters();
  assert.deepEqual([now.inFlight, now.waiting], [1, 1]);
  const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  for (const [series, value] of [
    ['fleetboot_boot_slots_limit', 1],
    ['fleetboot_boot_slots_in_use', 1],
    ['fleetboot_boot_slot_waiting_nodes', 1],
    ['fleetboot_boot_admissions_total{outcome="admitted"}', 2],
    ['fleetboot_boot_admissions_total{outcome="deferred"}', 3],
    ['fleetboot_boot_slots_freed_total{reason="downloaded"}', 1],
  ] as const) {
    assert.ok(metrics.split('\n').includes(`${series} ${value}`), `${series} ${value} in\n${metrics.split('\n').filter((l) => l.includes('boot_slot') || l.includes('admissions')).join('\n')}`);
  }
  const waited = head.store.events.timeline(head.store.nodes.findByMac(mac(2))!.id).filter((e) => e.event === 'script').map((e) => e.detail['action']);
  assert.deepEqual(waited, ['wait', 'boot']);
});

test('an operator templates folder without wait.ipxe falls back to the install\'s own', (t) => {
  const dir = tempDir(t);
  const templates = new BootTemplates(dir, join(repoRoot, 'boot-templates'));
  const out = renderWaitScript(templates, { inFlight: 3, limit: 3, position: 1, waiting: 2, waitSeconds: 7, retryUrl: 'http://h/boot/node.ipxe?mac=x' });
  assert.match(out, /^sleep 7$/m);
  assert.throws(() => new BootTemplates(dir).render('wait.ipxe', {}), /wait\.ipxe\.hbs does not exist/);
});

test('slots: a wait is sized from how fast slots have been freeing, so a fast turnover is not met by long sleeps', () => {
  const clock = { now: 0 };
  const slots = new BootSlots({ limit: 10, holdSeconds: 60, retryMinSeconds: 1, retryMaxSeconds: 20, now: () => clock.now, random: () => 0.5 });
  for (let i = 1; i <= 10; i++) slots.request(mac(i), i, files);
  const waiters = Array.from({ length: 40 }, (_, i) => mac(100 + i));
  waiters.forEach((m, i) => slots.request(m, 100 + i, files));
  // Ten slots turn over in one second: 10 freed per second.
  for (let i = 1; i <= 10; i++) {
    clock.now += 100;
    slots.fetched(mac(i), '/os/S/kernel', true);
    slots.fetched(mac(i), '/os/S/boot_archive', true);
  }
  // The first 10 waiters take the freed slots; the 30 behind them are told waits in proportion to their place.
  waiters.slice(0, 10).forEach((m, i) => assert.equal(slots.request(m, 100 + i, files).admitted, true));
  const waits = waiters.slice(10).map((m, i) => (slots.request(m, 110 + i, files) as { waitSeconds: number; position: number }));
  assert.deepEqual([waits[0]!.position, waits[0]!.waitSeconds], [1, 1]);
  assert.deepEqual([waits[19]!.position, waits[19]!.waitSeconds], [20, 2]);
  assert.deepEqual([waits[29]!.position, waits[29]!.waitSeconds], [30, 3]);
  // A slow turnover (one every 10 s) keeps waits long, up to the window's end.
  const slow = new BootSlots({ limit: 1, holdSeconds: 600, retryMinSeconds: 1, retryMaxSeconds: 20, now: () => clock.now, random: () => 0.5 });
  for (let i = 0; i < 3; i++) {
    slow.request(mac(200 + i), 200 + i, ['/os/S/k']);
    clock.now += 10_000;
    slow.fetched(mac(200 + i), '/os/S/k', true);
  }
  slow.request(mac(210), 210, ['/os/S/k']);
  assert.deepEqual([(slow.request(mac(211), 211, ['/os/S/k']) as { waitSeconds: number }).waitSeconds, (slow.request(mac(212), 212, ['/os/S/k']) as { waitSeconds: number }).waitSeconds], [10, 20]);
});
