// The kill -9 harness (test/crash-harness.ts) with a few runs per scenario, so a change that
// loses or half-writes a record under SIGKILL fails every `npm test`; bench/crash/run.ts runs
// the same scenarios hundreds of times (docs/hardening.md "kill -9").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatReports, rootScenarios, runCrashHarness, scenarioNames, type ScenarioName } from './crash-harness.ts';
import { tempDir, testNamespace } from './fixtures.ts';
import { requires } from './requires.ts';

// A head node's runs take seconds each (start, a burst or an index batch); the CLI's about one.
// Past these, kills are drawn again (up to maxRuns in all) until one lands mid-work.
const maxRuns = 8;
const runsOf: Record<ScenarioName, number> = { 'import-tarball': 3, 'import-folder': 3, 'dhcp-burst': 2, 'node-setup': 3, 'rollout-step': 3, 'event-indexing': 2 };

for (const scenario of scenarioNames) {
  const skip = rootScenarios.has(scenario) ? requires({ root: 'the head node runs in a network namespace', commands: ['ip'] }) : false;
  test(`kill -9 during ${scenario}: nothing lost or half-written after restart`, { skip, timeout: 180_000 }, async (t) => {
    const seed = Math.floor(Math.random() * 2 ** 32);
    const reports = await runCrashHarness({ runs: runsOf[scenario], maxRunsForMidWork: maxRuns, seed, scenarios: [scenario], workDir: tempDir(t, 'fleetboot-crash-'), namespace: testNamespace('crash') });
    const summary = formatReports(reports, seed);
    t.diagnostic(summary);
    const [r] = reports;
    assert.ok(r);
    assert.ok(r.runs >= runsOf[scenario] && r.runs <= maxRuns, `${r.runs} runs`);
    if (r.midWork !== null) assert.ok((r.landed[r.midWork] ?? 0) > 0, `no kill landed ${r.midWork} in ${r.runs} runs: ${summary}`);
    assert.deepEqual(r.failures, {}, summary);
    assert.ok(r.records > 0, `the checks looked at no record: ${summary}`);
  });
}
