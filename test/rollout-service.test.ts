// The rollout service in a real head node: a rollout started through the HTTP API, fake power
// drivers, check-ins posted to the real HTTP API, the real clock with a short deadline. A rollout of three nodes ends done; a node
// that comes up on the wrong platform is rolled back to the one it ran.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RolloutRecord } from '../src/rollout/journal.ts';
import { tempDir } from './fixtures.ts';
import { fakeFleet, platformA, platformB, type FakeFleet } from './rollout-fleet.ts';

/** A test that hangs (a check-in that never lands) fails instead of holding up the suite; CLI runs are slow under load. */
const TIMEOUT = 120_000;

/** Resolves when `check` holds, reading the journal each time the event loop turns; fails after `ms`. */
async function until<T>(what: string, check: () => T | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts a rollout as an operator's script would: POST /api/v1/rollouts. */
async function start(f: FakeFleet, spec: Record<string, unknown>): Promise<{ id: number }> {
  const res = await fetch(`${f.h.url}/api/v1/rollouts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${f.h.token}` },
    body: JSON.stringify(spec),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { rollout: { id: number } }).rollout;
}

/** A node's boot timeline as far as rollout `id` goes: each event with what it did. */
function story(f: FakeFleet, nodeId: number, id: number): [string, unknown][] {
  return f.h.head.store.events
    .timeline(nodeId)
    .filter((e) => e.detail.rollout === id)
    .map((e) => [e.event, e.event === 'platform' ? e.detail.reason : e.event === 'power' ? e.detail.action : e.detail.step]);
}

const finished = (f: FakeFleet, id: number) => (): RolloutRecord | undefined => {
  const r = f.h.head.store.rollouts.get(id)!;
  return ['done', 'failed', 'cancelled'].includes(r.state) ? r : undefined;
};

test('a three-node rollout reboots each node once, waits for its check-in on the target and ends done', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2', 'cn3']);
  const r = await start(f, { target: platformB, selector: 'all', canary: 1, afterCanary: 'continue', maxInFlight: 2, soakSeconds: 0, bootDeadlineSeconds: 10 });
  const end = await until('the rollout to finish', finished(f, r.id));
  assert.equal(end.state, 'done', end.reason ?? '');
  assert.equal(end.reason, '3 verified');
  const store = f.h.head.store;
  assert.deepEqual(store.rollouts.steps(r.id).map((s) => [s.label, s.state, s.previousPlatform]), [
    ['cn1', 'verified', platformA],
    ['cn2', 'verified', platformA],
    ['cn3', 'verified', platformA],
  ]);
  for (const name of ['cn1', 'cn2', 'cn3']) {
    const node = f.node(name);
    assert.deepEqual([node.bootPlatform, node.currentPlatform, node.previousPlatform, node.state], [platformB, platformB, platformA, 'running']);
    assert.equal(f.machines.get(name)!.cycles, 1, `${name} rebooted once`);
    // Its boot timeline tells the rollout's part: assigned, power cycled, verified.
    assert.deepEqual(story(f, node.id, r.id), [
      ['platform', 'rollout'],
      ['power', 'cycle'],
      ['rollout', 'verified'],
    ]);
  }
  assert.deepEqual(f.errors, []);
});

test('a node that checks in on the wrong platform is rolled back to what it ran, and the budget lets the rest go on', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2', 'cn3']);
  // cn2 comes up on lab-A whatever it is assigned (lab-B does not boot on it).
  f.machines.get('cn2')!.bootsInstead = platformA;
  const r = await start(f, { target: platformB, selector: 'all', canary: 0, maxInFlight: 1, soakSeconds: 0, bootDeadlineSeconds: 10, failureBudget: 1 });
  const end = await until('the rollout to finish', finished(f, r.id));
  assert.equal(end.state, 'done', end.reason ?? '');
  const steps = f.h.head.store.rollouts.steps(r.id);
  assert.deepEqual(steps.map((s) => [s.label, s.state]), [
    ['cn1', 'verified'],
    ['cn2', 'rolled_back'],
    ['cn3', 'verified'],
  ]);
  assert.match(steps[1]!.reason ?? '', /booted lab-A instead of lab-B/);
  const cn2 = f.node('cn2');
  assert.deepEqual([cn2.bootPlatform, cn2.currentPlatform], [platformA, platformA], 'assigned its old platform again');
  assert.equal(f.machines.get('cn2')!.cycles, 2, 'the upgrade reboot and the rollback reboot');
  assert.deepEqual(story(f, cn2.id, r.id), [
    ['platform', 'rollout'],
    ['power', 'cycle'],
    ['rollout', 'rolling_back'],
    ['platform', 'rollback'],
    ['power', 'cycle'],
    ['rollout', 'rolled_back'],
  ]);
  assert.deepEqual(f.errors, []);
});

test('a node that comes up with config modules other than the ones served is rolled back', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1']);
  f.machines.get('cn1')!.staleModulesOn = platformB;
  const r = await start(f, { target: platformB, selector: 'all', canary: 0, soakSeconds: 0, bootDeadlineSeconds: 10, failureBudget: 1 });
  const end = await until('the rollout to finish', finished(f, r.id));
  const [step] = f.h.head.store.rollouts.steps(r.id);
  assert.deepEqual([end.state, step!.state], ['done', 'rolled_back']);
  assert.match(step!.reason ?? '', /config modules differ from the ones fleetboot served/);
  assert.deepEqual([f.node('cn1').bootPlatform, f.node('cn1').currentPlatform], [platformA, platformA]);
});

test('a head node restarted mid-wave resumes from the journal: the node it rebooted is not rebooted again', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2']);
  // cn1 reboots but does not check in before the head node goes down.
  f.machines.get('cn1')!.silent = true;
  const r = await start(f, { target: platformB, selector: 'all', canary: 0, maxInFlight: 1, soakSeconds: 0, bootDeadlineSeconds: 30 });
  await until('cn1 to be power cycled', () => f.h.head.store.rollouts.steps(r.id)[0]!.state === 'power_cycled');
  await f.restart();
  assert.deepEqual(f.h.head.store.rollouts.steps(r.id).map((s) => s.state), ['power_cycled', 'pending']);
  // Now it comes up, checking in with the new head node.
  await f.boot('cn1');
  const end = await until('the rollout to finish', finished(f, r.id));
  assert.equal(end.state, 'done', end.reason ?? '');
  assert.deepEqual([f.machines.get('cn1')!.cycles, f.machines.get('cn2')!.cycles], [1, 1]);
  assert.deepEqual(f.errors, []);
});

test('a node that does not check in by its deadline is rolled back when the deadline comes, not at the next poll', { timeout: TIMEOUT }, async (t) => {
  // A poll too slow to matter: only the service's wake-up at the deadline and check-ins move the rollout.
  const f = await fakeFleet(t, tempDir(t), ['cn1'], { rolloutPollMs: 600_000 });
  f.machines.get('cn1')!.silentOn = platformB;
  const r = await start(f, { target: platformB, selector: 'all', canary: 0, soakSeconds: 0, bootDeadlineSeconds: 1, failureBudget: 1 });
  const end = await until('the rollout to finish', finished(f, r.id));
  const [step] = f.h.head.store.rollouts.steps(r.id);
  assert.deepEqual([end.state, step!.state], ['done', 'rolled_back']);
  assert.match(step!.reason ?? '', /not back on lab-B within 1 s of its reboot \(no check-in since the reboot\)/);
  assert.ok(step!.finishedAt! - step!.startedAt! < 30_000, 'judged at its deadline, not at the next poll');
  assert.deepEqual([f.node('cn1').bootPlatform, f.node('cn1').currentPlatform, f.machines.get('cn1')!.cycles], [platformA, platformA, 2]);
});
