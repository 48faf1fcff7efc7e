// What every RolloutJournal must do, as tests any implementation can run: the in-memory one
// here, the SQLite one through the same function.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NewRollout, RolloutJournal } from '../src/rollout/journal.ts';
import { parseRolloutSpec } from '../src/rollout/plan.ts';

export const sampleRollout = (createdAt = 1_000): NewRollout => ({
  spec: parseRolloutSpec({ target: '20240601T000000Z', selector: 'rack=b12', maxInFlight: '50%', failureDomain: { trait: 'rack' } }),
  target: '20240601T000000Z',
  maxInFlight: 2,
  failureDomain: { trait: 'rack', maxInFlight: 1 },
  createdAt,
  steps: [
    { nodeId: 7, label: 'cn7', wave: 1, canary: true, domain: 'b12' },
    { nodeId: 3, label: 'cn3', wave: 2, canary: false, domain: 'b12' },
    { nodeId: 5, label: 'cn5', wave: 2, canary: false, domain: '(none)' },
  ],
});

/** Registers the contract's tests for journals made by `make` (each test gets a new, empty one). */
export function rolloutJournalContract(name: string, make: () => RolloutJournal): void {
  test(`${name}: a new rollout is running with its steps pending, in plan order`, () => {
    const j = make();
    const input = sampleRollout();
    const r = j.create(input);
    assert.deepEqual(r, {
      id: r.id,
      spec: input.spec,
      target: input.target,
      maxInFlight: 2,
      failureDomain: { trait: 'rack', maxInFlight: 1 },
      state: 'running',
      reason: null,
      promotedAt: null,
      acceptedFailures: 0,
      createdAt: 1_000,
      updatedAt: 1_000,
    });
    assert.deepEqual(j.get(r.id), r);
    assert.deepEqual(
      j.steps(r.id).map((s) => [s.nodeId, s.label, s.wave, s.canary, s.domain, s.state, s.previousPlatform, s.previousRunning, s.rebootAt, s.reason, s.startedAt, s.finishedAt, s.updatedAt]),
      [
        [7, 'cn7', 1, true, 'b12', 'pending', null, null, null, null, null, null, 1_000],
        [3, 'cn3', 2, false, 'b12', 'pending', null, null, null, null, null, null, 1_000],
        [5, 'cn5', 2, false, '(none)', 'pending', null, null, null, null, null, null, 1_000],
      ],
    );
    assert.ok(j.steps(r.id).every((s) => s.rolloutId === r.id));
  });

  test(`${name}: rollouts are listed by id, and an unknown one has no record and no steps`, () => {
    const j = make();
    const a = j.create(sampleRollout(1));
    const b = j.create(sampleRollout(2));
    assert.ok(b.id > a.id);
    assert.deepEqual(j.list().map((r) => r.id), [a.id, b.id]);
    assert.equal(j.get(b.id + 100), undefined);
    assert.deepEqual(j.steps(b.id + 100), []);
  });

  test(`${name}: a step write applies only from the state it expects, and sets only the fields it names`, () => {
    const j = make();
    const r = j.create(sampleRollout());
    assert.equal(j.updateStep(r.id, 3, 'assigned', { state: 'power_cycling', at: 2_000 }), false);
    assert.equal(j.steps(r.id)[1]!.state, 'pending');
    assert.equal(j.updateStep(r.id, 3, 'pending', { state: 'assigned', at: 2_000, startedAt: 2_000, previousPlatform: 'old', previousRunning: 'old' }), true);
    assert.equal(j.updateStep(r.id, 3, 'assigned', { state: 'power_cycling', at: 2_500, rebootAt: 2_500, reason: undefined }), true);
    const s = j.steps(r.id)[1]!;
    assert.deepEqual([s.state, s.startedAt, s.previousPlatform, s.previousRunning, s.rebootAt, s.reason, s.updatedAt], ['power_cycling', 2_000, 'old', 'old', 2_500, null, 2_500]);
    // null clears a field.
    assert.equal(j.updateStep(r.id, 3, 'power_cycling', { state: 'rolling_back', at: 3_000, rebootAt: null, reason: 'no power driver' }), true);
    assert.deepEqual([j.steps(r.id)[1]!.rebootAt, j.steps(r.id)[1]!.reason], [null, 'no power driver']);
    // Other steps and rollouts are untouched; an unknown step is no write.
    assert.equal(j.steps(r.id)[0]!.state, 'pending');
    assert.equal(j.updateStep(r.id, 99, 'pending', { state: 'assigned', at: 3_000 }), false);
  });

  test(`${name}: a rollout write applies only from the state it expects`, () => {
    const j = make();
    const r = j.create(sampleRollout());
    assert.equal(j.updateRollout(r.id, 'paused', { state: 'running', at: 2_000 }), false);
    assert.equal(j.updateRollout(r.id, 'running', { state: 'paused', at: 2_000, reason: 'paused by an operator' }), true);
    assert.equal(j.updateRollout(r.id, 'running', { state: 'cancelled', at: 2_100 }), false);
    assert.equal(j.updateRollout(r.id, 'paused', { state: 'running', at: 3_000, reason: null, acceptedFailures: 2, promotedAt: 2_900 }), true);
    const got = j.get(r.id)!;
    assert.deepEqual([got.state, got.reason, got.acceptedFailures, got.promotedAt, got.updatedAt, got.createdAt], ['running', null, 2, 2_900, 3_000, 1_000]);
  });

  test(`${name}: records handed out are copies`, () => {
    const j = make();
    const r = j.create(sampleRollout());
    const got = j.get(r.id)!;
    got.state = 'done';
    got.spec.failureBudget = 99;
    j.steps(r.id)[0]!.state = 'verified';
    assert.equal(j.get(r.id)!.state, 'running');
    assert.equal(j.get(r.id)!.spec.failureBudget, 0);
    assert.equal(j.steps(r.id)[0]!.state, 'pending');
  });
}
