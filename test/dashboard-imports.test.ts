// Platform imports as the head node's dashboard sees them: the progress row an import keeps in
// the registry (stage, bytes, heartbeat, error; done in the commit itself), and the platforms
// page's imports fragment while a `fleetboot platform import` runs in its own process beside a
// running head node: in progress, then done; refused with its error; killed with SIGKILL and
// shown as interrupted, with nothing half-imported.
import assert from 'node:assert/strict';
import { createWriteStream, existsSync, readdirSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { execa, type ResultPromise } from 'execa';
import { importLinuxPlatform, importSmartosTarball, readLinuxManifest } from '../src/platforms/import.ts';
import { IMPORT_STALE_MS } from '../src/store/platforms.ts';
import { Store } from '../src/store/store.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';
import { cliPath, repoRoot, startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';
import { smartosEntries, tarOf, writeLinuxPlatform, writeSmartosTarball } from './platform-fixtures.ts';

const stamp = '20240501T000000Z';

/** A tarball big enough that half of it is provably mid-import (8 MiB of boot archive, barely compressible). */
function bigTarball(s = stamp): Buffer {
  const archive = Buffer.alloc(8 << 20);
  for (let i = 0; i < archive.length; i += 4) archive.writeUInt32LE((i * 2654435761) >>> 0, i);
  return gzipSync(tarOf(smartosEntries({ stamp: s, bootArchive: archive })), { level: 1 });
}

/** Polls `check` until it returns a value (each poll waits a tick, never a fixed sleep). */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('an import keeps a progress row: stage and bytes as it goes, done in the commit, failed with its error, stale once its process is gone', async (t) => {
  const dir = tempDir(t);
  let clock = 1_700_000_000_000;
  const store = Store.open(join(dir, 'fleetboot.db'), { now: () => clock });
  t.after(() => store.close());

  const id = store.platforms.beginImport({ source: '/var/tmp/p.tgz', os: 'smartos', bytesTotal: 1000, stage: 'unpacking' });
  let row = store.platforms.getImport(id)!;
  assert.deepEqual(
    { stage: row.stage, bytesDone: row.bytesDone, bytesTotal: row.bytesTotal, startedAt: row.startedAt, pid: row.pid, stale: row.stale, error: row.error },
    { stage: 'unpacking', bytesDone: 0, bytesTotal: 1000, startedAt: clock, pid: process.pid, stale: false, error: null },
  );
  clock += 1000;
  store.platforms.reportImport(id, { bytesDone: 400, stamp });
  store.platforms.reportImport(id, { stage: 'hashing' });
  row = store.platforms.getImport(id)!;
  assert.deepEqual({ stage: row.stage, bytesDone: row.bytesDone, stamp: row.stamp, updatedAt: row.updatedAt }, { stage: 'hashing', bytesDone: 400, stamp, updatedAt: clock });

  // Silent past IMPORT_STALE_MS: taken for dead even though this process lives.
  clock += IMPORT_STALE_MS + 1;
  assert.equal(store.platforms.getImport(id)!.stale, true);
  // The next import marks it failed, as interrupted.
  const second = store.platforms.beginImport({ source: 'lab-6.1', os: 'linux', bytesTotal: null, stage: 'hashing' });
  row = store.platforms.getImport(id)!;
  assert.equal(row.stage, 'failed');
  assert.equal(row.stale, false);
  assert.match(row.error ?? '', /^interrupted: the importing process \(pid \d+ on .+\) stopped during hashing$/);

  // A refusal ends the row failed with the reason; a late report cannot revive it.
  store.platforms.failImport(second, 'platform lab-6.1 is already imported (use --force to replace it)');
  store.platforms.reportImport(second, { stage: 'writing', bytesDone: 5 });
  row = store.platforms.getImport(second)!;
  assert.deepEqual({ stage: row.stage, bytesDone: row.bytesDone, error: row.error, finishedAt: row.finishedAt }, {
    stage: 'failed',
    bytesDone: 0,
    error: 'platform lab-6.1 is already imported (use --force to replace it)',
    finishedAt: clock,
  });

  // A real import: the row is done with every byte counted, in the transaction that made the platform.
  const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp: 'lab-6.1' }));
  const p = await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: join(dir, 'platform-images') });
  const done = store.platforms.imports(1)[0]!;
  assert.deepEqual(
    { stage: done.stage, os: done.os, stamp: done.stamp, source: done.source, bytesDone: done.bytesDone, bytesTotal: done.bytesTotal, stale: done.stale },
    { stage: 'done', os: 'linux', stamp: 'lab-6.1', source: m.dir, bytesDone: p.size, bytesTotal: p.size, stale: false },
  );
  assert.deepEqual(store.platforms.imports().map((i) => i.stage), ['done', 'failed', 'failed'], 'newest first');

  // A process that began an import and died: stale at once (same host, pid gone), without waiting for the heartbeat.
  const child = await execa(process.execPath, [
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    `import { Store } from ${JSON.stringify(join(repoRoot, 'src/store/store.ts'))};
     const s = Store.open(${JSON.stringify(join(dir, 'fleetboot.db'))}, { now: () => ${clock} });
     s.platforms.beginImport({ source: 'dead.tgz', os: 'smartos', bytesTotal: 10, stage: 'unpacking' });
     process.exit(0);`,
  ], { cwd: repoRoot });
  assert.equal(child.exitCode, 0);
  const dead = store.platforms.imports(1)[0]!;
  assert.equal(dead.source, 'dead.tgz');
  assert.equal(dead.stage, 'unpacking');
  assert.equal(dead.stale, true);
});

test('an import waiting on a stalled pipe keeps its row alive with a heartbeat, and shows the bytes it got so far', async (t) => {
  const dir = tempDir(t);
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  const fifo = join(dir, `platform-${stamp}.tgz`);
  await execa('mkfifo', [fifo]);
  const importing = importSmartosTarball(fifo, { store, platformImagesDir: join(dir, 'platform-images') });
  importing.catch(() => undefined); // ended below by closing the pipe early
  const writer = createWriteStream(fifo);
  writer.on('error', () => undefined);
  // A failed assertion must not leave the import waiting on the pipe: that keeps the file's process alive.
  t.after(() => { writer.destroy(); });
  const whole = bigTarball();
  const part = whole.subarray(0, 200_000);
  writer.write(part);
  // Every byte written is reported, though the stream then stalls (the last count of a burst).
  const first = await until('the bytes written so far', () => {
    const row = store.platforms.imports(1)[0];
    return row && row.bytesDone === part.length ? row : undefined;
  });
  const beat = await until('a heartbeat', () => {
    const row = store.platforms.getImport(first.id)!;
    return row.updatedAt > first.updatedAt ? row : undefined;
  }, 10_000);
  assert.equal(beat.bytesDone, part.length);
  assert.equal(beat.stage, 'unpacking');
  assert.equal(beat.stale, false);
  writer.end();
  await assert.rejects(importing, /truncated/);
  const ended = store.platforms.getImport(first.id)!;
  assert.equal(ended.stage, 'failed');
  assert.match(ended.error ?? '', /truncated/);
});

interface CliImport {
  child: ResultPromise;
  writer: WriteStream;
}

/** `fleetboot platform import FIFO` in a process of its own, on the head node's data dir; the test feeds the FIFO. */
async function cliImportFromFifo(t: { after: (fn: () => void) => void }, h: RunningHeadNode, dir: string, name: string): Promise<CliImport> {
  const config = join(dir, 'fleetboot.json');
  writeFileSync(config, JSON.stringify({ dataDir: h.head.config.dataDir, platformImagesDir: h.head.config.platformImagesDir, log: { level: 'silent' } }));
  const fifo = join(dir, name);
  await execa('mkfifo', [fifo]);
  const child = execa(process.execPath, [cliPath, '--config', config, 'platform', 'import', fifo], { cwd: dir, reject: false });
  const writer = createWriteStream(fifo);
  writer.on('error', () => undefined); // EPIPE once a reader is killed: expected
  // Passed or failed, neither the CLI nor the pipe outlives the test.
  t.after(() => { writer.destroy(); child.kill('SIGKILL'); });
  return { child, writer };
}

test('the platforms page shows an import running in the CLI with its bytes, then done; a refused import with its error; a killed one as interrupted', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const { cookie } = await dashboardLogin(h.url, h.token);
  const fragment = async (path: string): Promise<string> => {
    const res = await fetch(`${h.url}${path}`, { headers: { cookie } });
    assert.equal(res.status, 200, `${path} answers`);
    return res.text();
  };
  assert.match(await fragment('/ui/platforms/imports'), /No import is running/);
  const page = await fragment('/ui/platforms');
  assert.match(page, /<section id="imports">[\s\S]*No import is running/);
  assert.match(page, /<script src="\/ui\/assets\/platforms\.js" defer><\/script>/);
  assert.equal((await fetch(`${h.url}/ui/platforms/imports`, { headers: { accept: 'text/html' }, redirect: 'manual' })).status, 303, 'a session is needed');

  // In progress: half the tarball is through the FIFO.
  const whole = bigTarball();
  const run = await cliImportFromFifo(t, h, dir, `platform-${stamp}.tgz`);
  run.writer.write(whole.subarray(0, whole.length >> 1));
  const running = await until('the import to show its bytes', async () => {
    const body = await fragment('/ui/platforms/imports');
    const m = /<tr data-import="\d+" data-stage="unpacking">[\s\S]*?<progress><\/progress> ([\d.]+) (KiB|MiB)/.exec(body);
    return m ? body : undefined;
  });
  assert.match(running, /<table class="imports active">/);
  assert.match(running, new RegExp(`<code>${stamp}</code>|stamp not read yet`));
  assert.match(running, new RegExp(`from ${join(dir, `platform-${stamp}.tgz`).replace(/[.]/g, '\\.')}`));
  assert.ok(!/data-stamp=/.test(await fragment('/ui/platforms/table')), 'no platform row before the commit');

  run.writer.end(whole.subarray(whole.length >> 1));
  const result = await run.child;
  assert.equal(result.exitCode, 0, String(result.stderr));
  const after = await fragment('/ui/platforms/imports');
  assert.match(after, /No import is running/);
  assert.match(after, new RegExp(`<table class="imports done">[\\s\\S]*<tr data-import="\\d+" data-stage="done"><td><code>${stamp}</code>[\\s\\S]*<span class="badge state-done">done</span>`));
  assert.match(await fragment('/ui/platforms/table'), new RegExp(`<tr data-stamp="${stamp}">`));

  // Refused: the damaged archive's error is on the page.
  const damaged = writeSmartosTarball(dir, { stamp: '20240502T000000Z', hash: `${'0'.repeat(40)}\n` });
  const refused = await execa(process.execPath, [cliPath, '--config', join(dir, 'fleetboot.json'), 'platform', 'import', damaged], { cwd: dir, reject: false });
  assert.equal(refused.exitCode, 2);
  const failed = await fragment('/ui/platforms/imports');
  assert.match(failed, /<table class="imports failed">[\s\S]*<span class="badge state-failed">failed<\/span>[\s\S]*boot_archive does not match boot_archive\.hash/);

  // Killed with SIGKILL mid-stream: interrupted on the page, nothing imported, and the next import marks it failed.
  const killedStamp = '20240503T000000Z';
  const killed = await cliImportFromFifo(t, h, dir, `platform-${killedStamp}.tgz`);
  const big = bigTarball(killedStamp);
  killed.writer.write(big.subarray(0, big.length >> 1));
  await until('the second import to run', async () => (/data-stage="unpacking"/.test(await fragment('/ui/platforms/imports')) ? true : undefined));
  killed.child.kill('SIGKILL');
  assert.equal((await killed.child).signal, 'SIGKILL');
  killed.writer.destroy();
  const interrupted = await fragment('/ui/platforms/imports');
  assert.match(interrupted, /No import is running/);
  assert.match(interrupted, /data-stage="interrupted">[\s\S]*?<span class="badge state-failed">interrupted<\/span>[\s\S]*?the importing process \(pid \d+ on [^)]+\) stopped during unpacking; nothing was left imported/);
  assert.deepEqual(h.head.store.platforms.list().map((p) => p.stamp), [stamp]);
  const osDir = join(h.head.config.platformImagesDir, 'os');
  assert.ok(readdirSync(osDir).some((n) => n.startsWith('.import-')), 'the killed import left only its work folder');
  assert.ok(!existsSync(join(osDir, killedStamp)));

  const retry = join(dir, 'retry');
  await execa('mkdir', [retry]);
  await importSmartosTarball(writeSmartosTarball(retry, { stamp: killedStamp }), { store: h.head.store, platformImagesDir: h.head.config.platformImagesDir });
  assert.deepEqual(readdirSync(osDir).sort(), [stamp, killedStamp].sort(), 'the next import swept the work folder');
  const [newest, previous] = h.head.store.platforms.imports(2);
  assert.equal(newest!.stage, 'done');
  assert.equal(previous!.stage, 'failed');
  assert.match(previous!.error ?? '', /^interrupted: the importing process \(pid \d+ on .+\) stopped during unpacking$/);
});

test('the imports fragment: a bar with the share done when the size is known, and a silent import shown as interrupted', async (t) => {
  let clock = Date.now();
  const h = await startHeadNode(t, tempDir(t), {}, () => clock);
  const { cookie } = await dashboardLogin(h.url, h.token);
  const imports = async (): Promise<string> => (await fetch(`${h.url}/ui/platforms/imports`, { headers: { cookie } })).text();
  const id = h.head.store.platforms.beginImport({ source: 'platform-<x>.tgz', os: 'smartos', bytesTotal: 4 << 20, stage: 'unpacking' });
  h.head.store.platforms.reportImport(id, { bytesDone: 1 << 20, stamp });
  const body = await imports();
  assert.match(body, new RegExp(`<tr data-import="${id}" data-stage="unpacking"><td><code>${stamp}</code> <span class="muted">smartos from platform-&lt;x&gt;.tgz</span>`));
  assert.match(body, /<progress max="4194304" value="1048576">25%<\/progress> <span class="pct">25%<\/span> 1\.0 MiB \/ 4\.0 MiB/);
  clock += IMPORT_STALE_MS + 1000;
  const later = await imports();
  assert.match(later, /No import is running/);
  assert.match(later, new RegExp(`<tr data-import="${id}" data-stage="interrupted">`));
});
