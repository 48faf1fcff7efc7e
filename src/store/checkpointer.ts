// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside the commit
// that crosses 1000 WAL pages, on the thread that commits: a DHCP burst then waits 10+ ms
// and its replies leave as one flood. The head node turns the automatic checkpoint off and
// lets this worker checkpoint every `intervalMs` instead (https://sqlite.org/wal.html).
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import type { Db } from './db.ts';

export class WalCheckpointer {
  readonly name = 'wal-checkpointer';
  private worker: Worker | null = null;
  /** WAL frames the worker has copied into the database so far. */
  checkpointedFrames = 0;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    readonly intervalMs = 1000,
  ) {}

  async start(): Promise<void> {
    const worker = new Worker(new URL('./checkpoint-worker.mjs', import.meta.url), { workerData: { file: this.db.name, intervalMs: this.intervalMs } });
    worker.on('message', (m: { error?: string; checkpointed?: number }) => {
      if (m.error) this.log.warn({ event: 'wal_checkpoint', error: m.error }, 'WAL checkpoint failed');
      if (m.checkpointed) this.checkpointedFrames += m.checkpointed;
    });
    worker.on('error', (err) => this.log.error({ err, event: 'wal_checkpoint' }, 'WAL checkpointer died; automatic checkpoints resume'));
    worker.on('exit', () => {
      // Whatever ends the worker, the connection must not be left without checkpoints.
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
    });
    await once(worker, 'online');
    this.db.pragma('wal_autocheckpoint = 0');
    this.worker = worker;
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = null;
    const exited = once(worker, 'exit');
    worker.postMessage('stop');
    await exited;
  }
}
