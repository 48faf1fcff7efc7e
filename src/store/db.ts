// Opening the registry and bringing its schema up to date. Migrations are numbered .sql
// files; `PRAGMA user_version` records the last one applied, and each runs in its own
// transaction so a crash mid-upgrade leaves the previous version intact.
import Database from 'better-sqlite3';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Db = Database.Database;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrationsDir = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

/** Reads `NNN_name.sql` files in version order. */
export function loadMigrations(dir = migrationsDir): Migration[] {
  return readdirSync(dir)
    .map((file) => /^(\d+)_([\w-]+)\.sql$/.exec(file))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ version: Number(m[1]), name: m[2] ?? '', sql: readFileSync(join(dir, m[0]), 'utf8') }))
    .sort((a, b) => a.version - b.version);
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/**
 * A transaction that takes SQLite's write lock at BEGIN (BEGIN IMMEDIATE). Every write to the
 * store goes through one. A deferred transaction that reads first and writes second cannot
 * wait for the lock: when another connection holds it (a CLI command, the store worker
 * starting the WAL over), the upgrade fails at once with SQLITE_BUSY and the busy handler is
 * never asked (https://sqlite.org/lang_transaction.html, "BEGIN IMMEDIATE";
 * https://sqlite.org/wal.html §"Sometimes Queries Return SQLITE_BUSY In WAL Mode").
 * BEGIN IMMEDIATE waits in busy_timeout.
 * Nested inside another transaction it is a savepoint, as with db.transaction.
 */
export function writeTransaction<A extends unknown[], R>(db: Db, fn: (...args: A) => R): (...args: A) => R {
  return db.transaction(fn).immediate;
}

/** Applies every migration newer than the database; returns the versions applied. */
export function migrate(db: Db, migrations: Migration[]): number[] {
  const current = db.pragma('user_version', { simple: true }) as number;
  const newest = migrations.at(-1)?.version ?? 0;
  if (current > newest) {
    throw new MigrationError(`database schema version ${current} is newer than this fleetboot knows (${newest}); upgrade fleetboot`);
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
    writeTransaction(db, () => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
    applied.push(m.version);
  }
  return applied;
}

/** Bytes a WAL file keeps after SQLite starts it over; the store worker restarts it at this size too. */
export const walSizeLimit = 16384 * 4096;

/** Opens (creating if needed) the SQLite registry in WAL mode and migrates it. */
export function openDatabase(file: string, migrations: Migration[] = loadMigrations()): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  // WAL: readers never block the writer; synchronous=NORMAL is durable across a process
  // crash (kill -9) in WAL mode, which is the failure the store must survive.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // A WAL the store worker started over (store-worker.ts) is cut back to this many bytes
  // by the commit that begins rewriting it; smaller than that, the file is reused in place.
  db.pragma(`journal_size_limit = ${walSizeLimit}`);
  migrate(db, migrations);
  return db;
}
