import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { HeadNode } from '../src/headnode.ts';
import { silentLogger } from '../src/log.ts';
import { importSmartosTarball } from '../src/platforms/import.ts';
import { Store } from '../src/store/store.ts';
import { cliPath, repoRoot, tempDir, testConfig } from './fixtures.ts';
import { sha256Hex, writeSmartosTarball } from './platform-fixtures.ts';

const stamp = '20240101T000000Z';
const preload = join(repoRoot, 'test', 'platform-import-crash-preload.mjs');

/**
 * Every file of every listed platform is served with the bytes its row describes: the body's
 * SHA-256 is the row's, and the ETag is made from it. Returns the served boot_archive's digest.
 */
async function checkServed(head: HeadNode): Promise<string> {
  const url = `http://127.0.0.1:${head.http.address()!.port}`;
  const platforms = head.store.platforms.list();
  assert.deepEqual(platforms.map((p) => p.stamp), [stamp], 'the platform is still listed');
  let archive = '';
  for (const file of platforms[0]!.files) {
    const res = await fetch(`${url}/os/${stamp}/${file.path}`);
    assert.equal(res.status, 200, `${file.path} is served`);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(sha256Hex(body), file.sha256, `${file.path}: the bytes served are the ones the registry describes`);
    assert.equal(res.headers.get('etag'), `"${file.sha256.slice(0, 32)}-${file.size.toString(16)}"`);
    if (file.role === 'boot_archive') archive = file.sha256;
  }
  return archive;
}

test('platform import --force killed with SIGKILL at every step of its commit leaves a registry and folder that agree, and no orphan folder', async (t) => {
  const dir = tempDir(t);
  const v1 = Buffer.from('boot archive, first build\n'.repeat(4000));
  const v2 = Buffer.from('boot archive, rebuilt\n'.repeat(5000));
  mkdirSync(join(dir, 'v1'));
  mkdirSync(join(dir, 'v2'));
  const first = writeSmartosTarball(join(dir, 'v1'), { bootArchive: v1 });
  const second = writeSmartosTarball(join(dir, 'v2'), { bootArchive: v2 });

  let finished = false;
  const killedAt: string[] = [];
  for (let step = 1; !finished; step++) {
    assert.ok(step <= 60, 'the import never ran to its end');
    const run = join(dir, `run-${step}`);
    const images = join(run, 'platform-images');
    const osDir = join(images, 'os');
    const store = Store.open(Store.fileIn(run));
    await importSmartosTarball(first, { store, platformImagesDir: images });
    store.close();
    writeFileSync(join(run, 'fleetboot.json'), JSON.stringify({ dataDir: run, platformImagesDir: images, log: { level: 'silent' } }));
    const log = join(run, 'steps.log');
    const child = await execa(process.execPath, ['--import', preload, cliPath, '--config', join(run, 'fleetboot.json'), 'platform', 'import', '--force', second], {
      cwd: run,
      reject: false,
      timeout: 120_000,
      env: { FBT_CRASH_ROOT: `${osDir}/`, FBT_CRASH_STEP: String(step), FBT_CRASH_LOG: log },
    });
    const steps = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
    if (child.signal === 'SIGKILL') {
      killedAt.push(steps.at(-1)?.replace(/^\d+ /, '') ?? '(no step)');
    } else {
      assert.equal(child.exitCode, 0, String(child.stderr));
      finished = true;
    }

    const head = new HeadNode(testConfig(run, { dataDir: run, platformImagesDir: images }), { log: silentLogger });
    try {
      await head.start();
      const served = await checkServed(head);
      assert.ok(served === sha256Hex(v1) || served === sha256Hex(v2), `step ${step}: the boot_archive is one of the two builds`);
      if (finished) assert.equal(served, sha256Hex(v2), 'a completed import serves the new build');
      // No orphan: every folder left is one a row names, and no work folder is left.
      const left = readdirSync(osDir);
      assert.equal(left.length, head.store.platforms.list().length, `step ${step} (${steps.at(-1) ?? ''}): folders left ${left.join(', ')}`);
      assert.ok(left.every((name) => !name.startsWith('.')), `step ${step}: work folder left: ${left.join(', ')}`);
    } finally {
      await head.stop();
    }
  }
  // The kills really happened inside the commit, between renames, not only before it began.
  assert.ok(killedAt.length >= 4, `killed at: ${killedAt.join('; ')}`);
  assert.ok(killedAt.some((s) => s.startsWith('after renameSync')), `killed at: ${killedAt.join('; ')}`);
});

test('a re-imported platform lives in a folder of its own that its row names; platform remove deletes that folder', async (t) => {
  const dir = tempDir(t);
  const images = join(dir, 'platform-images');
  const osDir = join(images, 'os');
  mkdirSync(join(dir, 'v2'));
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  await importSmartosTarball(writeSmartosTarball(dir), { store, platformImagesDir: images });
  assert.equal(store.platforms.get(stamp)!.folder, stamp);
  const rebuilt = Buffer.from('rebuilt\n'.repeat(3000));
  await importSmartosTarball(writeSmartosTarball(join(dir, 'v2'), { bootArchive: rebuilt }), { store, platformImagesDir: images, force: true });
  const folder = store.platforms.get(stamp)!.folder;
  assert.match(folder, new RegExp(`^${stamp}~[0-9a-f]{12}$`));
  assert.deepEqual(readdirSync(osDir), [folder]);
  assert.ok(readFileSync(join(osDir, folder, 'platform/i86pc/amd64/boot_archive')).equals(rebuilt));
  store.close();

  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ platformImagesDir: images, log: { level: 'silent' } }));
  const r = await execa(process.execPath, [cliPath, 'platform', 'remove', stamp], { cwd: dir, reject: false });
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.deepEqual(readdirSync(osDir), []);
});
