-- Schema version 4: a side's change stamp is a version token (the local change time, a
-- server's ETag or revision folded to 64 bits), not only a local ctime.

ALTER TABLE base RENAME COLUMN l_ctime TO l_version;
ALTER TABLE base RENAME COLUMN r_ctime TO r_version;
ALTER TABLE hash_cache RENAME COLUMN ctime TO version;
