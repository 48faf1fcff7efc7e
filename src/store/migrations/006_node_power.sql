-- How a node's power is reached: a JSON power spec (rollout/power.ts powerSpecSchema), set by
-- an operator with `fleetboot node set NODE power.kind=...`. NULL: fleetboot cannot power it.
ALTER TABLE nodes ADD COLUMN power TEXT;
