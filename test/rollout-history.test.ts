// A head node keeps every rollout it ever ran: ticks must not grow with that history.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryRolloutJournal, type RolloutStep } from '../src/rollout/journal.ts';
import { RolloutOrchestrator } from '../src/rollout/orchestrator.ts';
import { sampleRollout } from './rollout-journal-contract.ts';

class CountingJournal extends MemoryRolloutJournal {
  readonly stepReads: number[] = [];
  override steps(rolloutId: number): RolloutStep[] {
    this.stepReads.push(rolloutId);
    return super.steps(rolloutId);
  }
}

test('a tick reads the steps of a rollout that is over once, then never again', async () => {
  const journal = new CountingJournal();
  const over = journal.create(sampleRollout());
  for (const s of journal.steps(over.id)) journal.updateStep(over.id, s.nodeId, 'pending', { state: 'verified', at: 2_000 });
  journal.updateRollout(over.id, 'running', { state: 'done', at: 2_000, reason: '3 verified' });
  const paused = journal.create(sampleRollout());
  journal.updateRollout(paused.id, 'running', { state: 'paused', at: 2_000 });
  const orchestrator = new RolloutOrchestrator(journal, {
    now: () => 3_000,
    observe: () => null,
    assignPlatform: () => undefined,
    powerDriver: () => {
      throw new Error('no reboots here');
    },
  });
  await orchestrator.tick();
  assert.ok(journal.stepReads.includes(over.id));
  journal.stepReads.length = 0;
  const result = await orchestrator.tick();
  assert.deepEqual(result, { transitions: 0, wakeAt: null });
  assert.ok(!journal.stepReads.includes(over.id), 'the finished rollout is not read again');
  assert.ok(journal.stepReads.includes(paused.id), 'a paused rollout may be resumed: it is still read');
});
