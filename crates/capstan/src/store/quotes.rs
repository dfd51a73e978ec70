//! SEP-38 firm quotes. A quote is used by a SEP-31 transaction in the database transaction
//! that stores it ([`Store::insert_transaction_using`]). While it is unexpired, its buy
//! amount is held in reserve against its asset's liquidity (SEP38-09).

use super::{Store, StoreResult, on_pool};

/// What [`Store::insert_quote_reserving`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    Stored,
    /// Unexpired quotes already hold `reserved` (in 10^-7 units) of the asset: this one
    /// would go past the limit, and nothing was stored.
    Short {
        reserved: i64,
    },
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QuoteRow {
    pub id: String,
    pub account: String,
    /// The SEP-10 memo of a shared account; "" for none.
    pub memo: String,
    pub context: String,
    pub sell_asset: String,
    pub sell_amount: String,
    pub sell_delivery_method: Option<String>,
    pub buy_asset: String,
    pub buy_amount: String,
    pub buy_delivery_method: Option<String>,
    pub country_code: Option<String>,
    pub price: String,
    pub total_price: String,
    /// The `fee` object as JSON.
    pub fee: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub transaction_id: Option<String>,
    pub used_at: Option<i64>,
}

const COLUMNS: &str = "id, account, memo, context, sell_asset, sell_amount, sell_delivery_method, buy_asset, buy_amount, buy_delivery_method, country_code, price, total_price, fee, expires_at, created_at, transaction_id, used_at";

/// The INSERT of a quote and its reservation of `units`, ready to execute on a pool or
/// inside a database transaction (each backend's is its own type, hence a macro).
macro_rules! insert_quote {
    ($q:expr, $units:expr) => {
        sqlx::query("INSERT INTO quotes (id, account, memo, context, sell_asset, sell_amount, sell_delivery_method, buy_asset, buy_amount, buy_delivery_method, country_code, price, total_price, fee, expires_at, created_at, transaction_id, used_at, buy_amount_units) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)")
            .bind(&$q.id)
            .bind(&$q.account)
            .bind(&$q.memo)
            .bind(&$q.context)
            .bind(&$q.sell_asset)
            .bind(&$q.sell_amount)
            .bind(&$q.sell_delivery_method)
            .bind(&$q.buy_asset)
            .bind(&$q.buy_amount)
            .bind(&$q.buy_delivery_method)
            .bind(&$q.country_code)
            .bind(&$q.price)
            .bind(&$q.total_price)
            .bind(&$q.fee)
            .bind($q.expires_at)
            .bind($q.created_at)
            .bind(&$q.transaction_id)
            .bind($q.used_at)
            .bind($units)
    };
}

impl Store {
    /// Stores a firm quote whose `buy_amount` is `units` 10^-7 units of its asset. With a
    /// `limit`, only if the unexpired quotes of that asset, this one included, promise at
    /// most `limit` units (SEP38-09). The asset's row in `quote_reservation_locks` is written
    /// first, so reservations of one asset are made one at a time on both backends (a row
    /// lock on PostgreSQL, the write lock on SQLite) and two replicas cannot both promise
    /// the last of it. Without a limit the units are stored all the same, so a limit set
    /// later counts the quotes already out.
    pub async fn insert_quote(
        &self,
        q: &QuoteRow,
        units: i64,
        limit: Option<i64>,
    ) -> StoreResult<Reserved> {
        let Some(limit) = limit else {
            on_pool!(self, pool => insert_quote!(q, units).execute(pool).await.map(|_| ()))?;
            return Ok(Reserved::Stored);
        };
        let reserved = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO quote_reservation_locks (buy_asset, reserved_at) VALUES ($1, $2) ON CONFLICT (buy_asset) DO UPDATE SET reserved_at = excluded.reserved_at")
                .bind(&q.buy_asset)
                .bind(q.created_at)
                .execute(&mut *tx)
                .await?;
            let reserved: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(buy_amount_units), 0) AS BIGINT) FROM quotes WHERE buy_asset = $1 AND expires_at > $2")
                .bind(&q.buy_asset)
                .bind(q.created_at)
                .fetch_one(&mut *tx)
                .await?;
            if reserved + units <= limit {
                insert_quote!(q, units).execute(&mut *tx).await?;
                tx.commit().await?;
                None
            } else {
                tx.rollback().await?;
                Some(reserved)
            }
        });
        Ok(match reserved {
            None => Reserved::Stored,
            Some(reserved) => Reserved::Short { reserved },
        })
    }

    pub async fn quote(&self, id: &str) -> StoreResult<Option<QuoteRow>> {
        let sql = format!("SELECT {COLUMNS} FROM quotes WHERE id = $1");
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, QuoteRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await)?,
        )
    }
}
