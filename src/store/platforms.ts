// Imported platform images (docs/design.md "The registry": platforms). A row exists only for a
// folder that was verified and renamed into place in the same transaction (src/platforms/import.ts),
// and names that folder: a forced re-import commits a row naming a new folder (migration 008).
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
    options: { replace?: boolean } = {},
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
