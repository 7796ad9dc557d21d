-- Schema version 3: schedules (next/last run, outcome, paused) and the outgoing mail queue.

CREATE TABLE schedules (
    pair_id       INTEGER NOT NULL,
    name          TEXT NOT NULL,
    spec          TEXT NOT NULL,             -- as configured; a change replans next_run
    next_run      INTEGER,                   -- ns
    last_run      INTEGER,                   -- ns
    last_outcome  TEXT,
    paused        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pair_id, name)
) WITHOUT ROWID;

-- Mails waiting to be sent (kept across restarts; retried with backoff).
CREATE TABLE mail_queue (
    id            INTEGER PRIMARY KEY,
    created_at    INTEGER NOT NULL,
    kind          TEXT NOT NULL,             -- conflict | summary | digest | guard | failures | test
    subject       TEXT NOT NULL,
    body          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL,
    sent_at       INTEGER,
    last_error    TEXT
);
CREATE INDEX mail_queue_due ON mail_queue (sent_at, next_attempt);
