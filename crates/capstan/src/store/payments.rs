//! Incoming Stellar payments and the watcher's cursors. A batch of payments, the
//! transactions they fund and the stream's new cursor are written in one database
//! transaction: after a crash the stream resumes from a cursor that agrees exactly with what
//! was recorded, and the operation id as primary key turns a replayed payment into a no-op.

use std::collections::HashSet;

use super::transactions::{TransactionRow, TransitionWrite, write_transition, write_transitions};
use super::{Store, StoreResult, StreamLease, on_pool, on_read_pool, statement_chunks, unix_now};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: String,
    pub account: String,
    pub cursor: String,
    pub stellar_transaction_id: String,
    pub kind: String,
    pub from_account: String,
    pub to_muxed_id: Option<String>,
    pub asset_code: String,
    pub asset_issuer: String,
    pub amount: String,
    pub memo_type: String,
    pub memo: Option<String>,
    pub paid_at: i64,
    pub recorded_at: i64,
    pub outcome: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub transaction_id: Option<String>,
    pub resolution: Option<String>,
    pub resolution_note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
}

const COLUMNS: &str = "id, account, cursor, stellar_transaction_id, kind, from_account, to_muxed_id, asset_code, asset_issuer, amount, memo_type, memo, paid_at, recorded_at, outcome, reason, detail, transaction_id, resolution, resolution_note, resolved_by, resolved_at";

/// A status change a payment makes, prepared by the status machine
/// (`prepare_transition`) from the row as it was read.
#[derive(Debug, Clone)]
pub struct Funding {
    pub current: TransactionRow,
    pub next: TransactionRow,
    pub reason: String,
    pub callback_body: Option<String>,
}

/// One payment to record, with the transaction it funds when it was matched.
#[derive(Debug, Clone)]
pub struct PaymentRecord {
    pub payment: PaymentRow,
    pub funding: Option<Funding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchWritten {
    /// Written: how many payments were new, and how many had been recorded before.
    Done { new: usize, seen_before: usize },
    /// A transaction changed between reading and writing; nothing was written, redo the
    /// batch from fresh rows.
    Conflict,
    /// Another process owns the stream now; nothing was written.
    LeaseLost,
}

/// Filters of the operator's payment list.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub outcome: Option<String>,
    /// `Some(true)`: only unresolved unmatched payments.
    pub open: Option<bool>,
    pub transaction_id: Option<String>,
    /// Keyset paging: (recorded_at, id) of the last row of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Done,
    /// The payment is unknown, was matched, or an operator resolved it already.
    NotOpen,
    /// The transaction changed meanwhile; try again.
    Conflict,
}

impl Store {
    /// Where the stream of `account` stands, if it ever ran.
    pub async fn watcher_cursor(&self, account: &str) -> StoreResult<Option<String>> {
        Ok(
            on_read_pool!(self, pool => sqlx::query_scalar("SELECT cursor FROM watcher_cursors WHERE account = $1")
            .bind(account)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// Stores where a stream starts, unless it has a cursor already; returns the one that
    /// is stored.
    pub async fn init_watcher_cursor(&self, account: &str, cursor: &str) -> StoreResult<String> {
        on_pool!(self, pool => sqlx::query("INSERT INTO watcher_cursors (account, cursor, updated_at) VALUES ($1, $2, $3) ON CONFLICT (account) DO NOTHING")
            .bind(account)
            .bind(cursor)
            .bind(unix_now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(self
            .watcher_cursor(account)
            .await?
            .unwrap_or_else(|| cursor.to_owned()))
    }

    /// Records a batch of payments, the status changes they make, and the stream's cursor
    /// after them, all or nothing. A payment recorded before (same operation id) changes
    /// nothing. `actor` is written in each transaction's event. Under a `lease`, the batch
    /// renews it first and is written only while its owner still holds it (the row stays
    /// locked until the commit, so a takeover waits for it).
    pub async fn record_payments(
        &self,
        account: &str,
        records: &[PaymentRecord],
        cursor: &str,
        actor: &str,
        lease: Option<StreamLease<'_>>,
    ) -> StoreResult<BatchWritten> {
        let now = unix_now();
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(lease) = lease {
                let held = sqlx::query("UPDATE stream_leases SET lease_until = $3 WHERE account = $1 AND owner = $2")
                    .bind(account)
                    .bind(lease.owner)
                    .bind(now + lease.secs)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !held {
                    tx.rollback().await?;
                    return Ok(BatchWritten::LeaseLost);
                }
            }
            // The payments, a chunk per statement; the ids that come back are the new ones.
            let mut inserted: HashSet<String> = HashSet::with_capacity(records.len());
            for chunk in statement_chunks(records) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO incoming_payments (id, account, cursor, stellar_transaction_id, kind, from_account, to_muxed_id, asset_code, asset_issuer, amount, memo_type, memo, paid_at, recorded_at, outcome, reason, detail, transaction_id) ",
                );
                insert.push_values(chunk, |mut row, r| {
                    let p = &r.payment;
                    row.push_bind(&p.id)
                        .push_bind(&p.account)
                        .push_bind(&p.cursor)
                        .push_bind(&p.stellar_transaction_id)
                        .push_bind(&p.kind)
                        .push_bind(&p.from_account)
                        .push_bind(&p.to_muxed_id)
                        .push_bind(&p.asset_code)
                        .push_bind(&p.asset_issuer)
                        .push_bind(&p.amount)
                        .push_bind(&p.memo_type)
                        .push_bind(&p.memo)
                        .push_bind(p.paid_at)
                        .push_bind(p.recorded_at)
                        .push_bind(&p.outcome)
                        .push_bind(&p.reason)
                        .push_bind(&p.detail)
                        .push_bind(&p.transaction_id);
                });
                insert.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
                let ids: Vec<String> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
                inserted.extend(ids);
            }
            // Only a payment recorded now makes its change, and only once should the same
            // id come twice in one batch.
            let fresh: Vec<&PaymentRecord> = records
                .iter()
                .filter(|r| inserted.remove(&r.payment.id))
                .collect();
            let fundings: Vec<TransitionWrite<'_>> = fresh
                .iter()
                .filter_map(|r| r.funding.as_ref())
                .map(|f| TransitionWrite {
                    current: &f.current,
                    next: &f.next,
                    reason: Some(f.reason.as_str()),
                    callback_body: f.callback_body.as_deref(),
                })
                .collect();
            if !write_transitions!(tx, &fundings, actor) {
                tx.rollback().await?;
                return Ok(BatchWritten::Conflict);
            }
            for r in &fresh {
                let p = &r.payment;
                if let (None, Some(id), Some(reason)) = (&r.funding, &p.transaction_id, &p.reason) {
                    // The transaction its memo names keeps its status; its history shows
                    // the payment that was held.
                    sqlx::query("INSERT INTO transaction_events (transaction_id, from_status, to_status, actor, reason, at) \
                         SELECT id, status, status, $2, $3, $4 FROM transactions WHERE id = $1")
                        .bind(id)
                        .bind(actor)
                        .bind(format!("payment {} held: {reason}", p.id))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query("INSERT INTO watcher_cursors (account, cursor, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (account) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at")
                .bind(account)
                .bind(cursor)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(BatchWritten::Done {
                new: fresh.len(),
                seen_before: records.len() - fresh.len(),
            })
        })?;
        Ok(written)
    }

    /// Which of these payment ids are recorded already.
    pub async fn known_payment_ids(&self, ids: &[&str]) -> StoreResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id FROM incoming_payments WHERE id IN ({})",
            placeholders.join(", ")
        );
        Ok(on_read_pool!(self, pool => {
            let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.as_str()));
            for id in ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await
        })?)
    }

    pub async fn incoming_payment(&self, id: &str) -> StoreResult<Option<PaymentRow>> {
        let sql = format!("SELECT {COLUMNS} FROM incoming_payments WHERE id = $1");
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await)?,
        )
    }

    /// A page of payments, newest first.
    pub async fn list_incoming_payments(&self, f: &PaymentFilter) -> StoreResult<Vec<PaymentRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM incoming_payments WHERE ($1 IS NULL OR outcome = $1) \
             AND ($2 IS NULL OR ($2 = TRUE AND outcome = 'unmatched' AND resolution IS NULL) OR ($2 = FALSE AND NOT (outcome = 'unmatched' AND resolution IS NULL))) \
             AND ($3 IS NULL OR transaction_id = $3) \
             AND ($4 IS NULL OR recorded_at < $4 OR (recorded_at = $4 AND id < $5)) \
             ORDER BY recorded_at DESC, id DESC LIMIT $6"
        );
        let (before_at, before_id) = match &f.before {
            Some((at, id)) => (Some(*at), id.clone()),
            None => (None, String::new()),
        };
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&f.outcome)
                .bind(f.open)
                .bind(&f.transaction_id)
                .bind(before_at)
                .bind(&before_id)
                .bind(f.limit)
                .fetch_all(pool)
                .await)?,
        )
    }

    /// An operator's decision on an unmatched payment. With `funding`, the payment is
    /// attached to that transaction, which it funds, in the same database transaction.
    pub async fn resolve_payment(
        &self,
        id: &str,
        resolution: &str,
        note: Option<&str>,
        actor: &str,
        funding: Option<&Funding>,
    ) -> StoreResult<Resolved> {
        let now = unix_now();
        let attached_to = funding.map(|f| f.next.id.clone());
        let resolved = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let open = sqlx::query("UPDATE incoming_payments SET resolution = $2, resolution_note = $3, resolved_by = $4, resolved_at = $5, transaction_id = COALESCE($6, transaction_id) \
                 WHERE id = $1 AND outcome = 'unmatched' AND resolution IS NULL")
                .bind(id)
                .bind(resolution)
                .bind(note)
                .bind(actor)
                .bind(now)
                .bind(&attached_to)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !open {
                Ok::<_, sqlx::Error>(Resolved::NotOpen)
            } else if let Some(f) = funding {
                let reason = Some(f.reason.as_str());
                let body = f.callback_body.as_deref();
                if write_transition!(tx, f.current, f.next, actor, reason, body) {
                    tx.commit().await?;
                    Ok(Resolved::Done)
                } else {
                    tx.rollback().await?;
                    Ok(Resolved::Conflict)
                }
            } else {
                tx.commit().await?;
                Ok(Resolved::Done)
            }
        })?;
        Ok(resolved)
    }
}
