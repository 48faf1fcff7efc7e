// The saved inputs of each fuzz target: fuzz/corpus/<target>/ (seeds captured from real
// clients, and inputs campaigns found that reach new code) and fuzz/crashes/<target>/ (every
// input that once broke a property, kept after the fix). test/fuzz-replay.test.ts replays
// both; bench/fuzz starts its campaigns from them.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const fuzzRoot = resolve(import.meta.dirname);

export const corpusDir = (target: string): string => join(fuzzRoot, 'corpus', target);
export const crashesDir = (target: string): string => join(fuzzRoot, 'crashes', target);

export interface SavedInput {
  path: string;
  data: Buffer;
}

/** The files of `dir` (none when it does not exist), sorted by name. */
export function inputsIn(dir: string): SavedInput[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => ({ path, data: readFileSync(path) }));
}

/** A target's corpus and crash inputs. */
export function savedInputs(target: string): SavedInput[] {
  return [...inputsIn(corpusDir(target)), ...inputsIn(crashesDir(target))];
}

/** The libFuzzer harnesses in fuzz/native (built by fuzz/native/build.sh), by name. */
export const nativeTargets = ['dhcp_io_fuzz', 'tftp_data_fuzz', 'sendfile_fuzz'] as const;
export type NativeTarget = (typeof nativeTargets)[number];
