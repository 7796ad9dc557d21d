-- Schema version 1: pairs, base, tombstones, hash cache, conflicts, runs, journal, skipped.
CREATE TABLE pairs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    left_root   TEXT NOT NULL,
    right_root  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (left_root, right_root)
);

-- What both sides held after the last successful sync of a path. Content is shared;
-- times, ids and modes are per side (l_*, r_*). Times in ns since the epoch.
CREATE TABLE base (
    pair_id  INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
    path     TEXT NOT NULL,
    kind     INTEGER NOT NULL,          -- 0 file, 1 folder
    size     INTEGER NOT NULL,
    hash     BLOB,
    l_mtime  INTEGER NOT NULL, l_id INTEGER NOT NULL, l_ctime INTEGER NOT NULL, l_mode INTEGER NOT NULL,
    r_mtime  INTEGER NOT NULL, r_id INTEGER NOT NULL, r_ctime INTEGER NOT NULL, r_mode INTEGER NOT NULL,
    PRIMARY KEY (pair_id, path)
) WITHOUT ROWID;

CREATE TABLE tombstones (
    pair_id     INTEGER NOT NULL,
    path        TEXT NOT NULL,
    deleted_at  INTEGER NOT NULL,
    PRIMARY KEY (pair_id, path)
) WITHOUT ROWID;

-- Hashes of files not (yet) in the base, valid while their metadata is unchanged.
CREATE TABLE hash_cache (
    pair_id  INTEGER NOT NULL,
    side     INTEGER NOT NULL,          -- 0 left, 1 right
    path     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime    INTEGER NOT NULL,
    file_id  INTEGER NOT NULL,
    ctime    INTEGER NOT NULL,
    hash     BLOB NOT NULL,
    PRIMARY KEY (pair_id, side, path)
) WITHOUT ROWID;

CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY,
    pair_id      INTEGER NOT NULL,
    path         TEXT NOT NULL,
    rule         TEXT NOT NULL,
    left_json    TEXT,
    right_json   TEXT,
    newer        TEXT,
    action       TEXT NOT NULL,
    status       TEXT NOT NULL,         -- open | resolved
    resolution   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    resolved_at  INTEGER
);
CREATE UNIQUE INDEX conflicts_open ON conflicts (pair_id, path) WHERE status = 'open';

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    pair_id      INTEGER NOT NULL,
    trigger      TEXT NOT NULL,
    dry_run      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    status       TEXT NOT NULL,         -- running | ok | partial | stopped | error
    copied       INTEGER NOT NULL DEFAULT 0,
    renamed      INTEGER NOT NULL DEFAULT 0,
    deleted      INTEGER NOT NULL DEFAULT 0,
    trashed      INTEGER NOT NULL DEFAULT 0,
    props        INTEGER NOT NULL DEFAULT 0,
    conflicts    INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    by_rule      TEXT NOT NULL DEFAULT '{}',
    error        TEXT
);
CREATE INDEX runs_pair ON runs (pair_id, started_at);

-- Every action of every run, with its outcome.
CREATE TABLE journal (
    run_id  INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    op      TEXT NOT NULL,
    side    TEXT,
    path    TEXT NOT NULL,
    rule    TEXT,
    status  TEXT NOT NULL,              -- done | failed | deferred | noted
    bytes   INTEGER NOT NULL DEFAULT 0,
    detail  TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Paths reported as unsyncable, so each is reported once.
CREATE TABLE skipped (
    pair_id     INTEGER NOT NULL,
    side        TEXT NOT NULL,
    path        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (pair_id, side, path)
) WITHOUT ROWID;
