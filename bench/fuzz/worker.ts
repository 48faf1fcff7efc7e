// One TypeScript fuzz campaign on its own thread (bench/fuzz/run.ts starts it): the thread's
// own V8 isolate holds only the target's modules, so coverage reads stay small, and the main
// thread can stop a run that never returns (Worker.terminate interrupts running JavaScript).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { corpusDir, inputsIn, savedInputs } from '../../fuzz/corpus.ts';
import { fuzz, newCoverage, type Finding, type FuzzStats } from '../../fuzz/engine.ts';
import { seededRandom } from '../../fuzz/mutate.ts';
import { targets } from '../../fuzz/targets/index.ts';

export interface WorkerInput {
  target: string;
  runs: number;
  ms: number;
  timeoutMs: number;
  seed: number;
  /** New inputs go to <work>/<target>/. */
  work: string;
  /** Copy the work corpus's inputs that add coverage into fuzz/corpus/<target>/ afterwards. */
  saveCorpus: boolean;
  /** [execs, input length] then the input being run, for the watchdog. */
  current: SharedArrayBuffer;
}

export type WorkerMessage =
  | { type: 'stats'; stats: FuzzStats }
  | { type: 'finding'; finding: Omit<Finding, 'input'> & { input: Uint8Array } }
  | { type: 'done'; stats: FuzzStats; seeds: number; saved: number };

const input = workerData as WorkerInput;
const target = targets.find((t) => t.name === input.target);
if (!target) throw new Error(`no fuzz target ${input.target}`);
const post = (m: WorkerMessage): void => parentPort!.postMessage(m);

const header = new Int32Array(input.current, 0, 2);
const bytes = new Uint8Array(input.current, 8);
const workDir = join(input.work, target.name);
mkdirSync(workDir, { recursive: true });
const seeds = [...savedInputs(target.name), ...inputsIn(workDir)].map((s) => s.data);

const result = fuzz(target, seeds, {
  runs: input.runs,
  ms: input.ms,
  timeoutMs: input.timeoutMs,
  random: seededRandom(input.seed),
  onRun: (b) => {
    const n = Math.min(b.length, bytes.length);
    bytes.set(b.subarray(0, n));
    Atomics.store(header, 1, n);
    Atomics.add(header, 0, 1);
  },
  onNewInput: (b) => writeFileSync(join(workDir, createHash('sha1').update(b).digest('hex')), b),
  onFinding: (f) => post({ type: 'finding', finding: { ...f, input: new Uint8Array(f.input) } }),
  onStats: (stats) => post({ type: 'stats', stats }),
});
let saved = 0;
if (input.saveCorpus) {
  const committed = savedInputs(target.name).map((s) => s.data);
  for (const b of newCoverage(target, committed, inputsIn(workDir).map((s) => s.data))) {
    writeFileSync(join(corpusDir(target.name), createHash('sha1').update(b).digest('hex')), b);
    saved++;
  }
}
post({ type: 'done', stats: result.stats, seeds: seeds.length, saved });
