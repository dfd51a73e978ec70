//! Payout rounds: which executor holds a funded transaction, and where its round stands.
//! A round's outcome and the transaction's status change are written together, so a crash
//! leaves either both or neither.

use super::transactions::{COLUMNS, TransactionRow, write_transition};
use super::{Store, StoreResult, on_pool, unix_now};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PayoutRow {
    pub transaction_id: String,
    pub round: i64,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub version: i64,
    pub updated_at: i64,
}

const PAYOUT_COLUMNS: &str = "transaction_id, round, idempotency_key, state, attempts, lease_owner, lease_until, next_attempt_at, last_error, version, updated_at";

/// A transaction an executor now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub transaction: TransactionRow,
    pub payout: PayoutRow,
    /// The round was cut off (its executor crashed or timed out during the rails call):
    /// what happened must be asked of the rails before anything is paid.
    pub interrupted: bool,
}

/// How a round ends, written with the status change it makes (if any).
#[derive(Debug, Clone)]
pub struct RoundEnd<'a> {
    /// done, waiting, held; or executing to leave it to be reconciled
    pub state: &'a str,
    pub next_attempt_at: i64,
    pub last_error: Option<&'a str>,
    /// (current, next, reason, callback body)
    pub transition: Option<(
        &'a TransactionRow,
        &'a TransactionRow,
        &'a str,
        Option<&'a str>,
    )>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundWritten {
    Done,
    /// The transaction changed since it was read: read again.
    TransactionChanged,
    /// Another executor holds the round now (this one's lease ran out).
    LeaseLost,
}

/// (transaction id, and its payout's state, version, round, lease_until, next_attempt_at).
type Candidate = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn claimable(state: Option<&str>, lease_until: i64, next_attempt_at: i64, now: i64) -> bool {
    match state {
        None | Some("done") => true,
        Some("waiting") => next_attempt_at <= now,
        Some("executing" | "claimed") => lease_until <= now,
        _ => false,
    }
}

impl Store {
    /// Takes up to `limit` funded `pending_receiver` transactions for `owner` for
    /// `lease_secs`: new ones, ones back from a correction (a new round), retries that are
    /// due, and rounds whose executor's lease ran out (to reconcile). Each claim is a
    /// compare-and-set, so two executors never hold one transaction.
    pub async fn claim_payouts(
        &self,
        owner: &str,
        limit: i64,
        lease_secs: i64,
    ) -> StoreResult<Vec<Claimed>> {
        let now = unix_now();
        let candidates: Vec<Candidate> = on_pool!(self, pool => sqlx::query_as(
            "SELECT t.id, p.state, p.version, p.round, p.lease_until, p.next_attempt_at FROM transactions t LEFT JOIN payouts p ON p.transaction_id = t.id \
             WHERE t.status = 'pending_receiver' AND t.paid = TRUE \
             AND (p.state IS NULL OR p.state = 'done' OR (p.state = 'waiting' AND p.next_attempt_at <= $1) OR (p.state IN ('executing', 'claimed') AND p.lease_until <= $1)) \
             ORDER BY t.updated_at, t.id LIMIT $2")
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        let until = now + lease_secs;
        let mut claimed = Vec::new();
        for (id, state, version, round, lease_until, next_attempt_at) in candidates {
            if !claimable(
                state.as_deref(),
                lease_until.unwrap_or(0),
                next_attempt_at.unwrap_or(0),
                now,
            ) {
                continue;
            }
            let version = version.unwrap_or(0);
            let won = match state.as_deref() {
                None => on_pool!(self, pool => sqlx::query(
                    "INSERT INTO payouts (transaction_id, round, idempotency_key, state, attempts, lease_owner, lease_until, next_attempt_at, version, updated_at) \
                     VALUES ($1, 1, $1, 'claimed', 1, $2, $3, 0, 1, $4) ON CONFLICT (transaction_id) DO NOTHING")
                    .bind(&id)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()))?,
                Some("done") => {
                    let next_round = round.unwrap_or(1) + 1;
                    on_pool!(self, pool => sqlx::query(
                        "UPDATE payouts SET round = $3, idempotency_key = $4, state = 'claimed', attempts = 1, lease_owner = $5, lease_until = $6, last_error = NULL, version = version + 1, updated_at = $7 \
                         WHERE transaction_id = $1 AND version = $2")
                        .bind(&id)
                        .bind(version)
                        .bind(next_round)
                        .bind(format!("{id}:{next_round}"))
                        .bind(owner)
                        .bind(until)
                        .bind(now)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected()))?
                }
                Some("waiting") => on_pool!(self, pool => sqlx::query(
                    "UPDATE payouts SET state = 'claimed', attempts = attempts + 1, lease_owner = $3, lease_until = $4, version = version + 1, updated_at = $5 \
                     WHERE transaction_id = $1 AND version = $2")
                    .bind(&id)
                    .bind(version)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()))?,
                // A round whose lease ran out: taken over; reconciled when its rails call
                // had begun (executing), simply executed when it had not (claimed).
                _ => on_pool!(self, pool => sqlx::query(
                    "UPDATE payouts SET lease_owner = $3, lease_until = $4, version = version + 1, updated_at = $5 \
                     WHERE transaction_id = $1 AND version = $2")
                    .bind(&id)
                    .bind(version)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()))?,
            } == 1;
            if !won {
                continue;
            }
            let (Some(transaction), Some(payout)) =
                (self.transaction(&id).await?, self.payout(&id).await?)
            else {
                continue;
            };
            claimed.push(Claimed {
                interrupted: state.as_deref() == Some("executing"),
                transaction,
                payout,
            });
        }
        Ok(claimed)
    }

    /// Marks a round this executor holds as executing and extends its lease, right before
    /// its rails call: from here on a crash leaves a round to reconcile, not to execute (a
    /// claimed batch is worked through one by one, so each call gets a full lease). `None`
    /// when the round is no longer as claimed: leave it alone.
    pub async fn renew_lease(
        &self,
        payout: &PayoutRow,
        lease_secs: i64,
    ) -> StoreResult<Option<PayoutRow>> {
        let until = unix_now() + lease_secs;
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE payouts SET state = 'executing', lease_until = $3, version = version + 1 WHERE transaction_id = $1 AND version = $2")
            .bind(&payout.transaction_id)
            .bind(payout.version)
            .bind(until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok((n == 1).then(|| PayoutRow {
            state: "executing".into(),
            lease_until: until,
            version: payout.version + 1,
            ..payout.clone()
        }))
    }

    pub async fn payout(&self, transaction_id: &str) -> StoreResult<Option<PayoutRow>> {
        let sql = format!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE transaction_id = $1");
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, PayoutRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(transaction_id)
                .fetch_optional(pool)
                .await)?,
        )
    }

    /// Ends (or pauses) the round `payout` as claimed, with the status change it makes, in
    /// one database transaction; nothing is written unless both the round is still this
    /// executor's and the transaction is as it was read.
    pub async fn end_round(
        &self,
        payout: &PayoutRow,
        end: &RoundEnd<'_>,
        actor: &str,
    ) -> StoreResult<RoundWritten> {
        let now = unix_now();
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let held = sqlx::query("UPDATE payouts SET state = $3, next_attempt_at = $4, last_error = $5, lease_owner = CASE WHEN $3 = 'executing' THEN lease_owner ELSE NULL END, lease_until = CASE WHEN $3 = 'executing' THEN $4 ELSE 0 END, version = version + 1, updated_at = $6 \
                 WHERE transaction_id = $1 AND version = $2")
                .bind(&payout.transaction_id)
                .bind(payout.version)
                .bind(end.state)
                .bind(end.next_attempt_at)
                .bind(end.last_error)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !held {
                tx.rollback().await?;
                Ok::<_, sqlx::Error>(RoundWritten::LeaseLost)
            } else if let Some((current, next, reason, body)) = end.transition {
                if write_transition!(tx, current, next, actor, Some(reason), body) {
                    tx.commit().await?;
                    Ok(RoundWritten::Done)
                } else {
                    tx.rollback().await?;
                    Ok(RoundWritten::TransactionChanged)
                }
            } else {
                tx.commit().await?;
                Ok(RoundWritten::Done)
            }
        })?;
        Ok(written)
    }

    /// Transactions submitted to the rails and not yet delivered, oldest first.
    pub async fn pending_external(&self, limit: i64) -> StoreResult<Vec<TransactionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM transactions WHERE status = 'pending_external' ORDER BY updated_at, id LIMIT $1"
        );
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, TransactionRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(limit)
                .fetch_all(pool)
                .await)?,
        )
    }

    /// Gives back a round claimed but not begun (the executor is stopping), for another
    /// executor to take at once.
    pub async fn release_claim(&self, payout: &PayoutRow) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE payouts SET lease_owner = NULL, lease_until = 0, version = version + 1 WHERE transaction_id = $1 AND version = $2 AND state = 'claimed'")
            .bind(&payout.transaction_id)
            .bind(payout.version)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The operator's word that a held round was not paid: it is retried with the same
    /// idempotency key. Returns false when the round is not held.
    pub async fn release_held_payout(&self, transaction_id: &str) -> StoreResult<bool> {
        let now = unix_now();
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE payouts SET state = 'waiting', next_attempt_at = $2, last_error = NULL, version = version + 1, updated_at = $2 WHERE transaction_id = $1 AND state = 'held'")
            .bind(transaction_id)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Payout rounds held for the operator.
    pub async fn held_payouts(&self, limit: i64) -> StoreResult<Vec<PayoutRow>> {
        let sql = format!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE state = 'held' ORDER BY updated_at LIMIT $1"
        );
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, PayoutRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(limit)
                .fetch_all(pool)
                .await)?,
        )
    }
}

// ---- the simulated rails' ledger ----------------------------------------------------------

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SimulatedPayout {
    pub idempotency_key: String,
    pub transaction_id: String,
    pub amount: String,
    pub outcome: String,
    pub calls: i64,
    pub delivered: bool,
    pub created_at: i64,
}

impl Store {
    /// Records a call of the simulated rails for `key`: the first call decides the
    /// outcome; later calls with the same key only count, and get the first outcome back.
    pub async fn simulated_payout(
        &self,
        key: &str,
        transaction_id: &str,
        amount: &str,
        outcome: &str,
    ) -> StoreResult<SimulatedPayout> {
        let now = unix_now();
        let row = on_pool!(self, pool => sqlx::query_as::<_, SimulatedPayout>(
            "INSERT INTO simulated_payouts (idempotency_key, transaction_id, amount, outcome, calls, delivered, created_at) VALUES ($1, $2, $3, $4, 1, $5, $6) \
             ON CONFLICT (idempotency_key) DO UPDATE SET calls = simulated_payouts.calls + 1 \
             RETURNING idempotency_key, transaction_id, amount, outcome, calls, delivered, created_at")
            .bind(key)
            .bind(transaction_id)
            .bind(amount)
            .bind(outcome)
            .bind(outcome == "completed")
            .bind(now)
            .fetch_one(pool)
            .await)?;
        Ok(row)
    }

    pub async fn simulated_payout_by_key(&self, key: &str) -> StoreResult<Option<SimulatedPayout>> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, SimulatedPayout>(
            "SELECT idempotency_key, transaction_id, amount, outcome, calls, delivered, created_at FROM simulated_payouts WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await)?)
    }

    /// Every simulated payout, for tests and the operator.
    pub async fn simulated_payouts(&self) -> StoreResult<Vec<SimulatedPayout>> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, SimulatedPayout>(
            "SELECT idempotency_key, transaction_id, amount, outcome, calls, delivered, created_at FROM simulated_payouts ORDER BY created_at, idempotency_key")
            .fetch_all(pool)
            .await)?)
    }

    /// Marks a pending simulated payout delivered (the simulated bank's settlement).
    pub async fn deliver_simulated_payout(&self, key: &str) -> StoreResult<bool> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE simulated_payouts SET delivered = TRUE WHERE idempotency_key = $1 AND outcome = 'pending_external'")
            .bind(key)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
