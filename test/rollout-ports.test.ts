// The orchestrator's ports over the registry, and the guard on manual platform assignments:
// what a rollout sees of a node, what its effects leave on the node's timeline, and that an
// operator's set-platform does not race a rollout that still has the node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultNtpHost } from '../src/nodeconfig/render.ts';
import { rootPassword, nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { pauseRollout, startRollout } from '../src/rollout/orchestrator.ts';
import { parseRolloutSpec, planRollout } from '../src/rollout/plan.ts';
import { observeNode, storeRolloutPorts, type StorePortsOptions } from '../src/rollout/ports.ts';
import { runCli, tempDir } from './fixtures.ts';
import { fakeFleet, platformA, platformB, type FakeFleet } from './rollout-fleet.ts';

/** A test that hangs (a check-in that never lands) fails instead of holding up the suite; CLI runs are slow under load. */
const TIMEOUT = 180_000;

function portOptions(f: FakeFleet): StorePortsOptions {
  const keys = nodeKeysIn(f.h.head.config.dataDir);
  return { moduleSecrets: (node) => ({ rootPassword: rootPassword(keys, node), ntpHost: defaultNtpHost(f.h.head.config) }) };
}

async function post(f: FakeFleet, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${f.h.url}/api/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${f.h.token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('observe: the check-in fields, and whether the modules the node reported are the ones fleetboot serves it now', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1']);
  const store = f.h.head.store;
  const node = f.node('cn1');
  const obs = observeNode(node, portOptions(f));
  assert.deepEqual(obs, { bootPlatform: platformA, currentPlatform: platformA, lastBoot: node.lastBoot, lastSeen: node.lastSeen, modulesMatch: true });
  assert.ok(obs.lastSeen !== null && obs.lastBoot !== null);
  // A new network changes networking.json: what the node booted with is stale until it boots again.
  store.nodes.update(node.id, { networkConfig: { ...(node.networkConfig as Record<string, unknown>), dnsDomain: 'lab.example' } });
  assert.equal(observeNode(f.node('cn1'), portOptions(f)).modulesMatch, false);
  await f.boot('cn1');
  assert.equal(observeNode(f.node('cn1'), portOptions(f)).modulesMatch, true);
  // A node never set up is served no modules: nothing to differ.
  const bare = store.nodes.discover({ mac: '52:54:00:77:00:99' as never }).node;
  assert.equal(storeRolloutPorts(store, portOptions(f)).observe(bare.id)!.modulesMatch, true);
  assert.equal(storeRolloutPorts(store, portOptions(f)).observe(9999), null);
});

test('assignPlatform and powerDriver: boot events carry the rollout; an unchanged platform is no event; no power settings throws before any reboot', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1']);
  const store = f.h.head.store;
  const ports = storeRolloutPorts(store, { ...portOptions(f), driverFor: () => ({ kind: 'fake', powerCycle: async () => undefined, powerOff: async () => undefined, powerOn: async () => undefined, status: async () => 'on' }) });
  const id = f.node('cn1').id;
  await ports.assignPlatform(id, platformB, { rolloutId: 4, purpose: 'rollout' });
  await ports.assignPlatform(id, platformB, { rolloutId: 4, purpose: 'rollout' });
  await ports.powerDriver(id, { rolloutId: 4, purpose: 'rollout' }).powerCycle();
  await ports.assignPlatform(id, null, { rolloutId: 4, purpose: 'rollback' });
  const events = store.events.timeline(id).filter((e) => e.event === 'platform' || e.event === 'power').slice(-3);
  assert.deepEqual(events.map((e) => e.detail), [
    { from: platformA, to: platformB, previous: platformA, reason: 'rollout', rollout: 4 },
    { action: 'cycle', driver: 'fake', state: 'on', rollout: 4, purpose: 'rollout' },
    { from: platformB, to: null, previous: platformB, reason: 'rollback', rollout: 4 },
  ]);
  assert.equal(f.node('cn1').bootPlatform, null, 'null assigns the default platform');
  store.nodes.update(id, { power: null });
  assert.throws(() => ports.powerDriver(id, { rolloutId: 4, purpose: 'rollout' }), /has no power settings/);
});

test('set-platform on a node a rollout still has is refused (HTTP 409, CLI exit 2) unless forced; node show names the rollout', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const f = await fakeFleet(t, dir, ['cn1', 'cn2']);
  const store = f.h.head.store;
  const plan = planRollout(parseRolloutSpec({ target: platformB, selector: 'cn1', canary: 0 }), store.nodes.list(), store.platforms.list());
  // Paused in the same turn of the event loop it starts in: the service never moves it.
  const r = startRollout(store.rollouts, plan, store.now());
  pauseRollout(store.rollouts, r.id, store.now());

  const refused = await post(f, '/nodes/cn1/platform', { stamp: platformB });
  assert.equal(refused.status, 409);
  assert.match(String((refused.json.error as { message: string }).message), new RegExp(`node ${f.node('cn1').id} is in rollout ${r.id} \\(paused, its step pending\\).*--force`));
  assert.equal(f.node('cn1').bootPlatform, platformA);
  const cli = await runCli(['node', 'set-platform', 'cn1', platformB], dir);
  assert.equal(cli.exitCode, 2);
  assert.match(String(cli.stderr), new RegExp(`^fleetboot: node \\d+ is in rollout ${r.id}`));
  // Another node, not in the rollout, is not held.
  assert.equal((await post(f, '/nodes/cn2/platform', { stamp: platformB })).status, 200);

  const show = await runCli(['node', 'show', 'cn1'], dir);
  assert.match(String(show.stdout), new RegExp(`\\n  rollout:   ${r.id} to ${platformB} \\(paused\\), wave 1, step pending\\n`));
  const showJson = JSON.parse(String((await runCli(['node', 'show', 'cn2', '--json'], dir)).stdout)) as { rollout: unknown };
  assert.equal(showJson.rollout, null);

  assert.equal((await post(f, '/nodes/cn1/platform', { stamp: platformB, force: 'yes' })).status, 400);
  const forced = await runCli(['node', 'set-platform', 'cn1', platformB, '--force'], dir);
  assert.equal(forced.exitCode, 0, String(forced.stderr));
  assert.equal(f.node('cn1').bootPlatform, platformB);
  const viaHttp = await post(f, '/nodes/cn1/platform', { stamp: platformA, force: true });
  assert.equal(viaHttp.status, 200);
});
