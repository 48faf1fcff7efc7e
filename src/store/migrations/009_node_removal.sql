-- `fleetboot node rm` deletes nodes (store.ts removeNode). nodes.id is a rowid without
-- AUTOINCREMENT: SQLite gives a new row max(rowid) + 1 (https://sqlite.org/autoinc.html), so
-- removing the newest node would hand its id to the next machine, and the rollout history,
-- logs and events that name the old id would then name a stranger. The ids of removed nodes
-- are never handed out again: a new node's id is past both max(id) and `upto`.
CREATE TABLE node_ids_removed (
  one   INTEGER PRIMARY KEY CHECK (one = 1),
  upto  INTEGER NOT NULL                         -- the highest id a removed node had
);
INSERT INTO node_ids_removed (one, upto) VALUES (1, 0);
