import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waterfalls } from '../src/boot/waterfall.ts';
import type { BootEvent, BootEventKind } from '../src/store/events.ts';
import type { Mac } from '../src/mac.ts';

let id = 0;
const ev = (event: BootEventKind, at: number, detail: Record<string, unknown> = {}): BootEvent => ({
  id: ++id,
  nodeId: 1,
  mac: '52:54:00:00:00:01' as Mac,
  event,
  detail,
  at,
});

const oneBoot = (t0: number): BootEvent[] => [
  ev('dhcp_discover', t0),
  ev('dhcp_offer', t0 + 5),
  ev('dhcp_request', t0 + 1000),
  ev('dhcp_ack', t0 + 1005),
  ev('tftp_get', t0 + 1400, { file: 'undionly.kpxe', size: 70000, ms: 300 }),
  ev('script', t0 + 1600, { stamp: 's1' }),
  ev('kernel', t0 + 1700, { path: 'vmlinuz', bytes: 8_000_000 }),
  ev('initrd', t0 + 3000, { path: 'initrd.img', bytes: 40_000_000 }),
  ev('checkin', t0 + 20000, { stamp: 's1' }),
];

test('one complete boot: every step timed, TFTP from its ms, HTTP fetches until the next step', () => {
  const [w, ...rest] = waterfalls(oneBoot(10_000));
  assert.equal(rest.length, 0);
  assert.ok(w);
  assert.equal(w.complete, true);
  assert.equal(w.startedAt, 10_000);
  assert.equal(w.endedAt, 30_000);
  assert.equal(w.totalMs, 20_000);
  const tftp = w.segments.find((s) => s.step === 'tftp');
  assert.deepEqual([tftp?.startMs, tftp?.endMs, tftp?.bytes, tftp?.measured, tftp?.label], [11_100, 11_400, 70000, true, 'undionly.kpxe']);
  const kernel = w.segments.find((s) => s.step === 'kernel');
  assert.deepEqual([kernel?.startMs, kernel?.endMs, kernel?.bytes, kernel?.measured], [11_700, 13_000, 8_000_000, false]);
  assert.deepEqual(w.segments.map((s) => s.step), ['dhcp', 'dhcp', 'dhcp', 'dhcp', 'tftp', 'script', 'kernel', 'initrd', 'checkin']);
});

test('two boots in a row, newest last; a lease renewal between them opens no boot of its own', () => {
  const events = [...oneBoot(0), ev('dhcp_request', 50_000), ev('dhcp_ack', 50_001), ...oneBoot(100_000)];
  const ws = waterfalls(events);
  assert.equal(ws.length, 2);
  assert.deepEqual(ws.map((w) => w.startedAt), [0, 100_000]);
  assert.ok(ws.every((w) => w.complete));
});

test('a boot without check-in is incomplete, and a retry (DISCOVER after fetches) starts a new boot', () => {
  const first = oneBoot(0).filter((e) => e.event !== 'checkin');
  const ws = waterfalls([...first, ...oneBoot(60_000)]);
  assert.equal(ws.length, 2);
  assert.equal(ws[0]?.complete, false);
  assert.equal(ws[0]?.endedAt, null);
  assert.equal(ws[0]?.totalMs, null);
  assert.equal(ws[1]?.complete, true);
  assert.equal(ws[1]?.totalMs, 20_000);
});

test('a DISCOVER retransmitted before any fetch stays in the same boot; a power cycle opens one', () => {
  const events = [ev('power', 0, { action: 'cycle' }), ev('dhcp_discover', 10), ev('dhcp_discover', 4010), ...oneBoot(5000).slice(1)];
  const ws = waterfalls(events);
  assert.equal(ws.length, 1);
  assert.equal(ws[0]?.startedAt, 0);
  assert.equal(ws[0]?.totalMs, 25_000);
});

test('events before any boot start (a renewal, a stray fetch) are left out', () => {
  const ws = waterfalls([ev('kernel', 0, { path: 'vmlinuz' }), ev('checkin', 5)]);
  assert.deepEqual(ws, []);
});

test('the booted OS asking DHCP for itself stays in its boot; iPXE starting over after the kernel opens a new one', () => {
  const t0 = 100_000;
  const osDhcp = [
    ...oneBoot(t0).slice(0, -1),
    ev('dhcp_discover', t0 + 9000),
    ev('dhcp_offer', t0 + 9005),
    ev('dhcp_request', t0 + 9010),
    ev('dhcp_ack', t0 + 9015),
    ev('checkin', t0 + 12_000),
  ];
  const [w, ...rest] = waterfalls(osDhcp);
  assert.equal(rest.length, 0, 'one boot');
  assert.ok(w?.complete);
  assert.equal(w.totalMs, 12_000);
  assert.deepEqual([...new Set(w.segments.map((s) => s.step))], ['dhcp', 'tftp', 'script', 'kernel', 'initrd', 'checkin']);

  // The kernel never checked in; iPXE ran again (its script fetched anew) and that boot checked in.
  const again = [...oneBoot(t0).slice(0, -1), ev('dhcp_discover', t0 + 30_000), ev('dhcp_ack', t0 + 30_100), ev('script', t0 + 30_200, { stamp: 's1' }), ev('kernel', t0 + 30_300), ev('checkin', t0 + 40_000)];
  const boots = waterfalls(again);
  assert.equal(boots.length, 2);
  assert.equal(boots[0]!.complete, false);
  assert.deepEqual(boots[1]!.segments.map((s) => s.step), ['dhcp', 'dhcp', 'script', 'kernel', 'checkin'], 'the DHCP before the new script is the new boot\'s');
  assert.equal(boots[1]!.complete, true);
});

test('a node turned away by boot admission shows its wait, from the wait script to its next ask; events are taken in time order', () => {
  const t0 = 50_000;
  const events = [
    ev('dhcp_discover', t0),
    ev('dhcp_ack', t0 + 10),
    ev('tftp_get', t0 + 400, { file: 'undionly.kpxe', size: 70000, ms: 300 }),
    ev('script', t0 + 500, { action: 'wait', position: 3, waiting: 7, waitSeconds: 12, ms: 2 }),
    ev('script', t0 + 12_600, { action: 'boot', stamp: 's1', ms: 3 }),
    // Appended when its response ended, after the initrd's own event: the journal order is not time order.
    ev('initrd', t0 + 13_000, { path: 'initrd.img', bytes: 40_000_000, ms: 2000 }),
    ev('kernel', t0 + 12_700, { path: 'vmlinuz', bytes: 8_000_000, ms: 250 }),
    ev('checkin', t0 + 30_000),
  ];
  const [w] = waterfalls(events);
  const wait = w!.segments.find((s) => s.label.startsWith('waiting'))!;
  assert.deepEqual([wait.label, wait.startMs, wait.endMs, wait.measured], ['waiting for a boot slot (3 of 7 waiting)', t0 + 500, t0 + 12_600, true]);
  assert.deepEqual(w!.segments.map((s) => s.step), ['dhcp', 'dhcp', 'tftp', 'script', 'script', 'kernel', 'initrd', 'checkin']);
  // A wait script that is the last event: the wait it was told.
  const [open] = waterfalls(events.slice(0, 4));
  assert.equal(open!.segments.at(-1)!.endMs, t0 + 500 + 12_000);
});
