// The store's upkeep off the event loop (store-worker.mjs): WAL checkpoints and the per-node
// index of boot events.
//
// SQLite's automatic checkpoint runs inside the commit that crosses 1000 WAL pages, on the
// thread that commits: a DHCP burst then waits 10+ ms and its replies leave as one flood. The
// head node turns the automatic checkpoint off and lets the worker checkpoint every
// `intervalMs` instead (https://sqlite.org/wal.html). The boot-event index is built in bulk
// behind the journal for the same reason (migration 004_boot_event_journal.sql).
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import { walSizeLimit, type Db } from './db.ts';

export interface StoreWorkerOptions {
  /** How often the worker wakes to checkpoint and to look at the journal's tail. */
  intervalMs?: number;
  /** WAL length (frames, one per 4 KiB page written) past which it is started over: 64 MiB. */
  restartFrames?: number;
  /** Unindexed events that make the worker index them at its next wake (a batch is at most 4x this). */
  indexBatch?: number;
  /** Fewer than indexBatch are indexed once this long has passed since the last batch. */
  indexEveryMs?: number;
  /** Index entries per write transaction (each holds the write lock about a millisecond). */
  indexChunk?: number;
  /** Pause between those transactions, so the head node's writer gets the lock. */
  indexPauseMs?: number;
  /** Boot events older than this many days are deleted (config store.bootEventDays). */
  bootEventDays?: number;
  /** A node keeps at most this many boot events, its newest (config store.bootEventsPerNode). */
  bootEventsPerNode?: number;
  /** Events deleted per write transaction, with indexPauseMs between them. */
  pruneChunk?: number;
}

export interface StoreWorkerCounters {
  checkpointedFrames: number;
  walRestarts: number;
  indexedEvents: number;
  /** Boot events deleted by retention, and in how many write transactions. */
  prunedEvents: number;
  pruneChunks: number;
  /** WAL checkpoint passes run (one PASSIVE checkpoint per wake, copying or not) and the seconds those took in all. */
  checkpoints: number;
  checkpointSeconds: number;
  /** RESTART checkpoints run after a PASSIVE one (the WAL past restartFrames), which hold the write lock, and their seconds. */
  restartCheckpoints: number;
  restartCheckpointSeconds: number;
  /** The last pass: how long it took (PASSIVE plus any RESTART) and when it ended; null before the first. */
  lastCheckpointSeconds: number | null;
  lastCheckpointAt: string | null;
}

/** What the worker thread posts (store-worker.mjs). */
interface WorkerReport {
  error?: string;
  checkpointed?: number;
  checkpointMs?: number;
  restartMs?: number | null;
  checkpointAt?: number;
  /** The checkpointNow requests this report answers. */
  forced?: number[];
  restarted?: number;
  indexed?: number;
  pruned?: number;
  pruneChunks?: number;
}

export class StoreWorker {
  readonly name = 'store-worker';
  private worker: Worker | null = null;
  private readonly options: Required<StoreWorkerOptions>;
  /** WAL frames the worker has copied into the database so far. */
  checkpointedFrames = 0;
  /** Times the worker made SQLite start the WAL over after it outgrew restartFrames. */
  restarts = 0;
  /** Boot events the worker has added to the per-node index. */
  indexedEvents = 0;
  /** Boot events retention deleted, and the write transactions it took. */
  prunedEvents = 0;
  pruneChunks = 0;
  private checkpoints = { count: 0, seconds: 0, restarts: 0, restartSeconds: 0, lastSeconds: null as number | null, lastAt: null as number | null };
  /** checkpointNow calls waiting for their pass, by request id. */
  private readonly asked = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private nextAsk = 1;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    options: StoreWorkerOptions = {},
  ) {
    // In bench/dhcp's storm (~47,000 events/s from 5,000 clients) a batch is ~3 s of events:
    // each node's page takes ~30 entries per write, and a timeline's tail scan stays near
    // 200,000 rows.
    this.options = {
      intervalMs: 1000,
      restartFrames: walSizeLimit / 4096,
      indexBatch: 150_000,
      indexEveryMs: 5000,
      indexChunk: 2000,
      indexPauseMs: 3,
      bootEventDays: 30,
      bootEventsPerNode: 10_000,
      pruneChunk: 500,
      ...options,
    };
  }

  get counters(): StoreWorkerCounters {
    return {
      checkpointedFrames: this.checkpointedFrames,
      walRestarts: this.restarts,
      indexedEvents: this.indexedEvents,
      prunedEvents: this.prunedEvents,
      pruneChunks: this.pruneChunks,
      checkpoints: this.checkpoints.count,
      checkpointSeconds: this.checkpoints.seconds,
      restartCheckpoints: this.checkpoints.restarts,
      restartCheckpointSeconds: this.checkpoints.restartSeconds,
      lastCheckpointSeconds: this.checkpoints.lastSeconds,
      lastCheckpointAt: this.checkpoints.lastAt === null ? null : new Date(this.checkpoints.lastAt).toISOString(),
    };
  }

  /** Has the worker run a checkpoint pass now; resolves once it has (its figures are in `counters`). */
  checkpointNow(): Promise<void> {
    const worker = this.worker;
    if (!worker) return Promise.reject(new Error('the store worker is not running'));
    const id = this.nextAsk++;
    return new Promise<void>((resolve, reject) => {
      this.asked.set(id, { resolve, reject });
      worker.postMessage({ checkpoint: id });
    });
  }

  private answer(ids: readonly number[] | undefined, err?: Error): void {
    for (const id of ids ?? []) {
      const a = this.asked.get(id);
      this.asked.delete(id);
      if (err) a?.reject(err);
      else a?.resolve();
    }
  }

  private onCheckpoint(passiveMs: number, restartMs: number | null, at: number): void {
    const c = this.checkpoints;
    c.count++;
    c.seconds += passiveMs / 1000;
    if (restartMs !== null) {
      c.restarts++;
      c.restartSeconds += restartMs / 1000;
    }
    c.lastSeconds = (passiveMs + (restartMs ?? 0)) / 1000;
    c.lastAt = at;
  }

  async start(): Promise<void> {
    const worker = new Worker(new URL('./store-worker.mjs', import.meta.url), {
      workerData: { file: this.db.name, ...this.options },
    });
    worker.on('message', (m: WorkerReport) => {
      if (m.error) {
        this.log.warn({ event: 'store_upkeep', error: m.error }, 'store upkeep failed; the worker tries again');
        this.answer(m.forced, new Error(m.error));
      }
      if (m.checkpointed) this.checkpointedFrames += m.checkpointed;
      if (m.checkpointMs !== undefined && m.checkpointAt !== undefined) {
        this.onCheckpoint(m.checkpointMs, m.restartMs ?? null, m.checkpointAt);
        this.answer(m.forced);
      }
      if (m.indexed) this.indexedEvents += m.indexed;
      if (m.pruned) {
        this.prunedEvents += m.pruned;
        this.pruneChunks += m.pruneChunks ?? 0;
        this.log.info({ event: 'boot_events_pruned', pruned: m.pruned, chunks: m.pruneChunks }, 'old boot events deleted');
      }
      if (m.restarted) {
        this.restarts++;
        this.log.info({ event: 'wal_restarted', frames: m.restarted }, 'WAL copied into the database; the next write starts it over');
      }
    });
    worker.on('error', (err) => this.log.error({ err, event: 'store_upkeep' }, 'store worker died; automatic checkpoints resume, timelines scan the unindexed journal'));
    worker.on('exit', () => {
      // Whatever ends the worker, the connection must not be left without checkpoints.
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
      this.answer([...this.asked.keys()], new Error('the store worker exited before the checkpoint'));
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
