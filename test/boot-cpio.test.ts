import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { newcArchive } from '../src/boot/cpio.ts';
import { tempDir } from './fixtures.ts';
import { requires } from './requires.ts';

test('a newc archive made for a UEFI node unpacks with GNU cpio to the exact file', { skip: requires({ commands: ['cpio'] }) }, async (t) => {
  const dir = tempDir(t);
  for (const body of ['{"hostname":"cn7"}\n', 'abc', '', 'x'.repeat(4097)]) {
    const archive = newcArchive('networking.json', Buffer.from(body));
    assert.equal(archive.length % 4, 0);
    const out = join(dir, `x${body.length}`);
    await execa('mkdir', ['-p', out]);
    const r = await execa('cpio', ['-i', '--quiet', '-H', 'newc', '--no-absolute-filenames'], { cwd: out, input: archive, reject: false });
    assert.equal(r.exitCode, 0, String(r.stderr));
    assert.equal(readFileSync(join(out, 'networking.json'), 'utf8'), body);
  }
});

test('a cpio member name must be a plain file name', () => {
  assert.throws(() => newcArchive('../etc/passwd', Buffer.from('x')), /plain file name/);
});
