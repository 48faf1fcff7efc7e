// Imported platform images (docs/design.md "The registry": platforms). A row exists only for a
// folder that was verified and renamed into place in the same transaction (src/platforms/import.ts),
// and names that folder: a forced re-import commits a row naming a new folder (migration 008).
// Imports in progress keep a row of their own in platform_imports (migration 010).
import { hostname } from 'node:os';
import { writeTransaction, type Db } from './db.ts';

export type PlatformOs = 'smartos' | 'linux';

/** What a file is for when a node boots it; `other` files are served but not booted. */
export type PlatformFileRole = 'kernel' | 'boot_archive' | 'boot_archive_hash' | 'initrd' | 'other';

export interface PlatformFile {
  /** Path under the platform's folder (`platform-images/os/<stamp>/`), `/`-separated. */
  path: string;
  size: number;
  role: PlatformFileRole;
  sha1?: string;
  sha256: string;
}

export interface PlatformRecord {
  stamp: string;
  os: PlatformOs;
  version: string | null;
  files: PlatformFile[];
  size: number;
  /** Linux: the default kernel command line. */
  kernelArgs: string | null;
  isDefault: boolean;
  importedAt: number;
}

/** A platform as stored: the record plus the folder (under `platform-images/os/`) holding its files. */
export interface StoredPlatform extends PlatformRecord {
  folder: string;
}

export interface PlatformUsage {
  /** Nodes whose boot_platform is this stamp (what they boot next). */
  booting: number;
  /** Nodes that last reported running this stamp. */
  running: number;
}

interface PlatformRow {
  stamp: string;
  os: PlatformOs;
  version: string | null;
  files: string;
  size: number;
  kernel_args: string | null;
  is_default: number;
  imported_at: number;
  folder: string | null;
}

const fromRow = (r: PlatformRow): StoredPlatform => ({
  stamp: r.stamp,
  os: r.os,
  version: r.version,
  files: JSON.parse(r.files) as PlatformFile[],
  size: r.size,
  kernelArgs: r.kernel_args,
  isDefault: r.is_default === 1,
  importedAt: r.imported_at,
  // Rows from before migration 008 live in a folder named after their stamp.
  folder: r.folder ?? r.stamp,
});

/** Where an import is: the active stages, then `done` or `failed`. */
export type ImportStage = 'unpacking' | 'hashing' | 'writing' | 'done' | 'failed';

/** An import's progress row, as the importing process last wrote it. */
export interface PlatformImportRecord {
  id: number;
  source: string;
  os: PlatformOs | null;
  stamp: string | null;
  stage: ImportStage;
  bytesDone: number;
  /** Null when unknown (a pipe). */
  bytesTotal: number | null;
  startedAt: number;
  /** The importing process's last report (its heartbeat). */
  updatedAt: number;
  finishedAt: number | null;
  pid: number;
  host: string;
  error: string | null;
  /**
   * In an active stage, but its process is gone (same host, pid not alive) or has not
   * reported for IMPORT_STALE_MS: an import killed mid-way, whose row nobody will finish.
   */
  stale: boolean;
}

/** An active import reports at least this often (src/platforms/import.ts heartbeat). */
export const IMPORT_HEARTBEAT_MS = 5000;
/** An active import silent for this long is taken for dead, wherever it ran. */
export const IMPORT_STALE_MS = 30_000;
/** Finished import rows kept; older ones go when a new import begins. */
const IMPORTS_KEPT = 100;

interface ImportRow {
  id: number;
  source: string;
  os: PlatformOs | null;
  stamp: string | null;
  stage: ImportStage;
  bytes_done: number;
  bytes_total: number | null;
  started_at: number;
  updated_at: number;
  finished_at: number | null;
  pid: number;
  host: string;
  error: string | null;
}

const ACTIVE_STAGES = "('unpacking', 'hashing', 'writing')";

/** Whether the process that wrote an import row may still be running it. */
function importerAlive(r: ImportRow, now: number): boolean {
  if (now - r.updated_at > IMPORT_STALE_MS) return false;
  if (r.host !== hostname()) return true; // another machine's pid says nothing here: the heartbeat decides
  if (r.pid === process.pid) return true;
  try {
    process.kill(r.pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user (the head node's service user).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PlatformInUseError extends Error {
  override readonly name = 'PlatformInUseError';
}

export class PlatformRepo {
  private readonly byStamp;
  private readonly all;
  private readonly insertStmt;
  private readonly deleteStmt;
  private readonly clearDefault;
  private readonly markDefault;
  private readonly usageStmt;
  private readonly rolloutsOf;
  private readonly importInsert;
  private readonly importReport;
  private readonly importById;
  private readonly importsRecent;
  private readonly importsActive;
  private readonly importFinish;
  private readonly importsPrune;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {
    this.byStamp = db.prepare<[string], PlatformRow>('SELECT * FROM platforms WHERE stamp = ?');
    this.all = db.prepare<[], PlatformRow>('SELECT * FROM platforms ORDER BY stamp');
    this.insertStmt = db.prepare(
      `INSERT INTO platforms (stamp, os, version, files, size, kernel_args, is_default, imported_at, folder)
       VALUES (@stamp, @os, @version, @files, @size, @kernel_args, @is_default, @imported_at, @folder)`,
    );
    this.deleteStmt = db.prepare<[string]>('DELETE FROM platforms WHERE stamp = ?');
    this.clearDefault = db.prepare('UPDATE platforms SET is_default = 0 WHERE is_default = 1');
    this.markDefault = db.prepare<[string]>('UPDATE platforms SET is_default = 1 WHERE stamp = ?');
    this.usageStmt = db.prepare<[], { stamp: string; booting: number; running: number }>(
      `SELECT p.stamp,
              (SELECT count(*) FROM nodes n WHERE n.boot_platform = p.stamp) AS booting,
              (SELECT count(*) FROM nodes n WHERE n.current_platform = p.stamp) AS running
         FROM platforms p`,
    );
    // A rollout not over that targets the stamp, or has a node in flight that a rollback would
    // put back on it (rollout/journal.ts step states). Finished rollouts only remember it.
    const inFlight = "('assigned', 'power_cycling', 'power_cycled', 'rolling_back', 'rollback_cycling', 'rollback_cycled', 'reverting')";
    this.rolloutsOf = db.prepare<{ stamp: string }, { id: number }>(
      `SELECT r.id FROM rollouts r
        WHERE (r.target_platform = @stamp
               AND (r.state IN ('running', 'waiting_promote', 'paused')
                    OR EXISTS (SELECT 1 FROM rollout_steps s WHERE s.rollout_id = r.id AND s.state IN ${inFlight})))
           OR EXISTS (SELECT 1 FROM rollout_steps s WHERE s.rollout_id = r.id AND s.previous_platform = @stamp AND s.state IN ${inFlight})
        ORDER BY r.id LIMIT 1`,
    );
    this.importInsert = db.prepare<{ source: string; os: PlatformOs | null; stage: ImportStage; bytes_total: number | null; now: number; pid: number; host: string }>(
      `INSERT INTO platform_imports (source, os, stage, bytes_total, started_at, updated_at, pid, host)
       VALUES (@source, @os, @stage, @bytes_total, @now, @now, @pid, @host)`,
    );
    this.importReport = db.prepare<{
      id: number;
      now: number;
      stage: ImportStage | null;
      bytes_done: number | null;
      set_total: number;
      bytes_total: number | null;
      stamp: string | null;
      os: PlatformOs | null;
    }>(
      `UPDATE platform_imports
          SET updated_at = @now, stage = coalesce(@stage, stage), bytes_done = coalesce(@bytes_done, bytes_done),
              bytes_total = CASE WHEN @set_total = 1 THEN @bytes_total ELSE bytes_total END,
              stamp = coalesce(@stamp, stamp), os = coalesce(@os, os)
        WHERE id = @id AND stage IN ${ACTIVE_STAGES}`,
    );
    this.importById = db.prepare<[number], ImportRow>('SELECT * FROM platform_imports WHERE id = ?');
    this.importsRecent = db.prepare<[number], ImportRow>('SELECT * FROM platform_imports ORDER BY id DESC LIMIT ?');
    this.importsActive = db.prepare<[], ImportRow>(`SELECT * FROM platform_imports WHERE stage IN ${ACTIVE_STAGES}`);
    this.importFinish = db.prepare<{ id: number; stage: 'done' | 'failed'; stamp: string | null; error: string | null; now: number }>(
      `UPDATE platform_imports
          SET stage = @stage, stamp = coalesce(@stamp, stamp), error = @error, updated_at = @now, finished_at = @now,
              bytes_done = CASE WHEN @stage = 'done' THEN coalesce(bytes_total, bytes_done) ELSE bytes_done END
        WHERE id = @id AND stage IN ${ACTIVE_STAGES}`,
    );
    this.importsPrune = db.prepare<[number]>(
      `DELETE FROM platform_imports WHERE stage IN ('done', 'failed')
          AND id NOT IN (SELECT id FROM platform_imports WHERE stage IN ('done', 'failed') ORDER BY id DESC LIMIT ?)`,
    );
  }

  get(stamp: string): StoredPlatform | undefined {
    const row = this.byStamp.get(stamp);
    return row && fromRow(row);
  }

  list(): StoredPlatform[] {
    return this.all.all().map(fromRow);
  }

  getDefault(): StoredPlatform | undefined {
    return this.list().find((p) => p.isDefault);
  }

  usage(): Map<string, PlatformUsage> {
    return new Map(this.usageStmt.all().map((r) => [r.stamp, { booting: r.booting, running: r.running }]));
  }

  /**
   * Inserts a platform row inside one IMMEDIATE transaction that also runs `placeFiles`
   * (the rename into place): if the insert fails the caller's rename is undone by
   * `undoPlace`, so a folder and its row appear together or not at all. `replace` drops an
   * existing row of the same stamp first (import --force); `placeFiles` is told which row it
   * replaces (the caller removes that row's folder once the commit is done) and returns the
   * folder it placed the files in (default: the stamp), which the new row names.
   */
  insert(
    p: Omit<PlatformRecord, 'importedAt' | 'isDefault'> & { makeDefault?: boolean },
    placeFiles: (replaced: StoredPlatform | undefined) => string | void,
    undoPlace: () => void,
    options: { replace?: boolean; importId?: number } = {},
  ): StoredPlatform {
    const run = writeTransaction(this.db, () => {
      const existing = this.byStamp.get(p.stamp);
      let wasDefault = false;
      if (existing) {
        if (!options.replace) throw new PlatformExistsError(`platform ${p.stamp} is already imported (use --force to replace it)`);
        wasDefault = existing.is_default === 1;
        // Nodes keep pointing at the stamp (same name, new files); only the row is replaced.
        this.db.pragma('defer_foreign_keys = ON');
        this.deleteStmt.run(p.stamp);
      }
      const makeDefault = wasDefault || p.makeDefault === true || this.all.all().length === 0;
      if (makeDefault) this.clearDefault.run();
      const folder = placeFiles(existing && fromRow(existing)) ?? p.stamp;
      this.insertStmt.run({
        stamp: p.stamp,
        os: p.os,
        version: p.version,
        files: JSON.stringify(p.files),
        size: p.size,
        kernel_args: p.kernelArgs,
        is_default: makeDefault ? 1 : 0,
        imported_at: this.now(),
        folder,
      });
      // The progress row says done in the commit that makes the platform exist, never before or after.
      if (options.importId !== undefined) this.importFinish.run({ id: options.importId, stage: 'done', stamp: p.stamp, error: null, now: this.now() });
    });
    try {
      run();
    } catch (err) {
      undoPlace();
      throw err;
    }
    return this.get(p.stamp)!;
  }

  setDefault(stamp: string): StoredPlatform {
    writeTransaction(this.db, () => {
      if (!this.byStamp.get(stamp)) throw new PlatformMissingError(`no platform ${stamp} (see fleetboot platform list)`);
      this.clearDefault.run();
      this.markDefault.run(stamp);
    })();
    return this.get(stamp)!;
  }

  /**
   * Deletes the row; with `force`, nodes assigned to it go back to the default platform
   * (boot_platform NULL). `removeFiles` runs inside the transaction with the row's folder (it
   * renames the folder aside), so a failure leaves both row and folder.
   */
  remove(stamp: string, options: { force: boolean }, removeFiles: (folder: string) => void): { unassigned: number } {
    return writeTransaction(this.db, () => {
      const row = this.byStamp.get(stamp);
      if (!row) throw new PlatformMissingError(`no platform ${stamp} (see fleetboot platform list)`);
      const booting = this.usage().get(stamp)?.booting ?? 0;
      if (booting > 0 && !options.force) {
        throw new PlatformInUseError(`platform ${stamp} is assigned to ${booting} node(s); assign them another platform first, or use --force`);
      }
      const rollout = this.rolloutsOf.get({ stamp });
      if (rollout) {
        throw new PlatformInUseError(`platform ${stamp} is in use by rollout ${rollout.id}; cancel it (fleetboot rollout cancel ${rollout.id}) or wait for it to finish`);
      }
      const unassigned = this.db
        .prepare<[number, string]>('UPDATE nodes SET boot_platform = NULL, updated_at = ? WHERE boot_platform = ?')
        .run(this.now(), stamp).changes;
      this.deleteStmt.run(stamp);
      removeFiles(fromRow(row).folder);
      return { unassigned };
    })();
  }

  /**
   * Starts an import's progress row for the calling process. Rows of imports whose process died are marked failed first, and
   * finished rows past the newest IMPORTS_KEPT are dropped.
   */
  beginImport(p: { source: string; os: PlatformOs | null; bytesTotal: number | null; stage: 'unpacking' | 'hashing' }): number {
    return writeTransaction(this.db, () => {
      const now = this.now();
      this.failStale(now);
      this.importsPrune.run(IMPORTS_KEPT);
      return Number(this.importInsert.run({ source: p.source, os: p.os, stage: p.stage, bytes_total: p.bytesTotal, now, pid: process.pid, host: hostname() }).lastInsertRowid);
    })();
  }

  /** The importer's report: a stage, bytes done (and total), the stamp once known. Also its heartbeat. */
  reportImport(id: number, p: { stage?: 'unpacking' | 'hashing' | 'writing'; bytesDone?: number; bytesTotal?: number | null; stamp?: string; os?: PlatformOs }): void {
    writeTransaction(this.db, () => {
      this.importReport.run({
        id,
        now: this.now(),
        stage: p.stage ?? null,
        bytes_done: p.bytesDone ?? null,
        set_total: p.bytesTotal !== undefined ? 1 : 0,
        bytes_total: p.bytesTotal ?? null,
        stamp: p.stamp ?? null,
        os: p.os ?? null,
      });
    })();
  }

  /** Ends an import that did not commit: stage `failed` with what went wrong. */
  failImport(id: number, error: string): void {
    writeTransaction(this.db, () => {
      this.importFinish.run({ id, stage: 'failed', stamp: null, error, now: this.now() });
    })();
  }

  getImport(id: number): PlatformImportRecord | undefined {
    const row = this.importById.get(id);
    return row && this.importOf(row, this.now());
  }

  /** The newest imports first, active and finished, at most `limit`. */
  imports(limit = 20): PlatformImportRecord[] {
    const now = this.now();
    return this.importsRecent.all(limit).map((r) => this.importOf(r, now));
  }

  private importOf(r: ImportRow, now: number): PlatformImportRecord {
    const active = r.stage !== 'done' && r.stage !== 'failed';
    return {
      id: r.id,
      source: r.source,
      os: r.os,
      stamp: r.stamp,
      stage: r.stage,
      bytesDone: r.bytes_done,
      bytesTotal: r.bytes_total,
      startedAt: r.started_at,
      updatedAt: r.updated_at,
      finishedAt: r.finished_at,
      pid: r.pid,
      host: r.host,
      error: r.error,
      stale: active && !importerAlive(r, now),
    };
  }

  /** Marks failed every active row whose process is gone (inside the caller's transaction). */
  private failStale(now: number): void {
    for (const r of this.importsActive.all()) {
      if (importerAlive(r, now)) continue;
      this.importFinish.run({ id: r.id, stage: 'failed', stamp: null, error: `interrupted: the importing process (pid ${r.pid} on ${r.host}) stopped during ${r.stage}`, now });
    }
  }

  /**
   * Runs `fn` holding the database write lock, with the set of folders the rows name: the
   * start-up sweep uses it so it never sees a folder an import is committing right now.
   */
  withWriteLock<T>(fn: (folders: Set<string>) => T): T {
    return writeTransaction(this.db, () => fn(new Set(this.all.all().map((r) => fromRow(r).folder))))();
  }
}

export class PlatformExistsError extends Error {
  override readonly name = 'PlatformExistsError';
}

export class PlatformMissingError extends Error {
  override readonly name = 'PlatformMissingError';
}
