// A coverage-guided fuzzing loop for TypeScript targets, in the manner of libFuzzer
// (llvm-project compiler-rt/lib/fuzzer/FuzzerLoop.cpp: keep an input when it reaches code
// no kept input reached, mutate kept inputs). Coverage is V8's block coverage, read through
// the inspector protocol (Profiler.startPreciseCoverage with callCount and detailed, then
// Profiler.takePreciseCoverage, which also resets the counters; see the Chrome DevTools
// Protocol "Profiler" domain). A feature is one source range of a covered module that ran.
//
// Reading coverage costs far more than one run of a codec, so inputs run in batches and the
// coverage of a batch is read once; only a batch that reached something new is run again
// input by input to find which inputs to keep (the union of the inputs' features is the
// batch's feature set, since a range either ran or did not).
import { Session } from 'node:inspector';
import { performance } from 'node:perf_hooks';
import type { FuzzTarget } from './target.ts';
import { Mutator, type Random } from './mutate.ts';

interface CoverageRange {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FunctionCoverage {
  ranges: CoverageRange[];
}
interface ScriptCoverage {
  scriptId: string;
  url: string;
  functions: FunctionCoverage[];
}

/**
 * The inspector session of this isolate, started once and never stopped: precise coverage
 * started again after Profiler.stopPreciseCoverage counts only whole functions for code
 * compiled meanwhile, so every BlockCoverage shares this one.
 */
let shared: Session | null = null;

/**
 * The session lives on this thread, so the inspector answers before post() returns
 * (node:inspector: "the callback is invoked synchronously" for a session on the same thread).
 */
function post(method: string, params: object): unknown {
  if (!shared) {
    shared = new Session();
    shared.connect();
    post('Profiler.enable', {});
    post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }
  let out: unknown;
  let failure: Error | null = null;
  let answered = false;
  shared.post(method, params, (err: Error | null, result?: object) => {
    answered = true;
    failure = err;
    out = result;
  });
  if (!answered) throw new Error(`inspector: ${method} was not answered synchronously`);
  if (failure) throw failure;
  return out;
}

/** Block coverage of the modules whose URL holds one of `scope`, read and reset on each take(). */
export class BlockCoverage {
  /** Per function (`scriptId:start`), every block ever reported in it: `start:end` -> [start, end]. */
  private readonly blocks = new Map<string, Map<string, [number, number]>>();

  constructor(private readonly scope: readonly string[]) {}

  /**
   * Blocks that ran since the last take, as `scriptId:start:end`. V8 reports a nested block
   * only where its count differs from the enclosing range's (v8 src/debug/debug-coverage.cc,
   * MergeNestedRanges), so which ranges appear depends on how often things ran: one run
   * reports the blocks it skipped, a batch the ones that ran a different number of times.
   * So every block ever reported is remembered, and its count in a take is that of the
   * innermost reported range holding it; then a batch's blocks are exactly the union of its
   * inputs' blocks.
   */
  take(into: Set<string> = new Set()): Set<string> {
    const { result } = post('Profiler.takePreciseCoverage', {}) as { result: ScriptCoverage[] };
    for (const script of result) {
      if (!this.scope.some((s) => script.url.includes(s))) continue;
      for (const fn of script.functions) {
        const own = fn.ranges[0];
        if (!own) continue;
        const key = `${script.scriptId}:${own.startOffset}`;
        let blocks = this.blocks.get(key);
        if (!blocks) this.blocks.set(key, (blocks = new Map()));
        for (const r of fn.ranges) if (!blocks.has(`${r.startOffset}:${r.endOffset}`)) blocks.set(`${r.startOffset}:${r.endOffset}`, [r.startOffset, r.endOffset]);
        if (own.count === 0) continue;
        for (const [name, [start, end]] of blocks) {
          let count = 0;
          let size = Infinity;
          for (const r of fn.ranges) {
            if (r.startOffset <= start && end <= r.endOffset && r.endOffset - r.startOffset < size) {
              size = r.endOffset - r.startOffset;
              count = r.count;
            }
          }
          if (count > 0) into.add(`${script.scriptId}:${name}`);
        }
      }
    }
    return into;
  }

}

export type Finding = { kind: 'crash' | 'hang'; message: string; input: Buffer; ms: number };

export interface FuzzOptions {
  /** Stop after this many runs of the target... */
  runs: number;
  /** ...or this many milliseconds, whichever comes first. */
  ms: number;
  /** A run longer than this is a hang. */
  timeoutMs: number;
  random: Random;
  /** Before each run (bench/fuzz's watchdog keeps the input being run). */
  onRun?: (input: Buffer) => void;
  /** An input that reached new code (bench/fuzz saves it to the work corpus). */
  onNewInput?: (input: Buffer) => void;
  onFinding?: (f: Finding) => void;
  /** About once a second. */
  onStats?: (s: FuzzStats) => void;
  /** Stop at the first finding (the engine's own test). */
  stopAtFinding?: boolean;
}

export interface FuzzStats {
  execs: number;
  ms: number;
  /** Source ranges reached so far. */
  features: number;
  corpus: number;
  crashes: number;
  hangs: number;
}

/** Runs one input, timing it; a throw is a crash and a run over the timeout a hang. */
function runOne(target: FuzzTarget, input: Buffer, timeoutMs: number): Finding | null {
  const t0 = performance.now();
  try {
    target.run(input);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return { kind: 'crash', message: `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}`, input, ms: performance.now() - t0 };
  }
  const ms = performance.now() - t0;
  return ms > timeoutMs ? { kind: 'hang', message: `one run took ${ms.toFixed(0)} ms (limit ${timeoutMs} ms)`, input, ms } : null;
}

const BATCH = 32;

/** Fuzzes `target` from `seeds`; returns the statistics and every finding (one per distinct message). */
export function fuzz(target: FuzzTarget, seeds: readonly Buffer[], o: FuzzOptions): { stats: FuzzStats; findings: Finding[]; corpus: Buffer[] } {
  const coverage = new BlockCoverage(target.coverage);
  const known = new Set<string>();
  const corpus: Buffer[] = [];
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const stats: FuzzStats = { execs: 0, ms: 0, features: 0, corpus: 0, crashes: 0, hangs: 0 };
  const t0 = performance.now();
  let lastStats = t0;
  const mutator = new Mutator(target, o.random);

  const exec = (input: Buffer): void => {
    o.onRun?.(input);
    const f = runOne(target, input, o.timeoutMs);
    stats.execs++;
    if (!f) return;
    if (f.kind === 'crash') stats.crashes++;
    else stats.hangs++;
    // One finding per property broken: the values quoted in the message do not count.
    const key = `${f.kind}:${f.message.split('\n')[0]!.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\d+/g, 'N')}`;
    if (seen.has(key)) return;
    seen.add(key);
    findings.push(f);
    o.onFinding?.(f);
  };
  /** Runs the batch again input by input, keeping those that reach new ranges. */
  const sift = (batch: Buffer[]): void => {
    for (const input of batch) {
      coverage.take(); // drop what ran before
      exec(input);
      const features = coverage.take();
      let fresh = false;
      for (const k of features) {
        if (known.has(k)) continue;
        known.add(k);
        fresh = true;
      }
      if (fresh) {
        corpus.push(input);
        o.onNewInput?.(input);
      }
    }
  };

  coverage.take();
  // The seeds first, each on its own, so every one that adds coverage is kept.
  sift(seeds.length > 0 ? [...seeds] : [Buffer.alloc(0)]);
  if (corpus.length === 0) corpus.push(seeds[0] ?? Buffer.alloc(0));
  const batch: Buffer[] = [];
  while (stats.execs < o.runs && performance.now() - t0 < o.ms && !(o.stopAtFinding && findings.length > 0)) {
    batch.length = 0;
    const n = Math.min(BATCH, o.runs - stats.execs);
    for (let i = 0; i < n; i++) {
      const input = mutator.mutate(corpus);
      batch.push(input);
      exec(input);
    }
    const features = coverage.take();
    let fresh = false;
    for (const k of features) if (!known.has(k)) fresh = true;
    if (fresh) sift(batch);
    const now = performance.now();
    if (now - lastStats >= 1000) {
      lastStats = now;
      Object.assign(stats, { ms: now - t0, features: known.size, corpus: corpus.length });
      o.onStats?.({ ...stats });
    }
  }
  Object.assign(stats, { ms: performance.now() - t0, features: known.size, corpus: corpus.length });
  return { stats, findings, corpus };
}

/**
 * Of `candidates`, the ones that reach blocks `existing` does not, smallest first (as
 * libFuzzer's -merge=1 does, FuzzerMerge.cpp): what a campaign found, cut to what adds to the
 * committed corpus.
 */
export function newCoverage(target: FuzzTarget, existing: readonly Buffer[], candidates: readonly Buffer[]): Buffer[] {
  const coverage = new BlockCoverage(target.coverage);
  const known = new Set<string>();
  const kept: Buffer[] = [];
  const runAlone = (input: Buffer): Set<string> => {
    coverage.take();
    try {
      target.run(input);
    } catch {
      // A finding is the campaign's to report; here it only adds no coverage.
    }
    return coverage.take();
  };
  for (const input of existing) for (const k of runAlone(input)) known.add(k);
  for (const input of [...candidates].sort((a, b) => a.length - b.length)) {
    const fresh = [...runAlone(input)].filter((k) => !known.has(k));
    if (fresh.length === 0) continue;
    for (const k of fresh) known.add(k);
    kept.push(input);
  }
  return kept;
}
