// Fuzzing campaigns, one target at a time (not part of npm test): the TypeScript targets
// (fuzz/targets, coverage-guided by fuzz/engine.ts on a worker thread) and the native addons'
// libFuzzer harnesses (fuzz/native, built with ASan and UBSan). Prints, per target,
// executions, executions per second, coverage, corpus, crashes, hangs and sanitizer reports.
//   node --import tsx bench/fuzz/run.ts [--seconds 60] [--runs N] [--targets dhcp-packet,tftp_data_fuzz]
//        [--seed 1] [--work DIR] [--timeout-ms 1000] [--hang-seconds 10] [--save-corpus]
// Each target runs until --runs executions or --seconds, whichever comes first. Inputs that
// reach new code go to --work (default $TMPDIR/fleetboot-fuzz/<target>) and seed the next
// campaign; --save-corpus then copies into fuzz/corpus/<target>/ those that reach code the
// committed corpus does not, smallest first (libFuzzer's -merge=1). Every crash or hang
// input is written to fuzz/crashes/<target>/ (the replay test runs it from then on). The
// process lowers its own priority (nice 19): other work on the machine goes first.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { corpusDir, crashesDir, fuzzRoot, inputsIn, nativeTargets } from '../../fuzz/corpus.ts';
import { targets } from '../../fuzz/targets/index.ts';
import type { WorkerInput, WorkerMessage } from './worker.ts';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    runs: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
    targets: { type: 'string' },
    seed: { type: 'string', default: '1' },
    work: { type: 'string', default: join(tmpdir(), 'fleetboot-fuzz') },
    'timeout-ms': { type: 'string', default: '1000' },
    'hang-seconds': { type: 'string', default: '10' },
    'save-corpus': { type: 'boolean', default: false },
  },
});

function positive(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`bench/fuzz: --${name} must be a positive number, got ${JSON.stringify(v)}\n`);
    process.exit(2);
  }
  return n;
}
const seconds = positive('seconds', flags.seconds);
const runs = Math.floor(positive('runs', flags.runs));
const seed = Math.floor(positive('seed', flags.seed));
const timeoutMs = positive('timeout-ms', flags['timeout-ms']);
const hangMs = positive('hang-seconds', flags['hang-seconds']) * 1000;
const work = resolve(flags.work);
const all = [...targets.map((t) => t.name), ...nativeTargets];
const chosen = flags.targets ? flags.targets.split(',').map((s) => s.trim()) : all;
const unknown = chosen.filter((c) => !all.includes(c));
if (unknown.length > 0) {
  process.stderr.write(`bench/fuzz: no target ${unknown.join(', ')}; targets: ${all.join(', ')}\n`);
  process.exit(2);
}
setPriority(19);

interface Row {
  target: string;
  engine: string;
  execs: number;
  perSec: number;
  coverage: string;
  corpus: number;
  crashes: number;
  hangs: number;
  sanitizer: number | null;
  notes: string[];
}

function saveCrash(target: string, kind: string, data: Uint8Array): string {
  const dir = crashesDir(target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${kind}-${createHash('sha1').update(data).digest('hex')}`);
  writeFileSync(file, data);
  return file;
}

/** libFuzzer's -merge=1: the work corpus's inputs that add coverage over fuzz/corpus/<name>/, into it. */
function mergeNative(name: string, bin: string): Promise<number> {
  const before = inputsIn(corpusDir(name)).length;
  mkdirSync(corpusDir(name), { recursive: true });
  const child = spawn(join(bin, name), ['-merge=1', corpusDir(name), join(work, name)], { stdio: 'ignore' });
  return new Promise((done) => child.on('close', () => done(inputsIn(corpusDir(name)).length - before)));
}

function runTs(name: string): Promise<Row> {
  const maxLen = targets.find((t) => t.name === name)!.maxLen;
  const current = new SharedArrayBuffer(8 + maxLen);
  const header = new Int32Array(current, 0, 2);
  const data: WorkerInput = { target: name, runs, ms: seconds * 1000, timeoutMs, seed, work, current, saveCorpus: flags['save-corpus'] };
  const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: data });
  const row: Row = { target: name, engine: 'coverage-guided (V8 block coverage)', execs: 0, perSec: 0, coverage: '0 ranges', corpus: 0, crashes: 0, hangs: 0, sanitizer: null, notes: [] };
  return new Promise((done) => {
    let lastExecs = -1;
    let lastChange = Date.now();
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      done(row);
    };
    // A run that never returns: the input being run is in `current`; stop the thread.
    const watchdog = setInterval(() => {
      const execs = Atomics.load(header, 0);
      if (execs !== lastExecs) {
        lastExecs = execs;
        lastChange = Date.now();
        return;
      }
      if (Date.now() - lastChange < hangMs) return;
      const input = new Uint8Array(current, 8, Atomics.load(header, 1)).slice();
      row.hangs++;
      row.notes.push(`hang: one run did not return in ${hangMs / 1000} s: ${saveCrash(name, 'hang', input)}`);
      void worker.terminate().then(finish);
    }, 250);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'stats' || m.type === 'done') {
        Object.assign(row, { execs: m.stats.execs, perSec: m.stats.execs / (m.stats.ms / 1000), coverage: `${m.stats.features} ranges`, corpus: m.stats.corpus, crashes: m.stats.crashes, hangs: row.hangs + (m.type === 'done' ? m.stats.hangs : 0) });
        if (m.type === 'stats') process.stderr.write(`  ${name}: ${m.stats.execs} execs, ${m.stats.features} ranges, corpus ${m.stats.corpus}\r`);
      } else {
        const f = m.finding;
        row.notes.push(`${f.kind}: ${f.message.split('\n')[0]} (${saveCrash(name, f.kind, f.input)})\n${f.message.split('\n').slice(1).join('\n')}`);
      }
      if (m.type === 'done') {
        if (m.saved > 0) row.notes.push(`${m.saved} inputs that add coverage copied to fuzz/corpus/${name}/`);
        void worker.terminate().then(finish);
      }
    });
    worker.on('error', (err) => {
      row.notes.push(`worker failed: ${err.stack ?? err.message}`);
      finish();
    });
    worker.on('exit', finish);
  });
}

function runNative(name: string, bin: string): Promise<Row> {
  const row: Row = { target: name, engine: 'libFuzzer + ASan + UBSan', execs: 0, perSec: 0, coverage: '', corpus: 0, crashes: 0, hangs: 0, sanitizer: 0, notes: [] };
  const workDir = join(work, name);
  mkdirSync(workDir, { recursive: true });
  mkdirSync(crashesDir(name), { recursive: true });
  const dirs = [workDir, corpusDir(name), crashesDir(name)].filter((d) => existsSync(d));
  const args = [`-max_total_time=${Math.ceil(seconds)}`, `-runs=${runs}`, '-print_final_stats=1', `-timeout=${Math.max(1, Math.ceil(timeoutMs / 1000))}`, `-seed=${seed}`, `-artifact_prefix=${crashesDir(name)}/`, ...dirs];
  return new Promise((done) => {
    const child = spawn(join(bin, name), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (c: Buffer) => {
      log += c.toString();
      const last = /#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/g;
      let m: RegExpExecArray | null;
      let latest: RegExpExecArray | null = null;
      while ((m = last.exec(log)) !== null) latest = m;
      if (latest) process.stderr.write(`  ${name}: ${latest[1]} execs, cov ${latest[2]}, corpus ${latest[4]}\r`);
      if (log.length > 1 << 20) log = log.slice(-(1 << 19));
    });
    child.on('close', (code) => {
      const stat = (k: string): number => Number(new RegExp(`stat::${k}:\\s+(\\d+)`).exec(log)?.[1] ?? 0);
      row.execs = stat('number_of_executed_units');
      row.perSec = stat('average_exec_per_sec');
      const covs = [...log.matchAll(/cov: (\d+) ft: (\d+) corp: (\d+)/g)];
      const cov = covs.at(-1);
      row.coverage = cov ? `${cov[1]} edges, ${cov[2]} features` : '?';
      row.corpus = cov ? Number(cov[3]) : 0;
      row.sanitizer = (log.match(/ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/g) ?? []).length;
      row.hangs = (log.match(/ERROR: libFuzzer: timeout/g) ?? []).length;
      row.crashes = code === 0 ? 0 : Math.max(1, (log.match(/ERROR: libFuzzer: (deadly signal|fuzz target exited)|==\d+==ERROR|runtime error:/g) ?? []).length - row.hangs);
      if (code !== 0) row.notes.push(`exit ${code}:\n${log.split('\n').filter((l) => /ERROR|runtime error|SUMMARY|artifact|_fuzz:/.test(l)).slice(0, 12).join('\n')}`);
      done(row);
    });
  });
}

const rows: Row[] = [];
const native = chosen.filter((c) => (nativeTargets as readonly string[]).includes(c));
let bin = '';
if (native.length > 0) {
  bin = join(work, 'bin');
  const build = spawn('bash', [join(fuzzRoot, 'native', 'build.sh'), bin], { stdio: 'inherit' });
  const code = await new Promise<number | null>((r) => build.on('close', r));
  if (code !== 0) {
    process.stderr.write('bench/fuzz: building the native harnesses failed (needs clang and libclang-rt-14-dev: bash lab/install-deps.sh)\n');
    process.exit(1);
  }
}
for (const name of chosen) {
  process.stderr.write(`${name}: up to ${seconds} s or ${runs} runs\n`);
  const row = native.includes(name) ? await runNative(name, bin) : await runTs(name);
  if (flags['save-corpus'] && native.includes(name)) {
    const saved = await mergeNative(name, bin);
    if (saved > 0) row.notes.push(`${saved} inputs that add coverage merged into fuzz/corpus/${name}/`);
  }
  rows.push(row);
  process.stderr.write('\n');
}

const cell = (s: string | number, w: number): string => String(s).padStart(w);
console.log(`seconds per target ${seconds}, seed ${seed}, work ${work}`);
console.log(`${'target'.padEnd(16)} ${cell('execs', 10)} ${cell('exec/s', 8)} ${cell('coverage', 26)} ${cell('corpus', 6)} ${cell('crashes', 7)} ${cell('hangs', 5)} ${cell('sanitizer', 9)}  engine`);
for (const r of rows) {
  console.log(`${r.target.padEnd(16)} ${cell(r.execs, 10)} ${cell(Math.round(r.perSec), 8)} ${cell(r.coverage, 26)} ${cell(r.corpus, 6)} ${cell(r.crashes, 7)} ${cell(r.hangs, 5)} ${cell(r.sanitizer ?? '-', 9)}  ${r.engine}`);
}
for (const r of rows) for (const n of r.notes) console.log(`\n${r.target}: ${n}`);
process.exitCode = rows.some((r) => r.crashes > 0 || r.hangs > 0 || (r.sanitizer ?? 0) > 0) ? 1 : 0;
