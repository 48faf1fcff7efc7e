// The manual power driver: what the operator is told, the CLI waiting for the node's check-in
// (a real check-in over HTTP to a head node on the same data dir), its timeout, the HTTP API's
// 202, and a rollout's reboot that records the instructions and does not wait.
import assert from 'node:assert/strict';
import { createLogger } from '../src/log.ts';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseMac } from '../src/mac.ts';
import { manualInstructions, ManualPowerDriver, registryCheckinWaiter } from '../src/rollout/power-manual.ts';
import { powerDriverFor } from '../src/rollout/power-drivers.ts';
import { storeRolloutPorts } from '../src/rollout/ports.ts';
import { PowerError } from '../src/rollout/power.ts';
import { cliPath, runCli, startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';

const mac = parseMac('52:54:00:4d:00:01')!;

function checkin(h: RunningHeadNode): Promise<Response> {
  return fetch(`${h.url}/api/v1/nodes/checkin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uuid: null, nics: [{ mac }], cpu: { model: 'x', count: 1 }, ramBytes: 1, platform: '20240101T000000Z', bootTime: 1000 }),
  });
}

async function manualNode(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void> | void) => void }, set: string[]) {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  assert.equal((await checkin(h)).status, 201);
  const node = h.head.store.nodes.findByMac(mac)!;
  h.head.store.nodes.update(node.id, { hostname: 'cn12', serial: 'SN-4711', traits: { rack: 'b12' } });
  const r = await runCli(['node', 'set', String(node.id), 'power.kind=manual', ...set], dir);
  assert.equal(r.exitCode, 0, String(r.stderr));
  return { dir, h, node: h.head.store.nodes.get(node.id)! };
}

test('the instructions name the machine (id, hostname, serial, rack, admin MAC) and carry the spec text', () => {
  const text = manualInstructions('cycle', { id: 7, hostname: 'cn7', serial: 'SN1', rack: 'b12', adminMac: '52:54:00:00:00:07' }, 'rack 3, top switch');
  assert.equal(text, [
    'node 7 (cn7) has no remote power control: switch it off and on again (or press its reset button) by hand.',
    '  hostname cn7, serial SN1, rack b12, admin MAC 52:54:00:00:00:07',
    '  instructions: rack 3, top switch',
  ].join('\n'));
  assert.match(manualInstructions('on', undefined, undefined), /^the node has no remote power control: switch it on by hand\.$/);
  assert.throws(() => powerDriverFor({ kind: 'manual', checkinTimeoutMs: 'soon' }), /power spec: checkinTimeoutMs: /);
  const d = powerDriverFor({ kind: 'manual' });
  assert.ok(d instanceof ManualPowerDriver);
  assert.equal(d.checkinTimeoutMs, 1_800_000, 'half an hour unless the spec says otherwise');
});

test('node power NODE cycle on a manual node prints the instructions, waits, and ends when the node checks in', async (t) => {
  const { dir, h, node } = await manualNode(t, ['power.instructions=rack 3, top switch']);
  const child = execa(process.execPath, [cliPath, 'node', 'power', String(node.id), 'cycle'], { cwd: dir, reject: false, timeout: 60_000 });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 30_000;
  while (!out.includes('waiting up to')) {
    assert.ok(Date.now() < deadline, `the CLI printed no instructions: ${out}`);
    assert.equal(child.exitCode, null, `the CLI ended before the check-in: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(out, /node \d+ \(cn12\) has no remote power control: switch it off and on again/);
  assert.match(out, /hostname cn12, serial SN-4711, rack b12, admin MAC 52:54:00:4d:00:01/);
  assert.match(out, /instructions: rack 3, top switch/);
  assert.match(out, /waiting up to 30m 00s for node \d+ to check in/);
  // Still waiting a while later: nothing has checked in.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(child.exitCode, null, 'still waiting without a check-in');
  assert.equal((await checkin(h)).status, 200);
  const r = await child;
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.match(String(r.stdout), new RegExp(`node ${node.id} checked in .* after the instructions\\nnode ${node.id}: cycle done; power unknown \\(manual\\)$`));
  // The timeline: the instructions, then the check-in that ended the wait.
  const events = h.head.store.events.timeline(node.id).filter((e) => e.event === 'power' || e.event === 'checkin');
  assert.deepEqual(events.slice(-2).map((e) => e.event), ['power', 'checkin']);
  assert.equal(events.at(-2)!.detail.driver, 'manual');
  assert.match(String(events.at(-2)!.detail.instructions), /rack 3, top switch/);
});

test('the wait ends with an error naming the node when no check-in comes in time; off does not wait', async (t) => {
  const { dir, node } = await manualNode(t, ['power.checkinTimeoutMs=1500']);
  const started = Date.now();
  const r = await runCli(['node', 'power', String(node.id), 'on'], dir);
  assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(String(r.stdout), /switch it on by hand/);
  assert.match(String(r.stderr), new RegExp(`node ${node.id}: no check-in from node ${node.id} within 2 s \\(power.checkinTimeoutMs\\)`));
  assert.ok(Date.now() - started >= 1500);
  const off = await runCli(['node', 'power', String(node.id), 'off', '--json'], dir);
  assert.equal(off.exitCode, 0, String(off.stderr));
  assert.match(String(off.stderr), /switch it off by hand/);
  assert.equal((JSON.parse(String(off.stdout)) as { state: string }).state, 'unknown');
});

test('registryCheckinWaiter: only a check-in recorded after the wait began counts; progress is reported', async (t) => {
  const { h, node } = await manualNode(t, []);
  const progress: number[] = [];
  const wait = registryCheckinWaiter(h.head.store, node.id, { pollMs: 50, progressEveryMs: 100, progress: (ms) => progress.push(ms) });
  // The registration check-in is older than the wait: it does not end it.
  await assert.rejects(wait(400), (err: Error) => err instanceof PowerError && /no check-in from node/.test(err.message));
  assert.ok(progress.length >= 2, `progress reported: ${progress.join(',')}`);
  const waiting = wait(10_000);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await checkin(h)).status, 200);
  await waiting;
});

test('POST /nodes/:id/power on a manual node answers 202 with the instructions at once', async (t) => {
  const { h, node } = await manualNode(t, ['power.instructions=ask the DC hands']);
  const started = Date.now();
  const res = await fetch(`${h.url}/api/v1/nodes/${node.id}/power`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${h.token}` },
    body: JSON.stringify({ action: 'cycle' }),
  });
  assert.equal(res.status, 202);
  const body = (await res.json()) as Record<string, unknown>;
  assert.ok(Date.now() - started < 5000);
  assert.equal(body.driver, 'manual');
  assert.equal(body.state, 'unknown');
  assert.match(String(body.instructions), /node \d+ \(cn12\) has no remote power control: .*\n.*serial SN-4711.*\n  instructions: ask the DC hands/);
  const status = await fetch(`${h.url}/api/v1/nodes/${node.id}/power`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${h.token}` },
    body: JSON.stringify({ action: 'status' }),
  });
  assert.equal(status.status, 200);
});

test("a rollout's reboot of a manual node records the instructions on the timeline and returns without waiting", async (t) => {
  const { h, node } = await manualNode(t, ['power.instructions=rack 3, top switch']);
  const lines: string[] = [];
  const log = createLogger('info', { write: (line: string) => void lines.push(line) });
  const ports = storeRolloutPorts(h.head.store, { moduleSecrets: () => ({ rootPassword: null, ntpHost: null }), log });
  const driver = ports.powerDriver(node.id, { rolloutId: 9, purpose: 'rollout' });
  const started = Date.now();
  await driver.powerCycle();
  assert.ok(Date.now() - started < 2000, 'no wait for a check-in: the orchestrator waits for it itself');
  const power = h.head.store.events.timeline(node.id).filter((e) => e.event === 'power');
  assert.equal(power.length, 1);
  assert.deepEqual({ ...power[0]!.detail, instructions: undefined }, { action: 'cycle', driver: 'manual', state: 'unknown', rollout: 9, purpose: 'rollout', instructions: undefined });
  assert.match(String(power[0]!.detail.instructions), /node \d+ \(cn12\).*\n.*rack b12, admin MAC 52:54:00:4d:00:01\n  instructions: rack 3, top switch/);
  // The head node's log tells the operator too, on a line carrying the node and its MAC.
  const warned = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'power_manual');
  assert.equal(warned.length, 1, lines.join(''));
  assert.equal(warned[0]!.node, node.id);
  assert.equal(warned[0]!.mac, '52:54:00:4d:00:01');
});
