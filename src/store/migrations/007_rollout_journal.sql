-- The rollout journal (rollout/journal.ts RolloutJournal): 002's tables predate the
-- orchestrator and never held a row, so they are replaced rather than altered.
-- The orchestrator writes each step transition here before its side effect; a restarted
-- head node resumes from these rows (docs/design.md "Rolling upgrades").

DROP TABLE rollout_steps;
DROP TABLE rollouts;

CREATE TABLE rollouts (
  id                  INTEGER PRIMARY KEY,
  spec                TEXT NOT NULL,               -- JSON, rollout/plan.ts rolloutSpecSchema output
  -- No foreign key: a platform removed with --force leaves the history naming it
  -- (store/platforms.ts refuses removal while a rollout names the platform).
  target_platform     TEXT NOT NULL,
  max_in_flight       INTEGER NOT NULL CHECK (max_in_flight > 0),
  domain_trait        TEXT,                        -- NULL: no failure domain
  domain_max_in_flight INTEGER CHECK (domain_max_in_flight > 0),
  state               TEXT NOT NULL
                      CHECK (state IN ('running', 'waiting_promote', 'paused', 'cancelled', 'done', 'failed')),
  reason              TEXT,
  promoted_at         INTEGER,
  accepted_failures   INTEGER NOT NULL DEFAULT 0 CHECK (accepted_failures >= 0),
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  CHECK ((domain_trait IS NULL) = (domain_max_in_flight IS NULL))
);

-- node_id has no foreign key: steps name nodes as planned, and a journal outlives them.
CREATE TABLE rollout_steps (
  rollout_id        INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  node_id           INTEGER NOT NULL,
  seq               INTEGER NOT NULL,              -- plan order within the rollout
  label             TEXT NOT NULL,
  wave              INTEGER NOT NULL CHECK (wave >= 1),
  canary            INTEGER NOT NULL CHECK (canary IN (0, 1)),
  domain            TEXT NOT NULL,
  state             TEXT NOT NULL
                    CHECK (state IN ('pending', 'assigned', 'power_cycling', 'power_cycled', 'verified', 'rolling_back',
                                     'rollback_cycling', 'rollback_cycled', 'rolled_back', 'rollback_failed', 'reverting', 'reverted')),
  previous_platform TEXT,
  previous_running  TEXT,
  reboot_at         INTEGER,
  reason            TEXT,
  started_at        INTEGER,
  finished_at       INTEGER,
  updated_at        INTEGER NOT NULL,
  PRIMARY KEY (rollout_id, node_id),
  UNIQUE (rollout_id, seq)
) WITHOUT ROWID;
