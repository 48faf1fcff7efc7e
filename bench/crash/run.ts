// The kill -9 bench: test/crash-harness.ts's scenarios, N runs each (docs/hardening.md "kill -9").
//   node --import tsx bench/crash/run.ts --runs 100 [--scenarios import-tarball,dhcp-burst] [--seed N]
// Prints the seed, a line per run, and per scenario: runs, kills, where they landed, records
// checked and failures by check. Exits 1 on any failure. dhcp-burst needs root (a network
// namespace of its own).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatReports, rootScenarios, runCrashHarness, scenarioNames, type ScenarioName } from '../../test/crash-harness.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100' },
    scenarios: { type: 'string', default: scenarioNames.join(',') },
    seed: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`--runs ${values.runs}: a whole number of runs, at least 1\n`);
  process.exit(2);
}
const wanted = values.scenarios.split(',').filter(Boolean);
const unknown = wanted.filter((s) => !(scenarioNames as readonly string[]).includes(s));
if (unknown.length > 0) {
  process.stderr.write(`--scenarios: unknown ${unknown.join(', ')} (known: ${scenarioNames.join(', ')})\n`);
  process.exit(2);
}
const scenarios = wanted as ScenarioName[];
const isRoot = process.getuid?.() === 0;
const needRoot = scenarios.filter((s) => rootScenarios.has(s));
if (needRoot.length > 0 && !isRoot) {
  process.stderr.write(`${needRoot.join(', ')}: needs root (a network namespace of its own)\n`);
  process.exit(2);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(values.seed);
if (!Number.isInteger(seed)) {
  process.stderr.write(`--seed ${values.seed}: a whole number\n`);
  process.exit(2);
}
process.stdout.write(`seed ${seed} (replay with --seed ${seed})\n`);
const workDir = mkdtempSync(join(tmpdir(), 'fleetboot-crash-'));
try {
  const reports = await runCrashHarness({
    runs,
    seed,
    scenarios,
    workDir,
    namespace: `fbt-${process.pid}-crash`,
    progress: values.quiet ? undefined : (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`${formatReports(reports, seed)}\n`);
  const failed = reports.some((r) => Object.keys(r.failures).length > 0);
  if (!failed) rmSync(workDir, { recursive: true, force: true });
  else process.stdout.write(`failed runs kept in ${workDir}\n`);
  process.exitCode = failed ? 1 : 0;
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
}
