// A target for testing the engine itself (test/fuzz-replay.test.ts): it throws only for
// inputs starting with the bytes "FUZZ!", compared one byte at a time, so blind mutation
// needs about 2^40 tries and a coverage-guided search a few thousand.
import { check, type FuzzTarget } from '../target.ts';

export const selftest: FuzzTarget = {
  name: 'selftest',
  about: 'finds a 5-byte magic only by following coverage',
  coverage: ['/fuzz/targets/selftest.ts'],
  dictionary: [],
  format: 'bytes',
  maxLen: 64,
  run(data) {
    if (data[0] === 0x46) {
      if (data[1] === 0x55) {
        if (data[2] === 0x5a) {
          if (data[3] === 0x5a) {
            if (data[4] === 0x21) check(false, () => 'found the magic');
          }
        }
      }
    }
  },
};
