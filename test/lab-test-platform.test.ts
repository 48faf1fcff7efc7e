// The platform `lab up` boots when given no --platform: test platform A, built on first use
// with the build's own output shown, and not rebuilt once it is there. A stand-in build script
// keeps this quick and rootless; test/e2e/lab-up-default.test.ts runs the real one.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LabError } from '../src/lab/errors.ts';
import { ensureTestPlatform, testPlatformDir } from '../src/lab/test-platform.ts';
import { tempDir } from './fixtures.ts';

/** A build script that takes the real one's flags, logs its runs and writes platform.json. */
function stubScript(dir: string, exitCode = 0): string {
  const script = join(dir, 'build.sh');
  writeFileSync(
    script,
    `set -e
version=$2 build=$4
echo run >>"${join(dir, 'runs')}"
echo "stub: downloading a kernel" >&2
[ ${exitCode} = 0 ] || { echo "stub: boom" >&2; exit ${exitCode}; }
mkdir -p "$build/platforms/fleetboot-test-$version"
echo '{}' >"$build/platforms/fleetboot-test-$version/platform.json"
echo "$build/platforms/fleetboot-test-$version"
`,
  );
  return script;
}

test('with no platform built, the test platform is built once, its output shown as progress; then it is reused', async (t) => {
  const dir = tempDir(t);
  const buildDir = join(dir, 'lab-build');
  const script = stubScript(dir);
  const lines: string[] = [];
  const got = await ensureTestPlatform({ buildDir, script, progress: (l) => lines.push(l) });
  assert.equal(got, testPlatformDir('A', buildDir));
  assert.ok(existsSync(join(got, 'platform.json')));
  assert.match(lines[0] ?? '', /no --platform given .* building test platform A/);
  assert.ok(lines.includes('  stub: downloading a kernel'), `the build's stderr is shown: ${JSON.stringify(lines)}`);
  assert.ok(lines.includes(`  ${got}`), "and its stdout");

  const again: string[] = [];
  assert.equal(await ensureTestPlatform({ buildDir, script, progress: (l) => again.push(l) }), got);
  assert.deepEqual(again, [], 'a built platform is used as it is');
  assert.equal(readFileSync(join(dir, 'runs'), 'utf8'), 'run\n');
});

test('a failed build is a LabError carrying the end of its output', async (t) => {
  const dir = tempDir(t);
  const script = stubScript(dir, 3);
  await assert.rejects(
    ensureTestPlatform({ buildDir: join(dir, 'lab-build'), script, progress: () => undefined }),
    (err: unknown) => err instanceof LabError && /exit 3/.test(err.message) && /stub: boom/.test(err.message),
  );
  await assert.rejects(
    ensureTestPlatform({ buildDir: join(dir, 'lab-build'), script: join(dir, 'missing.sh'), progress: () => undefined }),
    (err: unknown) => err instanceof LabError && /pass --platform DIR/.test(err.message),
  );
});
