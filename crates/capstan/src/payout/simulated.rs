//! Simulated rails for test networks and demos. They keep a ledger in the database (one row
//! per idempotency key), so they are exactly as idempotent as real rails must be, survive
//! restarts, and can tell what became of an interrupted round. Chosen amounts trigger the
//! correction flows and the error path, so wallet developers can exercise all of them.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{Map, json};

use super::rails::{Outcome, Payout, Rails, RailsError, Reconciled};
use crate::config::{RailsConfig, SimulatedMode};
use crate::store::{SimulatedPayout, Store, TransactionRow};

pub struct SimulatedRails {
    store: Store,
    config: RailsConfig,
}

impl SimulatedRails {
    pub fn new(store: Store, config: RailsConfig) -> SimulatedRails {
        SimulatedRails { store, config }
    }

    /// The outcome a first call decides, from the amount (triggers apply to the first
    /// round only, so a corrected transaction is then paid).
    fn decide(&self, payout: &Payout<'_>) -> &'static str {
        let amount: Decimal = payout.transaction.amount_in.parse().unwrap_or_default();
        let is =
            |trigger: Option<Decimal>| payout.round == 1 && trigger == Some(amount.normalize());
        if is(self.config.customer_info_amount) {
            "needs_customer_info"
        } else if is(self.config.transaction_info_amount) {
            "needs_transaction_info"
        } else if is(self.config.error_amount) {
            "error"
        } else if is(self.config.refund_amount) {
            "refunded"
        } else {
            match self.config.simulated {
                SimulatedMode::Instant => "completed",
                SimulatedMode::External => "pending_external",
            }
        }
    }
}

fn outcome_of(row: &SimulatedPayout) -> Outcome {
    let external_id = Some(format!("sim-{}", row.idempotency_key));
    match row.outcome.as_str() {
        "completed" => Outcome::Completed { external_id },
        "pending_external" if row.delivered => Outcome::Completed { external_id },
        "pending_external" => Outcome::PendingExternal { external_id },
        "needs_customer_info" => Outcome::NeedsCustomerInfo {
            message: "the receiving bank refused the account number".into(),
            sender_fields: Vec::new(),
            receiver_fields: vec![(
                "bank_account_number".into(),
                "the receiving bank refused this account number".into(),
            )],
        },
        "needs_transaction_info" => {
            let mut fields = Map::new();
            fields.insert(
                "receiver_routing_number".into(),
                json!({"description": "the routing number of the receiver's bank"}),
            );
            Outcome::NeedsTransactionInfo {
                message: "the receiving bank needs the routing number".into(),
                fields,
            }
        }
        "refunded" => Outcome::Refunded {
            message: "the simulated bank refused the payout; the payment was sent back".into(),
            // A made-up hash: the simulated refund pays nothing on the network.
            stellar_transaction_id: {
                let mut bytes = [b'0'; 32];
                for (b, k) in bytes.iter_mut().zip(row.idempotency_key.bytes().rev()) {
                    *b = k;
                }
                hex::encode(bytes)
            },
            fee: Decimal::ZERO,
        },
        _ => Outcome::Error {
            message: "the simulated bank refused the payout".into(),
        },
    }
}

fn store_error(e: crate::store::StoreError) -> RailsError {
    RailsError::Retryable(format!("the simulated rails' ledger: {e}"))
}

impl Rails for SimulatedRails {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn execute<'a>(&'a self, payout: &'a Payout<'a>) -> BoxFuture<'a, Result<Outcome, RailsError>> {
        Box::pin(async move {
            let row = self
                .store
                .simulated_payout(
                    payout.idempotency_key,
                    &payout.transaction.id,
                    &payout.transaction.amount_out,
                    self.decide(payout),
                )
                .await
                .map_err(store_error)?;
            Ok(outcome_of(&row))
        })
    }

    fn executes_in_batches(&self) -> bool {
        true
    }

    /// The whole batch is one write to the ledger: as if the simulated bank took a file of
    /// payouts.
    fn execute_all<'a>(
        &'a self,
        payouts: &'a [Payout<'a>],
    ) -> BoxFuture<'a, Vec<Result<Outcome, RailsError>>> {
        Box::pin(async move {
            let calls: Vec<(&str, &str, &str, &str)> = payouts
                .iter()
                .map(|p| {
                    (
                        p.idempotency_key,
                        p.transaction.id.as_str(),
                        p.transaction.amount_out.as_str(),
                        self.decide(p),
                    )
                })
                .collect();
            match self.store.simulated_payout_batch(&calls).await {
                Ok(rows) => {
                    let by_key: HashMap<&str, &SimulatedPayout> = rows
                        .iter()
                        .map(|r| (r.idempotency_key.as_str(), r))
                        .collect();
                    payouts
                        .iter()
                        .map(|p| match by_key.get(p.idempotency_key) {
                            Some(row) => Ok(outcome_of(row)),
                            None => Err(RailsError::Retryable(
                                "the simulated rails' ledger did not record the payout".into(),
                            )),
                        })
                        .collect()
                }
                Err(e) => {
                    let e = store_error(e);
                    payouts.iter().map(|_| Err(e.clone())).collect()
                }
            }
        })
    }

    fn poll<'a>(
        &'a self,
        transactions: &'a [TransactionRow],
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, RailsError>> {
        Box::pin(async move {
            let mut moved = Vec::new();
            for t in transactions {
                // The simulated bank settles everything submitted by the next poll.
                let Some(key) = t
                    .external_transaction_id
                    .as_deref()
                    .and_then(|e| e.strip_prefix("sim-"))
                else {
                    continue;
                };
                self.store
                    .deliver_simulated_payout(key)
                    .await
                    .map_err(store_error)?;
                if let Some(row) = self
                    .store
                    .simulated_payout_by_key(key)
                    .await
                    .map_err(store_error)?
                    && row.delivered
                {
                    moved.push((t.id.clone(), outcome_of(&row)));
                }
            }
            Ok(moved)
        })
    }

    fn reconcile<'a>(
        &'a self,
        payout: &'a Payout<'a>,
    ) -> BoxFuture<'a, Result<Reconciled, RailsError>> {
        Box::pin(async move {
            Ok(
                match self
                    .store
                    .simulated_payout_by_key(payout.idempotency_key)
                    .await
                    .map_err(store_error)?
                {
                    Some(row) => Reconciled::Executed(outcome_of(&row)),
                    None => Reconciled::NotExecuted,
                },
            )
        })
    }
}
