// Runs SQLite WAL checkpoints on a thread of its own, so a checkpoint never stalls the
// head node's event loop in the middle of a DHCP burst (https://sqlite.org/wal.html §
// "Checkpointing": PASSIVE checkpoints never block readers or writers). Plain JS: a
// worker thread does not inherit the main thread's TypeScript loader.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const Database = createRequire(import.meta.url)('better-sqlite3');
const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    if (result && result.checkpointed > 0) parentPort.postMessage({ checkpointed: result.checkpointed });
    // A PASSIVE checkpoint copies the WAL up to where it ended when the checkpoint began, and
    // SQLite starts the WAL over only when a write finds all of it copied. Under sustained
    // writes (a boot storm commits every few milliseconds) that moment never comes: the WAL
    // grew by ~40 MB/s in bench/dhcp and was never reused. Past `restartFrames`, RESTART
    // takes the write lock, copies what was appended while the PASSIVE pass just above ran
    // (tens of milliseconds' worth; the lock is held 10-20 ms at 15,500 DORA/s) and makes
    // the next commit write from the WAL's start; the
    // main connection's journal_size_limit then cuts the file back (db.ts). The head node's
    // writer waits in its busy handler meanwhile: every write is BEGIN IMMEDIATE for that
    // reason (writeTransaction in db.ts; https://sqlite.org/pragma.html#pragma_wal_checkpoint).
    if (result && result.log >= workerData.restartFrames) {
      const [restarted] = db.pragma('wal_checkpoint(RESTART)');
      if (restarted && restarted.busy === 0) parentPort.postMessage({ restarted: result.log });
    }
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message ? err.message : err) });
  }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } finally {
      db.close();
      parentPort.close();
    }
  }
});
