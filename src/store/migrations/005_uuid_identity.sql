-- One machine, one node, whichever byte order its SMBIOS UUID arrives in (src/uuid.ts).
--
-- uuid stays the spelling shown to operators (the OS's once the node has checked in);
-- uuid_key is the identity the registry matches on: the smaller of uuid and uuid with its
-- first three fields byte-swapped, the same value as uuidKey() in src/uuid.ts.
-- uuid_sources records the spelling each reporter used: {"dhcp": .., "ipxe": .., "os": ..}.

ALTER TABLE nodes ADD COLUMN uuid_sources TEXT NOT NULL DEFAULT '{}';

ALTER TABLE nodes ADD COLUMN uuid_key TEXT GENERATED ALWAYS AS (
  min(uuid,
      substr(uuid, 7, 2) || substr(uuid, 5, 2) || substr(uuid, 3, 2) || substr(uuid, 1, 2) || '-' ||
      substr(uuid, 12, 2) || substr(uuid, 10, 2) || '-' ||
      substr(uuid, 17, 2) || substr(uuid, 15, 2) || substr(uuid, 19))
) VIRTUAL;

-- A registry written before this migration may hold one machine twice, once per byte order.
-- The younger node gives up the UUID (its NICs, sysinfo and history stay) so the index can
-- hold; `node show` of the older one then finds the machine by either spelling.
UPDATE nodes SET uuid = NULL
 WHERE uuid IS NOT NULL
   AND EXISTS (SELECT 1 FROM nodes o WHERE o.id < nodes.id AND o.uuid_key = nodes.uuid_key);

CREATE UNIQUE INDEX nodes_uuid_key ON nodes (uuid_key);
