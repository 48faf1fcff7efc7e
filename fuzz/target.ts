// What a fuzz target is: one function from bytes to nothing that throws only when a property
// of the code under test is broken. The engine (engine.ts, bench/fuzz) searches for such
// inputs; test/fuzz-replay.test.ts replays every saved input through it.

export interface FuzzTarget {
  /** The folder name under fuzz/corpus and fuzz/crashes. */
  name: string;
  /** What it checks, one line (bench/fuzz prints it). */
  about: string;
  /**
   * Runs one input. Returns when every property held; throws a PropertyViolation (or lets
   * any unexpected error out) when one did not. The module's own typed refusals are caught
   * inside: they are the expected answer to bad input, not a finding.
   */
  run(data: Buffer): void;
  /** Source paths (substrings of module URLs) whose block coverage guides the search. */
  coverage: readonly string[];
  /** Byte strings the mutator splices in: the format's keywords and magic numbers. */
  dictionary: readonly string[];
  /** 'json': inputs are JSON documents, and a structure-aware mutator works on them too. */
  format: 'bytes' | 'json';
  /** Inputs longer than this are cut (the format's own bound, or a little past it). */
  maxLen: number;
}

/** A property of the code under test did not hold for an input. */
export class PropertyViolation extends Error {
  override readonly name = 'PropertyViolation';
}

export function check(condition: boolean, what: () => string): asserts condition {
  if (!condition) throw new PropertyViolation(what());
}

/** JSON text -> value, or undefined when the bytes are not JSON (no finding: the edge's parser refuses them). */
export function jsonOf(data: Buffer): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(data.toString('utf8')) as unknown };
  } catch {
    return undefined;
  }
}
