// Boot events: an append-only journal whose per-node index the store worker builds behind it
// (migration 004_boot_event_journal.sql). A timeline must be whole and in order whatever part
// of the journal is indexed yet.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadMigrations, openDatabase } from '../src/store/db.ts';
import { Store } from '../src/store/store.ts';
import { StoreWorker } from '../src/store/store-worker.ts';
import { parseMac, type Mac } from '../src/mac.ts';
import { silentLogger } from '../src/log.ts';
import { tempDir } from './fixtures.ts';

const macOf = (n: number): Mac => parseMac(`52:54:00:00:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`)!;

/** `nodes` nodes, then `rounds` rounds of one event per node, interleaved as a storm writes them. */
function storm(store: Store, nodes: number, rounds: number): number[] {
  const ids = Array.from({ length: nodes }, (_, n) => store.nodes.discover({ mac: macOf(n) }).node.id);
  for (let r = 0; r < rounds; r++) {
    store.events.recordAll(ids.map((nodeId, n) => ({ event: 'dhcp_discover' as const, nodeId, mac: macOf(n), detail: { r } })));
  }
  return ids;
}

const rounds = (store: Store, nodeId: number, limit?: number): unknown[] => store.events.timeline(nodeId, limit).map((e) => e.detail.r);
const count = (store: Store, sql: string): number => (store.db.prepare(sql).get() as { n: number }).n;
const upto = (store: Store): number => count(store, 'SELECT upto AS n FROM boot_events_indexed');

/** Waits until the worker has indexed the whole journal and said how many events it added. */
async function untilIndexed(store: Store, worker: StoreWorker, events: number): Promise<void> {
  const last = count(store, 'SELECT max(id) AS n FROM boot_events');
  const deadline = Date.now() + 10_000;
  while ((upto(store) < last || worker.indexedEvents < events) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(upto(store), last, `the worker indexed the journal (${worker.indexedEvents} events so far)`);
  assert.equal(worker.indexedEvents, events);
}

test('recording events writes only the journal; the timeline reads its unindexed tail', (t) => {
  const store = Store.open(join(tempDir(t), 'fleetboot.db'));
  t.after(() => store.close());
  const [a, b] = storm(store, 2, 5);
  // No per-node index entry on the write path: that is what kept DHCP commits small.
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events_by_node'), 0);
  assert.deepEqual(rounds(store, a!), [0, 1, 2, 3, 4]);
  assert.deepEqual(rounds(store, b!, 3), [2, 3, 4]);
});

test('the store worker indexes the journal in batches and the timeline is the same before and after', async (t) => {
  const store = Store.open(join(tempDir(t), 'fleetboot.db'));
  const worker = new StoreWorker(store.db, silentLogger, { intervalMs: 20, indexBatch: 1000, indexEveryMs: 60_000, indexChunk: 300, indexPauseMs: 1 });
  t.after(async () => {
    await worker.stop();
    store.close();
  });
  const ids = storm(store, 50, 40);
  const before = ids.map((id) => rounds(store, id, 25));
  await worker.start();
  await untilIndexed(store, worker, 2000);
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events_by_node'), 2000);
  assert.deepEqual(ids.map((id) => rounds(store, id, 25)), before);
  assert.deepEqual(rounds(store, ids[7]!, 1000), Array.from({ length: 40 }, (_, r) => r));

  // Fewer than indexBatch new events wait (the tail serves them), then go in once
  // indexEveryMs has passed since the last batch.
  store.events.recordAll(ids.map((nodeId) => ({ event: 'dhcp_request' as const, nodeId, detail: { r: 40 } })));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(upto(store), 2000);
  assert.deepEqual(rounds(store, ids[7]!, 2), [39, 40]);
});

test('a batch cut short (entries past upto) neither duplicates nor hides events, and is finished later', async (t) => {
  const store = Store.open(join(tempDir(t), 'fleetboot.db'));
  t.after(() => store.close());
  const ids = storm(store, 3, 10);
  // As if the worker died after writing the first of a batch's transactions: part of the
  // node entries are in, upto has not moved.
  store.db.exec('INSERT INTO boot_events_by_node (node_id, id) SELECT node_id, id FROM boot_events WHERE id <= 12');
  assert.equal(upto(store), 0);
  assert.deepEqual(rounds(store, ids[0]!), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // The same with upto moved by an earlier, whole batch.
  store.db.exec('UPDATE boot_events_indexed SET upto = 9');
  assert.deepEqual(rounds(store, ids[1]!), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(rounds(store, ids[2]!, 8), [2, 3, 4, 5, 6, 7, 8, 9]);
  // indexBatch 1: batches of at most 4 events, so the journal goes in over several wakes.
  const worker = new StoreWorker(store.db, silentLogger, { intervalMs: 20, indexBatch: 1 });
  await worker.start();
  t.after(() => worker.stop());
  await untilIndexed(store, worker, 21); // the 21 events past upto = 9
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events_by_node'), 30);
  assert.deepEqual(rounds(store, ids[2]!), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('upgrading a store with boot events indexes them all', (t) => {
  const file = join(tempDir(t), 'fleetboot.db');
  const before004 = loadMigrations().filter((m) => m.version < 4);
  const old = openDatabase(file, before004);
  old.prepare("INSERT INTO nodes (uuid, created_at, updated_at) VALUES ('u', 1, 1)").run();
  const insert = old.prepare("INSERT INTO boot_events (node_id, mac, event, detail, at) VALUES (?, NULL, 'script', ?, 1)");
  for (let r = 0; r < 5; r++) insert.run(r % 2 === 0 ? 1 : null, JSON.stringify({ r }));
  old.close();
  const store = Store.open(file);
  t.after(() => store.close());
  assert.equal(upto(store), 5);
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events_by_node'), 3);
  assert.deepEqual(rounds(store, 1), [0, 2, 4]);
});
