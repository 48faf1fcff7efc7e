// Retention by count reaches every node past the cap while events keep coming, not only the
// first ones it counted: a wake prunes a bounded number of nodes, and the next wake starts
// with those it did not reach (store-worker.mjs, "Retention").
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { silentLogger } from '../src/log.ts';
import { writeTransaction } from '../src/store/db.ts';
import { Store } from '../src/store/store.ts';
import { StoreWorker } from '../src/store/store-worker.ts';
import { tempDir } from './fixtures.ts';

const NODES = 300;
const CAP = 100;
const SEEDED = 150;

test('retention by count prunes every node of a fleet whose every node crosses the cap between index batches', async (t) => {
  const dir = tempDir(t);
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  const ids = Array.from({ length: NODES }, (_, n) => store.nodes.discover({ mac: parseMac(`52:54:00:aa:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`)! }).node.id);
  const writeRound = (perNode: number): void =>
    writeTransaction(store.db, () => store.events.recordAll(ids.flatMap((nodeId) => Array.from({ length: perNode }, () => ({ event: 'dhcp_request' as const, nodeId })))))();
  writeRound(SEEDED);

  // Every wake indexes what was written since the last one, so every node is past the cap
  // again at every wake: more nodes than one wake's chunks can reach.
  const worker = new StoreWorker(store.db, silentLogger, { intervalMs: 40, indexEveryMs: 0, bootEventsPerNode: CAP, pruneChunk: 500 });
  await worker.start();
  t.after(() => worker.stop());

  const countOf = store.db.prepare('SELECT count(*) FROM boot_events WHERE node_id = ?').pluck();
  const last = ids[ids.length - 1]!;
  const deadline = Date.now() + 60_000;
  let rounds = 0;
  // Until the node counted last has lost events while writes go on (a node the worker
  // never reaches only grows).
  while ((countOf.get(last) as number) >= SEEDED + rounds) {
    assert.ok(Date.now() < deadline, `node ${last} still has ${String(countOf.get(last))} events after ${rounds} rounds; pruned ${worker.prunedEvents}`);
    writeRound(1);
    rounds++;
    await new Promise((r) => setTimeout(r, 10));
  }
  // And so has every other: none is left at its seeded count plus all that was written since.
  const untouched = ids.filter((id) => (countOf.get(id) as number) >= SEEDED + rounds);
  assert.deepEqual(untouched, []);
  assert.ok(worker.prunedEvents > 0);
});
