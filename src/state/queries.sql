-- Named queries of the state store. Each starts with a line `-- name: NAME`.

-- name: open_journal_wal
-- Every connection, on open (answers the journal mode; fails on a file that is not SQLite).
PRAGMA journal_mode = WAL;

-- name: open_synchronous
PRAGMA synchronous = NORMAL;

-- name: open_foreign_keys
PRAGMA foreign_keys = ON;

-- name: schema_version
-- The schema version: the number of the last migration applied (0: a new file).
PRAGMA user_version;

-- name: schema_object_count
SELECT count(*) FROM sqlite_master;

-- name: pair_find
SELECT id FROM pairs WHERE left_root = ?1 AND right_root = ?2;

-- name: pair_insert
INSERT INTO pairs (name, left_root, right_root, created_at) VALUES (?1, ?2, ?3, ?4);

-- name: pair_list
SELECT id, name, left_root, right_root FROM pairs ORDER BY id;

-- name: base_load
SELECT path, kind, size, hash, l_mtime, l_id, l_version, l_mode, r_mtime, r_id, r_version, r_mode
FROM base WHERE pair_id = ?1;

-- name: base_upsert
INSERT OR REPLACE INTO base (pair_id, path, kind, size, hash, l_mtime, l_id, l_version, l_mode, r_mtime, r_id, r_version, r_mode)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13);

-- name: base_delete
DELETE FROM base WHERE pair_id = ?1 AND path = ?2;

-- name: base_rename_path
UPDATE base SET path = ?3 WHERE pair_id = ?1 AND path = ?2;

-- name: base_rename_below
-- Everything below a path: the key range [from || '/', from || '0') ('/' is 0x2F, '0' is
-- 0x30), so the primary key serves it instead of a table scan per rename.
UPDATE base SET path = ?3 || substr(path, length(?2) + 1)
WHERE pair_id = ?1 AND path >= ?2 || '/' AND path < ?2 || '0';

-- name: base_set_side_left
UPDATE base SET l_mtime = ?3, l_id = ?4, l_version = ?5, l_mode = ?6 WHERE pair_id = ?1 AND path = ?2;

-- name: base_set_side_right
UPDATE base SET r_mtime = ?3, r_id = ?4, r_version = ?5, r_mode = ?6 WHERE pair_id = ?1 AND path = ?2;

-- name: tombstone_put
INSERT OR REPLACE INTO tombstones (pair_id, path, deleted_at) VALUES (?1, ?2, ?3);

-- name: tombstone_clear
DELETE FROM tombstones WHERE pair_id = ?1 AND path = ?2;

-- name: hash_cache_get
SELECT size, mtime, file_id, version, hash FROM hash_cache WHERE pair_id = ?1 AND side = ?2 AND path = ?3;

-- name: hash_cache_put
INSERT OR REPLACE INTO hash_cache (pair_id, side, path, size, mtime, file_id, version, hash)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);

-- name: hash_cache_drop
DELETE FROM hash_cache WHERE pair_id = ?1 AND side = ?2 AND path = ?3;

-- name: conflict_upsert
INSERT INTO conflicts (pair_id, path, rule, left_json, right_json, newer, action, status, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', ?8, ?8)
ON CONFLICT (pair_id, path) WHERE status = 'open'
DO UPDATE SET rule = excluded.rule, left_json = excluded.left_json, right_json = excluded.right_json,
              newer = excluded.newer, action = excluded.action, updated_at = excluded.updated_at;

-- name: conflict_resolve
UPDATE conflicts SET status = 'resolved', resolution = ?3, resolved_at = ?4, updated_at = ?4
WHERE pair_id = ?1 AND path = ?2 AND status = 'open';

-- name: conflict_list_open
SELECT id, pair_id, path, rule, left_json, right_json, newer, action, created_at, updated_at
FROM conflicts WHERE pair_id = ?1 AND status = 'open' ORDER BY path;

-- name: conflict_open_paths
SELECT path FROM conflicts WHERE pair_id = ?1 AND status = 'open';

-- name: run_start
INSERT INTO runs (pair_id, trigger, dry_run, started_at, status) VALUES (?1, ?2, ?3, ?4, 'running');

-- name: run_finish
UPDATE runs SET finished_at = ?2, status = ?3, copied = ?4, renamed = ?5, deleted = ?6, trashed = ?7,
    props = ?8, conflicts = ?9, failed = ?10, skipped = ?11, bytes = ?12, by_rule = ?13, error = ?14
WHERE id = ?1;

-- name: run_abandon
UPDATE runs SET status = 'interrupted', finished_at = ?2 WHERE pair_id = ?1 AND status = 'running';

-- name: journal_put
INSERT INTO journal (run_id, seq, at, op, side, path, rule, status, bytes, detail)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10);

-- name: journal_for_run
SELECT seq, at, op, side, path, rule, status, bytes, detail FROM journal WHERE run_id = ?1 ORDER BY seq;

-- name: ops_since
SELECT count(*) FROM journal j JOIN runs r ON r.id = j.run_id
WHERE r.pair_id = ?1 AND j.at >= ?2 AND j.status = 'done';

-- name: skipped_seen
SELECT reason FROM skipped WHERE pair_id = ?1 AND side = ?2 AND path = ?3;

-- name: skipped_put
INSERT INTO skipped (pair_id, side, path, reason, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
ON CONFLICT (pair_id, side, path) DO UPDATE SET reason = excluded.reason, last_seen = excluded.last_seen;

-- name: skipped_clear_stale
DELETE FROM skipped WHERE pair_id = ?1 AND last_seen < ?2;

-- name: tombstone_prune
DELETE FROM tombstones WHERE pair_id = ?1 AND deleted_at < ?2;

-- name: hash_cache_prune
-- Rows the base makes redundant: the base holds the same file (size and that side's mtime).
DELETE FROM hash_cache
WHERE pair_id = ?1 AND EXISTS (
    SELECT 1 FROM base b
    WHERE b.pair_id = ?1 AND b.path = hash_cache.path AND b.size = hash_cache.size
      AND ((hash_cache.side = 0 AND b.l_mtime = hash_cache.mtime) OR (hash_cache.side = 1 AND b.r_mtime = hash_cache.mtime))
);

-- name: base_load_below
-- A path and everything below it (see base_rename_below for the key range).
SELECT path, kind, size, hash, l_mtime, l_id, l_version, l_mode, r_mtime, r_id, r_version, r_mode
FROM base WHERE pair_id = ?1 AND (path = ?2 OR (path >= ?2 || '/' AND path < ?2 || '0'));

-- name: base_count_files
SELECT count(*) FROM base WHERE pair_id = ?1 AND kind = 0;

-- name: dirty_put
INSERT INTO dirty (pair_id, path, since) VALUES (?1, ?2, ?3) ON CONFLICT (pair_id, path) DO NOTHING;

-- name: dirty_list
SELECT path, since, attempts, not_before FROM dirty WHERE pair_id = ?1 ORDER BY path;

-- name: dirty_done
DELETE FROM dirty WHERE pair_id = ?1 AND path = ?2 AND since <= ?3;

-- name: dirty_retry
UPDATE dirty SET attempts = attempts + 1, not_before = ?3 WHERE pair_id = ?1 AND path = ?2;

-- name: dirty_clear
DELETE FROM dirty WHERE pair_id = ?1 AND since <= ?2;

-- name: kv_get
SELECT value FROM service_kv WHERE key = ?1;

-- name: kv_put
INSERT OR REPLACE INTO service_kv (key, value) VALUES (?1, ?2);

-- name: kv_delete
DELETE FROM service_kv WHERE key = ?1;

-- name: schedule_get
SELECT spec, next_run, last_run, last_outcome, paused FROM schedules WHERE pair_id = ?1 AND name = ?2;

-- name: schedule_put
INSERT INTO schedules (pair_id, name, spec, next_run, last_run, last_outcome, paused)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (pair_id, name) DO UPDATE SET spec = excluded.spec, next_run = excluded.next_run,
    last_run = excluded.last_run, last_outcome = excluded.last_outcome, paused = excluded.paused;

-- name: schedule_set_paused
UPDATE schedules SET paused = ?3 WHERE pair_id = ?1 AND name = ?2;

-- name: schedule_set_outcome
UPDATE schedules SET last_outcome = ?3 WHERE pair_id = ?1 AND name = ?2;

-- name: mail_put
INSERT INTO mail_queue (created_at, kind, subject, body, next_attempt) VALUES (?1, ?2, ?3, ?4, ?1);

-- name: mail_due
SELECT id, kind, subject, body, attempts FROM mail_queue WHERE sent_at IS NULL AND next_attempt <= ?1 ORDER BY id LIMIT 50;

-- name: mail_sent
UPDATE mail_queue SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1;

-- name: mail_failed
UPDATE mail_queue SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3 WHERE id = ?1;

-- name: mail_pending_count
SELECT count(*) FROM mail_queue WHERE sent_at IS NULL;

-- name: mail_prune
DELETE FROM mail_queue WHERE sent_at IS NOT NULL AND sent_at < ?1;

-- name: history_prune_journal
DELETE FROM journal WHERE run_id IN (SELECT id FROM runs WHERE started_at < ?1 AND status != 'running');

-- name: history_prune_runs
DELETE FROM runs WHERE started_at < ?1 AND status != 'running';

-- name: pair_totals
SELECT count(*), coalesce(sum(copied), 0), coalesce(sum(renamed), 0), coalesce(sum(deleted + trashed), 0),
       coalesce(sum(conflicts), 0), coalesce(sum(failed), 0), coalesce(sum(bytes), 0)
FROM runs WHERE pair_id = ?1 AND dry_run = 0;

-- name: run_page
-- The history, newest first, a page of it, filtered; a NULL filter matches everything
-- (a limit of -1: no limit); ?8 = 1 leaves out runs that changed nothing and went well;
-- ?9 is "started before" (ns); ?10 keeps the runs with an action on a path containing it
-- (any case).
-- Every way of reading runs goes through here.
SELECT r.id, p.name, r.trigger, r.dry_run, r.started_at, r.finished_at, r.status, r.copied, r.renamed,
       r.deleted, r.trashed, r.props, r.conflicts, r.failed, r.skipped, r.bytes, r.by_rule, r.error
FROM runs r JOIN pairs p ON p.id = r.pair_id
WHERE (?3 IS NULL OR p.name = ?3) AND (?4 IS NULL OR r.pair_id = ?4) AND (?5 IS NULL OR r.status = ?5)
  AND (?6 IS NULL OR r.trigger = ?6) AND (?7 IS NULL OR r.started_at >= ?7)
  AND (?8 = 0 OR r.status <> 'ok'
       OR r.copied + r.renamed + r.deleted + r.trashed + r.props + r.conflicts + r.failed > 0)
  AND (?9 IS NULL OR r.started_at < ?9)
  AND (?10 IS NULL OR EXISTS (SELECT 1 FROM journal j WHERE j.run_id = r.id AND instr(lower(j.path), lower(?10)) > 0))
ORDER BY r.id DESC LIMIT ?1 OFFSET ?2;
