//! SEP-12 customers and the built-in store's field values.

use super::sqlite_direct::{self, Finish};
use super::{Store, StoreResult, on_pool, on_read_pool, unix_now};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: String,
    pub account: String,
    pub memo: String,
    pub memo_type: String,
    pub last_type: String,
    pub rejection: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FieldRow {
    pub name: String,
    pub value: Option<String>,
    pub file_id: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub verification_code: Option<String>,
    pub updated_at: i64,
}

/// One field to write: the whole row but the customer and the time.
#[derive(Debug, Clone)]
pub struct FieldWrite {
    pub name: String,
    pub value: Option<String>,
    pub file_id: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub verification_code: Option<String>,
}

/// What erasing a customer removed, for the caller to finish (files kept on disk).
#[derive(Debug, Clone)]
pub struct Erased {
    pub customer_id: Option<String>,
    pub file_ids: Vec<String>,
}

const CUSTOMER_COLUMNS: &str =
    "id, account, memo, memo_type, last_type, rejection, created_at, updated_at";

/// Upserts a customer's fields inside the caller's database transaction: one statement
/// for a PUT's few fields (up to 16, so at most 16 statement texts to prepare), more only
/// for more. A macro because each backend's transaction is its own type.
macro_rules! insert_fields {
    ($tx:ident, $customer_id:expr, $writes:expr, $now:expr) => {
        for chunk in last_write_of_each($writes).chunks(MAX_FIELDS_PER_STATEMENT) {
            let sql = fields_upsert(chunk.len());
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for w in chunk {
                insert = insert
                    .bind($customer_id)
                    .bind(&w.name)
                    .bind(&w.value)
                    .bind(&w.file_id)
                    .bind(&w.status)
                    .bind(&w.error)
                    .bind(&w.verification_code)
                    .bind($now);
            }
            insert.execute(&mut *$tx).await?;
        }
    };
}

/// The upsert of `rows` fields, each bound as (customer_id, name, value, file_id, status,
/// error, verification_code, updated_at).
fn fields_upsert(rows: usize) -> String {
    const COLUMNS: usize = 8;
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|column| format!("${}", row * COLUMNS + column))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO customer_fields (customer_id, name, value, file_id, status, error, verification_code, updated_at) VALUES {} \
         ON CONFLICT (customer_id, name) DO UPDATE SET value = excluded.value, file_id = excluded.file_id, status = excluded.status, error = excluded.error, verification_code = excluded.verification_code, verification_failures = 0, updated_at = excluded.updated_at",
        values.join(", ")
    )
}

/// The values of [`fields_upsert`], for the direct writer.
#[allow(clippy::ptr_arg)] // a `&dyn ToSql` needs a sized value: `String`, not `str`
fn fields_values<'a>(
    customer_id: &'a String,
    chunk: &[&'a FieldWrite],
    now: &'a i64,
) -> Vec<&'a dyn rusqlite::ToSql> {
    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 8);
    for w in chunk {
        values.extend([
            customer_id as &dyn rusqlite::ToSql,
            &w.name,
            &w.value,
            &w.file_id,
            &w.status,
            &w.error,
            &w.verification_code,
            now,
        ]);
    }
    values
}

const ATTACH_FILE: &str = "UPDATE customer_files SET customer_id = $1 WHERE id = $2";

/// A customer's row beside one of its fields (none: a customer without fields), as a
/// LEFT JOIN returns them.
#[derive(sqlx::FromRow)]
struct CustomerFieldRow {
    #[sqlx(flatten)]
    customer: CustomerRow,
    field_name: Option<String>,
    field_value: Option<String>,
    field_file_id: Option<String>,
    field_status: Option<String>,
    field_error: Option<String>,
    field_verification_code: Option<String>,
    field_updated_at: Option<i64>,
}

// Columns are read by position, in the order of `CUSTOMER_COLUMNS` (which
// `CUSTOMER_WITH_FIELDS` starts with): rusqlite finds a column by name by comparing it with
// every column's name, which was a few percent of a SEP-31 POST.
impl CustomerRow {
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(CustomerRow {
            id: row.get(0)?,
            account: row.get(1)?,
            memo: row.get(2)?,
            memo_type: row.get(3)?,
            last_type: row.get(4)?,
            rejection: row.get(5)?,
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
        })
    }
}

// The fields' columns follow the customer's eight in `CUSTOMER_WITH_FIELDS`.
impl CustomerFieldRow {
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(CustomerFieldRow {
            customer: CustomerRow::from_direct(row)?,
            field_name: row.get(8)?,
            field_value: row.get(9)?,
            field_file_id: row.get(10)?,
            field_status: row.get(11)?,
            field_error: row.get(12)?,
            field_verification_code: row.get(13)?,
            field_updated_at: row.get(14)?,
        })
    }
}

const CUSTOMER_WITH_FIELDS: &str = "SELECT c.id, c.account, c.memo, c.memo_type, c.last_type, c.rejection, c.created_at, c.updated_at, \
     f.name AS field_name, f.value AS field_value, f.file_id AS field_file_id, f.status AS field_status, f.error AS field_error, f.verification_code AS field_verification_code, f.updated_at AS field_updated_at \
     FROM customers c LEFT JOIN customer_fields f ON f.customer_id = c.id";

/// The customer of the joined rows and its fields, by name.
fn with_fields(rows: Vec<CustomerFieldRow>) -> Option<(CustomerRow, Vec<FieldRow>)> {
    let mut rows = rows.into_iter();
    let first = rows.next()?;
    let mut fields = Vec::new();
    let customer = first.customer.clone();
    for row in std::iter::once(first).chain(rows) {
        if let (Some(name), Some(status), Some(updated_at)) =
            (row.field_name, row.field_status, row.field_updated_at)
        {
            fields.push(FieldRow {
                name,
                value: row.field_value,
                file_id: row.field_file_id,
                status,
                error: row.field_error,
                verification_code: row.field_verification_code,
                updated_at,
            });
        }
    }
    Some((customer, fields))
}

const MAX_FIELDS_PER_STATEMENT: usize = 16;

/// One write per field name, the last one given: rows written one by one would leave the
/// last, and PostgreSQL refuses a statement that upserts the same row twice.
fn last_write_of_each(writes: &[FieldWrite]) -> Vec<&FieldWrite> {
    let mut last: Vec<&FieldWrite> = Vec::with_capacity(writes.len());
    for w in writes {
        match last.iter_mut().find(|kept| kept.name == w.name) {
            Some(kept) => *kept = w,
            None => last.push(w),
        }
    }
    last
}

impl Store {
    pub async fn customer_by_id(&self, id: &str) -> StoreResult<Option<CustomerRow>> {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1");
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, CustomerRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await)?,
        )
    }

    pub async fn customer_by_identity(
        &self,
        account: &str,
        memo: &str,
    ) -> StoreResult<Option<CustomerRow>> {
        let sql =
            format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE account = $1 AND memo = $2");
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, CustomerRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .bind(memo)
                .fetch_optional(pool)
                .await)?,
        )
    }

    /// [`Store::customer_by_id`] and [`Store::customer_fields`] in one query.
    pub async fn customer_with_fields_by_id(
        &self,
        id: &str,
    ) -> StoreResult<Option<(CustomerRow, Vec<FieldRow>)>> {
        self.customer_with_fields_where("c.id = $1", &[id]).await
    }

    /// [`Store::customer_by_identity`] and [`Store::customer_fields`] in one query.
    pub async fn customer_with_fields_by_identity(
        &self,
        account: &str,
        memo: &str,
    ) -> StoreResult<Option<(CustomerRow, Vec<FieldRow>)>> {
        self.customer_with_fields_where("c.account = $1 AND c.memo = $2", &[account, memo])
            .await
    }

    /// The customer that `filter` (on `c`, with `values` as `$1`, `$2`, ...) finds, with its
    /// fields.
    async fn customer_with_fields_where(
        &self,
        filter: &str,
        values: &[&str],
    ) -> StoreResult<Option<(CustomerRow, Vec<FieldRow>)>> {
        let sql = format!("{CUSTOMER_WITH_FIELDS} WHERE {filter} ORDER BY f.name");
        if let Some(direct) = self.direct() {
            let values: Vec<&dyn rusqlite::ToSql> =
                values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
            let rows = direct.read(|conn| {
                sqlite_direct::query(conn, &sql, &values, CustomerFieldRow::from_direct)
            })?;
            return Ok(with_fields(rows));
        }
        let rows = on_read_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, CustomerFieldRow>(sqlx::AssertSqlSafe(sql.as_str()));
            for value in values {
                query = query.bind(*value);
            }
            query.fetch_all(pool).await
        })?;
        Ok(with_fields(rows))
    }

    /// Whether `account` registered customers with memos (`shared = true`) or without.
    pub async fn account_has_customers(&self, account: &str, shared: bool) -> StoreResult<bool> {
        let sql = if shared {
            "SELECT COUNT(*) FROM customers WHERE account = $1 AND memo <> '' AND memo_type <> 'transaction'"
        } else {
            "SELECT COUNT(*) FROM customers WHERE account = $1 AND memo = ''"
        };
        let n: i64 = on_read_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(account)
            .fetch_one(pool)
            .await)?;
        Ok(n > 0)
    }

    /// The customer registered as (account, memo), created with `new_id` if there is none.
    /// Concurrent creations agree on one row.
    pub async fn find_or_create_customer(
        &self,
        new_id: &str,
        account: &str,
        memo: &str,
        memo_type: &str,
    ) -> StoreResult<CustomerRow> {
        // The row found by the insert's conflict may be erased before it is read back (a
        // concurrent DELETE): then insert again.
        for _ in 0..3 {
            let sql = format!(
                "INSERT INTO customers (id, account, memo, memo_type, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (account, memo) DO NOTHING RETURNING {CUSTOMER_COLUMNS}"
            );
            let created = on_pool!(self, pool => sqlx::query_as::<_, CustomerRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(new_id)
                .bind(account)
                .bind(memo)
                .bind(memo_type)
                .bind(unix_now())
                .fetch_optional(pool)
                .await)?;
            if let Some(row) = created {
                return Ok(row);
            }
            if let Some(row) = self.customer_by_identity(account, memo).await? {
                return Ok(row);
            }
        }
        Err(super::StoreError::Unavailable(sqlx::Error::RowNotFound))
    }

    /// Registers a new customer as (account, memo) with a PUT's fields and files, in one
    /// database transaction, unless the account has customers of the kind `refuse_if`
    /// names (as [`Store::account_has_customers`]'s `shared`). `None`, writing nothing,
    /// when the identity is registered already (a concurrent PUT got there first) or the
    /// account has such customers: the caller tells which.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_customer(
        &self,
        new_id: &str,
        account: &str,
        memo: &str,
        memo_type: &str,
        kind: Option<&str>,
        refuse_if: Option<bool>,
        writes: &[FieldWrite],
        attach_files: &[String],
    ) -> StoreResult<Option<CustomerRow>> {
        let now = unix_now();
        let unless = match refuse_if {
            None => "",
            Some(true) => {
                " WHERE NOT EXISTS (SELECT 1 FROM customers WHERE account = $2 AND memo <> '' AND memo_type <> 'transaction')"
            }
            Some(false) => {
                " WHERE NOT EXISTS (SELECT 1 FROM customers WHERE account = $2 AND memo = '')"
            }
        };
        let sql = format!(
            "INSERT INTO customers (id, account, memo, memo_type, last_type, created_at, updated_at) SELECT $1, $2, $3, $4, COALESCE($5, ''), $6, $6{unless} ON CONFLICT (account, memo) DO NOTHING RETURNING {CUSTOMER_COLUMNS}"
        );
        if let Some(direct) = self.direct() {
            // The writer thread needs its own copies.
            let values = (
                new_id.to_owned(),
                account.to_owned(),
                memo.to_owned(),
                memo_type.to_owned(),
                kind.map(str::to_owned),
            );
            let writes = writes.to_vec();
            let attach_files = attach_files.to_vec();
            return direct
                .write(move |tx| {
                    let (new_id, account, memo, memo_type, kind) = values;
                    let created = sqlite_direct::query(
                        tx,
                        &sql,
                        &[&new_id, &account, &memo, &memo_type, &kind, &now],
                        CustomerRow::from_direct,
                    )?;
                    let Some(created) = created.into_iter().next() else {
                        return Ok(Finish::Discard(None));
                    };
                    for chunk in last_write_of_each(&writes).chunks(MAX_FIELDS_PER_STATEMENT) {
                        let values = fields_values(&created.id, chunk, &now);
                        sqlite_direct::execute(tx, &fields_upsert(chunk.len()), &values)?;
                    }
                    for file_id in &attach_files {
                        sqlite_direct::execute(tx, ATTACH_FILE, &[&created.id, file_id])?;
                    }
                    Ok(Finish::Commit(Some(created)))
                })
                .await;
        }
        let created = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let created = sqlx::query_as::<_, CustomerRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(new_id)
                .bind(account)
                .bind(memo)
                .bind(memo_type)
                .bind(kind)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(created) = created else {
                tx.rollback().await?;
                return Ok(None);
            };
            insert_fields!(tx, &created.id, writes, now);
            for file_id in attach_files {
                sqlx::query(ATTACH_FILE)
                    .bind(&created.id)
                    .bind(file_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(created))
        })?;
        Ok(created)
    }

    pub async fn customer_fields(&self, customer_id: &str) -> StoreResult<Vec<FieldRow>> {
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, FieldRow>("SELECT name, value, file_id, status, error, verification_code, updated_at FROM customer_fields WHERE customer_id = $1 ORDER BY name")
            .bind(customer_id)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Writes a PUT's fields and attaches its files. Returns false, writing nothing, when
    /// the customer was erased meanwhile (a DELETE that ran between the read and this write):
    /// the customer row is touched first, so a concurrent erase either waits for this write
    /// or is seen here.
    pub async fn save_customer_fields(
        &self,
        customer_id: &str,
        kind: Option<&str>,
        writes: &[FieldWrite],
        attach_files: &[String],
    ) -> StoreResult<bool> {
        let now = unix_now();
        let saved = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let exists = sqlx::query("UPDATE customers SET last_type = COALESCE($2, last_type), updated_at = $3 WHERE id = $1")
                .bind(customer_id)
                .bind(kind)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !exists {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_fields!(tx, customer_id, writes, now);
            for file_id in attach_files {
                sqlx::query(ATTACH_FILE)
                    .bind(customer_id)
                    .bind(file_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })?;
        Ok(saved)
    }

    /// Records a wrong verification code for a field. After `max` wrong codes in a row the
    /// code is replaced by `new_code` (which the user must be sent) and the count starts
    /// again. Returns whether the code was replaced.
    pub async fn verification_failed(
        &self,
        customer_id: &str,
        name: &str,
        max: i64,
        new_code: &str,
    ) -> StoreResult<bool> {
        let failures: Option<i64> = on_pool!(self, pool => sqlx::query_scalar("UPDATE customer_fields SET verification_failures = verification_failures + 1 WHERE customer_id = $1 AND name = $2 RETURNING verification_failures")
            .bind(customer_id)
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        if failures.is_none_or(|n| n < max) {
            return Ok(false);
        }
        on_pool!(self, pool => sqlx::query("UPDATE customer_fields SET verification_code = $3, verification_failures = 0, updated_at = $4 WHERE customer_id = $1 AND name = $2")
            .bind(customer_id)
            .bind(name)
            .bind(new_code)
            .bind(unix_now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(true)
    }

    /// Operator decision: every field waiting for review is accepted, and a rejection is
    /// lifted.
    pub async fn accept_customer(&self, customer_id: &str) -> StoreResult<()> {
        let now = unix_now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE customer_fields SET status = 'ACCEPTED', error = NULL, updated_at = $2 WHERE customer_id = $1 AND status = 'PROCESSING'")
                .bind(customer_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE customers SET rejection = NULL, updated_at = $2 WHERE id = $1")
                .bind(customer_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Operator decision: the customer is rejected for good (`None` lifts it).
    pub async fn set_customer_rejection(
        &self,
        customer_id: &str,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("UPDATE customers SET rejection = $2, updated_at = $3 WHERE id = $1")
            .bind(customer_id)
            .bind(reason)
            .bind(unix_now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Operator decision: these fields must be sent again (or at all), each with the reason.
    pub async fn request_customer_fields(
        &self,
        customer_id: &str,
        reasons: &[(String, String)],
    ) -> StoreResult<()> {
        let now = unix_now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (name, reason) in reasons {
                sqlx::query("INSERT INTO customer_fields (customer_id, name, status, error, updated_at) VALUES ($1, $2, 'REJECTED', $3, $4) \
                     ON CONFLICT (customer_id, name) DO UPDATE SET status = 'REJECTED', error = excluded.error, verification_code = NULL, updated_at = excluded.updated_at")
                    .bind(customer_id)
                    .bind(name)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE customers SET updated_at = $2 WHERE id = $1")
                .bind(customer_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Erases the customer registered as (account, memo): its row, fields, files (those
    /// uploaded by that identity but never attached to a customer too), callback
    /// registration and undelivered callbacks. Returns what was there.
    pub async fn erase_customer(&self, account: &str, memo: &str) -> StoreResult<Erased> {
        let customer = self.customer_by_identity(account, memo).await?;
        let customer_id = customer.map(|c| c.id);
        let subject = customer_id.as_deref().map(|id| format!("customer:{id}"));
        let file_ids: Vec<String> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // An upload the identity gave to another customer of the account is that
            // customer's document now, and stays with it. One statement, so the ids whose
            // bytes are removed from disk are exactly the rows deleted, even when a file is
            // attached meanwhile.
            let files: Vec<String> = sqlx::query_scalar("DELETE FROM customer_files WHERE (account = $1 AND memo = $2 AND customer_id IS NULL) OR customer_id = $3 RETURNING id")
                .bind(account)
                .bind(memo)
                .bind(&customer_id)
                .fetch_all(&mut *tx)
                .await?;
            if let Some(id) = &customer_id {
                sqlx::query("DELETE FROM callback_outbox WHERE subject = $1 AND delivered_at IS NULL")
                    .bind(&subject)
                    .execute(&mut *tx)
                    .await?;
                // Fields and the callback registration go with the row (ON DELETE CASCADE).
                sqlx::query("DELETE FROM customers WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(files)
        })?;
        Ok(Erased {
            customer_id,
            file_ids,
        })
    }

    /// A page of customers, most recently changed first (ties by id). `after` is the
    /// (updated_at, id) of the last customer of the previous page, or only its updated_at
    /// (which skips the others changed in that second). `pending_review` keeps those with a
    /// field waiting for an operator.
    pub async fn list_customers(
        &self,
        limit: i64,
        after: Option<(i64, Option<&str>)>,
        pending_review: bool,
    ) -> StoreResult<Vec<CustomerRow>> {
        let review = if pending_review {
            " AND EXISTS (SELECT 1 FROM customer_fields f WHERE f.customer_id = customers.id AND f.status = 'PROCESSING') AND rejection IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE (updated_at < $1 OR (updated_at = $1 AND id > $3)){review} ORDER BY updated_at DESC, id LIMIT $2"
        );
        let (updated_before, after_id) = match after {
            Some((at, id)) => (at, id),
            None => (i64::MAX, None),
        };
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, CustomerRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(updated_before)
                .bind(limit)
                .bind(after_id)
                .fetch_all(pool)
                .await)?,
        )
    }
}
