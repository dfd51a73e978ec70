//! What the watcher and executor benchmarks set up alike: the transactions they start
//! from, inserted directly rather than through the API, which is not what they measure, and
//! a PostgreSQL schema of their own.

use capstan::sep31::status::Status;
use capstan::store::TransactionRow;

/// Each transaction receives this much USDC, pays this fee and pays out the rest.
pub const AMOUNT_IN: &str = "10";
pub const FEE: &str = "1";
pub const AMOUNT_OUT: &str = "9";

/// A transaction as POST /transactions stores it once its customers are known: waiting for
/// the sending anchor's payment to `distribution` with an id memo.
pub fn pending_sender(
    memo: u64,
    sending_anchor: &str,
    issuer: &str,
    distribution: &str,
    now: i64,
) -> TransactionRow {
    TransactionRow {
        id: uuid::Uuid::new_v4().to_string(),
        sending_anchor: sending_anchor.to_owned(),
        status: Status::PendingSender.as_str().into(),
        status_message: None,
        asset_code: "USDC".into(),
        asset_issuer: issuer.to_owned(),
        funding_method: "SEPA".into(),
        amount_in: AMOUNT_IN.into(),
        amount_fee: FEE.into(),
        amount_out: AMOUNT_OUT.into(),
        fee_details: format!(r#"[{{"name":"fixed fee","amount":"{FEE}"}}]"#),
        sender_id: None,
        receiver_id: None,
        stellar_account_id: Some(distribution.to_owned()),
        stellar_memo_type: Some("id".into()),
        stellar_memo: Some(memo.to_string()),
        refund_memo: None,
        refund_memo_type: None,
        fields: "{}".into(),
        required_info_message: None,
        required_info_updates: None,
        stellar_transaction_id: None,
        external_transaction_id: None,
        refunds: None,
        paid: false,
        version: 0,
        callback_url: None,
        started_at: now,
        updated_at: now,
        completed_at: None,
        expires_at: Some(now + 86_400),
        conversion: None,
    }
}

/// A fresh schema in `CAPSTAN_TEST_POSTGRES_URL`, as the tests' `postgres_url` makes one
/// (and with the same prefix, so the tests drop it once it is an hour old).
pub async fn postgres_url() -> Option<String> {
    let base = std::env::var("CAPSTAN_TEST_POSTGRES_URL").ok()?;
    let now = capstan::store::unix_now();
    let schema = format!(
        "capstan_test_{now}_{}",
        hex::encode(stellar::random_bytes::<6>())
    );
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("connect to CAPSTAN_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}
