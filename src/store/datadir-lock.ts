// One head node per data dir: `serve` holds an exclusive lock on `<dataDir>/serve.lock` for
// its whole life. The lock is SQLite's own file lock (POSIX fcntl advisory locks, which the
// kernel drops when the holder dies, kill -9 included), taken with `locking_mode = EXCLUSIVE`
// so it is never released until the connection closes (https://sqlite.org/pragma.html
// #pragma_locking_mode). Who holds it is written beside it in `serve.holder`, since the
// locked file cannot be read by anyone else.
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

export const lockFileName = 'serve.lock';
export const holderFileName = 'serve.holder';

const holderSchema = z.object({
  pid: z.number().int().positive(),
  host: z.string(),
  startedAt: z.string(),
});
export type LockHolder = z.infer<typeof holderSchema>;

/** Another process holds the data dir; the message names it and what to do. */
export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder | null,
  ) {
    super(
      holder
        ? `data dir ${dataDir} is in use by fleetboot serve PID ${holder.pid} on ${holder.host} (since ${holder.startedAt}); stop it first (kill ${holder.pid}): one head node per data dir`
        : `data dir ${dataDir} is locked by another fleetboot serve (its ${holderFileName} is not written yet or unreadable); stop it first: one head node per data dir`,
    );
  }
}

export interface DataDirLock {
  /** The holder this lock took over from: a serve that died without releasing (kill -9, power loss). */
  readonly tookOverFrom: LockHolder | null;
  /** Releases the lock and removes the holder file. Safe to call twice. */
  release(): void;
}

function readHolder(file: string): LockHolder | null {
  try {
    const parsed = holderSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Takes the data dir's lock or throws DataDirLockedError naming the live holder. A holder
 * file left by a dead serve is reported in `tookOverFrom` (the kernel already freed its lock).
 */
export function lockDataDir(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const holderFile = join(dataDir, holderFileName);
  const db = new Database(join(dataDir, lockFileName));
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write in EXCLUSIVE locking mode takes the EXCLUSIVE lock and keeps it.
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS lock (id INTEGER PRIMARY KEY); INSERT OR REPLACE INTO lock (id) VALUES (1); COMMIT;');
  } catch (err) {
    db.close();
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new DataDirLockedError(dataDir, readHolder(holderFile));
    throw err;
  }
  const stale = existsSync(holderFile) ? readHolder(holderFile) : null;
  const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  const tmp = `${holderFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(me)}\n`, { mode: 0o644 });
  renameSync(tmp, holderFile);
  let released = false;
  return {
    tookOverFrom: stale,
    release(): void {
      if (released) return;
      released = true;
      rmSync(holderFile, { force: true });
      db.close();
    },
  };
}
