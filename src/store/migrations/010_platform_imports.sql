-- `fleetboot platform import` runs in the CLI's own process, beside the head node, and writes
-- its platform row only once the import is complete. Each import also keeps a progress row
-- here, written by the importing process as it goes and read by the head node's dashboard:
-- the stage, bytes done of bytes total, and the error that ended it. The row goes to `done`
-- in the same transaction that inserts the platform row (store/platforms.ts insert). A row
-- left in an active stage by a killed process is recognised by its pid and its heartbeat
-- (updated_at) and shown as interrupted; the next import marks it failed.
CREATE TABLE platform_imports (
  id           INTEGER PRIMARY KEY,
  source       TEXT    NOT NULL,                 -- the file or folder the import reads, as given
  os           TEXT    CHECK (os IN ('smartos', 'linux')),
  stamp        TEXT,                             -- once known (a tarball's top folder names it)
  stage        TEXT    NOT NULL CHECK (stage IN ('unpacking', 'hashing', 'writing', 'done', 'failed')),
  bytes_done   INTEGER NOT NULL DEFAULT 0,
  bytes_total  INTEGER,                          -- NULL: unknown (a pipe)
  started_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,                 -- the importing process's last report
  finished_at  INTEGER,
  pid          INTEGER NOT NULL,
  host         TEXT    NOT NULL,
  error        TEXT
);
CREATE INDEX platform_imports_active ON platform_imports (stage) WHERE stage NOT IN ('done', 'failed');
