-- The DHCP server writes leases and boot events on every exchange; each index on those
-- tables is another b-tree page changed per commit. Nothing reads them by MAC
-- (timelines go by node_id; leases by address), so those two indexes go, and leases become
-- one b-tree keyed by address (WITHOUT ROWID: sqlite.org/withoutrowid.html) instead of a
-- rowid table plus a separate index on ip.

DROP INDEX boot_events_mac;
DROP INDEX leases_mac;

CREATE TABLE leases_new (
  ip          TEXT PRIMARY KEY,
  network     TEXT NOT NULL,
  mac         TEXT,
  client_id   TEXT,
  hostname    TEXT,
  state       TEXT NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'expired', 'declined')),
  expires_at  INTEGER NOT NULL,
  relay_info  BLOB,                              -- option 82 as received (RFC 3046)
  updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO leases_new SELECT ip, network, mac, client_id, hostname, state, expires_at, relay_info, updated_at FROM leases;
DROP TABLE leases;
ALTER TABLE leases_new RENAME TO leases;
