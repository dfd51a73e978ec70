//! An anchor with its own payout rails, written in Rust: everything else (configuration,
//! SEP-1/10/12/31, the watcher, the executor, the admin API) is capstan's.
//!
//! The rails here stand for a mobile-money provider: each payout gets a receipt, a
//! repeated idempotency key gets the same receipt back (as a real provider's API must
//! promise), and payouts above a limit need the receiver's mobile number confirmed first.
//!
//! Run it like `capstan serve`: `cargo run --example custom_rails -- capstan.toml` (the
//! file is optional; without it the development defaults apply).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use capstan::payout::rails::{Outcome, Payout, Rails, RailsError, Reconciled};
use capstan::store::TransactionRow;
use capstan::{Config, Extensions};
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;

/// A mobile-money provider's payouts, kept in memory for the example.
#[derive(Default)]
pub struct MobileMoneyRails {
    /// idempotency key → receipt
    receipts: Mutex<HashMap<String, String>>,
    /// Payouts above this need the receiver's mobile number confirmed (first round only).
    pub confirm_above: Option<Decimal>,
}

impl MobileMoneyRails {
    fn receipt(&self, key: &str) -> Option<String> {
        self.receipts.lock().ok()?.get(key).cloned()
    }

    /// How many payouts were made: one per idempotency key, however often asked.
    pub fn payouts(&self) -> usize {
        self.receipts.lock().map(|r| r.len()).unwrap_or(0)
    }
}

impl Rails for MobileMoneyRails {
    fn name(&self) -> &'static str {
        "mobile-money (example)"
    }

    fn execute<'a>(&'a self, payout: &'a Payout<'a>) -> BoxFuture<'a, Result<Outcome, RailsError>> {
        Box::pin(async move {
            let amount: Decimal = payout
                .transaction
                .amount_out
                .parse()
                .map_err(|_| RailsError::Permanent("amount_out is not a number".into()))?;
            if payout.round == 1 && self.confirm_above.is_some_and(|limit| amount > limit) {
                return Ok(Outcome::NeedsCustomerInfo {
                    message: "payouts this large need the receiver's mobile number confirmed"
                        .into(),
                    sender_fields: Vec::new(),
                    receiver_fields: vec![(
                        "mobile_number".into(),
                        "confirm the receiver's mobile number".into(),
                    )],
                });
            }
            let mut receipts = self
                .receipts
                .lock()
                .map_err(|_| RailsError::Retryable("the receipts are unavailable".into()))?;
            let receipt = receipts
                .entry(payout.idempotency_key.to_owned())
                .or_insert_with(|| format!("mm-{}", receipts_len_hint(payout.transaction)))
                .clone();
            Ok(Outcome::Completed {
                external_id: Some(receipt),
            })
        })
    }

    // Mobile money settles at once: nothing is ever left pending_external, so `poll` keeps
    // the trait's default.

    fn reconcile<'a>(
        &'a self,
        payout: &'a Payout<'a>,
    ) -> BoxFuture<'a, Result<Reconciled, RailsError>> {
        Box::pin(async move {
            Ok(match self.receipt(payout.idempotency_key) {
                Some(receipt) => Reconciled::Executed(Outcome::Completed {
                    external_id: Some(receipt),
                }),
                None => Reconciled::NotExecuted,
            })
        })
    }
}

/// A receipt number a provider might hand out.
fn receipts_len_hint(t: &TransactionRow) -> String {
    t.id.split('-').next().unwrap_or_default().to_owned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let path = std::env::args().nth(1).map(std::path::PathBuf::from);
    let config = Config::load(path.as_deref())?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let rails = Arc::new(MobileMoneyRails {
        confirm_above: Some(Decimal::from(1000)),
        ..Default::default()
    });
    let running = capstan::start_with(
        listener,
        config,
        Extensions {
            rails: Some(rails),
            ..Default::default()
        },
    )
    .await?;
    println!(
        "example anchor with mobile-money rails on {}",
        running.base_url()
    );
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan::sep31::status::Status;
    use capstan::store::Store;

    /// The example anchor pays a funded transaction through its own rails, once, and a
    /// round cut short is recognised by its key instead of being paid again.
    #[tokio::test]
    async fn the_example_rails_pay_each_transaction_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("example.db").display());
        let config = Config::from_parts(
            &format!("[database]\nurl = \"{url}\"\n[rails]\nenabled = false\n[watcher]\nenabled = false\n"),
            Vec::new(),
        )
        .unwrap();
        let rails = Arc::new(MobileMoneyRails::default());
        let anchor = capstan::server::open(
            config,
            Extensions {
                rails: Some(rails.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let asset = anchor.receive_assets[0].clone();
        let store: &Store = &anchor.store;
        let now = capstan::store::unix_now();
        let row = TransactionRow {
            id: "7f1c2a4e-example".into(),
            sending_anchor: stellar::Keypair::random().public_key().to_string(),
            status: Status::PendingSender.as_str().into(),
            status_message: None,
            asset_code: asset.code.clone(),
            asset_issuer: asset.issuer.to_string(),
            funding_method: "SEPA".into(),
            amount_in: "10".into(),
            amount_fee: "1".into(),
            amount_out: "9".into(),
            fee_details: "[]".into(),
            sender_id: None,
            receiver_id: None,
            stellar_account_id: Some(asset.distribution_account.to_string()),
            stellar_memo_type: Some("id".into()),
            stellar_memo: Some("77".into()),
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
            expires_at: None,
            conversion: None,
        };
        assert!(store.insert_transaction(&row, "example").await.unwrap());
        store
            .transition(
                &row.id,
                Status::PendingReceiver,
                "example",
                None,
                |t| t.paid = true,
                |_| String::new(),
            )
            .await
            .unwrap();
        assert_eq!(capstan::payout::execute_due(&anchor, "example").await, 1);
        let paid = store.transaction(&row.id).await.unwrap().unwrap();
        assert_eq!(paid.status, "completed");
        assert_eq!(paid.external_transaction_id.as_deref(), Some("mm-7f1c2a4e"));
        // Nothing more to do, and the provider was asked once.
        assert_eq!(capstan::payout::execute_due(&anchor, "example").await, 0);
        assert_eq!(rails.payouts(), 1);
        // A repeated key gets the same receipt; reconcile finds it.
        let payout = Payout {
            transaction: &paid,
            idempotency_key: &paid.id,
            round: 1,
        };
        assert_eq!(
            rails.reconcile(&payout).await.unwrap(),
            Reconciled::Executed(Outcome::Completed {
                external_id: Some("mm-7f1c2a4e".into())
            })
        );
        assert_eq!(rails.payouts(), 1);
        anchor.store.close().await;
    }
}
