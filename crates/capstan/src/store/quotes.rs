//! SEP-38 firm quotes. A quote is used by a SEP-31 transaction in the database transaction
//! that stores it ([`Store::insert_transaction_using`]).

use super::{Store, StoreResult, on_pool};

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

impl Store {
    pub async fn insert_quote(&self, q: &QuoteRow) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("INSERT INTO quotes (id, account, memo, context, sell_asset, sell_amount, sell_delivery_method, buy_asset, buy_amount, buy_delivery_method, country_code, price, total_price, fee, expires_at, created_at, transaction_id, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)")
            .bind(&q.id)
            .bind(&q.account)
            .bind(&q.memo)
            .bind(&q.context)
            .bind(&q.sell_asset)
            .bind(&q.sell_amount)
            .bind(&q.sell_delivery_method)
            .bind(&q.buy_asset)
            .bind(&q.buy_amount)
            .bind(&q.buy_delivery_method)
            .bind(&q.country_code)
            .bind(&q.price)
            .bind(&q.total_price)
            .bind(&q.fee)
            .bind(q.expires_at)
            .bind(q.created_at)
            .bind(&q.transaction_id)
            .bind(q.used_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
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
