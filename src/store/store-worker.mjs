// The store's upkeep, on a thread of its own so none of it stalls the head node's event loop
// in the middle of a DHCP burst: WAL checkpoints, the per-node index of boot events, and
// their retention (by age, and by count per node).
// Plain JS: a worker thread does not inherit the main thread's TypeScript loader.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';

const Database = createRequire(import.meta.url)('better-sqlite3');
const { file, intervalMs, restartFrames, indexBatch, indexEveryMs, indexChunk, indexPauseMs, bootEventDays, bootEventsPerNode, pruneChunk } = workerData;
const db = new Database(file);
db.pragma('busy_timeout = 1000');

// --- The boot-event index (migration 004_boot_event_journal.sql) ---------------------------
// Events are appended to boot_events with no per-node index: an index keyed by node puts every
// event on its own node's page, and a boot storm then rewrote tens of pages per commit. Here
// the journal's unindexed tail is read (a read transaction: no lock), sorted by node, and
// written into boot_events_by_node in small transactions. Sorted, a node's events of a whole
// batch go into its page at once. Each transaction holds the write lock for about a
// millisecond, then the worker pauses: the head node's writer, waiting in SQLite's busy
// handler (it sleeps 1, 2, 5 ms... between tries), gets the lock in the gap. `upto` moves
// only once the whole batch is in, so a crash mid-batch leaves the invariant true and the
// next pass writes the batch again (INSERT OR IGNORE).
const ROWS_PER_STATEMENT = 500;
const indexedUpto = db.prepare('SELECT upto FROM boot_events_indexed').pluck();
const lastEventId = db.prepare('SELECT coalesce(max(id), 0) FROM boot_events').pluck();
const pendingOf = db
  .prepare('SELECT node_id, id FROM boot_events WHERE id > ? AND id <= ? AND node_id IS NOT NULL ORDER BY node_id, id')
  .raw();
const insertRows = db.prepare(
  `INSERT OR IGNORE INTO boot_events_by_node (node_id, id) VALUES ${Array(ROWS_PER_STATEMENT).fill('(?, ?)').join(', ')}`,
);
const insertRow = db.prepare('INSERT OR IGNORE INTO boot_events_by_node (node_id, id) VALUES (?, ?)');
const setUpto = db.prepare('UPDATE boot_events_indexed SET upto = ? WHERE upto = ?');
const writeChunk = db.transaction((rows) => {
  let i = 0;
  const params = new Array(ROWS_PER_STATEMENT * 2);
  for (; i + ROWS_PER_STATEMENT <= rows.length; i += ROWS_PER_STATEMENT) {
    for (let j = 0; j < ROWS_PER_STATEMENT; j++) {
      params[2 * j] = rows[i + j][0];
      params[2 * j + 1] = rows[i + j][1];
    }
    insertRows.run(params);
  }
  for (; i < rows.length; i++) insertRow.run(rows[i]);
}).immediate;
const advance = db.transaction((to, from) => setUpto.run(to, from).changes).immediate;

let lastIndexedAt = 0;
let stopping = false;

/** Indexes the journal's tail once it is `indexBatch` events long or `indexEveryMs` old. */
async function indexEvents() {
  const upto = indexedUpto.get();
  const last = lastEventId.get();
  if (last === upto) return;
  if (last - upto < indexBatch && Date.now() - lastIndexedAt < indexEveryMs) return;
  // A long tail (a journal written while no head node ran) goes in over several wakes.
  const to = Math.min(last, upto + 4 * indexBatch);
  const rows = pendingOf.all(upto, to);
  for (let i = 0; i < rows.length; i += indexChunk) {
    if (stopping) return;
    writeChunk(rows.slice(i, i + indexChunk));
    await sleep(indexPauseMs);
  }
  // `WHERE upto = ?`: should another worker (a second head node on the same file) have moved
  // it meanwhile, this one does not move it back.
  if (advance(to, upto) === 1) parentPort.postMessage({ indexed: rows.length });
  lastIndexedAt = Date.now();
  for (const row of rows) {
    const known = perNode.get(row[0]);
    if (known === undefined) uncounted.add(row[0]);
    else perNode.set(row[0], known + 1);
  }
}

// --- Retention (docs/store.md "Retention") --------------------------------------------------
// Events go by age (older than bootEventDays) and by count (a node keeps its newest
// bootEventsPerNode), `pruneChunk` events per write transaction with the same pause as the
// index, so the head node's writer gets the lock between chunks. Each chunk deletes the events
// and their index entries together, and only events at or below `upto`: the invariant of
// migration 004 speaks of rows that exist, so it stays true. The journal's last row is never
// deleted: boot_events.id is a rowid without AUTOINCREMENT, and SQLite gives a new row
// max(rowid) + 1 (https://sqlite.org/autoinc.html), so deleting the last row would hand out
// an id at or below `upto` again, to an event the index would then never get.
const oldestIndexed = db.prepare('SELECT id, node_id, at FROM boot_events WHERE id <= ? AND id < ? ORDER BY id LIMIT ?').raw();
const deleteEvent = db.prepare('DELETE FROM boot_events WHERE id = ?');
const deleteEntry = db.prepare('DELETE FROM boot_events_by_node WHERE node_id = ? AND id = ?');
const countOfNode = db.prepare('SELECT count(*) FROM boot_events_by_node WHERE node_id = ?').pluck();
const oldestOfNode = db.prepare('SELECT id FROM boot_events_by_node WHERE node_id = ? AND id <= ? ORDER BY id LIMIT ?').pluck();
const allNodes = db.prepare('SELECT id FROM nodes').pluck();
const deleteChunk = db.transaction((rows) => {
  // rows: [id, node_id]
  for (const [id, nodeId] of rows) {
    deleteEvent.run(id);
    if (nodeId !== null) deleteEntry.run(nodeId, id);
  }
}).immediate;
// A node's indexed events, counted once and then kept up to date from each batch, so a wake
// looks only at nodes past the cap instead of counting every node a storm touched. Deletions
// make the figure too high, never too low: a node past the cap is counted again before pruning.
const perNode = new Map();
const uncounted = new Set(allNodes.all());
/** Chunks per wake at most; what is left goes at the next wake. */
const PRUNE_CHUNKS_PER_WAKE = 100;

async function pruneEvents() {
  let chunks = 0;
  let pruned = 0;
  const flush = async (rows) => {
    deleteChunk(rows);
    chunks++;
    pruned += rows.length;
    await sleep(indexPauseMs);
  };
  // By age, oldest first. Ids and times grow together (appends stamped with the clock), so the
  // journal's old events are its first rows; a clock that stepped back only delays a few.
  const cutoff = Date.now() - bootEventDays * 86_400_000;
  while (!stopping && chunks < PRUNE_CHUNKS_PER_WAKE) {
    const rows = oldestIndexed.all(indexedUpto.get(), lastEventId.get(), pruneChunk);
    let n = 0;
    while (n < rows.length && rows[n][2] < cutoff) n++;
    if (n === 0) break;
    await flush(rows.slice(0, n).map((r) => [r[0], r[1]]));
    if (n < rows.length) break;
  }
  // By count.
  for (const nodeId of uncounted) {
    if (stopping) break;
    perNode.set(nodeId, countOfNode.get(nodeId));
    uncounted.delete(nodeId);
  }
  // A wake prunes at most PRUNE_CHUNKS_PER_WAKE nodes' worth. A node it pruned goes to the
  // back of the order, so the next wake starts with those it did not reach: were the order
  // fixed, a fleet whose every node crosses the cap between index batches would keep the same
  // first nodes pruned and let the rest grow without end (bench/store-growth). The loop walks
  // a copy, as re-inserting into a Map puts the entry back into a walk of the Map itself.
  for (const [nodeId, estimate] of [...perNode]) {
    if (stopping || chunks >= PRUNE_CHUNKS_PER_WAKE) break;
    if (estimate <= bootEventsPerNode) continue;
    let count = countOfNode.get(nodeId);
    while (count > bootEventsPerNode && !stopping && chunks < PRUNE_CHUNKS_PER_WAKE) {
      const ids = oldestOfNode.all(nodeId, indexedUpto.get(), Math.min(pruneChunk, count - bootEventsPerNode));
      if (ids.length === 0) break;
      await flush(ids.map((id) => [id, nodeId]));
      count -= ids.length;
    }
    perNode.delete(nodeId);
    if (count > 0) perNode.set(nodeId, count);
  }
  if (pruned > 0) parentPort.postMessage({ pruned, pruneChunks: chunks });
}

// --- WAL checkpoints ----------------------------------------------------------------------
// https://sqlite.org/wal.html § "Checkpointing": PASSIVE checkpoints never block readers or
// writers. The head node turns SQLite's automatic checkpoint off (store-worker.ts).
// The pragma's `checkpointed` is how many frames of the WAL as it stands are in the database
// (https://sqlite.org/pragma.html#pragma_wal_checkpoint), the same frames again at every wake
// until a write starts the WAL over: the frames copied this time are the growth since the
// last wake, or all of them once the WAL got shorter (it was started over).
let lastWal = { log: 0, checkpointed: 0 };
function checkpoint(forced) {
  const startedAt = performance.now();
  const [result] = db.pragma('wal_checkpoint(PASSIVE)');
  const passiveMs = performance.now() - startedAt;
  let copied = 0;
  if (result) {
    const restartedSince = result.log < lastWal.log || result.checkpointed < lastWal.checkpointed;
    copied = restartedSince ? result.checkpointed : result.checkpointed - lastWal.checkpointed;
    lastWal = { log: result.log, checkpointed: result.checkpointed };
  }
  let restartMs = null;
  // A PASSIVE checkpoint copies the WAL up to where it ended when the checkpoint began, and
  // SQLite starts the WAL over only when a write finds all of it copied. Under sustained
  // writes (a boot storm commits every few milliseconds) that moment never comes: the WAL
  // grew by ~40 MB/s in bench/dhcp and was never reused. Past `restartFrames`, RESTART
  // takes the write lock, copies what was appended while the PASSIVE pass just above ran
  // (tens of milliseconds' worth; the lock was held 10-20 ms at 15,500 DORA/s) and makes
  // the next commit write from the WAL's start; the main connection's journal_size_limit
  // then cuts the file back (db.ts). The head node's writer waits in its busy handler
  // meanwhile: every write is BEGIN IMMEDIATE for that reason (writeTransaction in db.ts;
  // https://sqlite.org/pragma.html#pragma_wal_checkpoint).
  if (result && result.log >= restartFrames) {
    const restartAt = performance.now();
    const [restarted] = db.pragma('wal_checkpoint(RESTART)');
    restartMs = performance.now() - restartAt;
    if (restarted) {
      // The WAL starts over at the next write, not now: until then the pragma reports it as it was.
      copied += Math.max(0, restarted.checkpointed - lastWal.checkpointed);
      lastWal = { log: restarted.log, checkpointed: restarted.checkpointed };
      if (restarted.busy === 0) parentPort.postMessage({ restarted: result.log });
    }
  }
  // Every pass is reported, copying or not: the head node's metrics time them and tell
  // when the last one ran (docs/metrics.md).
  parentPort.postMessage({ checkpointed: Math.max(0, copied), checkpointMs: passiveMs, restartMs, checkpointAt: Date.now(), forced });
}

/** Runs one kind of upkeep; a failure is reported (with the checkpoint requests it leaves unanswered) and the next round tries again. */
async function attempt(what, fn, forced = []) {
  try {
    await fn();
  } catch (err) {
    parentPort.postMessage({ error: `${what}: ${err && err.message ? err.message : String(err)}`, forced });
  }
}

// 'stop' ends the loop; { checkpoint: id } asks for a round now, and the checkpoint's report
// carries the ids it answers (StoreWorker.checkpointNow).
let wake = new AbortController();
let asked = [];
parentPort.on('message', (m) => {
  if (m === 'stop') stopping = true;
  else if (m && typeof m.checkpoint === 'number') asked.push(m.checkpoint);
  else return;
  wake.abort();
});

while (!stopping) {
  await sleep(intervalMs, undefined, { signal: wake.signal }).catch(() => {});
  if (wake.signal.aborted) wake = new AbortController();
  if (stopping) break;
  const forced = asked;
  asked = [];
  await attempt('boot event index', indexEvents);
  await attempt('boot event retention', pruneEvents);
  await attempt('WAL checkpoint', () => checkpoint(forced), forced);
}
try {
  db.pragma('wal_checkpoint(PASSIVE)');
} finally {
  db.close();
  parentPort.close();
}
