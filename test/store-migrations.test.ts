import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMigrations, MigrationError, openDatabase } from '../src/store/db.ts';
import { Store } from '../src/store/store.ts';
import { parseMac } from '../src/mac.ts';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { StoreWorker } from '../src/store/store-worker.ts';
import { silentLogger } from '../src/log.ts';
import { tempDir } from './fixtures.ts';

test('a database made by an older migration set is upgraded in place, keeping its rows', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fleetboot.db');
  const all = loadMigrations();
  assert.ok(all.length >= 2, 'expected at least two migrations');
  const old = openDatabase(file, all.slice(0, 1));
  old.prepare('INSERT INTO nodes (uuid, created_at, updated_at) VALUES (?, 1, 1)').run('11111111-2222-3333-4444-555555555555');
  assert.equal(old.pragma('user_version', { simple: true }), all[0]!.version);
  assert.throws(() => old.prepare('SELECT * FROM rollouts').all(), /no such table/);
  old.close();

  const store = Store.open(file);
  t.after(() => store.close());
  assert.equal(store.db.pragma('user_version', { simple: true }), all.at(-1)!.version);
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(store.nodes.findByUuid('11111111-2222-3333-4444-555555555555')?.id, 1);
  assert.deepEqual(store.db.prepare('SELECT count(*) AS n FROM rollouts').get(), { n: 0 });
});

test('a database newer than this fleetboot is refused, not downgraded', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fleetboot.db');
  const db = openDatabase(file);
  db.pragma('user_version = 999');
  db.close();
  assert.throws(() => Store.open(file), MigrationError);
});

test('a failing migration leaves the previous schema version intact', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fleetboot.db');
  const good = loadMigrations();
  const bad = [...good, { version: 99, name: 'broken', sql: 'CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);' }];
  assert.throws(() => openDatabase(file, bad), /no such table: nowhere/);
  const db = openDatabase(file, good);
  assert.equal(db.pragma('user_version', { simple: true }), good.at(-1)!.version);
  assert.throws(() => db.prepare('SELECT * FROM half').all(), /no such table/);
  db.close();
});

test('discovering a machine creates one node per machine, matched by MAC or UUID', (t) => {
  const store = Store.open(join(tempDir(t), 'r.db'));
  t.after(() => store.close());
  const mac1 = parseMac('52:54:00:AA:BB:01')!;
  const mac2 = parseMac('52-54-00-aa-bb-02')!;
  const uuid = '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d';
  const a = store.nodes.discover({ mac: mac1, uuid, arch: 'x86_64' });
  assert.equal(a.created, true);
  assert.equal(a.node.state, 'discovered');
  const again = store.nodes.discover({ mac: mac1 });
  assert.equal(again.created, false);
  assert.equal(again.node.id, a.node.id);
  const secondPort = store.nodes.discover({ mac: mac2, uuid: uuid.toUpperCase() });
  assert.equal(secondPort.node.id, a.node.id);
  assert.deepEqual(secondPort.node.nics.map((n) => n.mac).sort(), [mac1, mac2]);
  // Firmware with no SMBIOS UUID sends zeros: that is not an identity.
  const z1 = store.nodes.discover({ mac: parseMac('52:54:00:00:00:01')!, uuid: '00000000-0000-0000-0000-000000000000' });
  const z2 = store.nodes.discover({ mac: parseMac('52:54:00:00:00:02')!, uuid: '00000000-0000-0000-0000-000000000000' });
  assert.notEqual(z1.node.id, z2.node.id);
  assert.equal(store.nodes.find('52:54:00:aa:bb:02')?.id, a.node.id);
  assert.equal(store.nodes.find(uuid)?.id, a.node.id);
  assert.equal(store.nodes.find(String(a.node.id))?.id, a.node.id);
  store.events.record({ event: 'dhcp_discover', mac: mac2, detail: { xid: 1 } });
  assert.deepEqual(store.events.timeline(a.node.id).map((e) => e.event), ['dhcp_discover']);
});

test('the node holding an address is found by static NIC address or by a bound, unexpired lease', (t) => {
  let now = 1_000_000;
  const store = Store.open(join(tempDir(t), 'r.db'), { now: () => now });
  t.after(() => store.close());
  const a = store.nodes.discover({ mac: parseMac('52:54:00:00:00:0a')! }).node;
  store.nodes.upsertNic(a.id, { mac: parseMac('52:54:00:00:00:0a')!, ip: '10.0.0.10', isAdmin: true });
  const b = store.nodes.discover({ mac: parseMac('52:54:00:00:00:0b')! }).node;
  store.db.prepare("INSERT INTO leases (ip, network, mac, state, expires_at, updated_at) VALUES ('10.0.0.150', 'admin', '52:54:00:00:00:0b', 'bound', ?, ?)").run(now + 60_000, now);
  assert.equal(store.nodes.findByAddress('10.0.0.10')?.node.id, a.id);
  assert.equal(store.nodes.findByAddress('10.0.0.150')?.node.id, b.id);
  assert.equal(store.nodes.findByAddress('10.0.0.150')?.mac, '52:54:00:00:00:0b');
  now += 61_000;
  assert.equal(store.nodes.findByAddress('10.0.0.150'), undefined);
  assert.equal(store.nodes.findByAddress('10.0.0.99'), undefined);
});

test('a running head node checkpoints the WAL on a worker thread, with automatic checkpoints off', async (t) => {
  const { startHeadNode } = await import('./fixtures.ts');
  const { head } = await startHeadNode(t, tempDir(t));
  assert.equal(head.store.db.pragma('wal_autocheckpoint', { simple: true }), 0);
  const insert = head.store.db.transaction(() => {
    for (let i = 0; i < 2000; i++) head.store.events.record({ event: 'dhcp_discover', detail: { i } });
  });
  insert();
  const deadline = Date.now() + 10_000;
  while (head.storeWorker.checkpointedFrames === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(head.storeWorker.checkpointedFrames > 0, 'the worker checkpointed the WAL');
  await head.stop();
  // Stopped: the connection is closed, so nothing is left without checkpoints.
  assert.equal(head.store.db.open, false);
});

test('under writes that never pause, the WAL is started over once it outgrows its bound', async (t) => {
  // A PASSIVE checkpoint alone never lets SQLite start the WAL over while commits keep
  // coming (store-worker.mjs): the file grew by ~40 MB/s during a boot storm.
  const file = join(tempDir(t), 'fleetboot.db');
  const store = Store.open(file);
  const worker = new StoreWorker(store.db, silentLogger, { intervalMs: 20, restartFrames: 64 });
  await worker.start();
  t.after(async () => {
    await worker.stop();
    store.close();
  });
  // Cut the WAL to nothing whenever it starts over (the head node keeps 64 MiB of it), so its
  // size at the end is what was written since the last restart.
  store.db.pragma('journal_size_limit = 0');
  // Commits back to back, as the DHCP server makes them in a boot storm (one per event-loop
  // turn, a millisecond of packet work between them), through the store's own write paths:
  // write-only batches, and discover, which reads first and writes second. Measured without
  // restarts: 1,000 such commits leave a WAL of ~130 MB; with them, under 2 MB.
  const commits = 1000;
  for (let n = 0; n < commits; n++) {
    store.events.recordAll(Array.from({ length: 50 }, (_, i) => ({ event: 'dhcp_discover' as const, detail: { i, pad: 'x'.repeat(200) } })));
    const mac = parseMac(`52:54:00:${[(n >> 16) & 255, (n >> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`)!;
    store.nodes.discover({ mac });
    const busyUntil = performance.now() + 1;
    while (performance.now() < busyUntil);
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(worker.restarts > 0, 'the worker started the WAL over');
  // Every row is there, and the WAL holds only what came after the last restart.
  assert.equal((store.db.prepare('SELECT count(*) AS n FROM nodes').get() as { n: number }).n, commits);
  assert.equal((store.db.prepare('SELECT count(*) AS n FROM boot_events').get() as { n: number }).n, commits * 50);
  const wal = statSync(`${file}-wal`).size;
  assert.ok(wal < 16 * 1024 * 1024, `WAL is ${wal} bytes`);
});

test('a write that reads first waits for a write lock held elsewhere instead of failing', async (t) => {
  // Another connection (the checkpoint worker, a second fleetboot CLI) may hold the write lock
  // for a moment. A deferred transaction that has already read cannot wait for it
  // (SQLITE_BUSY at once): writes are BEGIN IMMEDIATE.
  const file = join(tempDir(t), 'fleetboot.db');
  const store = Store.open(file);
  t.after(() => store.close());
  const holder = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const db = new (require(workerData.sqlite))(workerData.file);
     db.exec('BEGIN IMMEDIATE');
     parentPort.postMessage('locked');
     Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
     db.exec('COMMIT');
     db.close();`,
    { eval: true, workerData: { file, sqlite: createRequire(import.meta.url).resolve('better-sqlite3') } },
  );
  await once(holder, 'message');
  const started = Date.now();
  const { created } = store.nodes.discover({ mac: parseMac('52:54:00:00:00:77')! });
  assert.equal(created, true);
  assert.ok(Date.now() - started >= 100, 'it waited for the other connection to commit');
  await once(holder, 'exit');
});
