-- Each import of a platform gets a folder of its own under platform-images/os/, never written
-- again once its row points at it; a forced re-import commits a row naming the new folder, so
-- registry and files change together in one transaction (src/platforms/import.ts commit).
-- NULL: a row imported before this column, whose folder is named after its stamp.
ALTER TABLE platforms ADD COLUMN folder TEXT;
