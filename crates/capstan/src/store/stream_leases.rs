//! Leases on the watcher's streams: one owner per distribution account at a time, so that
//! replicas do not stream the same account twice. The lease is also the fence of the
//! owner's writes: [`super::Store::record_payments`] renews it in the batch's database
//! transaction and writes nothing once another process owns it.

use super::{Store, StoreResult, on_pool, on_read_pool, unix_now};

/// The lease a batch of payments is written under.
#[derive(Debug, Clone, Copy)]
pub struct StreamLease<'a> {
    pub owner: &'a str,
    /// How long a renewal holds it, in seconds.
    pub secs: i64,
}

impl Store {
    /// Takes the stream of `account` for `owner`, or renews it when `owner` has it already.
    /// False: another owner's lease has not run out.
    pub async fn lease_stream(&self, account: &str, lease: StreamLease<'_>) -> StoreResult<bool> {
        let now = unix_now();
        let taken = on_pool!(self, pool => sqlx::query("INSERT INTO stream_leases (account, owner, lease_until, acquired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, \
             acquired_at = CASE WHEN stream_leases.owner = excluded.owner THEN stream_leases.acquired_at ELSE excluded.acquired_at END \
             WHERE stream_leases.owner = excluded.owner OR stream_leases.lease_until < $4")
            .bind(account)
            .bind(lease.owner)
            .bind(now + lease.secs)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(taken == 1)
    }

    /// Gives the stream up (on a clean stop), so another replica takes it at once.
    pub async fn release_stream(&self, account: &str, owner: &str) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("UPDATE stream_leases SET lease_until = 0 WHERE account = $1 AND owner = $2")
            .bind(account)
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Who holds the stream of `account`, and until when.
    pub async fn stream_owner(&self, account: &str) -> StoreResult<Option<(String, i64)>> {
        Ok(
            on_read_pool!(self, pool => sqlx::query_as("SELECT owner, lease_until FROM stream_leases WHERE account = $1")
            .bind(account)
            .fetch_optional(pool)
            .await)?,
        )
    }
}
