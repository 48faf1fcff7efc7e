// The SmartOS tarball importer's path rules (TarballPaths in src/platforms/import.ts). An
// input is a list of tar entries, one a line: `D path`, `F path`, `L path<TAB>target` for a
// symlink. Each is refused with an ImportError or accepted, and an accepted one stays inside
// the platform folder: no `..`, not absolute, not through an accepted symlink, one stamp for
// all, and a symlink's target resolved from its folder stays inside too.
import { posix } from 'node:path';
import { ImportError, smartosStamp, TarballPaths } from '../../src/platforms/import.ts';
import { check, type FuzzTarget } from '../target.ts';

export const platformPaths: FuzzTarget = {
  name: 'platform-paths',
  about: 'tar entry paths: refused with an ImportError or kept inside the platform folder',
  coverage: ['/src/platforms/import.ts'],
  dictionary: ['platform-20240101T000000Z/', 'platform-', '20991231T235959Z', '/', '..', '../', './', '//', 'C:', '\\', '\t', '\n', 'L ', 'F ', 'D ', 'i86pc/amd64/boot_archive', 'kernel', '\x00', '%2e'],
  format: 'bytes',
  maxLen: 4096,
  run(data) {
    const rules = new TarballPaths();
    for (const line of data.toString('utf8').split('\n')) {
      const kind = line[0];
      const [path = '', target] = line.slice(2).split('\t');
      let rel: string | null;
      try {
        rel = rules.relPathOf(path);
        if (rel !== null && kind === 'L') {
          rules.checkLink(rel, target ?? '');
          rules.addLink(rel);
        }
      } catch (err) {
        if (err instanceof ImportError) {
          check(err.message.length > 0, () => 'an ImportError without a message');
          continue;
        }
        throw err;
      }
      check(rules.stamp !== null && smartosStamp.test(rules.stamp), () => `accepted ${JSON.stringify(path)} with stamp ${rules.stamp}`);
      const top = path.split('/').find((p) => p !== '' && p !== '.');
      check(top === `platform-${rules.stamp}`, () => `accepted ${JSON.stringify(path)} outside platform-${rules.stamp}/`);
      if (rel === null) continue;
      const parts = rel.split('/');
      check(!rel.startsWith('/') && !parts.includes('..') && !parts.includes('.') && !parts.includes(''), () => `accepted ${JSON.stringify(path)} as ${JSON.stringify(rel)}`);
      const landed = posix.normalize(posix.join('/p', rel));
      check(landed.startsWith('/p/'), () => `${JSON.stringify(path)} lands at ${landed}, outside the platform folder`);
      for (let i = 1; i < parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        check(!rules.links.has(prefix), () => `${JSON.stringify(path)} goes through the link ${prefix}`);
      }
      if (kind === 'L') {
        const resolved = posix.normalize(posix.join('/p', posix.dirname(rel), target ?? ''));
        check(resolved === '/p' || resolved.startsWith('/p/'), () => `link ${rel} -> ${target} resolves to ${resolved}`);
      }
    }
  },
};
