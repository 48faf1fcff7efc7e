// Every saved fuzz input (fuzz/corpus/<target>/: seeds captured from udhcpc, OVMF, iPXE,
// atftp and curl, and inputs campaigns kept for reaching new code; fuzz/crashes/<target>/:
// inputs that once broke a property) is run through its target again: each must hold the
// target's properties, quickly. The native addons' libFuzzer harnesses are built with ASan
// and UBSan and replay theirs too. bench/fuzz runs the campaigns that grow these folders.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { corpusDir, crashesDir, inputsIn, nativeTargets, savedInputs } from '../fuzz/corpus.ts';
import { fuzz } from '../fuzz/engine.ts';
import { seededRandom } from '../fuzz/mutate.ts';
import { targets } from '../fuzz/targets/index.ts';
import { selftest } from '../fuzz/targets/selftest.ts';
import { repoRoot } from './fixtures.ts';
import { requires } from './requires.ts';

const run = promisify(execFile);
/** Far above any one run of these codecs; a run past it is a hang the replay catches. */
const perInputMs = 2000;

for (const target of targets) {
  test(`fuzz replay ${target.name}: every corpus and crash input holds its properties`, () => {
    const inputs = savedInputs(target.name);
    assert.ok(inputsIn(corpusDir(target.name)).length > 0, `fuzz/corpus/${target.name}/ holds no seeds`);
    for (const { path, data } of inputs) {
      const t0 = performance.now();
      assert.doesNotThrow(() => target.run(data), `${path}`);
      const ms = performance.now() - t0;
      assert.ok(ms < perInputMs, `${path} took ${ms.toFixed(0)} ms`);
    }
  });
}

test('the fuzzing engine follows coverage: it finds a 5-byte magic that blind mutation would not', () => {
  const r = fuzz(selftest, [Buffer.from('hello')], { runs: 1_000_000, ms: 60_000, timeoutMs: 1000, random: seededRandom(7), stopAtFinding: true });
  assert.equal(r.findings.length, 1, `no finding after ${r.stats.execs} runs (corpus ${r.stats.corpus})`);
  assert.match(r.findings[0]!.message, /found the magic/);
  assert.equal(r.findings[0]!.input.subarray(0, 5).toString('latin1'), 'FUZZ!');
});

const clang = requires({ commands: ['clang', '/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a'] });

/** The harnesses, built once for the tests below (fuzz/native/build.sh), removed after the last. */
let binDir: string | null = null;
let built: Promise<string> | null = null;
after(() => {
  if (binDir) rmSync(binDir, { recursive: true, force: true });
});
function harnesses(): Promise<string> {
  if (!built) {
    const bin = (binDir = mkdtempSync(join(tmpdir(), 'fleetboot-fuzz-')));
    built = run('bash', [join(repoRoot, 'fuzz', 'native', 'build.sh'), bin], { timeout: 300_000 }).then(() => bin);
  }
  return built;
}

for (const name of nativeTargets) {
  // dhcp_io_fuzz enters a network namespace of its own (unshare), which needs root.
  const skip = clang || (name === 'dhcp_io_fuzz' && requires({ root: 'dhcp_io_fuzz runs in a network namespace of its own (unshare)' }));
  test(`fuzz replay ${name}: the libFuzzer harness (ASan, UBSan) runs every saved input cleanly`, { skip }, async () => {
    const bin = await harnesses();
    const dirs = [corpusDir(name), crashesDir(name)].filter((d) => inputsIn(d).length > 0);
    const files = dirs.reduce((n, d) => n + inputsIn(d).length, 0);
    assert.ok(inputsIn(corpusDir(name)).length > 0, `fuzz/corpus/${name}/ holds no seeds`);
    // -runs=0: run the corpus once and stop; a crash or sanitizer report exits non-zero.
    const r = await run(join(bin, name), ['-runs=0', '-timeout=10', ...dirs], { timeout: 120_000 }).catch((err: Error & { stderr?: string }) =>
      assert.fail(`${name} failed on a saved input:\n${(err.stderr || err.message).split('\n').slice(-40).join('\n')}`),
    );
    assert.match(r.stderr, new RegExp(`INFO: seed corpus: files: ${files} `), `${name} did not read the ${files} saved inputs`);
    assert.match(r.stderr, /INITED|Done 0 runs|DONE/, r.stderr);
  });
}
