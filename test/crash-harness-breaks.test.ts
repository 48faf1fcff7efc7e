// The kill -9 harness must fail on a fleetboot that breaks under SIGKILL: a rollout whose
// journal writes are not durable when the orchestrator acts (bench/crash/rollout-child.ts,
// FLEETBOOT_TEST_BREAK=journal-uncommitted). Its clean run passes; only the kills show it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatReports, runCrashHarness } from './crash-harness.ts';
import { tempDir, testNamespace } from './fixtures.ts';

test('kill -9 harness fails on a rollout journal that is not committed before the orchestrator acts', { timeout: 180_000 }, async (t) => {
  const previous = process.env.FLEETBOOT_TEST_BREAK;
  process.env.FLEETBOOT_TEST_BREAK = 'journal-uncommitted';
  t.after(() => {
    if (previous === undefined) delete process.env.FLEETBOOT_TEST_BREAK;
    else process.env.FLEETBOOT_TEST_BREAK = previous;
  });
  const seed = Math.floor(Math.random() * 2 ** 32);
  const reports = await runCrashHarness({ runs: 4, maxRunsForMidWork: 8, seed, scenarios: ['rollout-step'], workDir: tempDir(t, 'fleetboot-crash-break-'), namespace: testNamespace('crashbrk') });
  const summary = formatReports(reports, seed);
  t.diagnostic(summary);
  const [r] = reports;
  assert.ok(r);
  assert.ok((r.landed['mid-rollout'] ?? 0) > 0, `no kill landed mid-rollout: ${summary}`);
  const failed = Object.entries(r.failures);
  assert.ok(failed.length > 0, `the harness passed a journal that a kill rolls back: ${summary}`);
  // The run left alone (run 0) passes: the failures come from the kills.
  for (const [check, messages] of failed) for (const m of messages) assert.doesNotMatch(m, /^run 0/, `${check} failed without a kill: ${m}`);
});
