//! SQLite on the calling task, for the requests that run most often.
//!
//! sqlx runs every SQLite connection on a thread of its own and sends each statement there
//! and back: a channel and a futex wake-up each way. Under load those hand-offs, not SQLite,
//! were most of the CPU of a SEP-12 PUT or a SEP-31 POST, and the one writer connection was
//! held through all of them (BENCHMARKS.md). The connections here are rusqlite's, opened on
//! the same file, and run their statements on the task that asks: a read by key or a short
//! write transaction takes a few microseconds of SQLite, less than one hand-off.
//!
//! No connection checkpoints the WAL when it commits: a checkpoint copies pages back into
//! the database file and syncs it, which took a fifth of a SEP-12 PUT's time and held the
//! write permit and a runtime thread meanwhile. A thread of its own does it instead, every
//! [`CHECKPOINT_EVERY`], without the write lock (a passive checkpoint), so writers and
//! readers go on beside it. Writers that never pause would then never let the WAL start
//! over (it grew by gigabytes in a minute of SEP-31 POSTs), so once it holds
//! [`RESTART_AFTER_FRAMES`] the thread takes the write permit for the little a passive
//! checkpoint left, and the next writer starts the WAL from its beginning.
//!
//! Writes still go one at a time. The direct writer connection sits behind the same permit
//! that every write through sqlx's writer pool takes first ([`DirectSqlite::write_permit`],
//! taken by `on_pool!`), so SQLite never sees two writers and nobody sleeps in its busy
//! handler. Direct writes that arrive together are committed together
//! ([`DirectSqlite::write`]): each runs in a savepoint of one open transaction and learns
//! its fate from the commit, so concurrent requests share one commit and one write of each
//! page they changed. A request still answers only after its write is committed. Only a file database has these connections: an in-memory one lives inside
//! sqlx's pool, and the store runs everything through sqlx there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Row, Statement, ToSql};
use tokio::sync::{Mutex, MutexGuard, oneshot};

use super::{StoreError, StoreResult};

/// Read connections kept for reuse. A read never yields, so no more are in use at once
/// than the runtime has worker threads; this bounds what a burst of blocking callers leaves.
const KEPT_READERS: usize = 8;

/// How often the WAL is copied back into the database file. Pages written again within
/// that time are copied once.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The WAL's length, in pages (about 4 MB), past which a checkpoint stops writers to start
/// it over. The WAL file is as long as the most written between two checkpoints: tens of MB
/// under writers that never pause, never more.
const RESTART_AFTER_FRAMES: i64 = 1_000;

/// The statements of the hottest paths, prepared once per connection.
const CACHED_STATEMENTS: usize = 32;

pub struct DirectSqlite {
    path: PathBuf,
    writer: Mutex<Writer>,
    waiting_writers: AtomicUsize,
    readers: StdMutex<Vec<Connection>>,
}

impl std::fmt::Debug for DirectSqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The right to write to the database, held by one writer at a time.
pub type WritePermit<'a> = MutexGuard<'a, Writer>;

/// How a write ends: `Discard` rolls back what it wrote and still returns.
pub enum Finish<T> {
    Commit(T),
    Discard(T),
}

/// The most writes committed together.
const MAX_GROUP: usize = 64;

/// The direct writer connection and the group of writes it has begun.
pub struct Writer {
    conn: Connection,
    /// Set while a group is open (`BEGIN` run, no `COMMIT` yet): each write in it waits
    /// here to learn how the commit went.
    group: Option<Vec<oneshot::Sender<Result<(), GroupFailure>>>>,
}

impl Writer {
    /// Commits the open group, if any, and tells its writers how it went.
    fn commit_group(&mut self) -> rusqlite::Result<()> {
        let Some(members) = self.group.take() else {
            return Ok(());
        };
        let committed = self.conn.execute_batch("COMMIT");
        if committed.is_err() {
            // Nothing of the group is written; the connection must not stay in it.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let told = committed.as_ref().map(|_| ()).map_err(GroupFailure::of);
        for member in members {
            let _ = member.send(told.clone());
        }
        committed
    }
}

/// Why the commit of a group failed, as each of its members is told: SQLite's error
/// code (so a busy database is a 503 for all of them, as for the one that committed) and
/// its message. rusqlite's error itself cannot be cloned.
#[derive(Debug, Clone)]
struct GroupFailure {
    code: rusqlite::ffi::Error,
    message: String,
}

impl GroupFailure {
    fn of(e: &rusqlite::Error) -> Self {
        GroupFailure {
            code: e
                .sqlite_error()
                .copied()
                .unwrap_or_else(|| rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR)),
            message: format!("the writes committed with this one failed: {e}"),
        }
    }
}

impl From<GroupFailure> for rusqlite::Error {
    fn from(failure: GroupFailure) -> Self {
        rusqlite::Error::SqliteFailure(failure.code, Some(failure.message))
    }
}

/// Counts the writers waiting for the permit, while one waits.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Queued(count)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DirectSqlite {
    /// Opens the direct writer on a database file that sqlx's writer has opened (and
    /// migrated, or is about to): the journal mode is the file's, set there. Starts the
    /// checkpoint thread, which ends once the returned value is dropped.
    pub fn open(path: &Path) -> Result<Arc<Self>, Box<dyn std::error::Error + Send + Sync>> {
        let direct = Arc::new(Self {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn: open(path, false)?,
                group: None,
            }),
            waiting_writers: AtomicUsize::new(0),
            readers: StdMutex::new(Vec::new()),
        });
        let checkpointer = open(path, false)?;
        let alive = Arc::downgrade(&direct);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_while(&alive, &checkpointer))?;
        Ok(direct)
    }

    async fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        let _queued = Queued::join(&self.waiting_writers);
        self.writer.lock().await
    }

    /// Waits for the right to write, with no group of direct writes open. Every write
    /// through sqlx's writer pool holds it.
    pub async fn write_permit(&self) -> WritePermit<'_> {
        let mut writer = self.lock_writer().await;
        if let Err(e) = writer.commit_group() {
            tracing::warn!(error = %e, "cannot commit a group of writes");
        }
        writer
    }

    /// Runs `f` on the direct writer, as a savepoint in the open group of writes; returns
    /// once the group is committed. While other writers wait, the permit goes to the next
    /// one and the group stays open: one commit (and one write of each page the group
    /// changed) serves many requests. The last writer of a group, or the first waiter to
    /// get the permit again, commits it.
    pub async fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<Finish<T>>,
    ) -> StoreResult<T> {
        let mut writer = self.lock_writer().await;
        if writer.group.is_none() {
            // IMMEDIATE: the write lock from the start. Nobody else here writes while the
            // permit is held, so it is free; a process outside capstan waits in the busy
            // handler.
            writer.conn.execute_batch("BEGIN IMMEDIATE")?;
            writer.group = Some(Vec::new());
        }
        let out = match in_savepoint(&mut writer.conn, f) {
            Ok(Finish::Commit(out)) => out,
            Ok(Finish::Discard(out)) => return finish_alone(writer, out),
            Err(e) => {
                let _ = finish_alone(writer, ());
                return Err(e.into());
            }
        };
        let members = writer.group.as_ref().map_or(0, Vec::len);
        if self.waiting_writers.load(Ordering::SeqCst) == 0 || members + 1 >= MAX_GROUP {
            writer.commit_group()?;
            return Ok(out);
        }
        let (told, mut committed) = oneshot::channel();
        if let Some(group) = writer.group.as_mut() {
            group.push(told);
        }
        drop(writer);
        // A later writer commits the group; in case none comes (its request was dropped
        // while it waited), this one waits for the permit too and commits it then.
        let outcome = tokio::select! {
            biased;
            outcome = &mut committed => outcome,
            mut writer = self.lock_writer() => {
                let _ = writer.commit_group();
                drop(writer);
                committed.await
            }
        };
        match outcome {
            Ok(Ok(())) => Ok(out),
            Ok(Err(failure)) => Err(rusqlite::Error::from(failure).into()),
            Err(_) => Err(StoreError::GroupCommit),
        }
    }

    /// Runs `f` on a read connection: it sees what was committed when each statement
    /// starts, as sqlx's read pool does.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let kept = self
            .readers
            .lock()
            .ok()
            .and_then(|mut readers| readers.pop());
        let reader = match kept {
            Some(reader) => reader,
            None => open(&self.path, true)?,
        };
        let out = f(&reader);
        if let Ok(mut readers) = self.readers.lock()
            && readers.len() < KEPT_READERS
        {
            readers.push(reader);
        }
        out
    }
}

/// Runs `f` in a savepoint, released if it commits and rolled back otherwise.
fn in_savepoint<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<Finish<T>>,
) -> rusqlite::Result<Finish<T>> {
    let savepoint = conn.savepoint()?;
    // Dropped without a commit (an error, a discard), the savepoint rolls back.
    let finish = f(&savepoint)?;
    if let Finish::Commit(_) = finish {
        savepoint.commit()?;
    }
    Ok(finish)
}

/// Ends a write that added nothing to the group: commits the group now unless others wait
/// to add to it.
fn finish_alone<T>(mut writer: MutexGuard<'_, Writer>, out: T) -> StoreResult<T> {
    let members = writer.group.as_ref().map_or(0, Vec::len);
    if members == 0 {
        writer.commit_group()?;
    }
    Ok(out)
}

fn checkpoint_while(alive: &Weak<DirectSqlite>, conn: &Connection) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(direct) = alive.upgrade() else {
            return;
        };
        // A group whose writers all went away (their requests were dropped while they waited
        // for its commit) would stay open, holding SQLite's write lock, until the next write.
        if let Ok(mut writer) = direct.writer.try_lock()
            && let Err(e) = writer.commit_group()
        {
            tracing::warn!(error = %e, "cannot commit a group of writes");
        }
        // PASSIVE: copies what no reader still needs, never waits for a lock.
        let checkpointed = match checkpoint(conn, "PASSIVE") {
            Ok(frames) if frames >= RESTART_AFTER_FRAMES => {
                let mut writer = direct.writer.blocking_lock();
                if let Err(e) = writer.commit_group() {
                    tracing::warn!(error = %e, "cannot commit a group of writes");
                }
                // RESTART: waits for the readers of older pages, copies the rest, and makes
                // the next writer start the WAL over.
                checkpoint(conn, "RESTART")
            }
            other => other,
        };
        if let Err(e) = checkpointed {
            tracing::warn!(error = %e, "cannot checkpoint the SQLite WAL");
        }
    }
}

/// Runs a checkpoint of the given mode; the WAL's length in pages before it.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get(1)
    })
}

/// A connection set as sqlx sets its own (foreign keys, the sync level, the busy wait),
/// and for reading only when `read_only`.
fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    // Without the planner's stability guarantee, a statement whose plan may depend on a
    // bound value (a `LIMIT $3`) is compiled again every time it is bound, which made
    // the lookup of the transactions waiting on a customer cost more than the whole rest
    // of a SEP-12 PUT. With it, a cached statement stays compiled.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;",
    )?;
    if read_only {
        // Opened read-write all the same: the last connection to close checkpoints the WAL.
        conn.execute_batch("PRAGMA query_only = ON;")?;
    }
    Ok(conn)
}

/// Binds the `$1`, `$2`, ... of a statement written for both backends to `values[0]`,
/// `values[1]`, ...: SQLite numbers such parameters by where they first appear, not by
/// the digits in their names.
fn bind(stmt: &mut Statement<'_>, values: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for index in 1..=stmt.parameter_count() {
        let value = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| values.get(n));
        let Some(value) = value else {
            let name = stmt.parameter_name(index).unwrap_or("?").to_owned();
            return Err(rusqlite::Error::InvalidParameterName(name));
        };
        stmt.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

/// Runs a statement that returns no rows; the number of rows it changed.
pub fn execute(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    stmt.raw_execute()
}

/// Runs a statement and maps each row it returns.
pub fn query<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}
