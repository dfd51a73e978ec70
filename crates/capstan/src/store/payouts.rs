//! Payout rounds: which executor holds a funded transaction, and where its round stands.
//! A round's outcome and the transaction's status change are written together, so a crash
//! leaves either both or neither.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::FromRow;

use super::transactions::{COLUMNS, TransactionRow, write_transition, write_transitions};
use super::{Store, StoreResult, TransitionWrite, on_pool, statement_chunks, unix_now};

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

/// The candidate query's columns: the transaction's own (as [`COLUMNS`] names them, for
/// [`TransactionRow`]) and where its payout stands, prefixed so the names do not collide.
static CANDIDATE_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let transaction: Vec<String> = COLUMNS.split(", ").map(|c| format!("t.{c}")).collect();
    format!(
        "{}, p.state AS p_state, p.version AS p_version, p.round AS p_round, p.lease_until AS p_lease_until, p.next_attempt_at AS p_next_attempt_at",
        transaction.join(", ")
    )
});

/// A funded transaction as the candidate query found it, with where its payout stood.
struct Candidate {
    transaction: TransactionRow,
    state: Option<String>,
    version: i64,
    round: i64,
    lease_until: i64,
    next_attempt_at: i64,
}

impl Candidate {
    fn from_row<'r, R>(row: &'r R) -> Result<Candidate, sqlx::Error>
    where
        R: sqlx::Row,
        TransactionRow: sqlx::FromRow<'r, R>,
        &'static str: sqlx::ColumnIndex<R>,
        Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(Candidate {
            transaction: TransactionRow::from_row(row)?,
            state: row.try_get("p_state")?,
            version: row.try_get::<Option<i64>, _>("p_version")?.unwrap_or(0),
            round: row.try_get::<Option<i64>, _>("p_round")?.unwrap_or(1),
            lease_until: row.try_get::<Option<i64>, _>("p_lease_until")?.unwrap_or(0),
            next_attempt_at: row
                .try_get::<Option<i64>, _>("p_next_attempt_at")?
                .unwrap_or(0),
        })
    }
}

fn claimable(state: Option<&str>, lease_until: i64, next_attempt_at: i64, now: i64) -> bool {
    match state {
        None | Some("done") => true,
        Some("waiting") => next_attempt_at <= now,
        Some("executing" | "claimed") => lease_until <= now,
        _ => false,
    }
}

/// A claim also checks that the transaction is still as the candidate query read it, so
/// the row handed to the executor is the one it holds (no second read).
const UNCHANGED: &str = "EXISTS (SELECT 1 FROM transactions t WHERE t.id = payouts.transaction_id AND t.version = $3 AND t.status = 'pending_receiver')";

/// On PostgreSQL, locks the rows of `transactions` with these ids (sorted), before a write
/// that changes their payouts and then them. Two writers that lock the same rows of both
/// tables in opposite orders deadlock: a claim holds its candidates' transactions and waits
/// for their payouts, so a round's end must not hold a payout while it waits for its
/// transaction. PostgreSQL would break such a cycle only after `deadlock_timeout`, and the
/// executor that lost would sleep. On SQLite writers go one at a time, and there is nothing
/// to order.
macro_rules! lock_transactions_first {
    ($store:expr, $tx:ident, $ids:expr) => {
        if matches!($store, Store::Postgres(_)) {
            for chunk in statement_chunks($ids) {
                let mut lock = sqlx::QueryBuilder::new("SELECT id FROM transactions WHERE id IN (");
                let mut each = lock.separated(", ");
                for id in chunk {
                    each.push_bind(*id);
                }
                lock.push(") ORDER BY id FOR UPDATE");
                lock.build().fetch_all(&mut *$tx).await?;
            }
        }
    };
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
        Ok(self.claim_payout_batch(owner, limit, lease_secs).await?.1)
    }

    /// [`Store::claim_payouts`], with how many claimable transactions were found first
    /// (more than were taken when another executor took some meanwhile). One query finds the
    /// candidates with their transactions; one database transaction claims them all (the
    /// new ones a chunk of rows per statement), each claim a compare-and-set on the
    /// payout's version that also requires the transaction's version to be the one read.
    pub async fn claim_payout_batch(
        &self,
        owner: &str,
        limit: i64,
        lease_secs: i64,
    ) -> StoreResult<(usize, Vec<Claimed>)> {
        let now = unix_now();
        // The candidates are read in the transaction that claims them. On SQLite, IMMEDIATE
        // takes the write lock before the read, so no other process writes between the read
        // and the claims. On PostgreSQL, `FOR UPDATE OF t SKIP LOCKED` passes over the
        // transactions another executor's claim or round end holds, so two executors take
        // different candidates instead of racing for the same ones. That cannot deadlock:
        // every write of the executor's that changes both tables locks the transaction
        // before its payout ([`lock_transactions_first!`]).
        let (begin, lock) = match self {
            Store::Sqlite { .. } => ("BEGIN IMMEDIATE", ""),
            Store::Postgres(_) => ("BEGIN", " FOR UPDATE OF t SKIP LOCKED"),
        };
        let sql = format!(
            "SELECT {} FROM transactions t LEFT JOIN payouts p ON p.transaction_id = t.id \
             WHERE t.status = 'pending_receiver' AND t.paid = TRUE \
             AND (p.state IS NULL OR p.state = 'done' OR (p.state = 'waiting' AND p.next_attempt_at <= $1) OR (p.state IN ('executing', 'claimed') AND p.lease_until <= $1)) \
             ORDER BY t.updated_at, t.id LIMIT $2{lock}",
            CANDIDATE_COLUMNS.as_str()
        );
        let until = now + lease_secs;
        let (found, candidates, mut won) = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let candidates = rows
                .iter()
                .map(Candidate::from_row)
                .filter(|c| {
                    c.as_ref().map_or(true, |c| {
                        claimable(c.state.as_deref(), c.lease_until, c.next_attempt_at, now)
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let found = candidates.len();
            let mut won: HashMap<String, PayoutRow> = HashMap::with_capacity(found);
            let fresh: Vec<(&str, i64)> = candidates
                .iter()
                .filter(|c| c.state.is_none())
                .map(|c| (c.transaction.id.as_str(), c.transaction.version))
                .collect();
            for chunk in statement_chunks(&fresh) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO payouts (transaction_id, round, idempotency_key, state, attempts, lease_owner, lease_until, next_attempt_at, version, updated_at) \
                     SELECT v.column1, 1, v.column1, 'claimed', 1, ",
                );
                insert
                    .push_bind(owner)
                    .push(", ")
                    .push_bind(until)
                    .push(", 0, 1, ")
                    .push_bind(now)
                    .push(" FROM (");
                insert.push_values(chunk, |mut row, (id, version)| {
                    row.push_bind(*id).push_bind(*version);
                });
                // The WHERE also keeps SQLite from reading the ON CONFLICT as a join's ON.
                insert.push(format!(
                    ") AS v JOIN transactions t ON t.id = v.column1 AND t.version = v.column2 WHERE t.status = 'pending_receiver' \
                     ON CONFLICT (transaction_id) DO NOTHING RETURNING {PAYOUT_COLUMNS}"
                ));
                let rows: Vec<PayoutRow> = insert.build_query_as().fetch_all(&mut *tx).await?;
                won.extend(rows.into_iter().map(|p| (p.transaction_id.clone(), p)));
            }
            for c in candidates.iter().filter(|c| c.state.is_some()) {
                let (id, version, tversion) = (&c.transaction.id, c.version, c.transaction.version);
                let row: Option<PayoutRow> = match c.state.as_deref() {
                    Some("done") => {
                        let next_round = c.round + 1;
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "UPDATE payouts SET round = $4, idempotency_key = $5, state = 'claimed', attempts = 1, lease_owner = $6, lease_until = $7, last_error = NULL, version = version + 1, updated_at = $8 \
                             WHERE transaction_id = $1 AND version = $2 AND {UNCHANGED} RETURNING {PAYOUT_COLUMNS}")))
                            .bind(id)
                            .bind(version)
                            .bind(tversion)
                            .bind(next_round)
                            .bind(format!("{id}:{next_round}"))
                            .bind(owner)
                            .bind(until)
                            .bind(now)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                    // Waiting: its next attempt. A round whose lease ran out: taken over;
                    // reconciled when its rails call had begun (executing), simply executed
                    // when it had not (claimed).
                    state => {
                        let next_attempt = if state == Some("waiting") {
                            "state = 'claimed', attempts = attempts + 1, "
                        } else {
                            ""
                        };
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "UPDATE payouts SET {next_attempt}lease_owner = $4, lease_until = $5, version = version + 1, updated_at = $6 \
                             WHERE transaction_id = $1 AND version = $2 AND {UNCHANGED} RETURNING {PAYOUT_COLUMNS}")))
                            .bind(id)
                            .bind(version)
                            .bind(tversion)
                            .bind(owner)
                            .bind(until)
                            .bind(now)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                };
                if let Some(row) = row {
                    won.insert(row.transaction_id.clone(), row);
                }
            }
            if found > 0 {
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>((found, candidates, won))
        })?;
        let claimed = candidates
            .into_iter()
            .filter_map(|c| {
                let payout = won.remove(&c.transaction.id)?;
                Some(Claimed {
                    interrupted: c.state.as_deref() == Some("executing"),
                    transaction: c.transaction,
                    payout,
                })
            })
            .collect();
        Ok((found, claimed))
    }

    /// [`Store::renew_lease`] for a batch of rounds about to be sent to the rails in one
    /// call, in one database transaction. Returns the rounds still this executor's, as they
    /// now are; the others are left alone.
    pub async fn begin_rounds(
        &self,
        payouts: &[PayoutRow],
        lease_secs: i64,
    ) -> StoreResult<Vec<PayoutRow>> {
        let until = unix_now() + lease_secs;
        let mut renewed: HashSet<String> = HashSet::with_capacity(payouts.len());
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in statement_chunks(payouts) {
                let mut update = sqlx::QueryBuilder::new("UPDATE payouts SET state = 'executing', lease_until = ");
                update.push_bind(until).push(", version = version + 1 FROM (");
                update.push_values(chunk, |mut row, p| {
                    row.push_bind(&p.transaction_id).push_bind(p.version);
                });
                update.push(") AS v WHERE payouts.transaction_id = v.column1 AND payouts.version = v.column2 RETURNING transaction_id");
                let ids: Vec<String> = update.build_query_scalar().fetch_all(&mut *tx).await?;
                renewed.extend(ids);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(payouts
            .iter()
            .filter(|p| renewed.contains(&p.transaction_id))
            .map(|p| PayoutRow {
                state: "executing".into(),
                lease_until: until,
                version: p.version + 1,
                ..p.clone()
            })
            .collect())
    }

    /// Ends a batch of rounds as done, each with its status change (rows made by
    /// [`prepare_transition`](super::prepare_transition)), in one database transaction.
    /// All or nothing: false, with nothing written, when any round is no longer this
    /// executor's or any transaction changed since it was read (the caller then ends the
    /// rounds one by one).
    pub async fn end_rounds_done(
        &self,
        ends: &[(&PayoutRow, TransitionWrite<'_>)],
        actor: &str,
    ) -> StoreResult<bool> {
        let now = unix_now();
        let writes: Vec<TransitionWrite<'_>> = ends.iter().map(|(_, w)| *w).collect();
        let mut ids: Vec<&str> = ends
            .iter()
            .map(|(p, _)| p.transaction_id.as_str())
            .collect();
        ids.sort_unstable();
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            lock_transactions_first!(self, tx, &ids);
            let mut held = true;
            for chunk in statement_chunks(ends) {
                let mut update = sqlx::QueryBuilder::new(
                    "UPDATE payouts SET state = 'done', next_attempt_at = 0, last_error = NULL, lease_owner = NULL, lease_until = 0, version = version + 1, updated_at = ",
                );
                update.push_bind(now).push(" FROM (");
                update.push_values(chunk, |mut row, (p, _)| {
                    row.push_bind(&p.transaction_id).push_bind(p.version);
                });
                update.push(") AS v WHERE payouts.transaction_id = v.column1 AND payouts.version = v.column2");
                if update.build().execute(&mut *tx).await?.rows_affected() != chunk.len() as u64 {
                    held = false;
                    break;
                }
            }
            if held && write_transitions!(tx, &writes, actor) {
                tx.commit().await?;
                Ok::<_, sqlx::Error>(true)
            } else {
                tx.rollback().await?;
                Ok(false)
            }
        })?;
        Ok(written)
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
            lock_transactions_first!(self, tx, &[payout.transaction_id.as_str()]);
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

    /// [`Store::simulated_payout`] for several calls with distinct keys, each given as
    /// (key, transaction id, amount, outcome), in one database transaction (a chunk of rows
    /// per statement). Returns the ledger rows, in no order.
    pub async fn simulated_payout_batch(
        &self,
        calls: &[(&str, &str, &str, &str)],
    ) -> StoreResult<Vec<SimulatedPayout>> {
        let now = unix_now();
        let rows = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut rows: Vec<SimulatedPayout> = Vec::with_capacity(calls.len());
            for chunk in statement_chunks(calls) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO simulated_payouts (idempotency_key, transaction_id, amount, outcome, calls, delivered, created_at) ",
                );
                insert.push_values(chunk, |mut row, (key, transaction_id, amount, outcome)| {
                    row.push_bind(*key)
                        .push_bind(*transaction_id)
                        .push_bind(*amount)
                        .push_bind(*outcome)
                        .push_bind(1i64)
                        .push_bind(*outcome == "completed")
                        .push_bind(now);
                });
                insert.push(" ON CONFLICT (idempotency_key) DO UPDATE SET calls = simulated_payouts.calls + 1 \
                     RETURNING idempotency_key, transaction_id, amount, outcome, calls, delivered, created_at");
                rows.extend(insert.build_query_as::<SimulatedPayout>().fetch_all(&mut *tx).await?);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        })?;
        Ok(rows)
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
