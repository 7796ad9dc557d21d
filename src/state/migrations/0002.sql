-- Schema version 2: the continuous service's persistent backlog and its settings.

-- Paths the watcher reported and that no run has settled yet (observations, not work: the
-- planner decides again what they need). Kept across restarts.
CREATE TABLE dirty (
    pair_id     INTEGER NOT NULL,
    path        TEXT NOT NULL,
    since       INTEGER NOT NULL,        -- ns, first report
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  INTEGER NOT NULL DEFAULT 0,  -- ns; retry backoff after a failure
    PRIMARY KEY (pair_id, path)
) WITHOUT ROWID;

-- Small service settings that must survive a restart (pause state per pair, global).
CREATE TABLE service_kv (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;
