//! SEP-12 callback registrations and the outbox of signed callbacks to deliver.

use super::sqlite_direct;
use super::{Store, StoreResult, on_pool, on_read_pool, unix_now};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallbackRow {
    pub customer_id: String,
    pub url: String,
    pub kyc_type: String,
    pub last_status: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub subject: String,
    pub url: String,
    pub body: String,
    pub attempts: i64,
}

impl Store {
    /// Registers (or replaces, SEP12-33) the customer's callback URL.
    pub async fn set_customer_callback(
        &self,
        customer_id: &str,
        url: &str,
        kyc_type: &str,
        current_status: &str,
    ) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("INSERT INTO customer_callbacks (customer_id, url, kyc_type, last_status, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (customer_id) DO UPDATE SET url = excluded.url, kyc_type = excluded.kyc_type, last_status = excluded.last_status, updated_at = excluded.updated_at")
            .bind(customer_id)
            .bind(url)
            .bind(kyc_type)
            .bind(current_status)
            .bind(unix_now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn customer_callback(&self, customer_id: &str) -> StoreResult<Option<CallbackRow>> {
        const SQL: &str = "SELECT customer_id, url, kyc_type, last_status FROM customer_callbacks WHERE customer_id = $1";
        if let Some(direct) = self.direct() {
            let rows = direct.read(|conn| {
                sqlite_direct::query(conn, SQL, &[&customer_id], |row| {
                    Ok(CallbackRow {
                        customer_id: row.get(0)?,
                        url: row.get(1)?,
                        kyc_type: row.get(2)?,
                        last_status: row.get(3)?,
                    })
                })
            })?;
            return Ok(rows.into_iter().next());
        }
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, CallbackRow>(SQL)
            .bind(customer_id)
            .fetch_optional(pool)
            .await)?,
        )
    }

    pub async fn customer_callbacks(&self) -> StoreResult<Vec<CallbackRow>> {
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, CallbackRow>("SELECT customer_id, url, kyc_type, last_status FROM customer_callbacks ORDER BY customer_id")
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Records that the customer's status moved from `from` to `to` and queues the callback
    /// that says so, in one transaction. Returns false (and queues nothing) when another
    /// request or replica already reported this change. A final status ends the
    /// registration (SEP12-35).
    pub async fn queue_customer_callback(
        &self,
        registration: &CallbackRow,
        to: &str,
        is_final: bool,
        body: &str,
    ) -> StoreResult<bool> {
        let now = unix_now();
        let subject = format!("customer:{}", registration.customer_id);
        let queued = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let claimed = if is_final {
                sqlx::query("DELETE FROM customer_callbacks WHERE customer_id = $1 AND last_status = $2 AND url = $3")
                    .bind(&registration.customer_id)
                    .bind(&registration.last_status)
                    .bind(&registration.url)
                    .execute(&mut *tx)
                    .await?
            } else {
                sqlx::query("UPDATE customer_callbacks SET last_status = $4, updated_at = $5 WHERE customer_id = $1 AND last_status = $2 AND url = $3")
                    .bind(&registration.customer_id)
                    .bind(&registration.last_status)
                    .bind(&registration.url)
                    .bind(to)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
            }
            .rows_affected()
                == 1;
            if claimed {
                sqlx::query("INSERT INTO callback_outbox (subject, url, body, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $4)")
                    .bind(&subject)
                    .bind(&registration.url)
                    .bind(body)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(claimed)
        })?;
        Ok(queued)
    }

    /// Takes up to `limit` due callbacks, leasing them for `lease_secs` so another replica
    /// does not send them at the same time. A crashed sender's lease runs out and the
    /// callback is sent again: delivery is at least once. Only the oldest pending callback
    /// of each subject is taken, so one subject's callbacks arrive in the order they were
    /// queued, also while an earlier one is being retried.
    pub async fn claim_due_callbacks(
        &self,
        limit: i64,
        lease_secs: i64,
    ) -> StoreResult<Vec<OutboxRow>> {
        let now = unix_now();
        let sql = match self {
            Store::Sqlite { .. } => {
                "UPDATE callback_outbox SET lease_until = $1 WHERE id IN (SELECT c.id FROM callback_outbox c WHERE c.delivered_at IS NULL AND c.failed_at IS NULL AND c.next_attempt_at <= $2 AND c.lease_until <= $2 AND NOT EXISTS (SELECT 1 FROM callback_outbox e WHERE e.subject = c.subject AND e.id < c.id AND e.delivered_at IS NULL AND e.failed_at IS NULL) ORDER BY c.id LIMIT $3) RETURNING id, subject, url, body, attempts"
            }
            Store::Postgres(_) => {
                "UPDATE callback_outbox SET lease_until = $1 WHERE id IN (SELECT c.id FROM callback_outbox c WHERE c.delivered_at IS NULL AND c.failed_at IS NULL AND c.next_attempt_at <= $2 AND c.lease_until <= $2 AND NOT EXISTS (SELECT 1 FROM callback_outbox e WHERE e.subject = c.subject AND e.id < c.id AND e.delivered_at IS NULL AND e.failed_at IS NULL) ORDER BY c.id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, subject, url, body, attempts"
            }
        };
        let mut rows = on_pool!(self, pool => sqlx::query_as::<_, OutboxRow>(sql)
            .bind(now + lease_secs)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    pub async fn callback_delivered(&self, id: i64) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("UPDATE callback_outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(unix_now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A failed attempt: try again at `retry_at`, or give up when it is `None`.
    pub async fn callback_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> StoreResult<()> {
        let now = unix_now();
        on_pool!(self, pool => sqlx::query("UPDATE callback_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at), lease_until = 0, failed_at = CASE WHEN $3 IS NULL THEN $4 ELSE NULL END WHERE id = $1")
            .bind(id)
            .bind(error)
            .bind(retry_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Undelivered callbacks (waiting or given up), for health and the operator.
    pub async fn callback_backlog(&self) -> StoreResult<(i64, i64)> {
        let (waiting, failed): (i64, i64) = on_read_pool!(self, pool => sqlx::query_as("SELECT COUNT(*) FILTER (WHERE failed_at IS NULL), COUNT(*) FILTER (WHERE failed_at IS NOT NULL) FROM callback_outbox WHERE delivered_at IS NULL")
            .fetch_one(pool)
            .await)?;
        Ok((waiting, failed))
    }
}
