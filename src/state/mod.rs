//! The state store: one SQLite file (WAL) per installation holding, per pair, the base,
//! tombstones, a hash cache, conflicts, run history, the operations journal and the list
//! of paths already reported as unsyncable. SQL lives in `state/*.sql`: the schema in
//! migrations numbered by the version they produce, queries by name in `queries.sql`.
//! Must not touch: the synced folders, the planner's decisions.

use crate::model::{Base, BaseEntry, BaseUpdate, Entry, Hash, Kind, RelPath, Side, SideMeta};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Migrations: (schema version produced, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001.sql")),
    (2, include_str!("migrations/0002.sql")),
    (3, include_str!("migrations/0003.sql")),
    (4, include_str!("migrations/0004.sql")),
];
const QUERIES: &str = include_str!("queries.sql");

fn q(name: &str) -> &'static str {
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    let map = MAP.get_or_init(|| {
        let mut m = HashMap::new();
        for chunk in QUERIES.split("-- name: ").skip(1) {
            let (name, body) = chunk.split_once('\n').expect("query has a body");
            m.insert(name.trim(), body.trim());
        }
        m
    });
    map.get(name).unwrap_or_else(|| panic!("no query named {name} in queries.sql"))
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: cannot open: {message}")]
    Open { path: PathBuf, message: String },
    #[error("state file {path} is damaged or not a Tandem state file ({message}). Nothing was changed. Move it aside to start again: the next sync then treats every file as new and deletes nothing.")]
    Corrupt { path: PathBuf, message: String },
    #[error("state file {path} has schema version {found}, newer than this Tandem understands ({known}); upgrade Tandem")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("state file {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// A pair's lock: one process syncs a pair at a time. A lock file beside the state file,
/// held (an OS file lock) while this value lives; none for an in-memory store.
pub struct PairLock {
    _file: Option<std::fs::File>,
}

#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Held {
        lock: PathBuf,
    },
    Io {
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// One row of the operations journal.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JournalRow {
    pub seq: u32,
    pub at: i64,
    pub op: String,
    pub side: Option<Side>,
    pub path: String,
    pub rule: Option<String>,
    pub status: String,
    pub bytes: u64,
    pub detail: Option<String>,
}

/// A conflict as the planner or executor reports it.
pub struct ConflictRecord<'a> {
    pub path: &'a RelPath,
    pub rule: &'a str,
    pub left: Option<&'a Entry>,
    pub right: Option<&'a Entry>,
    pub newer: Option<Side>,
    /// What was done (or that nothing was).
    pub action: &'a str,
}

/// A conflict awaiting the user.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConflictRow {
    pub id: i64,
    pub pair_id: i64,
    pub path: String,
    pub rule: String,
    pub left: Option<Entry>,
    pub right: Option<Entry>,
    pub newer: Option<Side>,
    pub action: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Counts of one run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunCounts {
    pub copied: u64,
    pub renamed: u64,
    pub deleted: u64,
    pub trashed: u64,
    pub props: u64,
    pub conflicts: u64,
    pub failed: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub by_rule: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRow {
    pub id: i64,
    pub pair: String,
    pub trigger: String,
    pub dry_run: bool,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: String,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// A queued mail: (id, kind, subject, body, attempts so far).
pub type QueuedMail = (i64, String, String, String, u32);

/// Which runs to read: a page (`limit`, None: all; `offset`) of those matching every filter
/// given (None matches everything).
#[derive(Clone, Debug, Default)]
pub struct RunFilter<'a> {
    pub limit: Option<u32>,
    pub offset: u32,
    /// By pair name.
    pub pair: Option<&'a str>,
    pub pair_id: Option<i64>,
    pub status: Option<&'a str>,
    pub trigger: Option<&'a str>,
    /// Started at or after (ns).
    pub since: Option<i64>,
    /// Leave out runs that went well and changed nothing (the History page's default).
    pub hide_empty: bool,
    /// Started before (ns).
    pub until: Option<i64>,
    /// Runs with an action on a path containing this (any case).
    pub path: Option<&'a str>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn side_code(s: Side) -> i64 {
    match s {
        Side::Left => 0,
        Side::Right => 1,
    }
}

/// The schema version a state file is at (0: a new file).
fn schema_version(c: &Connection, path: &Path) -> Result<i64, StateError> {
    c.query_row(q("schema_version"), [], |r| r.get(0))
        .map_err(|source| StateError::Sql { path: path.into(), source })
}

fn check_version(path: &Path, found: i64, known: i64) -> Result<(), StateError> {
    if found > known {
        return Err(StateError::TooNew {
            path: path.into(),
            found,
            known,
        });
    }
    Ok(())
}

impl Store {
    /// Take the lock of pair `id` (see [`PairLock`]).
    pub fn lock_pair(&self, id: i64) -> Result<PairLock, LockError> {
        let sp = self.path();
        if sp == Path::new(":memory:") {
            return Ok(PairLock { _file: None });
        }
        let lock = PathBuf::from(format!("{}.pair-{id}.lock", sp.display()));
        let f = match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock) {
            Ok(f) => f,
            Err(source) => return Err(LockError::Io { lock, source }),
        };
        match f.try_lock() {
            Ok(()) => Ok(PairLock { _file: Some(f) }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held { lock }),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io { lock, source }),
        }
    }

    pub fn open(path: &Path) -> Result<Store, StateError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| StateError::Open {
                    path: path.into(),
                    message: format!("cannot create folder {}: {e}", dir.display()),
                })?;
            }
        }
        let conn = Connection::open(path).map_err(|e| StateError::Open {
            path: path.into(),
            message: e.to_string(),
        })?;
        let mut store = Store { conn, path: path.into() };
        store.init().map_err(|e| match e {
            StateError::Sql { source, .. } => {
                let message = source.to_string();
                // By SQLite's result code: not a database, a damaged one, or one whose
                // tables are not Tandem's (a generic SQL error while reading the schema:
                // "no such table/column").
                let foreign = matches!(
                    source.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::Unknown)
                );
                if foreign {
                    StateError::Corrupt {
                        path: path.into(),
                        message,
                    }
                } else {
                    StateError::Open {
                        path: path.into(),
                        message,
                    }
                }
            }
            other => other,
        })?;
        Ok(store)
    }

    /// An in-memory store (tests, dry runs without a state file).
    pub fn in_memory() -> Result<Store, StateError> {
        let conn = Connection::open_in_memory().map_err(|e| StateError::Open {
            path: ":memory:".into(),
            message: e.to_string(),
        })?;
        let mut s = Store {
            conn,
            path: ":memory:".into(),
        };
        s.init()?;
        Ok(s)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn init(&mut self) -> Result<(), StateError> {
        // Another process (or connection) may be creating or migrating this file right now:
        // wait for its lock instead of failing at once.
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        // Checks the header: a file that is not SQLite fails here. Switching a new file to
        // WAL needs an exclusive lock and SQLite may answer "locked" at once instead of
        // calling the busy handler (another process is creating the file): retry a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match self.conn.query_row(q("open_journal_wal"), [], |r| r.get::<_, String>(0)) {
                Ok(_) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        for pragma in ["open_synchronous", "open_foreign_keys"] {
            self.conn.execute_batch(q(pragma)).map_err(|e| self.err(e))?;
        }
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        let version = schema_version(&self.conn, &self.path)?;
        check_version(&self.path, version, known)?;
        // Up to date (the usual case): no write lock is taken.
        if version < known {
            self.migrate(known)?;
        }
        // Make sure the schema is really there (a damaged file can pass the header check).
        self.conn.prepare_cached(q("base_load")).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Create or migrate the schema in one `BEGIN IMMEDIATE` transaction: the write lock is
    /// taken before the version is read, so of two processes opening a new file at once one
    /// creates the schema and the other (waiting on the busy timeout) finds it done.
    fn migrate(&mut self, known: i64) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |source| StateError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        // Read again under the lock: another process may have migrated since the first look.
        let version = schema_version(&tx, &path)?;
        check_version(&path, version, known)?;
        if version == 0 {
            // A file with tables but no version is not ours.
            let objects: i64 = tx.query_row(q("schema_object_count"), [], |r| r.get(0)).map_err(e)?;
            if objects > 0 {
                return Err(StateError::Corrupt {
                    path: path.clone(),
                    message: "it holds tables but no Tandem schema version".into(),
                });
            }
        }
        for (v, sql) in MIGRATIONS {
            if *v > version {
                tx.execute_batch(sql).map_err(e)?;
                tx.pragma_update(None, "user_version", v).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// The id of a known pair.
    pub fn find_pair(&self, left: &Path, right: &Path) -> Result<Option<i64>, StateError> {
        let (l, r) = (left.to_string_lossy(), right.to_string_lossy());
        self.conn
            .query_row(q("pair_find"), params![l, r], |row| row.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The id of a pair, created on first use.
    pub fn pair_id(&self, name: &str, left: &Path, right: &Path) -> Result<i64, StateError> {
        if let Some(id) = self.find_pair(left, right)? {
            return Ok(id);
        }
        let (l, r) = (left.to_string_lossy(), right.to_string_lossy());
        self.conn
            .execute(q("pair_insert"), params![name, l, r, now_ns()])
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn pairs(&self) -> Result<Vec<(i64, String, String, String)>, StateError> {
        let mut st = self.conn.prepare_cached(q("pair_list")).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn load_base(&self, pair: i64) -> Result<Base, StateError> {
        let mut st = self.conn.prepare_cached(q("base_load")).map_err(|e| self.err(e))?;
        let rows = st.query(params![pair]).map_err(|e| self.err(e))?;
        let mut v: Vec<(RelPath, BaseEntry)> = Vec::new();
        self.read_base_rows(rows, &mut v)?;
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Base::from_sorted(v))
    }

    /// The base of `paths` (each with everything below it) and of their ancestors: what a
    /// targeted plan of those paths works with.
    pub fn load_base_scope(&self, pair: i64, paths: &[RelPath]) -> Result<Base, StateError> {
        let mut st = self.conn.prepare_cached(q("base_load_below")).map_err(|e| self.err(e))?;
        let mut v: Vec<(RelPath, BaseEntry)> = Vec::new();
        let mut exact = std::collections::BTreeSet::new();
        for p in paths {
            exact.extend(p.ancestors());
            let rows = st.query(params![pair, p.as_str()]).map_err(|e| self.err(e))?;
            self.read_base_rows(rows, &mut v)?;
        }
        let mut one = self.conn.prepare_cached(q("base_load_below")).map_err(|e| self.err(e))?;
        for a in exact {
            let rows = one.query(params![pair, a.as_str()]).map_err(|e| self.err(e))?;
            let mut below = Vec::new();
            self.read_base_rows(rows, &mut below)?;
            v.extend(below.into_iter().filter(|(p, _)| *p == a));
        }
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Ok(Base::from_sorted(v))
    }

    /// Files the base holds for a pair.
    pub fn count_base_files(&self, pair: i64) -> Result<u64, StateError> {
        self.conn
            .query_row(q("base_count_files"), params![pair], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    fn read_base_rows(&self, mut rows: rusqlite::Rows<'_>, v: &mut Vec<(RelPath, BaseEntry)>) -> Result<(), StateError> {
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let path: String = r.get(0).map_err(|e| self.err(e))?;
            let Ok(path) = RelPath::new(&path) else {
                return Err(StateError::Corrupt {
                    path: self.path.clone(),
                    message: format!("invalid path {path:?} in the base"),
                });
            };
            let get = |i: usize| -> Result<i64, StateError> { r.get(i).map_err(|e| self.err(e)) };
            let hash: Option<Vec<u8>> = r.get(3).map_err(|e| self.err(e))?;
            let side = |o: usize| -> Result<SideMeta, StateError> {
                Ok(SideMeta {
                    mtime: get(o)?,
                    file_id: get(o + 1)? as u64,
                    version: get(o + 2)?,
                    mode: get(o + 3)? as u32,
                })
            };
            v.push((
                path,
                BaseEntry {
                    kind: if get(1)? == 1 { Kind::Dir } else { Kind::File },
                    size: get(2)? as u64,
                    hash: hash.and_then(|h| h.try_into().ok()),
                    left: side(4)?,
                    right: side(8)?,
                },
            ));
        }
        Ok(())
    }

    /// Apply base updates and journal rows of one durable batch, atomically.
    pub fn commit(&mut self, pair: i64, run: Option<i64>, updates: &[BaseUpdate], journal: &[JournalRow]) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |source| StateError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let now = now_ns();
            let mut upsert = tx.prepare_cached(q("base_upsert")).map_err(e)?;
            let mut del = tx.prepare_cached(q("base_delete")).map_err(e)?;
            let mut tomb = tx.prepare_cached(q("tombstone_put")).map_err(e)?;
            let mut untomb = tx.prepare_cached(q("tombstone_clear")).map_err(e)?;
            for u in updates {
                match u {
                    BaseUpdate::Set(p, b) => {
                        upsert
                            .execute(params![
                                pair,
                                p.as_str(),
                                if b.kind == Kind::Dir { 1 } else { 0 },
                                b.size as i64,
                                b.hash.as_ref().map(|h| h.as_slice()),
                                b.left.mtime,
                                b.left.file_id as i64,
                                b.left.version,
                                b.left.mode,
                                b.right.mtime,
                                b.right.file_id as i64,
                                b.right.version,
                                b.right.mode
                            ])
                            .map_err(e)?;
                        untomb.execute(params![pair, p.as_str()]).map_err(e)?;
                    }
                    BaseUpdate::Remove(p) => {
                        del.execute(params![pair, p.as_str()]).map_err(e)?;
                        tomb.execute(params![pair, p.as_str(), now]).map_err(e)?;
                    }
                    BaseUpdate::Move { from, to } => {
                        for query in ["base_rename_path", "base_rename_below"] {
                            tx.execute(q(query), params![pair, from.as_str(), to.as_str()]).map_err(e)?;
                        }
                    }
                    BaseUpdate::SetSide { path: p, side, meta } => {
                        let query = if *side == Side::Left {
                            q("base_set_side_left")
                        } else {
                            q("base_set_side_right")
                        };
                        tx.execute(
                            query,
                            params![pair, p.as_str(), meta.mtime, meta.file_id as i64, meta.version, meta.mode],
                        )
                        .map_err(e)?;
                    }
                }
            }
            if let Some(run) = run {
                let mut j = tx.prepare_cached(q("journal_put")).map_err(e)?;
                for r in journal {
                    j.execute(params![
                        run,
                        r.seq,
                        r.at,
                        r.op,
                        r.side.map(|s| s.name()),
                        r.path,
                        r.rule,
                        r.status,
                        r.bytes as i64,
                        r.detail
                    ])
                    .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)
    }

    /// A cached hash, if the file's metadata still matches.
    pub fn cached_hash(&self, pair: i64, side: Side, path: &RelPath, e: &Entry) -> Result<Option<Hash>, StateError> {
        let mut st = self.conn.prepare_cached(q("hash_cache_get")).map_err(|e| self.err(e))?;
        let row: Option<(i64, i64, i64, i64, Vec<u8>)> = st
            .query_row(params![pair, side_code(side), path.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|(size, mtime, id, version, h)| {
            (size as u64 == e.size && mtime == e.mtime && id as u64 == e.file_id && version == e.version)
                .then(|| h.try_into().ok())
                .flatten()
        }))
    }

    pub fn put_hashes(&mut self, pair: i64, items: &[(Side, RelPath, Entry, Hash)]) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |source| StateError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut st = tx.prepare_cached(q("hash_cache_put")).map_err(e)?;
            for (side, p, en, h) in items {
                st.execute(params![
                    pair,
                    side_code(*side),
                    p.as_str(),
                    en.size as i64,
                    en.mtime,
                    en.file_id as i64,
                    en.version,
                    h.as_slice()
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    // ---------------------------------------------------------------- conflicts

    pub fn upsert_conflict(&self, pair: i64, c: &ConflictRecord) -> Result<(), StateError> {
        let j = |e: Option<&Entry>| e.map(|e| serde_json::to_string(e).expect("entry serializes"));
        self.conn
            .execute(
                q("conflict_upsert"),
                params![
                    pair,
                    c.path.as_str(),
                    c.rule,
                    j(c.left),
                    j(c.right),
                    c.newer.map(|s| s.name()),
                    c.action,
                    now_ns()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn resolve_conflict(&self, pair: i64, path: &str, resolution: &str) -> Result<bool, StateError> {
        let n = self
            .conn
            .execute(q("conflict_resolve"), params![pair, path, resolution, now_ns()])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    pub fn open_conflicts(&self, pair: i64) -> Result<Vec<ConflictRow>, StateError> {
        let mut st = self.conn.prepare_cached(q("conflict_list_open")).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![pair], |r| {
                let lj: Option<String> = r.get(4)?;
                let rj: Option<String> = r.get(5)?;
                let newer: Option<String> = r.get(6)?;
                Ok(ConflictRow {
                    id: r.get(0)?,
                    pair_id: r.get(1)?,
                    path: r.get(2)?,
                    rule: r.get(3)?,
                    left: lj.and_then(|s| serde_json::from_str(&s).ok()),
                    right: rj.and_then(|s| serde_json::from_str(&s).ok()),
                    newer: newer.map(|s| if s == "right" { Side::Right } else { Side::Left }),
                    action: r.get(7)?,
                    created_at: r.get(8)?,
                    updated_at: r.get(9)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------------- runs

    pub fn start_run(&self, pair: i64, trigger: &str, dry_run: bool) -> Result<i64, StateError> {
        let now = now_ns();
        self.conn
            .execute(q("run_start"), params![pair, trigger, dry_run, now])
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Runs of a pair left "running" by a process that died: marked interrupted. Called by
    /// whoever takes the pair's lock.
    pub fn abandon_runs(&self, pair: i64) -> Result<(), StateError> {
        self.conn
            .execute(q("run_abandon"), params![pair, now_ns()])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ------------------------------------------------------------ the backlog

    /// Record paths the watcher reported (kept until a run settles them).
    pub fn dirty_put(&mut self, pair: i64, paths: &[RelPath], now: i64) -> Result<(), StateError> {
        self.per_path("dirty_put", pair, paths, now)
    }

    /// Run the named query `(pair, path, ns)` for each path, in one transaction.
    fn per_path(&mut self, query: &str, pair: i64, paths: &[RelPath], ns: i64) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |source| StateError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut st = tx.prepare_cached(q(query)).map_err(e)?;
            for p in paths {
                st.execute(params![pair, p.as_str(), ns]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// (path, first reported ns, attempts, not before ns)
    pub fn dirty_list(&self, pair: i64) -> Result<Vec<(RelPath, i64, u32, i64)>, StateError> {
        let mut st = self.conn.prepare_cached(q("dirty_list")).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![pair], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (p, since, attempts, nb) = r.map_err(|e| self.err(e))?;
            // A damaged row cannot name a path outside the root: it is dropped.
            if let Ok(p) = RelPath::new(&p) {
                out.push((p, since, attempts, nb));
            }
        }
        Ok(out)
    }

    /// Settled: forget paths reported no later than `upto` (a newer report stays).
    pub fn dirty_done(&mut self, pair: i64, paths: &[RelPath], upto: i64) -> Result<(), StateError> {
        self.per_path("dirty_done", pair, paths, upto)
    }

    pub fn dirty_retry(&self, pair: i64, path: &RelPath, not_before: i64) -> Result<(), StateError> {
        self.conn
            .execute(q("dirty_retry"), params![pair, path.as_str(), not_before])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A full reconciliation settles everything reported before it started.
    pub fn dirty_clear(&self, pair: i64, upto: i64) -> Result<(), StateError> {
        self.conn.execute(q("dirty_clear"), params![pair, upto]).map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn kv_get(&self, key: &str) -> Result<Option<String>, StateError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(q("kv_get"), params![key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn kv_put(&self, key: &str, value: Option<&str>) -> Result<(), StateError> {
        match value {
            Some(v) => self.conn.execute(q("kv_put"), params![key, v]),
            None => self.conn.execute(q("kv_delete"), params![key]),
        }
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ------------------------------------------------------------ schedules

    /// (spec, next_run, last_run, last_outcome, paused)
    #[allow(clippy::type_complexity)]
    pub fn schedule_get(
        &self,
        pair: i64,
        name: &str,
    ) -> Result<Option<(String, Option<i64>, Option<i64>, Option<String>, bool)>, StateError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(q("schedule_get"), params![pair, name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn schedule_put(
        &self,
        pair: i64,
        name: &str,
        spec: &str,
        next: Option<i64>,
        last: Option<i64>,
        outcome: Option<&str>,
        paused: bool,
    ) -> Result<(), StateError> {
        self.conn
            .execute(q("schedule_put"), params![pair, name, spec, next, last, outcome, paused])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Returns false when the pair has no such schedule recorded.
    pub fn schedule_set_paused(&self, pair: i64, name: &str, paused: bool) -> Result<bool, StateError> {
        let n = self
            .conn
            .execute(q("schedule_set_paused"), params![pair, name, paused])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    pub fn schedule_set_outcome(&self, pair: i64, name: &str, outcome: &str) -> Result<(), StateError> {
        self.conn
            .execute(q("schedule_set_outcome"), params![pair, name, outcome])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ------------------------------------------------------------ mail queue

    pub fn mail_put(&self, kind: &str, subject: &str, body: &str) -> Result<(), StateError> {
        self.conn
            .execute(q("mail_put"), params![now_ns(), kind, subject, body])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Mails due at `now`: (id, kind, subject, body, attempts).
    pub fn mail_due(&self, now: i64) -> Result<Vec<QueuedMail>, StateError> {
        let mut st = self.conn.prepare_cached(q("mail_due")).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn mail_sent(&self, id: i64) -> Result<(), StateError> {
        self.conn.execute(q("mail_sent"), params![id, now_ns()]).map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn mail_failed(&self, id: i64, next_attempt: i64, error: &str) -> Result<(), StateError> {
        self.conn
            .execute(q("mail_failed"), params![id, next_attempt, error])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn mail_pending(&self) -> Result<u64, StateError> {
        self.conn
            .query_row(q("mail_pending_count"), [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Housekeeping: runs (with their journal) started before `before`, and sent mails.
    pub fn prune_history(&self, before: i64) -> Result<(), StateError> {
        self.conn
            .execute(q("history_prune_journal"), params![before])
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(q("history_prune_runs"), params![before])
            .map_err(|e| self.err(e))?;
        self.conn.execute(q("mail_prune"), params![before]).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Per-pair totals over the recorded history: (runs, copied, renamed, deleted, conflicts, failed, bytes).
    pub fn pair_totals(&self, pair: i64) -> Result<[u64; 7], StateError> {
        self.conn
            .query_row(q("pair_totals"), params![pair], |r| {
                let g = |i: usize| r.get::<_, i64>(i).map(|n| n as u64);
                Ok([g(0)?, g(1)?, g(2)?, g(3)?, g(4)?, g(5)?, g(6)?])
            })
            .map_err(|e| self.err(e))
    }

    pub fn finish_run(&self, run: i64, status: &str, c: &RunCounts, error: Option<&str>) -> Result<(), StateError> {
        let by_rule = serde_json::to_string(&c.by_rule).expect("map serializes");
        self.conn
            .execute(
                q("run_finish"),
                params![
                    run,
                    now_ns(),
                    status,
                    c.copied as i64,
                    c.renamed as i64,
                    c.deleted as i64,
                    c.trashed as i64,
                    c.props as i64,
                    c.conflicts as i64,
                    c.failed as i64,
                    c.skipped as i64,
                    c.bytes as i64,
                    by_rule,
                    error
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Runs, newest first, as the filter says.
    pub fn runs(&self, f: &RunFilter) -> Result<Vec<RunRow>, StateError> {
        let limit = f.limit.map_or(-1, i64::from);
        self.query_runs(
            q("run_page"),
            params![
                limit,
                f.offset,
                f.pair,
                f.pair_id,
                f.status,
                f.trigger,
                f.since,
                f.hide_empty,
                f.until,
                f.path
            ],
        )
    }

    /// The latest run of one pair.
    pub fn last_run(&self, pair: i64) -> Result<Option<RunRow>, StateError> {
        Ok(self
            .runs(&RunFilter {
                limit: Some(1),
                pair_id: Some(pair),
                ..Default::default()
            })?
            .pop())
    }

    fn query_runs(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<RunRow>, StateError> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(args, |r| {
                let by_rule: String = r.get(16)?;
                Ok(RunRow {
                    id: r.get(0)?,
                    pair: r.get(1)?,
                    trigger: r.get(2)?,
                    dry_run: r.get(3)?,
                    started_at: r.get(4)?,
                    finished_at: r.get(5)?,
                    status: r.get(6)?,
                    counts: RunCounts {
                        copied: r.get::<_, i64>(7)? as u64,
                        renamed: r.get::<_, i64>(8)? as u64,
                        deleted: r.get::<_, i64>(9)? as u64,
                        trashed: r.get::<_, i64>(10)? as u64,
                        props: r.get::<_, i64>(11)? as u64,
                        conflicts: r.get::<_, i64>(12)? as u64,
                        failed: r.get::<_, i64>(13)? as u64,
                        skipped: r.get::<_, i64>(14)? as u64,
                        bytes: r.get::<_, i64>(15)? as u64,
                        by_rule: serde_json::from_str(&by_rule).unwrap_or_default(),
                    },
                    error: r.get(17)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn journal(&self, run: i64) -> Result<Vec<JournalRow>, StateError> {
        let mut st = self.conn.prepare_cached(q("journal_for_run")).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![run], |r| {
                let side: Option<String> = r.get(3)?;
                Ok(JournalRow {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    op: r.get(2)?,
                    side: side.map(|s| if s == "right" { Side::Right } else { Side::Left }),
                    path: r.get(4)?,
                    rule: r.get(5)?,
                    status: r.get(6)?,
                    bytes: r.get::<_, i64>(7)? as u64,
                    detail: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Operations done for a pair since `since_ns`.
    pub fn ops_since(&self, pair: i64, since_ns: i64) -> Result<u64, StateError> {
        self.conn
            .query_row(q("ops_since"), params![pair, since_ns], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Note an unsyncable path; true when it was not reported before (or for another
    /// reason).
    pub fn note_skipped(&self, pair: i64, side: Side, path: &RelPath, reason: &str, now: i64) -> Result<bool, StateError> {
        let prev: Option<String> = self
            .conn
            .query_row(q("skipped_seen"), params![pair, side.name(), path.as_str()], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(q("skipped_put"), params![pair, side.name(), path.as_str(), reason, now])
            .map_err(|e| self.err(e))?;
        Ok(prev.as_deref() != Some(reason))
    }

    /// Housekeeping after a run: tombstones older than `tombstones_before` (ns) and hash
    /// cache rows the base has made redundant.
    pub fn prune(&self, pair: i64, tombstones_before: i64) -> Result<(), StateError> {
        self.conn
            .execute(q("tombstone_prune"), params![pair, tombstones_before])
            .map_err(|e| self.err(e))?;
        self.conn.execute(q("hash_cache_prune"), params![pair]).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forget skipped paths not seen since `before` (they were fixed or removed).
    pub fn clear_stale_skipped(&self, pair: i64, before: i64) -> Result<(), StateError> {
        self.conn
            .execute(q("skipped_clear_stale"), params![pair, before])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// The wall clock in ns (the shell's, never the planner's).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_query_prepares() {
        let s = Store::in_memory().unwrap();
        for chunk in QUERIES.split("-- name: ").skip(1) {
            let name = chunk.lines().next().unwrap().trim();
            s.conn.prepare(q(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// The History page's filters (issue 19): runs that changed nothing hidden, a date
    /// range, and a path search through the runs' actions.
    #[test]
    fn runs_filter_by_emptiness_date_range_and_path() {
        let mut s = Store::in_memory().unwrap();
        let pair = s.pair_id("p", Path::new("/l"), Path::new("/r")).unwrap();
        let row = |path: &str| JournalRow {
            seq: 0,
            at: 0,
            op: "copy".into(),
            side: Some(Side::Right),
            path: path.into(),
            rule: None,
            status: "done".into(),
            bytes: 1,
            detail: None,
        };
        let copied = RunCounts {
            copied: 1,
            ..Default::default()
        };
        let mut ids = Vec::new();
        for (path, counts) in [
            (Some("Docs/Report.PDF"), &copied),
            (None, &RunCounts::default()),
            (Some("photos/a.jpg"), &copied),
        ] {
            let run = s.start_run(pair, "watch", false).unwrap();
            if let Some(p) = path {
                s.commit(pair, Some(run), &[], &[row(p)]).unwrap();
            }
            s.finish_run(run, "ok", counts, None).unwrap();
            ids.push(run);
            // Distinct start times, whatever the clock's resolution.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let started: Vec<i64> = ids
            .iter()
            .map(|id| {
                s.runs(&RunFilter::default())
                    .unwrap()
                    .into_iter()
                    .find(|r| r.id == *id)
                    .unwrap()
                    .started_at
            })
            .collect();
        let found = |f: RunFilter| s.runs(&f).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(found(RunFilter::default()), [ids[2], ids[1], ids[0]]);
        let hide = || RunFilter {
            hide_empty: true,
            ..Default::default()
        };
        assert_eq!(found(hide()), [ids[2], ids[0]]);
        assert_eq!(
            found(RunFilter {
                path: Some("report.pdf"),
                ..hide()
            }),
            [ids[0]]
        );
        assert_eq!(
            found(RunFilter {
                path: Some("nowhere"),
                ..hide()
            }),
            Vec::<i64>::new()
        );
        assert_eq!(
            found(RunFilter {
                since: Some(started[1]),
                until: Some(started[2]),
                ..Default::default()
            }),
            [ids[1]]
        );
    }

    #[test]
    fn base_roundtrip_and_subtree_move() {
        let mut s = Store::in_memory().unwrap();
        let pair = s.pair_id("p", Path::new("/l"), Path::new("/r")).unwrap();
        let e = Entry {
            kind: Kind::File,
            size: 3,
            mtime: 5,
            mode: 0o644,
            file_id: 7,
            version: 9,
            hash: Some([1; 32]),
        };
        let b = BaseEntry::from_pair(&e, &e, e.hash);
        let p = |s: &str| RelPath::new(s).unwrap();
        s.commit(
            pair,
            None,
            &[
                BaseUpdate::Set(p("d/x"), b),
                BaseUpdate::Set(p("d/y/z"), b),
                BaseUpdate::Set(p("dx"), b),
            ],
            &[],
        )
        .unwrap();
        s.commit(pair, None, &[BaseUpdate::Move { from: p("d"), to: p("e") }], &[]).unwrap();
        let base = s.load_base(pair).unwrap();
        assert_eq!(base.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["dx", "e/x", "e/y/z"]);
        assert_eq!(base.get(&p("e/x")), Some(&b));
    }
}
