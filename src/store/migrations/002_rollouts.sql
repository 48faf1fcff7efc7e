-- Rolling upgrades (docs/design.md "Rolling upgrades"): state lives here so a restart resumes.

CREATE TABLE rollouts (
  id               INTEGER PRIMARY KEY,
  target_platform  TEXT NOT NULL REFERENCES platforms (stamp),
  selector         TEXT NOT NULL,                -- JSON {all: true} | {trait: {k: v}} | {nodes: [...]}
  batch_size       INTEGER NOT NULL CHECK (batch_size > 0),
  canary_count     INTEGER NOT NULL DEFAULT 0 CHECK (canary_count >= 0),
  max_failures     INTEGER NOT NULL DEFAULT 0 CHECK (max_failures >= 0),
  deadline_seconds INTEGER NOT NULL CHECK (deadline_seconds > 0),
  state            TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'running', 'paused', 'succeeded', 'failed', 'cancelled')),
  failures         INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);

CREATE TABLE rollout_steps (
  id                INTEGER PRIMARY KEY,
  rollout_id        INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  node_id           INTEGER NOT NULL REFERENCES nodes (id),
  batch             INTEGER NOT NULL,
  previous_platform TEXT,
  state             TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'rebooting', 'succeeded', 'rolled_back', 'failed', 'skipped')),
  started_at        INTEGER,
  finished_at       INTEGER,
  error             TEXT,
  UNIQUE (rollout_id, node_id)
);
CREATE INDEX rollout_steps_rollout ON rollout_steps (rollout_id, batch);
