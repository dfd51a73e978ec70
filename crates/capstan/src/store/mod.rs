//! Persistence: one API over SQLite (the embedded default) and PostgreSQL (for production
//! and replicas). Queries are written once in portable SQL (`$N` placeholders, `ON CONFLICT`)
//! and run on whichever pool is configured; migrations are embedded, one directory per backend
//! because their DDL may differ.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

mod auth;
mod callbacks;
mod customers;
mod files;
mod payments;
mod payouts;
mod quotes;
mod secrets;
mod sqlite_direct;
mod stream_leases;
mod transactions;

pub use callbacks::{CallbackRow, OutboxRow};
pub use customers::{CustomerRow, Erased, FieldRow, FieldWrite};
pub use files::FileRow;
pub use payments::{BatchWritten, Funding, PaymentFilter, PaymentRecord, PaymentRow, Resolved};
pub use payouts::{Claimed, PayoutRow, RoundEnd, RoundWritten, SimulatedPayout};
pub use quotes::{QuoteRow, Reserved};
pub use sqlite_direct::DirectSqlite;
pub use stream_leases::StreamLease;
pub(crate) use transactions::statement_chunks;
pub use transactions::{
    EventRow, Inserted, QuoteClaim, TransactionFilter, TransactionRow, TransitionError,
    TransitionWrite, prepare_transition,
};

#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite takes one writer at a time. All writes go through `writer`, a pool of one
    /// connection, so they queue in the application instead of sleeping in SQLite's busy
    /// handler; WAL lets the `reader` connections run beside it and see every committed
    /// write. An in-memory database is one per pool, so there both are the same pool.
    /// `direct` runs the hottest requests' statements without sqlx's thread hand-offs
    /// (a file database only); every write, direct or not, holds its write permit.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        direct: Option<Arc<DirectSqlite>>,
    },
    Postgres(PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("the database is busy: {0}")]
    Busy(rusqlite::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The SQLite writer thread has stopped (the store is closing): the write may or may not
    /// have been committed.
    #[error("database error: the database writer has stopped")]
    WriterGone,
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot open database {url}: {reason}")]
    Open { url: String, reason: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // A protocol error is the database connection breaking mid-conversation: a
            // server cut off during the TLS request answers "unexpected response from
            // SSLRequest". The request can be retried, so it is a 503, not a 500.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            other => StoreError::Database(other),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy(e)
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Runs the same expression on either backend's pool, SQLite's writer. The body is expanded
/// once per backend, so a runtime query (`sqlx::query(...)`) type-checks against each driver.
/// On SQLite the body holds the write permit, which the direct writer shares.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite {
                writer: $pool,
                direct,
                ..
            } => {
                let _permit = match direct {
                    Some(direct) => Some(direct.write_permit().await?),
                    None => None,
                };
                $body
            }
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// As [`on_pool!`], on SQLite's read connections: for a statement that only reads and is
/// not part of a write that relies on it (it sees what was committed when it runs, as any
/// other connection would, but not the writer's uncommitted transaction).
macro_rules! on_read_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite { reader: $pool, .. } => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_read_pool;

/// Seconds since the Unix epoch: how every time is stored.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A unix time as ISO 8601 UTC with a `Z`, as the SEPs write times.
pub fn iso_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Store> {
        let open_err = |e: sqlx::Error| StoreError::Open {
            url: redact_url(url),
            reason: e.to_string(),
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(open_err)?
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let in_memory = is_in_memory(url);
            let path = options.get_filename().to_owned();
            // WAL is set by the writer, which opens (and creates) the file first; a reader
            // must not try to change the journal mode.
            let writer_options = if in_memory {
                options.clone()
            } else {
                options
                    .clone()
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .pragma("wal_autocheckpoint", "0")
            };
            let writer = sqlite_pool(if in_memory { max_connections } else { 1 })
                .connect_with(writer_options)
                .await
                .map_err(open_err)?;
            let reader = if in_memory {
                writer.clone()
            } else {
                // `query_only` refuses writes, yet the file is opened as the writer opens
                // it: a read-only open could not checkpoint the WAL when it is the last
                // connection to close.
                sqlite_pool(max_connections)
                    .connect_with(
                        options
                            .pragma("query_only", "ON")
                            .pragma("wal_autocheckpoint", "0"),
                    )
                    .await
                    .map_err(open_err)?
            };
            let direct = if in_memory {
                None
            } else {
                // Every connection but its checkpoint thread leaves the WAL alone.
                Some(DirectSqlite::open(&path).map_err(|e| StoreError::Open {
                    url: redact_url(url),
                    reason: e.to_string(),
                })?)
            };
            Ok(Store::Sqlite {
                writer,
                reader,
                direct,
            })
        } else {
            let options = PgConnectOptions::from_str(url).map_err(open_err)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(open_err)?;
            Ok(Store::Postgres(pool))
        }
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Store::Sqlite { writer: pool, .. } => {
                sqlx::migrate!("./migrations/sqlite").run(pool).await?
            }
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Readiness: the database answers a query.
    pub async fn ping(&self) -> StoreResult<()> {
        on_read_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The direct connections of a SQLite file database.
    fn direct(&self) -> Option<&DirectSqlite> {
        match self {
            Store::Sqlite {
                direct: Some(direct),
                ..
            } => Some(direct),
            _ => None,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite { .. } => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite {
                writer,
                reader,
                direct,
            } => {
                if let Some(direct) = direct {
                    // Waits for the direct writes already asked for.
                    drop(direct.write_permit().await);
                }
                reader.close().await;
                writer.close().await;
            }
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

/// The options of a pool of SQLite connections. An idle connection is not pinged before it
/// is handed out: each ping is a round trip to the connection's thread, and a file
/// database does not drop connections as a server can.
fn sqlite_pool(max_connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
}

/// `sqlite::memory:`, `sqlite://:memory:` or `mode=memory`: a database that lives in its
/// pool's connections, so a second pool would open another, empty one.
fn is_in_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
}

/// A database URL safe to print: any password is replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    #[test]
    fn a_broken_database_connection_is_unavailable_not_an_internal_error() {
        for e in [
            sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into()),
            sqlx::Error::WorkerCrashed,
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ] {
            assert!(
                matches!(StoreError::from(e), StoreError::Unavailable(_)),
                "a broken connection must map to Unavailable (503)"
            );
        }
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Database(_)
        ));
    }
}
