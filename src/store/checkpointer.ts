// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside the commit
// that crosses 1000 WAL pages, on the thread that commits: a DHCP burst then waits 10+ ms
// and its replies leave as one flood. The head node turns the automatic checkpoint off and
// lets this worker checkpoint every `intervalMs` instead (https://sqlite.org/wal.html).
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import { walSizeLimit, type Db } from './db.ts';

export class WalCheckpointer {
  readonly name = 'wal-checkpointer';
  private worker: Worker | null = null;
  /** WAL frames the worker has copied into the database so far. */
  checkpointedFrames = 0;
  /** Times the worker made SQLite start the WAL over after it outgrew restartFrames. */
  restarts = 0;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    readonly intervalMs = 1000,
    /** WAL length (frames, one per 4 KiB page written) past which it is started over: 64 MiB. */
    readonly restartFrames = walSizeLimit / 4096,
  ) {}

  async start(): Promise<void> {
    const worker = new Worker(new URL('./checkpoint-worker.mjs', import.meta.url), {
      workerData: { file: this.db.name, intervalMs: this.intervalMs, restartFrames: this.restartFrames },
    });
    worker.on('message', (m: { error?: string; checkpointed?: number; restarted?: number }) => {
      if (m.error) this.log.warn({ event: 'wal_checkpoint', error: m.error }, 'WAL checkpoint failed');
      if (m.checkpointed) this.checkpointedFrames += m.checkpointed;
      if (m.restarted) {
        this.restarts++;
        this.log.info({ event: 'wal_restarted', frames: m.restarted }, 'WAL copied into the database; the next write starts it over');
      }
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
