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
//! [`RESTART_AFTER_FRAMES`] the thread pauses the writer for the little a passive
//! checkpoint left, and the next writer starts the WAL from its beginning.
//!
//! Writes still go one at a time, on a thread of their own that owns the direct writer
//! connection ([`DirectSqlite::write`]). A request hands its write to that thread and waits
//! for the answer. The thread runs the writes queued for it back to back, each in a
//! savepoint of one open transaction, and commits them together once the queue is empty:
//! concurrent requests share one commit and one write of each page they changed, and the
//! writer never waits for a request's task to be scheduled before the next write can run
//! (it did when the connection passed from task to task behind a lock). A request still
//! answers only after its write is committed. Every write through sqlx's writer pool first
//! pauses that thread ([`DirectSqlite::write_permit`], taken by `on_pool!`), so SQLite never
//! sees two writers and nobody sleeps in its busy handler.
//!
//! Only a file database has these connections: an in-memory one lives inside sqlx's pool,
//! and the store runs everything through sqlx there.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Row, Statement, ToSql};
use tokio::sync::oneshot;

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

/// The most writes committed together.
const MAX_GROUP: usize = 64;

pub struct DirectSqlite {
    path: PathBuf,
    /// To the writer thread, which owns the direct writer connection.
    writes: mpsc::Sender<ToWriter>,
    readers: StdMutex<Vec<Connection>>,
}

impl std::fmt::Debug for DirectSqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The right to write to the database, held by one writer at a time: while it is held, the
/// writer thread has no group open and waits for it to be dropped.
pub struct WritePermit {
    _resume: oneshot::Sender<()>,
}

/// How a write ends: `Discard` rolls back what it wrote and still returns.
pub enum Finish<T> {
    Commit(T),
    Discard(T),
}

/// What the writer thread is asked to do.
enum ToWriter {
    Write(Job),
    /// Commit the open group, say so on `paused`, and write nothing more until `resume`'s
    /// sender is dropped.
    Pause {
        paused: oneshot::Sender<()>,
        resume: oneshot::Receiver<()>,
    },
}

/// A write, as the writer thread runs it: given the connection in the group's transaction
/// (or why the group could not begin), it runs in a savepoint and, if it is to be committed,
/// returns how to tell its caller the commit's outcome.
type Job = Box<dyn FnOnce(Result<&mut Connection, GroupFailure>) -> Option<Member> + Send>;

/// A write of the open group, waiting to be told how the commit went.
type Member = Box<dyn FnOnce(Result<(), GroupFailure>) + Send>;

/// Why a group failed (its `BEGIN` or its `COMMIT`), as each of its writes is told:
/// SQLite's error code (so a busy database is a 503 for all of them) and its message.
/// rusqlite's error itself cannot be cloned.
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

    /// SQLite ended the group's transaction itself (some errors, a full disk among them,
    /// roll back the whole transaction, not only the statement that met them).
    fn rolled_back() -> Self {
        GroupFailure {
            code: rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            message: "the writes committed with this one were rolled back by an error".into(),
        }
    }
}

impl From<GroupFailure> for rusqlite::Error {
    fn from(failure: GroupFailure) -> Self {
        rusqlite::Error::SqliteFailure(failure.code, Some(failure.message))
    }
}

impl DirectSqlite {
    /// Opens the direct writer on a database file that sqlx's writer has opened (and
    /// migrated, or is about to): the journal mode is the file's, set there. Starts the
    /// writer thread and the checkpoint thread, which end once the returned value is dropped.
    pub fn open(path: &Path) -> Result<Arc<Self>, Box<dyn std::error::Error + Send + Sync>> {
        let writer = open(path, false)?;
        let (writes, to_write) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_while(writer, &to_write))?;
        let direct = Arc::new(Self {
            path: path.to_owned(),
            writes,
            readers: StdMutex::new(Vec::new()),
        });
        let checkpointer = open(path, false)?;
        let alive = Arc::downgrade(&direct);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_while(&alive, &checkpointer))?;
        Ok(direct)
    }

    /// Asks the writer thread to pause: the permit, and the receiver that says when the
    /// pause has begun (every write asked for before it is committed by then).
    fn pause(&self) -> StoreResult<(WritePermit, oneshot::Receiver<()>)> {
        let (paused, has_paused) = oneshot::channel();
        let (resume, resumed) = oneshot::channel();
        self.writes
            .send(ToWriter::Pause {
                paused,
                resume: resumed,
            })
            .map_err(|_| StoreError::WriterGone)?;
        Ok((WritePermit { _resume: resume }, has_paused))
    }

    /// Waits for the right to write, with every direct write asked for before committed.
    /// Every write through sqlx's writer pool holds it.
    pub async fn write_permit(&self) -> StoreResult<WritePermit> {
        let (permit, has_paused) = self.pause()?;
        has_paused.await.map_err(|_| StoreError::WriterGone)?;
        Ok(permit)
    }

    /// Runs `f` on the writer thread, as a savepoint in the open group of writes; returns
    /// once the group is committed. The thread runs the writes queued for it back to back
    /// in one transaction and commits them together: one commit (and one write of each page
    /// the group changed) serves many requests, and no request task waits for its turn.
    ///
    /// Once asked for, the write is done even if the caller goes away before the answer.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<Finish<T>> + Send + 'static,
    ) -> StoreResult<T> {
        let (tell, told) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(failure) => {
                    let _ = tell.send(Err(rusqlite::Error::from(failure).into()));
                    return None;
                }
            };
            match in_savepoint(conn, f) {
                Ok(Finish::Commit(out)) => Some(Box::new(move |committed| {
                    let _ = tell.send(match committed {
                        Ok(()) => Ok(out),
                        Err(failure) => Err(rusqlite::Error::from(failure).into()),
                    });
                })),
                Ok(Finish::Discard(out)) => {
                    let _ = tell.send(Ok(out));
                    None
                }
                Err(e) => {
                    let _ = tell.send(Err(e.into()));
                    None
                }
            }
        });
        self.writes
            .send(ToWriter::Write(job))
            .map_err(|_| StoreError::WriterGone)?;
        told.await.map_err(|_| StoreError::WriterGone)?
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

/// The open group of writes: its transaction has begun and these wait for its commit.
struct Group {
    members: Vec<Member>,
}

/// The writer thread: runs each write asked for, groups those that arrive while others
/// run, and commits a group once nothing more is queued (or it holds [`MAX_GROUP`]).
fn write_while(mut conn: Connection, to_write: &mpsc::Receiver<ToWriter>) {
    while let Ok(first) = to_write.recv() {
        let mut group: Option<Group> = None;
        let mut next = Some(first);
        while let Some(asked) = next.take() {
            match asked {
                ToWriter::Write(job) => {
                    if let Some(member) = run(&mut conn, &mut group, job)
                        && let Some(open) = group.as_mut()
                    {
                        open.members.push(member);
                    }
                }
                ToWriter::Pause { paused, resume } => {
                    commit(&mut conn, group.take());
                    if paused.send(()).is_ok() {
                        // Err once the permit is dropped: that is the signal to go on.
                        let _ = resume.blocking_recv();
                    }
                }
            }
            if group.as_ref().is_none_or(|g| g.members.len() < MAX_GROUP) {
                next = to_write.try_recv().ok();
            }
        }
        commit(&mut conn, group.take());
    }
}

/// Runs one write in the group, beginning the group first if none is open.
fn run(conn: &mut Connection, group: &mut Option<Group>, job: Job) -> Option<Member> {
    if group.is_some() && conn.is_autocommit() {
        // SQLite rolled the group's transaction back while a write of it failed.
        fail(group.take(), &GroupFailure::rolled_back());
    }
    if group.is_none() {
        // IMMEDIATE: the write lock from the start. Nobody else here writes while the
        // thread runs, so it is free; a process outside capstan waits in the busy handler.
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                *group = Some(Group {
                    members: Vec::new(),
                })
            }
            Err(e) => return job(Err(GroupFailure::of(&e))),
        }
    }
    // A write that panics must not take the thread, and every later write, with it: its
    // savepoint rolls back as it unwinds, and its caller, whose answer is dropped, gets
    // `StoreError::WriterGone`.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(conn)))) {
        Ok(member) => member,
        Err(_) => {
            tracing::error!("a write panicked on the SQLite writer thread; it is rolled back");
            None
        }
    }
}

/// Commits the group, if one is open, and tells its writes how it went.
fn commit(conn: &mut Connection, group: Option<Group>) {
    let Some(group) = group else {
        return;
    };
    if conn.is_autocommit() {
        return fail(Some(group), &GroupFailure::rolled_back());
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for member in group.members {
                member(Ok(()));
            }
        }
        Err(e) => {
            // Nothing of the group is written; the connection must not stay in it.
            let _ = conn.execute_batch("ROLLBACK");
            tracing::warn!(error = %e, "cannot commit a group of writes");
            fail(Some(group), &GroupFailure::of(&e));
        }
    }
}

fn fail(group: Option<Group>, failure: &GroupFailure) {
    for member in group.into_iter().flat_map(|g| g.members) {
        member(Err(failure.clone()));
    }
}

fn checkpoint_while(alive: &Weak<DirectSqlite>, conn: &Connection) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(direct) = alive.upgrade() else {
            return;
        };
        // PASSIVE: copies what no reader still needs, never waits for a lock.
        let checkpointed = match checkpoint(conn, "PASSIVE") {
            Ok(frames) if frames >= RESTART_AFTER_FRAMES => {
                let Ok((_permit, has_paused)) = direct.pause() else {
                    return;
                };
                if has_paused.blocking_recv().is_err() {
                    // The writer thread has ended: the store is closing.
                    return;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_panics_is_rolled_back_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER);")
            .unwrap();
        let direct = DirectSqlite::open(&path).unwrap();
        let panicked = direct
            .write(|tx| -> rusqlite::Result<Finish<()>> {
                execute(tx, "INSERT INTO t VALUES (1)", &[])?;
                panic!("a bug in a write");
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::WriterGone)),
            "{panicked:?}"
        );
        let written = direct
            .write(|tx| execute(tx, "INSERT INTO t VALUES (2)", &[]).map(Finish::Commit))
            .await
            .unwrap();
        assert_eq!(written, 1);
        let values = direct
            .read(|conn| query(conn, "SELECT v FROM t", &[], |row| row.get::<_, i64>(0)))
            .unwrap();
        assert_eq!(values, [2]);
    }
}
