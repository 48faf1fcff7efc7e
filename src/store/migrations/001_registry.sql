-- The fleet registry (docs/design.md "The registry"). Times are integer milliseconds since the
-- Unix epoch; JSON columns hold documents validated by the module that owns them.

CREATE TABLE platforms (
  stamp        TEXT PRIMARY KEY,                 -- SmartOS build stamp (20240101T000000Z) or a Linux platform name
  os           TEXT NOT NULL CHECK (os IN ('smartos', 'linux')),
  version      TEXT,
  files        TEXT NOT NULL DEFAULT '[]',        -- JSON [{path, size, sha1?, sha256?}]
  size         INTEGER NOT NULL DEFAULT 0,
  kernel_args  TEXT,                             -- Linux: default command line
  is_default   INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
  imported_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX platforms_one_default ON platforms (is_default) WHERE is_default = 1;

CREATE TABLE nodes (
  id               INTEGER PRIMARY KEY,
  uuid             TEXT UNIQUE,                  -- SMBIOS UUID (DHCP option 97, sysinfo)
  hostname         TEXT UNIQUE,
  state            TEXT NOT NULL DEFAULT 'discovered'
                   CHECK (state IN ('discovered', 'setting_up', 'running', 'rebooting', 'unknown', 'failed', 'retired')),
  boot_platform    TEXT REFERENCES platforms (stamp),   -- what it boots next
  previous_platform TEXT,                              -- rescue / rollback target
  current_platform TEXT,                               -- what it last reported running
  arch             TEXT,                               -- iPXE ${buildarch} or DHCP option 93 name
  serial           TEXT,
  last_boot        INTEGER,
  last_seen        INTEGER,
  sysinfo          TEXT,                               -- JSON, as the node reported it
  network_config   TEXT,                               -- JSON (nodeconfig)
  zpool_config     TEXT,                               -- JSON (nodeconfig)
  traits           TEXT NOT NULL DEFAULT '{}',         -- JSON {key: value}
  token_hash       TEXT,                               -- SHA-256 of the node's own API token
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);

CREATE TABLE nics (
  mac      TEXT PRIMARY KEY CHECK (mac GLOB '[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]'),
  node_id  INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  nic_tag  TEXT,
  ip       TEXT,                                 -- a static address, when assigned
  network  TEXT,
  vlan     INTEGER,
  mtu      INTEGER,
  is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1))
);
CREATE INDEX nics_node ON nics (node_id);
CREATE UNIQUE INDEX nics_static_ip ON nics (ip) WHERE ip IS NOT NULL;

CREATE TABLE networks (
  name        TEXT PRIMARY KEY,
  subnet      TEXT NOT NULL,
  gateway     TEXT,
  range_start TEXT,
  range_end   TEXT,
  resolvers   TEXT NOT NULL DEFAULT '[]',
  dns_domain  TEXT,
  relay_addresses TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE leases (
  ip          TEXT PRIMARY KEY,
  network     TEXT NOT NULL,
  mac         TEXT,
  client_id   TEXT,
  hostname    TEXT,
  state       TEXT NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'expired', 'declined')),
  expires_at  INTEGER NOT NULL,
  relay_info  BLOB,                              -- option 82 as received (RFC 3046)
  updated_at  INTEGER NOT NULL
);
CREATE INDEX leases_mac ON leases (mac);

CREATE TABLE boot_events (
  id       INTEGER PRIMARY KEY,
  node_id  INTEGER REFERENCES nodes (id) ON DELETE CASCADE,
  mac      TEXT,
  event    TEXT NOT NULL,                        -- dhcp_discover, dhcp_ack, tftp_get, script, kernel, module, checkin, ...
  detail   TEXT NOT NULL DEFAULT '{}',           -- JSON
  at       INTEGER NOT NULL
);
CREATE INDEX boot_events_node ON boot_events (node_id, id);
CREATE INDEX boot_events_mac ON boot_events (mac, id);
