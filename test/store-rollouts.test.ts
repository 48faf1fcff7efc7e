// The SQLite rollout journal: the same contract as the in-memory one, plus what only a file
// gives: a journal reopened after a restart (or by the CLI in another process) sees every write.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { Store } from '../src/store/store.ts';
import { rolloutJournalContract, sampleRollout } from './rollout-journal-contract.ts';
import { tempDir } from './fixtures.ts';

const open: Store[] = [];
test.after(() => {
  for (const s of open) s.close();
});

rolloutJournalContract('sqlite journal', () => {
  const store = Store.open(':memory:');
  open.push(store);
  return store.rollouts;
});

test('sqlite journal: a journal reopened from the same file (a head-node restart) sees every rollout and step write', (t) => {
  const file = join(tempDir(t), 'fleetboot.db');
  const first = Store.open(file);
  const r = first.rollouts.create(sampleRollout());
  assert.equal(first.rollouts.updateStep(r.id, 7, 'pending', { state: 'assigned', at: 2_000, startedAt: 2_000, previousPlatform: null, previousRunning: 'old' }), true);
  assert.equal(first.rollouts.updateStep(r.id, 7, 'assigned', { state: 'power_cycling', at: 2_100, rebootAt: 2_100 }), true);
  assert.equal(first.rollouts.updateRollout(r.id, 'running', { state: 'paused', at: 2_200, reason: 'paused by an operator' }), true);
  const before = { rollout: first.rollouts.get(r.id), steps: first.rollouts.steps(r.id) };
  first.close();

  const second = Store.open(file);
  t.after(() => second.close());
  assert.deepEqual({ rollout: second.rollouts.get(r.id), steps: second.rollouts.steps(r.id) }, before);
  assert.deepEqual(second.rollouts.list().map((x) => [x.id, x.state, x.reason]), [[r.id, 'paused', 'paused by an operator']]);
  const s = second.rollouts.steps(r.id)[0]!;
  assert.deepEqual([s.state, s.rebootAt, s.previousRunning, s.startedAt], ['power_cycling', 2_100, 'old', 2_000]);
  // The compare-and-set still holds against what the first process wrote.
  assert.equal(second.rollouts.updateStep(r.id, 7, 'assigned', { state: 'power_cycling', at: 3_000 }), false);
  assert.equal(second.rollouts.create(sampleRollout(4_000)).id, r.id + 1);
});

test('sqlite journal: two connections to one file (head node and CLI) never both win a compare-and-set', (t) => {
  const file = join(tempDir(t), 'fleetboot.db');
  const head = Store.open(file);
  const cli = Store.open(file);
  t.after(() => {
    head.close();
    cli.close();
  });
  const r = head.rollouts.create(sampleRollout());
  assert.equal(cli.rollouts.updateRollout(r.id, 'running', { state: 'cancelled', at: 2_000, reason: 'cancelled by an operator' }), true);
  assert.equal(head.rollouts.updateRollout(r.id, 'running', { state: 'done', at: 2_001, reason: '3 verified' }), false);
  assert.equal(head.rollouts.get(r.id)!.state, 'cancelled');
});

test('a platform is held by a rollout only while the rollout may still boot it: its target until over, a rollback target while in flight', () => {
  const store = Store.open(':memory:');
  open.push(store);
  for (const stamp of ['old', '20240601T000000Z', 'spare']) store.platforms.insert({ stamp, os: 'linux', version: null, files: [], size: 0, kernelArgs: null }, () => undefined, () => undefined);
  const remove = (stamp: string) => store.platforms.remove(stamp, { force: false }, () => undefined);
  const r = store.rollouts.create(sampleRollout());
  assert.throws(() => remove('20240601T000000Z'), new RegExp(`in use by rollout ${r.id}; cancel it`));
  store.rollouts.updateStep(r.id, 7, 'pending', { state: 'assigned', at: 2_000, previousPlatform: 'old' });
  store.rollouts.updateRollout(r.id, 'running', { state: 'cancelled', at: 2_100 });
  // Cancelled, but cn7 is in flight: the target may still boot, and 'old' is its way back.
  assert.throws(() => remove('20240601T000000Z'), /in use by rollout/);
  assert.throws(() => remove('old'), /in use by rollout/);
  remove('spare');
  store.rollouts.updateStep(r.id, 7, 'assigned', { state: 'reverting', at: 2_200 });
  store.rollouts.updateStep(r.id, 7, 'reverting', { state: 'reverted', at: 2_300 });
  // Over: the history names both, and neither is held.
  remove('old');
  remove('20240601T000000Z');
  assert.deepEqual(store.platforms.list(), []);
  assert.equal(store.rollouts.get(r.id)!.target, '20240601T000000Z');
});

test('the change stamp moves on every step write, two in one millisecond too, and is index lookups rather than scans', () => {
  const store = Store.open(':memory:');
  try {
    const r = store.rollouts.create(sampleRollout(1_000));
    const stamps = [store.rollouts.changeStamp()];
    assert.equal(store.rollouts.updateStep(r.id, 7, 'pending', { state: 'assigned', at: 2_000, startedAt: 2_000, previousPlatform: null, previousRunning: null }), true);
    stamps.push(store.rollouts.changeStamp());
    // Another step written in the same millisecond.
    assert.equal(store.rollouts.updateStep(r.id, 3, 'pending', { state: 'assigned', at: 2_000, startedAt: 2_000, previousPlatform: null, previousRunning: null }), true);
    stamps.push(store.rollouts.changeStamp());
    assert.equal(new Set(stamps).size, 3, stamps.join(' '));
    const plan = (sql: string): string => store.db.prepare<[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`).all().map((p) => p.detail).join('; ');
    assert.match(plan('SELECT max(updated_at) FROM rollout_steps'), /USING COVERING INDEX rollout_steps_updated_at/);
    assert.match(plan('SELECT count(*) FROM rollout_steps WHERE updated_at = 5'), /USING COVERING INDEX rollout_steps_updated_at/);
  } finally {
    store.close();
  }
});
