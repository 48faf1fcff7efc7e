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
