// The rollout routes of the admin API on a running head node with fake power drivers: a dry
// run, a start, and the operator verbs carrying a canary rollout through promote to done.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RolloutView } from '../src/rollout/verbs.ts';
import { tempDir } from './fixtures.ts';
import { fakeFleet, platformB, type FakeFleet } from './rollout-fleet.ts';

/** A test that hangs (a check-in that never lands) fails instead of holding up the suite; CLI runs are slow under load. */
const TIMEOUT = 120_000;

async function call(f: FakeFleet, method: string, path: string, body?: unknown, token = f.h.token): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${f.h.url}/api/v1${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const message = (r: { json: Record<string, unknown> }): string => (r.json.error as { message: string }).message;

/** Polls GET /rollouts/:id until `state`; fails after 60 s. */
async function untilState(f: FakeFleet, id: number, state: string): Promise<RolloutView> {
  const end = Date.now() + 60_000;
  for (;;) {
    const r = (await call(f, 'GET', `/rollouts/${id}`)).json.rollout as RolloutView;
    if (r.state === state) return r;
    if (Date.now() > end) throw new Error(`rollout ${id} still ${r.state} (${r.reason ?? ''}), not ${state}`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

test('POST /rollouts/plan is a dry run; a bad spec is a 400 naming the field; the routes need the token', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2', 'cn3'], { traits: { cn1: { rack: 'b12' }, cn2: { rack: 'b12' }, cn3: { rack: 'b13' } } });
  const plan = await call(f, 'POST', '/rollouts/plan', { target: platformB, selector: 'all', canary: 1, maxInFlight: 2, failureDomain: { trait: 'rack' } });
  assert.equal(plan.status, 200, JSON.stringify(plan.json));
  const waves = (plan.json.plan as { waves: { canary: boolean; nodes: { label: string }[] }[] }).waves;
  assert.deepEqual(waves.map((w) => [w.canary, w.nodes.map((n) => n.label)]), [
    [true, ['cn1']],
    [false, ['cn2', 'cn3']],
  ]);
  assert.deepEqual((await call(f, 'GET', '/rollouts')).json, { rollouts: [] });
  assert.equal(f.node('cn1').bootPlatform, 'lab-A');

  const bad = await call(f, 'POST', '/rollouts', { target: platformB, selector: 'all', canary: 5 });
  assert.equal(bad.status, 400);
  assert.match(message(bad), /^canary: 5 canaries but only 3 nodes to upgrade/);
  assert.match(message(await call(f, 'POST', '/rollouts/plan', { target: platformB, selector: 'all', soakSeconds: 'soon' })), /^soakSeconds: /);
  assert.match(message(await call(f, 'POST', '/rollouts/plan', { selector: 'all' })), /^target: /);
  assert.equal((await call(f, 'GET', '/rollouts', undefined, 'wrong')).status, 401);
  assert.equal((await call(f, 'GET', '/rollouts/1')).status, 404);
});

test('POST /rollouts starts one the head node carries out; pause, resume and promote steer it to done; wrong verbs are 409 or 404', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2', 'cn3']);
  const started = await call(f, 'POST', '/rollouts', { target: platformB, selector: 'all', canary: 1, maxInFlight: 2, soakSeconds: 0, bootDeadlineSeconds: 10, afterCanary: 'promote' });
  assert.equal(started.status, 201, JSON.stringify(started.json));
  const id = (started.json.rollout as RolloutView).id;
  assert.deepEqual((started.json.rollout as RolloutView).steps!.map((s) => [s.label, s.wave, s.canary]), [
    ['cn1', 1, true],
    ['cn2', 2, false],
    ['cn3', 2, false],
  ]);

  const waiting = await untilState(f, id, 'waiting_promote');
  assert.deepEqual(waiting.steps!.map((s) => s.state), ['verified', 'pending', 'pending']);
  assert.match(waiting.reason ?? '', /canaries verified \(cn1\); waiting for `fleetboot rollout promote/);
  const listed = (await call(f, 'GET', '/rollouts')).json.rollouts as RolloutView[];
  assert.deepEqual(listed.map((r) => [r.id, r.state, r.summary.verified, r.steps]), [[id, 'waiting_promote', 1, undefined]]);

  const paused = await call(f, 'POST', `/rollouts/${id}/pause`);
  assert.equal(paused.status, 200);
  assert.equal((paused.json.rollout as RolloutView).state, 'paused');
  const pausedAgain = await call(f, 'POST', `/rollouts/${id}/pause`);
  assert.equal(pausedAgain.status, 409);
  assert.match(message(pausedAgain), /is paused; only a running rollout can be paused/);
  assert.equal((await call(f, 'POST', `/rollouts/${id}/promote`)).status, 409);
  assert.equal((await call(f, 'POST', `/rollouts/${id}/resume`)).status, 200);
  await untilState(f, id, 'waiting_promote');
  assert.equal((await call(f, 'POST', `/rollouts/${id}/promote`)).status, 200);

  const done = await untilState(f, id, 'done');
  assert.deepEqual(done.steps!.map((s) => [s.label, s.state]), [
    ['cn1', 'verified'],
    ['cn2', 'verified'],
    ['cn3', 'verified'],
  ]);
  assert.equal(done.reason, '3 verified');
  assert.equal(typeof done.promotedAt, 'string');
  // The next plan estimates boots from how long these took, not from the deadline.
  const next = (await call(f, 'POST', '/rollouts/plan', { target: 'lab-A', selector: 'all', canary: 0 })).json.plan as { estimate: { bootSeconds: number; bootSecondsFrom: string } };
  assert.deepEqual([next.estimate.bootSecondsFrom, next.estimate.bootSeconds], ['observed', 1]);
  assert.equal((await call(f, 'POST', `/rollouts/${id}/cancel`)).status, 409);
  assert.equal((await call(f, 'POST', `/rollouts/${id}/explode`)).status, 404);
  assert.equal((await call(f, 'POST', '/rollouts/99/pause')).status, 404);
  assert.deepEqual(f.errors, []);
});

test('POST /rollouts/:id/cancel while waiting for promote: the waves never start', { timeout: TIMEOUT }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2']);
  const started = await call(f, 'POST', '/rollouts', { target: platformB, selector: 'all', canary: 1, soakSeconds: 0, bootDeadlineSeconds: 10 });
  const id = (started.json.rollout as RolloutView).id;
  await untilState(f, id, 'waiting_promote');
  const cancelled = await call(f, 'POST', `/rollouts/${id}/cancel`);
  assert.equal(cancelled.status, 200);
  assert.equal((cancelled.json.rollout as RolloutView).state, 'cancelled');
  await f.h.head.rollouts.tick();
  assert.deepEqual(f.h.head.store.rollouts.steps(id).map((s) => s.state), ['verified', 'pending']);
  assert.equal(f.machines.get('cn2')!.cycles, 0);
  assert.equal(f.node('cn2').bootPlatform, 'lab-A');
});
