//! SQLite on the calling task, for the requests that run most often.
//!
//! sqlx runs every SQLite connection on a thread of its own and sends each statement there
//! and back: a channel and a futex wake-up each way. Under load those hand-offs, not SQLite,
//! were most of the CPU of a SEP-12 PUT or a SEP-31 POST, and the one writer connection was
//! held through all of them (BENCHMARKS.md). The connections here are rusqlite's, opened on
//! the same file, and run their statements on the task that asks: a read by key or a short
//! write transaction takes a few microseconds of SQLite, less than one hand-off. A commit
//! that checkpoints the WAL (once per about 1,000 pages written) keeps its worker thread for
//! that checkpoint's sync.
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
//! handler. Only a file database has these connections: an in-memory one lives inside
//! sqlx's pool, and the store runs everything through sqlx there.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Row, Statement, ToSql, Transaction, TransactionBehavior};
use tokio::sync::{Mutex, MutexGuard};

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
    writer: Mutex<Connection>,
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
pub type WritePermit<'a> = MutexGuard<'a, Connection>;

/// How a write transaction ends: `Discard` rolls back what it wrote and still returns.
pub enum Finish<T> {
    Commit(T),
    Discard(T),
}

impl DirectSqlite {
    /// Opens the direct writer on a database file that sqlx's writer has opened (and
    /// migrated, or is about to): the journal mode is the file's, set there. Starts the
    /// checkpoint thread, which ends once the returned value is dropped.
    pub fn open(path: &Path) -> Result<Arc<Self>, Box<dyn std::error::Error + Send + Sync>> {
        let direct = Arc::new(Self {
            path: path.to_owned(),
            writer: Mutex::new(open(path, false)?),
            readers: StdMutex::new(Vec::new()),
        });
        let checkpointer = open(path, false)?;
        let alive = Arc::downgrade(&direct);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_while(&alive, &checkpointer))?;
        Ok(direct)
    }

    /// Waits for the right to write. Every write through sqlx's writer pool holds it too.
    pub async fn write_permit(&self) -> WritePermit<'_> {
        self.writer.lock().await
    }

    /// Runs `f` as one write transaction on the direct writer.
    pub async fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<Finish<T>>,
    ) -> rusqlite::Result<T> {
        let mut writer = self.write_permit().await;
        // IMMEDIATE: the write lock from the start. Nobody else writes while the permit is
        // held, so it is free; a process outside capstan waits in the busy handler.
        let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match f(&tx)? {
            Finish::Commit(out) => {
                tx.commit()?;
                Ok(out)
            }
            Finish::Discard(out) => {
                tx.rollback()?;
                Ok(out)
            }
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

fn checkpoint_while(alive: &Weak<DirectSqlite>, conn: &Connection) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(direct) = alive.upgrade() else {
            return;
        };
        // PASSIVE: copies what no reader still needs, never waits for a lock.
        let checkpointed = match checkpoint(conn, "PASSIVE") {
            Ok(frames) if frames >= RESTART_AFTER_FRAMES => {
                let _permit = direct.writer.blocking_lock();
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
        let name = stmt.parameter_name(index).unwrap_or("?").to_owned();
        let value = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| values.get(n))
            .ok_or(rusqlite::Error::InvalidParameterName(name))?;
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
