import assert from 'node:assert/strict';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { HeadNode } from '../src/headnode.ts';
import { parseMac } from '../src/mac.ts';
import { silentLogger } from '../src/log.ts';
import { importLinuxPlatform, importSmartosTarball, ImportError, readLinuxManifest } from '../src/platforms/import.ts';
import { sweepPlatformFolders } from '../src/platforms/layout.ts';
import { Store } from '../src/store/store.ts';
import { cliPath, runCli, tempDir, testConfig } from './fixtures.ts';
import { sha1Hex, sha256Hex, smartosEntries, tarOf, writeLinuxPlatform, writeSmartosTarball, type TarEntry } from './platform-fixtures.ts';

function setup(t: Parameters<typeof tempDir>[0]): { dir: string; store: Store; images: string; osDir: string } {
  const dir = tempDir(t);
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  const images = join(dir, 'platform-images');
  return { dir, store, images, osDir: join(images, 'os') };
}

const listing = (osDir: string): string[] => (existsSync(osDir) ? readdirSync(osDir).sort() : []);

test('a SmartOS platform tarball imports end to end: files under os/<STAMP>/platform/, digests recorded, first one default', async (t) => {
  const { dir, store, images, osDir } = setup(t);
  const archive = Buffer.from('boot archive bytes\n'.repeat(50_000));
  const file = writeSmartosTarball(dir, { bootArchive: archive });
  const seen: number[] = [];
  const p = await importSmartosTarball(file, { store, platformImagesDir: images, onProgress: (done) => seen.push(done) });
  assert.equal(p.stamp, '20240101T000000Z');
  assert.equal(p.os, 'smartos');
  assert.equal(p.version, '20240101T000000Z');
  assert.equal(p.isDefault, true);
  assert.deepEqual(listing(osDir), ['20240101T000000Z']);
  const onDisk = readFileSync(join(osDir, '20240101T000000Z/platform/i86pc/amd64/boot_archive'));
  assert.ok(onDisk.equals(archive));
  const rec = p.files.find((f) => f.path === 'platform/i86pc/amd64/boot_archive')!;
  assert.deepEqual(rec, { path: 'platform/i86pc/amd64/boot_archive', size: archive.length, role: 'boot_archive', sha1: sha1Hex(archive), sha256: sha256Hex(archive) });
  assert.equal(p.files.find((f) => f.role === 'kernel')?.path, 'platform/i86pc/kernel/amd64/unix');
  assert.equal(p.size, p.files.reduce((n, f) => n + f.size, 0));
  assert.ok(seen.length > 0 && seen.at(-1)! > 0, 'progress reported');
  assert.deepEqual(store.platforms.list().map((x) => x.stamp), ['20240101T000000Z']);
});

interface Refusal {
  name: string;
  make: (dir: string) => string;
  message: RegExp;
}

const stamp = '20240301T000000Z';
const top = `platform-${stamp}`;
const gz = (dir: string, entries: TarEntry[], name = `${top}.tgz`): string => {
  const file = join(dir, name);
  writeFileSync(file, gzipSync(tarOf(entries)));
  return file;
};

const refusals: Refusal[] = [
  { name: 'a missing boot_archive.hash', make: (d) => writeSmartosTarball(d, { stamp, omit: ['i86pc/amd64/boot_archive.hash'] }), message: /has no platform-20240301T000000Z\/i86pc\/amd64\/boot_archive\.hash/ },
  { name: 'a missing kernel', make: (d) => writeSmartosTarball(d, { stamp, omit: ['i86pc/kernel/amd64/unix'] }), message: /has no .*unix/ },
  { name: 'a hash mismatch', make: (d) => writeSmartosTarball(d, { stamp, hash: `${'0'.repeat(40)}\n` }), message: /boot_archive does not match boot_archive\.hash/ },
  { name: 'a hash file that is not a digest', make: (d) => writeSmartosTarball(d, { stamp, hash: 'hello\n' }), message: /does not hold a SHA-1/ },
  { name: 'an entry with ..', make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/../../evil`, data: 'x' }] })), message: /escapes the platform folder/ },
  { name: 'an absolute entry', make: (d) => gz(d, [{ path: `/etc/evil`, data: 'x' }, ...smartosEntries({ stamp })]), message: /absolute path/ },
  { name: 'an entry outside the top folder', make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: 'platform-20990101T000000Z/x', data: 'x' }] })), message: /outside the top folder/ },
  { name: 'a symlink out of the folder', make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/i86pc/escape`, type: 'symlink', linkpath: '../../../etc' }] })), message: /points out of the platform folder/ },
  { name: 'an absolute symlink', make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/passwd`, type: 'symlink', linkpath: '/etc/passwd' }] })), message: /points out of the platform folder/ },
  {
    name: 'a symlink escaping through another link',
    make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/here`, type: 'symlink', linkpath: '.' }, { path: `${top}/sneaky`, type: 'symlink', linkpath: 'here/../../x' }] })),
    message: /points out of the platform folder|points to nothing/,
  },
  {
    name: 'a file written through a link',
    make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/dir`, type: 'symlink', linkpath: 'i86pc' }, { path: `${top}/dir/x`, data: 'x' }] })),
    message: /goes through the link dir/,
  },
  { name: 'a hard link out of the folder', make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/h`, type: 'hardlink', linkpath: '/etc/passwd' }] })), message: /absolute path|does not name a file/ },
  { name: 'a FIFO entry', make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/fifo`, type: 'fifo' }] })), message: /is a FIFO/ },
  {
    name: 'a truncated gzip',
    make: (d) => {
      const whole = gzipSync(tarOf(smartosEntries({ stamp })));
      const file = join(d, `${top}.tgz`);
      writeFileSync(file, whole.subarray(0, Math.floor(whole.length * 0.6)));
      return file;
    },
    message: /truncated/,
  },
  { name: 'a file that is not gzip', make: (d) => { const f = join(d, `${top}.tgz`); writeFileSync(f, tarOf(smartosEntries({ stamp }))); return f; }, message: /not a gzip file/ },
  { name: 'a tarball named for another stamp', make: (d) => writeSmartosTarball(d, { stamp }, 'platform-20240401T000000Z.tgz'), message: /holds platform-20240301T000000Z\/, not platform-20240401T000000Z/ },
  { name: 'a top folder without a stamp', make: (d) => gz(d, [{ path: 'platform-latest/x', data: 'x' }], 'p.tgz'), message: /does not hold a stamp/ },
  { name: 'the same path twice', make: (d) => gz(d, smartosEntries({ stamp, extra: [{ path: `${top}/etc/version/platform`, data: 'again' }] })), message: /appears twice/ },
];

for (const r of refusals) {
  test(`import refuses ${r.name}, leaving the platform folder and the store unchanged`, async (t) => {
    const { dir, store, images, osDir } = setup(t);
    await importSmartosTarball(writeSmartosTarball(dir), { store, platformImagesDir: images });
    const before = { folders: listing(osDir), rows: store.platforms.list() };
    const file = r.make(dir);
    await assert.rejects(importSmartosTarball(file, { store, platformImagesDir: images }), (err: Error) => {
      assert.ok(err instanceof ImportError, `${err.name}: ${err.message}`);
      assert.match(err.message, r.message);
      return true;
    });
    assert.deepEqual(listing(osDir), before.folders);
    assert.deepEqual(store.platforms.list(), before.rows);
    assert.ok(!existsSync(join(dir, 'etc')) && !existsSync(join(dir, 'evil')) && !existsSync(join(images, 'evil')), 'nothing written outside');
  });
}

test('a stamp already imported is refused unless --force, which replaces its files and keeps it the default', async (t) => {
  const { dir, store, images, osDir } = setup(t);
  const first = writeSmartosTarball(dir);
  await importSmartosTarball(first, { store, platformImagesDir: images });
  await assert.rejects(importSmartosTarball(first, { store, platformImagesDir: images }), /already imported \(use --force/);
  const newer = Buffer.from('a rebuilt archive\n'.repeat(10));
  const again = join(dir, 'again');
  mkdirSync(again);
  const replacement = writeSmartosTarball(again, { bootArchive: newer });
  const p = await importSmartosTarball(replacement, { store, platformImagesDir: images, force: true });
  assert.equal(p.isDefault, true);
  assert.equal(p.files.find((f) => f.role === 'boot_archive')?.sha1, sha1Hex(newer));
  // The new files went to a folder of their own, named by the row; the replaced one is gone.
  const folder = store.platforms.get('20240101T000000Z')!.folder;
  assert.ok(readFileSync(join(osDir, folder, 'platform/i86pc/amd64/boot_archive')).equals(newer));
  assert.deepEqual(listing(osDir), [folder]);
});

test('a Linux platform imports from platform.json with SHA-256 checked; a wrong digest or a file outside the folder is refused', async (t) => {
  const { dir, store, images, osDir } = setup(t);
  const folder = writeLinuxPlatform(dir, { stamp: 'lab-6.1' });
  const kernelHash = sha256Hex(readFileSync(join(folder, 'vmlinuz')));
  writeFileSync(join(folder, 'platform.json'), JSON.stringify({ os: 'linux', stamp: 'lab-6.1', version: '6.1', kernel: 'vmlinuz', initrds: ['initrd.img'], cmdline: 'console=ttyS0', sha256: { vmlinuz: kernelHash } }));
  const { manifest, dir: src } = readLinuxManifest(folder);
  const p = await importLinuxPlatform(manifest, src, { store, platformImagesDir: images });
  assert.equal(p.os, 'linux');
  assert.equal(p.kernelArgs, 'console=ttyS0');
  assert.deepEqual(p.files.map((f) => [f.path, f.role, f.sha256]), [
    ['vmlinuz', 'kernel', kernelHash],
    ['initrd.img', 'initrd', sha256Hex(readFileSync(join(folder, 'initrd.img')))],
  ]);
  assert.deepEqual(listing(osDir), ['lab-6.1']);

  const bad = writeLinuxPlatform(join(dir, 'b'), { stamp: 'lab-bad', sha256: { 'initrd.img': 'f'.repeat(64) } });
  const m2 = readLinuxManifest(bad);
  await assert.rejects(importLinuxPlatform(m2.manifest, m2.dir, { store, platformImagesDir: images }), /initrd\.img does not match its SHA-256/);
  writeFileSync(join(bad, 'platform.json'), JSON.stringify({ os: 'linux', stamp: 'lab-bad', kernel: '../vmlinuz' }));
  assert.throws(() => readLinuxManifest(bad), /kernel: must be a path inside the platform folder/);
  writeFileSync(join(bad, 'platform.json'), JSON.stringify({ os: 'linux', stamp: 'lab-bad', kernel: 'vmlinuz', initrds: ['missing.img'] }));
  const m3 = readLinuxManifest(bad);
  await assert.rejects(importLinuxPlatform(m3.manifest, m3.dir, { store, platformImagesDir: images }), /missing\.img \(the initrd\) does not exist/);
  assert.deepEqual(listing(osDir), ['lab-6.1']);
  assert.deepEqual(store.platforms.list().map((x) => x.stamp), ['lab-6.1']);
});

test('the CLI imports, lists, sets the default, assigns nodes and refuses to remove an assigned platform', async (t) => {
  const dir = tempDir(t);
  writeSmartosTarball(dir);
  writeSmartosTarball(dir, { stamp: '20240201T000000Z' });
  writeLinuxPlatform(dir, { stamp: 'lab-6.1' });
  const ok = async (args: string[]): Promise<string> => {
    const r = await runCli(args, dir);
    assert.equal(r.exitCode, 0, `${args.join(' ')}: ${String(r.stderr)}`);
    return String(r.stdout);
  };
  assert.match(await ok(['platform', 'import', 'platform-20240101T000000Z.tgz']), /imported smartos platform 20240101T000000Z .*the default/);
  await ok(['platform', 'import', 'platform-20240201T000000Z.tgz']);
  await ok(['platform', 'import', 'lab-6.1']);
  const again = await runCli(['platform', 'import', 'platform-20240101T000000Z.tgz'], dir);
  assert.equal(again.exitCode, 2);
  assert.match(String(again.stderr), /^fleetboot: import refused: platform 20240101T000000Z is already imported/);

  // A node to assign: registered the way a booting machine registers.
  const store = Store.open(join(dir, 'var', 'fleetboot.db'));
  const { node } = store.nodes.discover({ mac: parseMac('52:54:00:00:00:01')! });
  store.close();
  assert.match(await ok(['node', 'set-platform', '52:54:00:00:00:01', '20240101T000000Z']), /boots 20240101T000000Z next/);
  assert.match(await ok(['node', 'set-platform', String(node.id), '20240201T000000Z']), /previous: 20240101T000000Z/);
  const bad = await runCli(['node', 'set-platform', String(node.id), 'nope'], dir);
  assert.equal(bad.exitCode, 2);
  assert.match(String(bad.stderr), /no platform nope/);

  await ok(['platform', 'set-default', 'lab-6.1']);
  const list = JSON.parse(await ok(['platform', 'list', '--json'])) as { platforms: { stamp: string; os: string; default: boolean; nodesBooting: number; size: number }[] };
  assert.deepEqual(
    list.platforms.map((p) => [p.stamp, p.os, p.default, p.nodesBooting]),
    [
      ['20240101T000000Z', 'smartos', false, 0],
      ['20240201T000000Z', 'smartos', false, 1],
      ['lab-6.1', 'linux', true, 0],
    ],
  );
  assert.match(await ok(['platform', 'list']), /^STAMP\s+OS\s+VERSION\s+SIZE\s+DEFAULT\s+BOOTING\s+RUNNING\n/);

  const refused = await runCli(['platform', 'remove', '20240201T000000Z'], dir);
  assert.equal(refused.exitCode, 2);
  assert.match(String(refused.stderr), /assigned to 1 node/);
  assert.ok(existsSync(join(dir, 'platform-images/os/20240201T000000Z/platform/i86pc/amd64/boot_archive')));
  assert.match(await ok(['platform', 'remove', '20240201T000000Z', '--force']), /1 node\(s\) will boot the default platform/);
  assert.ok(!existsSync(join(dir, 'platform-images/os/20240201T000000Z')));
  await ok(['platform', 'remove', '20240101T000000Z']);
  assert.deepEqual(readdirSync(join(dir, 'platform-images/os')), ['lab-6.1']);
});

test('an import killed with SIGKILL mid-stream leaves nothing the next import or head-node start does not clean up', async (t) => {
  const { dir, store, images, osDir } = setup(t);
  store.close();
  // The tarball arrives through a FIFO the test controls, so the child is provably mid-import when killed.
  const archive = Buffer.alloc(8 << 20);
  for (let i = 0; i < archive.length; i += 4) archive.writeUInt32LE((i * 2654435761) >>> 0, i);
  const whole = gzipSync(tarOf(smartosEntries({ stamp, bootArchive: archive })), { level: 1 });
  const fifo = join(dir, `${top}.tgz`);
  await execa('mkfifo', [fifo]);
  const config = join(dir, 'fleetboot.json');
  writeFileSync(config, JSON.stringify({ dataDir: dir, platformImagesDir: images }));
  const child = execa(process.execPath, [cliPath, '--config', config, 'platform', 'import', fifo], { cwd: dir, reject: false });
  const writer = createWriteStream(fifo);
  writer.on('error', () => undefined); // EPIPE once the reader is killed: expected
  writer.write(whole.subarray(0, Math.floor(whole.length / 2)));
  // Wait until the child has written part of boot_archive into its work folder.
  const deadline = Date.now() + 30_000;
  let work: string | undefined;
  while (Date.now() < deadline) {
    work = listing(osDir).find((n) => n.startsWith('.import-'));
    if (work && existsSync(join(osDir, work, 'platform/i86pc/amd64/boot_archive'))) break;
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(work, 'the import started');
  child.kill('SIGKILL');
  const result = await child;
  assert.equal(result.signal, 'SIGKILL');
  writer.destroy();
  assert.ok(listing(osDir).includes(work!), 'the killed import left its work folder');

  // Also the narrow window between the rename and the commit: a stamp folder without a row.
  mkdirSync(join(osDir, '20231231T000000Z', 'platform'), { recursive: true });

  const head = new HeadNode(testConfig(dir, { dataDir: dir, platformImagesDir: images }), { log: silentLogger });
  t.after(() => head.stop());
  assert.deepEqual(listing(osDir), []);
  assert.deepEqual(head.store.platforms.list(), []);

  // And the next import of the same tarball succeeds.
  const file = join(dir, 'retry');
  mkdirSync(file);
  const p = await importSmartosTarball(writeSmartosTarball(file, { stamp, bootArchive: archive }), { store: head.store, platformImagesDir: images });
  assert.equal(p.stamp, stamp);
  assert.deepEqual(listing(osDir), [stamp]);
});

test('the sweep leaves a live import alone and removes a dead one', (t) => {
  const { store, images, osDir } = setup(t);
  mkdirSync(join(osDir, `.import-${process.pid}-abc123`), { recursive: true });
  mkdirSync(join(osDir, '.import-999999999-def456'), { recursive: true });
  assert.deepEqual(sweepPlatformFolders(store, images), ['.import-999999999-def456']);
  assert.deepEqual(listing(osDir), [`.import-${process.pid}-abc123`]);
});
