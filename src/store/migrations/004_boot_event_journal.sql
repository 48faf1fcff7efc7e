-- Boot events become an append-only journal with a per-node index built behind it.
--
-- The DHCP server records three events per DORA. An index on (node_id, id) puts each of them
-- into the tail of its node's run of index entries, a different b-tree page per node. In a
-- boot storm every commit then rewrote tens of index pages into the WAL: under bench/dhcp's
-- load (15,500 DORA/s, 5,000 clients) the head node wrote 76 MB/s (WAL and checkpoints)
-- with the index and 24 MB/s without it, and its drops rose from ~0.3% to 1-2%. So
-- appending an event now touches only the journal's last page. The store worker copies
-- (node_id, id) pairs into boot_events_by_node in bulk, sorted by node, so each node's page is
-- rewritten once per batch rather than once per commit (store-worker.mjs).
--
-- Invariant: every boot_events row with id <= boot_events_indexed.upto has its entry in
-- boot_events_by_node. Rows above it (the last seconds of a storm at most) are found by a
-- rowid range scan (BootEventRepo.timeline). Event ids only grow: nothing deletes events.
--
-- boot_events.node_id keeps its foreign key. Nodes are never deleted; if that changes, the
-- cascade would scan the journal, and the delete should go through boot_events_by_node.

DROP INDEX boot_events_node;

CREATE TABLE boot_events_by_node (
  node_id  INTEGER NOT NULL,
  id       INTEGER NOT NULL,                     -- boot_events.id
  PRIMARY KEY (node_id, id)
) WITHOUT ROWID;

CREATE TABLE boot_events_indexed (
  one   INTEGER PRIMARY KEY CHECK (one = 1),
  upto  INTEGER NOT NULL                         -- every event with id <= upto is in boot_events_by_node
);

INSERT INTO boot_events_by_node (node_id, id) SELECT node_id, id FROM boot_events WHERE node_id IS NOT NULL;
INSERT INTO boot_events_indexed (one, upto) SELECT 1, coalesce(max(id), 0) FROM boot_events;
