// Node states driven by check-ins and the missed-check-in sweep, with a fake clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac, type Mac } from '../src/mac.ts';
import { retireNode, setNodeFields, setupNode, stateAfterCheckin } from '../src/nodeconfig/lifecycle.ts';
import { currentNodeToken, nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';

const mac = parseMac('52:54:00:cc:00:01')!;

function checkin(h: RunningHeadNode, token: string | null, platform: string, bootTime: number, m: Mac = mac): Promise<Response> {
  return fetch(`${h.url}/api/v1/nodes/checkin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ uuid: null, nics: [{ mac: m }], cpu: { model: 'x', count: 1 }, ramBytes: 1, platform, bootTime }),
  });
}

test('the state table: setting_up -> running only on the assigned platform; rebooting -> running; the rest wait for an operator', () => {
  const assigned = { bootPlatform: '20250101T000000Z' };
  assert.equal(stateAfterCheckin('setting_up', assigned, '20240101T000000Z'), 'setting_up');
  assert.equal(stateAfterCheckin('setting_up', assigned, '20250101T000000Z'), 'running');
  assert.equal(stateAfterCheckin('setting_up', { bootPlatform: null }, 'anything'), 'running');
  assert.equal(stateAfterCheckin('rebooting', assigned, '20240101T000000Z'), 'running');
  for (const s of ['discovered', 'running', 'failed', 'retired'] as const) assert.equal(stateAfterCheckin(s, assigned, 'x'), s);
});

test('check-ins move a node through its states, and a silent node turns unknown after unknownAfterSeconds (fake clock)', async (t) => {
  let now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const h = await startHeadNode(t, tempDir(t), { nodes: { unknownAfterSeconds: 600 } }, () => now);
  const store = h.head.store;
  store.db.prepare("INSERT INTO platforms (stamp, os, imported_at) VALUES ('20250101T000000Z', 'smartos', 0), ('20240101T000000Z', 'smartos', 0)").run();

  assert.equal((await checkin(h, null, '20240101T000000Z', 1000)).status, 201);
  let node = store.nodes.findByMac(mac)!;
  assert.equal(node.state, 'discovered');
  assert.equal(node.lastSeen, now);

  // A discovered node never checked in again stays out of the sweep until it goes silent.
  now += 599_000;
  assert.deepEqual(h.head.nodeSweeper.sweepOnce(), []);
  now += 2000;
  assert.deepEqual(h.head.nodeSweeper.sweepOnce().map((n) => n.id), [node.id]);
  assert.equal(store.nodes.get(node.id)!.state, 'unknown');
  // Back from unknown: to the state it had (discovered).
  assert.equal((await checkin(h, null, '20240101T000000Z', 1000)).status, 200);
  assert.equal(store.nodes.get(node.id)!.state, 'discovered');

  const keys = nodeKeysIn(h.head.config.dataDir);
  node = setupNode(store, keys, store.nodes.get(node.id)!, { network: { hostname: 'cn9', nics: [{ mac, tags: ['admin'] }] } });
  node = store.nodes.update(node.id, { bootPlatform: '20250101T000000Z' });
  const token = currentNodeToken(keys, node)!;
  assert.equal(node.state, 'setting_up');
  // Still running the old platform: stays setting_up.
  now += 1000;
  await checkin(h, token, '20240101T000000Z', 2000);
  assert.equal(store.nodes.get(node.id)!.state, 'setting_up');
  // Silent while setting up -> unknown -> checks in on the assigned platform -> running.
  now += 601_000;
  h.head.nodeSweeper.sweepOnce();
  assert.equal(store.nodes.get(node.id)!.state, 'unknown');
  now += 1000;
  await checkin(h, token, '20250101T000000Z', 3000);
  node = store.nodes.get(node.id)!;
  assert.equal(node.state, 'running');
  assert.equal(node.currentPlatform, '20250101T000000Z');
  assert.equal(node.lastBoot, 3_000_000);
  assert.equal(node.lastSeen, now);

  // An operator (or a rollout) marks it rebooting; its next check-in brings it back.
  node = setNodeFields(store, node, ['state=rebooting']);
  await checkin(h, token, '20250101T000000Z', 4000);
  assert.equal(store.nodes.get(node.id)!.state, 'running');

  // The timeline tells the story: every check-in and state change is an event.
  const events = store.events.timeline(node.id);
  assert.equal(events.filter((e) => e.event === 'checkin').length, 5);
  const changes = events.filter((e) => e.event === 'state').map((e) => `${String(e.detail.from)}>${String(e.detail.to)}`);
  assert.deepEqual(changes, [
    'discovered>unknown',
    'unknown>discovered',
    'discovered>setting_up',
    'setting_up>unknown',
    'unknown>running',
    'running>rebooting',
    'rebooting>running',
  ]);

  // Retired: the token stops working, the sweep leaves it alone.
  retireNode(store, store.nodes.get(node.id)!);
  assert.equal((await checkin(h, token, '20250101T000000Z', 5000)).status, 403);
  now += 10 * 601_000;
  assert.deepEqual(h.head.nodeSweeper.sweepOnce(), []);
  assert.equal(store.nodes.get(node.id)!.state, 'retired');
});

test('node set refuses unknown fields and operator-forbidden states without writing', async (t) => {
  const h = await startHeadNode(t, tempDir(t));
  const store = h.head.store;
  const node = store.nodes.discover({ mac }).node;
  assert.throws(() => setNodeFields(store, node, ['colour=blue']), /unknown field "colour"/);
  assert.throws(() => setNodeFields(store, node, ['traits.rack=b1', 'state=retired']), /state: expected one of/);
  assert.throws(() => setNodeFields(store, node, ['hostname=-bad']), /hostname: expected a host name label/);
  assert.throws(() => setNodeFields(store, node, ['bootarg.x=a b']), /cannot hold spaces/);
  assert.deepEqual(store.nodes.get(node.id)!.traits, {});
  const updated = setNodeFields(store, node, ['traits.rack=b1', 'bootarg.ipmi_console=ttyb', 'hostname=cn5']);
  assert.deepEqual(updated.traits, { rack: 'b1', 'bootarg.ipmi_console': 'ttyb' });
  assert.equal(updated.hostname, 'cn5');
  assert.deepEqual(setNodeFields(store, updated, ['traits.rack=']).traits, { 'bootarg.ipmi_console': 'ttyb' });
});
