-- The dashboard's live feed asks once a second whether any rollout or step changed
-- (store/rollouts.ts changeStamp). Without an index on updated_at that is a scan of every
-- step ever written; with it, the newest write and the writes of that same millisecond are
-- an index lookup.
CREATE INDEX rollout_steps_updated_at ON rollout_steps (updated_at);
CREATE INDEX rollouts_updated_at ON rollouts (updated_at);
