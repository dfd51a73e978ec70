//! SEP-31 transactions and their event log. [`Store::transition`] is the one function that
//! changes a status.

use crate::sep31::status::{self, Facts, IllegalTransition, Status};

use super::sqlite_direct::{self, Finish};
use super::{Store, StoreError, StoreResult, on_pool, on_read_pool, unix_now};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TransactionRow {
    pub id: String,
    pub sending_anchor: String,
    pub status: String,
    pub status_message: Option<String>,
    pub asset_code: String,
    pub asset_issuer: String,
    pub funding_method: String,
    pub amount_in: String,
    pub amount_fee: String,
    pub amount_out: String,
    pub fee_details: String,
    pub sender_id: Option<String>,
    pub receiver_id: Option<String>,
    pub stellar_account_id: Option<String>,
    pub stellar_memo_type: Option<String>,
    pub stellar_memo: Option<String>,
    pub refund_memo: Option<String>,
    pub refund_memo_type: Option<String>,
    pub fields: String,
    pub required_info_message: Option<String>,
    pub required_info_updates: Option<String>,
    pub stellar_transaction_id: Option<String>,
    pub external_transaction_id: Option<String>,
    pub refunds: Option<String>,
    pub paid: bool,
    pub version: i64,
    pub callback_url: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// A converting transaction's SEP-38 terms, as JSON (`sep38::sep31::Conversion`).
    pub conversion: Option<String>,
}

impl TransactionRow {
    /// A row of `SELECT {COLUMNS}`, read by position: looking 32 columns up by name was a
    /// tenth of a SEP-31 GET. [`COLUMNS`] keeps this order (a unit test checks it).
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(TransactionRow {
            id: row.get(0)?,
            sending_anchor: row.get(1)?,
            status: row.get(2)?,
            status_message: row.get(3)?,
            asset_code: row.get(4)?,
            asset_issuer: row.get(5)?,
            funding_method: row.get(6)?,
            amount_in: row.get(7)?,
            amount_fee: row.get(8)?,
            amount_out: row.get(9)?,
            fee_details: row.get(10)?,
            sender_id: row.get(11)?,
            receiver_id: row.get(12)?,
            stellar_account_id: row.get(13)?,
            stellar_memo_type: row.get(14)?,
            stellar_memo: row.get(15)?,
            refund_memo: row.get(16)?,
            refund_memo_type: row.get(17)?,
            fields: row.get(18)?,
            required_info_message: row.get(19)?,
            required_info_updates: row.get(20)?,
            stellar_transaction_id: row.get(21)?,
            external_transaction_id: row.get(22)?,
            refunds: row.get(23)?,
            paid: row.get(24)?,
            version: row.get(25)?,
            callback_url: row.get(26)?,
            started_at: row.get(27)?,
            updated_at: row.get(28)?,
            completed_at: row.get(29)?,
            expires_at: row.get(30)?,
            conversion: row.get(31)?,
        })
    }

    /// Every column, in the order of [`INSERT_TRANSACTION`]'s parameters.
    fn direct_values(&self) -> [&dyn rusqlite::ToSql; 32] {
        [
            &self.id,
            &self.sending_anchor,
            &self.status,
            &self.status_message,
            &self.asset_code,
            &self.asset_issuer,
            &self.funding_method,
            &self.amount_in,
            &self.amount_fee,
            &self.amount_out,
            &self.fee_details,
            &self.sender_id,
            &self.receiver_id,
            &self.stellar_account_id,
            &self.stellar_memo_type,
            &self.stellar_memo,
            &self.refund_memo,
            &self.refund_memo_type,
            &self.fields,
            &self.required_info_message,
            &self.required_info_updates,
            &self.stellar_transaction_id,
            &self.external_transaction_id,
            &self.refunds,
            &self.paid,
            &self.version,
            &self.callback_url,
            &self.started_at,
            &self.updated_at,
            &self.completed_at,
            &self.expires_at,
            &self.conversion,
        ]
    }

    pub fn status(&self) -> Status {
        // Written only through `Status::as_str`.
        Status::parse(&self.status).unwrap_or(Status::Error)
    }
}

/// What [`Store::insert_transaction_using`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Stored,
    /// Another transaction has this memo: nothing was stored (draw another).
    MemoTaken,
    /// The quote is used, expired, or not the caller's: nothing was stored.
    QuoteUnavailable,
}

/// The SEP-38 quote a new transaction uses, and who must own it.
#[derive(Debug, Clone, Copy)]
pub struct QuoteClaim<'a> {
    pub id: &'a str,
    pub account: &'a str,
    /// The SEP-10 memo; "" for none.
    pub memo: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub reason: Option<String>,
    pub at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("transaction not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("the transaction kept changing under this update; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) const COLUMNS: &str = "id, sending_anchor, status, status_message, asset_code, asset_issuer, funding_method, amount_in, amount_fee, amount_out, fee_details, sender_id, receiver_id, stellar_account_id, stellar_memo_type, stellar_memo, refund_memo, refund_memo_type, fields, required_info_message, required_info_updates, stellar_transaction_id, external_transaction_id, refunds, paid, version, callback_url, started_at, updated_at, completed_at, expires_at, conversion";

/// How often a transition re-reads a row that changed under it before giving up.
const CAS_ATTEMPTS: usize = 8;

/// One status change to write: the row as it was read, and the row
/// [`prepare_transition`] made from it.
#[derive(Debug, Clone, Copy)]
pub struct TransitionWrite<'a> {
    pub current: &'a TransactionRow,
    pub next: &'a TransactionRow,
    pub reason: Option<&'a str>,
    pub callback_body: Option<&'a str>,
}

/// Splits `items` into runs of 16, 4 and 1, largest first. A batch is written with a few
/// multi-row statements instead of one per row, and these sizes keep the number of distinct
/// statement texts small: sqlx prepares and caches one statement per text. Not larger: a
/// statement of 64 rows (over 1,000 parameters) took PostgreSQL about 28 ms, ten times the
/// time of four statements of 16, and was no faster on SQLite.
pub(crate) fn statement_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let size = [16, 4, 1].into_iter().find(|s| *s <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// The writes of status changes, inside a database transaction the caller holds: each row
/// (compare-and-set on `version`), its event and, with a registered URL, its callback.
/// Evaluates to whether every row was written; false means one changed since it was read,
/// and the caller rolls back. Rows are written a chunk at a time (`UPDATE ... FROM
/// (VALUES ...)`, multi-row INSERTs), so a batch of payments costs a few statements. A
/// macro because each backend's transaction is its own type; every caller passes rows made
/// by [`prepare_transition`], and no other code writes a status.
macro_rules! write_transitions {
    ($tx:ident, $writes:expr, $actor:expr) => {{
        let writes: &[$crate::store::TransitionWrite<'_>] = $writes;
        let actor: &str = $actor;
        let mut written = true;
        for chunk in $crate::store::statement_chunks(writes) {
            let mut update = sqlx::QueryBuilder::new(
                "UPDATE transactions SET status = v.column3, status_message = v.column4, amount_in = v.column5, amount_fee = v.column6, amount_out = v.column7, fee_details = v.column8, stellar_account_id = v.column9, stellar_memo_type = v.column10, stellar_memo = v.column11, required_info_message = v.column12, required_info_updates = v.column13, stellar_transaction_id = v.column14, external_transaction_id = v.column15, refunds = v.column16, paid = v.column17, version = v.column18, updated_at = v.column19, completed_at = v.column20, expires_at = v.column21, sender_id = v.column22, receiver_id = v.column23, fields = v.column24, conversion = v.column25 FROM (",
            );
            update.push_values(chunk, |mut row, w| {
                let (current, next) = (w.current, w.next);
                row.push_bind(&next.id)
                    .push_bind(current.version)
                    .push_bind(&next.status)
                    .push_bind(&next.status_message)
                    .push_bind(&next.amount_in)
                    .push_bind(&next.amount_fee)
                    .push_bind(&next.amount_out)
                    .push_bind(&next.fee_details)
                    .push_bind(&next.stellar_account_id)
                    .push_bind(&next.stellar_memo_type)
                    .push_bind(&next.stellar_memo)
                    .push_bind(&next.required_info_message)
                    .push_bind(&next.required_info_updates)
                    .push_bind(&next.stellar_transaction_id)
                    .push_bind(&next.external_transaction_id)
                    .push_bind(&next.refunds)
                    .push_bind(next.paid)
                    .push_bind(next.version)
                    .push_bind(next.updated_at)
                    .push_bind(next.completed_at)
                    .push_bind(next.expires_at)
                    .push_bind(&next.sender_id)
                    .push_bind(&next.receiver_id)
                    .push_bind(&next.fields)
                    .push_bind(&next.conversion);
            });
            update.push(") AS v WHERE transactions.id = v.column1 AND transactions.version = v.column2");
            let changed = update.build().execute(&mut *$tx).await?.rows_affected();
            if changed != chunk.len() as u64 {
                written = false;
                break;
            }
        }
        if written {
            for chunk in $crate::store::statement_chunks(writes) {
                let mut events = sqlx::QueryBuilder::new(
                    "INSERT INTO transaction_events (transaction_id, from_status, to_status, actor, reason, at) ",
                );
                events.push_values(chunk, |mut row, w| {
                    row.push_bind(&w.next.id)
                        .push_bind(&w.current.status)
                        .push_bind(&w.next.status)
                        .push_bind(actor)
                        .push_bind(w.reason)
                        .push_bind(w.next.updated_at);
                });
                events.build().execute(&mut *$tx).await?;
            }
            let callbacks: Vec<(&str, &str, &str, i64)> = writes
                .iter()
                .filter_map(|w| match (&w.next.callback_url, w.callback_body) {
                    (Some(url), Some(body)) => {
                        Some((w.next.id.as_str(), url.as_str(), body, w.next.updated_at))
                    }
                    _ => None,
                })
                .collect();
            // One row per transaction, in the order of `writes`: the sender delivers each
            // subject's callbacks in id order.
            for chunk in $crate::store::statement_chunks(&callbacks) {
                let mut outbox = sqlx::QueryBuilder::new(
                    "INSERT INTO callback_outbox (subject, url, body, next_attempt_at, created_at) ",
                );
                outbox.push_values(chunk, |mut row, (id, url, body, at)| {
                    row.push_bind(format!("transaction:{id}"))
                        .push_bind(*url)
                        .push_bind(*body)
                        .push_bind(*at)
                        .push_bind(*at);
                });
                outbox.build().execute(&mut *$tx).await?;
            }
        }
        written
    }};
}
pub(crate) use write_transitions;

/// [`write_transitions!`] for one status change.
macro_rules! write_transition {
    ($tx:ident, $current:expr, $next:expr, $actor:expr, $reason:expr, $callback_body:expr) => {{
        let write = $crate::store::TransitionWrite {
            current: &$current,
            next: &$next,
            reason: $reason,
            callback_body: $callback_body,
        };
        $crate::store::transactions::write_transitions!($tx, std::slice::from_ref(&write), $actor)
    }};
}
pub(crate) use write_transition;

/// The row a status change writes: `edit` sets what changes with the status (amounts, a
/// message, ids), then the rules of [`status::check`] decide. Every status change, through
/// [`Store::transition`] or inside a larger database transaction, is made by this function.
pub fn prepare_transition(
    current: &TransactionRow,
    to: Status,
    edit: impl Fn(&mut TransactionRow),
) -> Result<TransactionRow, IllegalTransition> {
    let mut next = current.clone();
    edit(&mut next);
    // A payment that arrived stays arrived: no edit can make a paid transaction look
    // unpaid (and so expire, or wait for a second payment).
    next.paid |= current.paid;
    let now = unix_now();
    next.status = to.as_str().to_owned();
    next.updated_at = now;
    next.version = current.version + 1;
    if to == Status::Completed {
        next.completed_at = Some(now);
    }
    status::check(current.status(), to, Facts { paid: next.paid })?;
    Ok(next)
}

const INSERT_TRANSACTION: &str = "INSERT INTO transactions (id, sending_anchor, status, status_message, asset_code, asset_issuer, funding_method, amount_in, amount_fee, amount_out, fee_details, sender_id, receiver_id, stellar_account_id, stellar_memo_type, stellar_memo, refund_memo, refund_memo_type, fields, required_info_message, required_info_updates, stellar_transaction_id, external_transaction_id, refunds, paid, version, callback_url, started_at, updated_at, completed_at, expires_at, conversion) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32) ON CONFLICT DO NOTHING";

const INSERT_CREATED_EVENT: &str = "INSERT INTO transaction_events (transaction_id, from_status, to_status, actor, reason, at) VALUES ($1, NULL, $2, $3, 'created', $4)";

const CLAIM_QUOTE: &str = "UPDATE quotes SET transaction_id = $1, used_at = $2 WHERE id = $3 AND account = $4 AND memo = $5 AND transaction_id IS NULL AND expires_at > $2";

impl Store {
    /// Stores a new transaction and its first event. Returns false when its memo is taken
    /// (the caller draws another).
    pub async fn insert_transaction(&self, row: &TransactionRow, actor: &str) -> StoreResult<bool> {
        Ok(self.insert_transaction_using(row, actor, None).await? == Inserted::Stored)
    }

    /// Stores a new transaction and its first event and, with `quote` (its id and owner),
    /// marks that SEP-38 quote used by it, in one database transaction: of two transactions
    /// naming one quote, one is stored and the other gets [`Inserted::QuoteUnavailable`].
    pub async fn insert_transaction_using(
        &self,
        row: &TransactionRow,
        actor: &str,
        quote: Option<QuoteClaim<'_>>,
    ) -> StoreResult<Inserted> {
        if !status::can_start_in(row.status()) {
            return Err(StoreError::Database(sqlx::Error::Protocol(format!(
                "a transaction cannot start in {}",
                row.status
            ))));
        }
        if let Some(direct) = self.direct() {
            // The writer thread needs its own copies.
            let row = row.clone();
            let actor = actor.to_owned();
            let quote = quote.map(|q| (q.id.to_owned(), q.account.to_owned(), q.memo.to_owned()));
            return direct
                .write(move |tx| {
                    if sqlite_direct::execute(tx, INSERT_TRANSACTION, &row.direct_values())? != 1 {
                        return Ok(Finish::Discard(Inserted::MemoTaken));
                    }
                    sqlite_direct::execute(
                        tx,
                        INSERT_CREATED_EVENT,
                        &[&row.id, &row.status, &actor, &row.started_at],
                    )?;
                    if let Some((quote_id, quote_account, quote_memo)) = quote {
                        let values: [&dyn rusqlite::ToSql; 5] = [
                            &row.id,
                            &row.started_at,
                            &quote_id,
                            &quote_account,
                            &quote_memo,
                        ];
                        if sqlite_direct::execute(tx, CLAIM_QUOTE, &values)? != 1 {
                            return Ok(Finish::Discard(Inserted::QuoteUnavailable));
                        }
                    }
                    Ok(Finish::Commit(Inserted::Stored))
                })
                .await;
        }
        let inserted = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(INSERT_TRANSACTION)
                .bind(&row.id)
                .bind(&row.sending_anchor)
                .bind(&row.status)
                .bind(&row.status_message)
                .bind(&row.asset_code)
                .bind(&row.asset_issuer)
                .bind(&row.funding_method)
                .bind(&row.amount_in)
                .bind(&row.amount_fee)
                .bind(&row.amount_out)
                .bind(&row.fee_details)
                .bind(&row.sender_id)
                .bind(&row.receiver_id)
                .bind(&row.stellar_account_id)
                .bind(&row.stellar_memo_type)
                .bind(&row.stellar_memo)
                .bind(&row.refund_memo)
                .bind(&row.refund_memo_type)
                .bind(&row.fields)
                .bind(&row.required_info_message)
                .bind(&row.required_info_updates)
                .bind(&row.stellar_transaction_id)
                .bind(&row.external_transaction_id)
                .bind(&row.refunds)
                .bind(row.paid)
                .bind(row.version)
                .bind(&row.callback_url)
                .bind(row.started_at)
                .bind(row.updated_at)
                .bind(row.completed_at)
                .bind(row.expires_at)
                .bind(&row.conversion)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !inserted {
                return Ok(Inserted::MemoTaken);
            }
            sqlx::query(INSERT_CREATED_EVENT)
                .bind(&row.id)
                .bind(&row.status)
                .bind(actor)
                .bind(row.started_at)
                .execute(&mut *tx)
                .await?;
            if let Some(quote) = quote {
                let claimed = sqlx::query(CLAIM_QUOTE)
                    .bind(&row.id)
                    .bind(row.started_at)
                    .bind(quote.id)
                    .bind(quote.account)
                    .bind(quote.memo)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !claimed {
                    tx.rollback().await?;
                    return Ok(Inserted::QuoteUnavailable);
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Inserted::Stored)
        })?;
        Ok(inserted)
    }

    pub async fn transaction(&self, id: &str) -> StoreResult<Option<TransactionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM transactions WHERE id = $1");
        if let Some(direct) = self.direct() {
            let rows = direct.read(|conn| {
                sqlite_direct::query(conn, &sql, &[&id], TransactionRow::from_direct)
            })?;
            return Ok(rows.into_iter().next());
        }
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, TransactionRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await)?,
        )
    }

    /// The transactions these memo values name, in one query.
    pub async fn transactions_by_memos(
        &self,
        memos: &[String],
    ) -> StoreResult<Vec<TransactionRow>> {
        let mut found = Vec::new();
        // Under SQLite's and PostgreSQL's limits on bound parameters.
        for chunk in memos.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {COLUMNS} FROM transactions WHERE stellar_memo IN ({})",
                placeholders.join(", ")
            );
            let rows = on_read_pool!(self, pool => {
                let mut query = sqlx::query_as::<_, TransactionRow>(sqlx::AssertSqlSafe(sql.as_str()));
                for memo in chunk {
                    query = query.bind(memo);
                }
                query.fetch_all(pool).await
            })?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// The transaction a memo value names (memos are unique, SEP31-26).
    pub async fn transaction_by_memo(&self, memo: &str) -> StoreResult<Option<TransactionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM transactions WHERE stellar_memo = $1");
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, TransactionRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(memo)
                .fetch_optional(pool)
                .await)?,
        )
    }

    pub async fn transaction_events(&self, id: &str) -> StoreResult<Vec<EventRow>> {
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, EventRow>("SELECT id, from_status, to_status, actor, reason, at FROM transaction_events WHERE transaction_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Registers (or replaces, SEP31-50) the transaction's callback URL.
    pub async fn set_transaction_callback(&self, id: &str, url: &str) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("UPDATE transactions SET callback_url = $2, version = version + 1 WHERE id = $1")
            .bind(id)
            .bind(url)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The one function that changes a transaction's status.
    ///
    /// It reads the row, lets `edit` set the fields that change with the status (amounts, a
    /// message, ids), checks the transition against the SEP-31 rules, and writes the row,
    /// an event (who, from, to, why) and, when a callback URL is registered, the callback
    /// (rendered by `render` from the new row) in one database transaction. A concurrent
    /// write is noticed through `version` and the whole step is redone on the fresh row.
    pub async fn transition(
        &self,
        id: &str,
        to: Status,
        actor: &str,
        reason: Option<&str>,
        edit: impl Fn(&mut TransactionRow),
        render: impl Fn(&TransactionRow) -> String,
    ) -> Result<TransactionRow, TransitionError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self
                .transaction(id)
                .await?
                .ok_or_else(|| TransitionError::NotFound(id.to_owned()))?;
            let next = prepare_transition(&current, to, &edit)?;
            let body = next.callback_url.as_ref().map(|_| render(&next));
            if self
                .write_transition(&current, &next, actor, reason, body.as_deref())
                .await?
            {
                return Ok(next);
            }
        }
        Err(TransitionError::Busy)
    }

    /// Writes a status change prepared by [`prepare_transition`] from `current`, only if
    /// the row is still `current` (false otherwise: read again and redo). For callers whose
    /// edit depends on the row they read, which [`Store::transition`]'s re-reads would not
    /// see.
    pub async fn transition_from(
        &self,
        current: &TransactionRow,
        next: &TransactionRow,
        actor: &str,
        reason: Option<&str>,
        callback_body: Option<&str>,
    ) -> StoreResult<bool> {
        self.write_transition(current, next, actor, reason, callback_body)
            .await
    }

    async fn write_transition(
        &self,
        current: &TransactionRow,
        next: &TransactionRow,
        actor: &str,
        reason: Option<&str>,
        callback_body: Option<&str>,
    ) -> StoreResult<bool> {
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let written = write_transition!(tx, current, next, actor, reason, callback_body);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(written)
        })?;
        Ok(written)
    }

    /// Links a customer to a transaction (SEP-12 `transaction_id` + `type`), without a
    /// status change. Returns false when the transaction changed meanwhile.
    pub async fn link_transaction_customer(
        &self,
        current: &TransactionRow,
        sender: bool,
        customer_id: &str,
    ) -> StoreResult<bool> {
        let sql = if sender {
            "UPDATE transactions SET sender_id = $3, version = version + 1 WHERE id = $1 AND version = $2"
        } else {
            "UPDATE transactions SET receiver_id = $3, version = version + 1 WHERE id = $1 AND version = $2"
        };
        let n = on_pool!(self, pool => sqlx::query(sql)
            .bind(&current.id)
            .bind(current.version)
            .bind(customer_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Transactions waiting on their customers: created without them and not yet payable
    /// (`pending_receiver`, unpaid, no memo), or waiting for corrected KYC
    /// (`pending_customer_info_update`). `customer` narrows to those naming one customer;
    /// `after` pages through them in (started_at, id) order.
    pub async fn transactions_waiting_on_customers(
        &self,
        customer: Option<&str>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreResult<Vec<TransactionRow>> {
        let waiting = "((status = 'pending_receiver' AND paid = FALSE AND stellar_memo IS NULL) OR status = 'pending_customer_info_update') \
             AND ($1 IS NULL OR started_at > $1 OR (started_at = $1 AND id > $2))";
        // One customer's through the sender_id and receiver_id indexes, a query each
        // (SQLite plans `sender_id = $4 OR receiver_id = $4` on the status index instead),
        // the second without the first's rows; all of them, for the periodic pass, through
        // the status index.
        let sql = if customer.is_some() {
            format!(
                "SELECT {COLUMNS} FROM transactions WHERE sender_id = $4 AND {waiting} \
                 UNION ALL SELECT {COLUMNS} FROM transactions WHERE receiver_id = $4 AND (sender_id IS NULL OR sender_id <> $4) AND {waiting} \
                 ORDER BY started_at, id LIMIT $3"
            )
        } else {
            format!(
                "SELECT {COLUMNS} FROM transactions WHERE $4 IS NULL AND {waiting} ORDER BY started_at, id LIMIT $3"
            )
        };
        let (after_at, after_id) = match after {
            Some((at, id)) => (Some(at), id),
            None => (None, String::new()),
        };
        if let Some(direct) = self.direct() {
            return Ok(direct.read(|conn| {
                sqlite_direct::query(
                    conn,
                    &sql,
                    &[&after_at, &after_id, &limit, &customer],
                    TransactionRow::from_direct,
                )
            })?);
        }
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, TransactionRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(after_at)
                .bind(&after_id)
                .bind(limit)
                .bind(customer)
                .fetch_all(pool)
                .await)?,
        )
    }

    /// Transactions still waiting for their payment past their expiry.
    pub async fn overdue_transactions(&self, now: i64, limit: i64) -> StoreResult<Vec<String>> {
        Ok(
            on_read_pool!(self, pool => sqlx::query_scalar("SELECT id FROM transactions WHERE status = 'pending_sender' AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2")
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)?,
        )
    }
}

/// Filters of the operator's transaction list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    pub status: Option<String>,
    pub asset_code: Option<String>,
    pub sending_anchor: Option<String>,
    pub started_from: Option<i64>,
    pub started_until: Option<i64>,
    /// Keyset paging: the (started_at, id) of the last row of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

impl Store {
    /// A page of transactions, newest first.
    pub async fn list_transactions(
        &self,
        f: &TransactionFilter,
    ) -> StoreResult<Vec<TransactionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM transactions WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR asset_code = $2) AND ($3 IS NULL OR sending_anchor = $3) \
             AND ($4 IS NULL OR started_at >= $4) AND ($5 IS NULL OR started_at <= $5) \
             AND ($6 IS NULL OR started_at < $6 OR (started_at = $6 AND id < $7)) \
             ORDER BY started_at DESC, id DESC LIMIT $8"
        );
        let (before_at, before_id) = match &f.before {
            Some((at, id)) => (Some(*at), id.clone()),
            None => (None, String::new()),
        };
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, TransactionRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&f.status)
                .bind(&f.asset_code)
                .bind(&f.sending_anchor)
                .bind(f.started_from)
                .bind(f.started_until)
                .bind(before_at)
                .bind(&before_id)
                .bind(f.limit)
                .fetch_all(pool)
                .await)?,
        )
    }

    /// Records refunds that leave the status as it is (a partial refund), with the reduced
    /// `amount_out`, an event (from and to the same status) so the history shows it, and the
    /// callback (`callback_body`, rendered from the updated row) when a URL is registered.
    /// Returns false when the transaction changed meanwhile.
    pub async fn record_refunds(
        &self,
        current: &TransactionRow,
        updated: &TransactionRow,
        actor: &str,
        reason: &str,
        callback_body: Option<&str>,
    ) -> StoreResult<bool> {
        let now = updated.updated_at;
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let written = sqlx::query("UPDATE transactions SET refunds = $3, amount_out = $4, updated_at = $5, version = version + 1 WHERE id = $1 AND version = $2")
                .bind(&current.id)
                .bind(current.version)
                .bind(&updated.refunds)
                .bind(&updated.amount_out)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if written {
                sqlx::query("INSERT INTO transaction_events (transaction_id, from_status, to_status, actor, reason, at) VALUES ($1, $2, $2, $3, $4, $5)")
                    .bind(&current.id)
                    .bind(&current.status)
                    .bind(actor)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let (Some(url), Some(body)) = (&current.callback_url, callback_body) {
                    sqlx::query("INSERT INTO callback_outbox (subject, url, body, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $4)")
                        .bind(format!("transaction:{}", current.id))
                        .bind(url)
                        .bind(body)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(written)
        })?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::COLUMNS;

    /// `TransactionRow::from_direct` reads `SELECT {COLUMNS}` by position, in this order.
    #[test]
    fn the_direct_reader_and_the_column_list_agree() {
        let order = [
            "id",
            "sending_anchor",
            "status",
            "status_message",
            "asset_code",
            "asset_issuer",
            "funding_method",
            "amount_in",
            "amount_fee",
            "amount_out",
            "fee_details",
            "sender_id",
            "receiver_id",
            "stellar_account_id",
            "stellar_memo_type",
            "stellar_memo",
            "refund_memo",
            "refund_memo_type",
            "fields",
            "required_info_message",
            "required_info_updates",
            "stellar_transaction_id",
            "external_transaction_id",
            "refunds",
            "paid",
            "version",
            "callback_url",
            "started_at",
            "updated_at",
            "completed_at",
            "expires_at",
            "conversion",
        ];
        assert_eq!(COLUMNS.split(", ").collect::<Vec<_>>(), order);
    }
}
