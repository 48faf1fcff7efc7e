// Boot-event retention: the store worker deletes events by age and by count per node, in
// small write transactions, keeping migration 004's invariant and ids that only grow.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac, type Mac } from '../src/mac.ts';
import { silentLogger } from '../src/log.ts';
import { writeTransaction } from '../src/store/db.ts';
import { Store } from '../src/store/store.ts';
import { StoreWorker } from '../src/store/store-worker.ts';
import { startHeadNode, tempDir } from './fixtures.ts';

const day = 86_400_000;
const macOf = (n: number): Mac => parseMac(`52:54:00:9${n >> 8}:${((n >> 4) & 15).toString(16)}0:0${(n & 15).toString(16)}`)!;
const count = (store: Store, sql: string): number => (store.db.prepare(sql).get() as { n: number }).n;
const lastId = (store: Store): number => count(store, 'SELECT max(id) AS n FROM boot_events');

/** `n` events for `nodeId` (or mac-only when null) stamped `at`, in one transaction. */
function write(store: Store, clock: { at: number }, at: number, nodeId: number | null, n: number, tag: string): void {
  clock.at = at;
  writeTransaction(store.db, () => store.events.recordAll(Array.from({ length: n }, (_, i) => ({ event: 'dhcp_discover' as const, nodeId, detail: { tag, i } }))))();
}

async function until(what: string, done: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('retention deletes events older than bootEventDays and a node\'s oldest past its cap, in chunks, while lease writes go on', async (t) => {
  const dir = tempDir(t);
  const clock = { at: Date.now() };
  const store = Store.open(join(dir, 'fleetboot.db'), { now: () => clock.at });
  t.after(() => store.close());
  const a = store.nodes.discover({ mac: macOf(1) }).node.id;
  const b = store.nodes.discover({ mac: macOf(2) }).node.id;
  const now = Date.now();
  write(store, clock, now - 40 * day, a, 6000, 'old');
  write(store, clock, now - 40 * day, null, 50, 'old');
  write(store, clock, now - 2 * day, a, 300, 'recent');
  write(store, clock, now - day, b, 2500, 'b');
  const before = lastId(store);
  const keptOfB = store.events.timeline(b, 1000).map((e) => e.id);

  const worker = new StoreWorker(store.db, silentLogger, { intervalMs: 50, indexEveryMs: 0, bootEventDays: 30, bootEventsPerNode: 1000, pruneChunk: 500 });
  await worker.start();
  t.after(() => worker.stop());

  // The head node's writer keeps committing leases meanwhile; none may fail or wait long.
  let writes = 0;
  let slowest = 0;
  let failure: unknown = null;
  const mac = macOf(3);
  const deadline = Date.now() + 60_000;
  while (worker.prunedEvents < 6050 + 1500 && failure === null && Date.now() < deadline) {
    const started = performance.now();
    try {
      store.leases.saveAll([{ ip: `10.0.${(writes >> 8) & 255}.${writes & 255}`, network: 'lab', mac, clientId: null, hostname: null, state: 'bound', expiresAt: now + day, relayInfo: null, updatedAt: now }]);
    } catch (err) {
      failure = err;
    }
    slowest = Math.max(slowest, performance.now() - started);
    writes++;
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.equal(failure, null);
  assert.equal(worker.prunedEvents, 6050 + 1500);
  assert.ok(worker.pruneChunks >= Math.ceil(7550 / 500), `${worker.pruneChunks} chunks`);
  assert.ok(writes > worker.pruneChunks, `${writes} lease writes went on between ${worker.pruneChunks} chunks`);
  assert.ok(slowest < 4000, `a lease write waited ${slowest.toFixed(0)} ms`);
  assert.equal(store.leases.list().length, writes);

  // What is kept: A's recent events, B's newest 1000, nothing older than 30 days.
  assert.deepEqual(new Set(store.events.timeline(a, 10_000).map((e) => e.detail.tag)), new Set(['recent']));
  assert.equal(store.events.timeline(a, 10_000).length, 300);
  assert.deepEqual(store.events.timeline(b, 10_000).map((e) => e.id), keptOfB);
  assert.equal(count(store, `SELECT count(*) AS n FROM boot_events WHERE at < ${now - 30 * day}`), 0);
  // Migration 004's invariant holds, and no index entry outlives its event.
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events e WHERE e.node_id IS NOT NULL AND e.id <= (SELECT upto FROM boot_events_indexed) AND NOT EXISTS (SELECT 1 FROM boot_events_by_node i WHERE i.node_id = e.node_id AND i.id = e.id)'), 0);
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events_by_node i WHERE NOT EXISTS (SELECT 1 FROM boot_events e WHERE e.id = i.id)'), 0);
  // Ids only grow: the journal's last row was kept, so the next event comes after it.
  assert.equal(lastId(store), before);
  store.events.record({ event: 'checkin', nodeId: a });
  assert.equal(lastId(store), before + 1);
});

test('the head node prunes by its config: store.bootEventDays', async (t) => {
  const dir = tempDir(t);
  const clock = { at: Date.now() };
  const seed = Store.open(Store.fileIn(dir), { now: () => clock.at });
  const node = seed.nodes.discover({ mac: macOf(9) }).node.id;
  write(seed, clock, Date.now() - 3 * day, node, 40, 'three days old');
  write(seed, clock, Date.now(), node, 10, 'today');
  seed.close();
  const { head } = await startHeadNode(t, dir, { dataDir: dir, store: { bootEventDays: 2 } });
  await until('the worker to prune', () => head.storeWorker.prunedEvents >= 40, 30_000);
  assert.equal(head.storeWorker.prunedEvents, 40);
  assert.deepEqual(new Set(head.store.events.timeline(node).map((e) => e.detail.tag)), new Set(['today']));
});
