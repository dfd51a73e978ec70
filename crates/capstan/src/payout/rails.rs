//! The rails integration (the seeds' `RailsIntegration`): how an anchor pays its receivers
//! off-chain. capstan calls [`Rails::execute`] once per round with an idempotency key, asks
//! [`Rails::poll`] about payouts still under way, and, after a crash cut a call short, asks
//! [`Rails::reconcile`] what became of it instead of paying again.

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::store::TransactionRow;

/// One payout round of a transaction.
#[derive(Debug, Clone)]
pub struct Payout<'a> {
    pub transaction: &'a TransactionRow,
    /// The same for every attempt of a round; the rails must not pay twice for one key.
    pub idempotency_key: &'a str,
    /// 1 for the first payout of the transaction, more after a correction.
    pub round: i64,
}

/// What the rails did with a payout, as the seeds' statuses.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered: `completed`.
    Completed { external_id: Option<String> },
    /// Submitted, not yet delivered: `pending_external`; [`Rails::poll`] follows it up.
    PendingExternal { external_id: Option<String> },
    /// The receiving (or sending) customer's KYC must be corrected:
    /// `pending_customer_info_update`. Each list names SEP-9 fields with the reason.
    NeedsCustomerInfo {
        message: String,
        sender_fields: Vec<(String, String)>,
        receiver_fields: Vec<(String, String)>,
    },
    /// Per-transaction fields must be sent again: `pending_transaction_info_update`, with
    /// `fields` in `/info`'s `fields.transaction` shape.
    NeedsTransactionInfo {
        message: String,
        fields: Map<String, Value>,
    },
    /// Failed for good: `error`, with the message the sending anchor reads.
    Error { message: String },
    /// The payment could not be paid out and was sent back to the sending anchor in full
    /// (the seeds' "refund the payment in its entirety"): `refunded`, with `refunds`
    /// naming the Stellar transaction of the refund and its fee.
    Refunded {
        message: String,
        stellar_transaction_id: String,
        fee: rust_decimal::Decimal,
    },
    /// Given back by the receiving bank after submission: `pending_receiver` again, for a
    /// new round (from `pending_external` only).
    Returned { message: String },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RailsError {
    /// Worth another attempt later (the bank is down, a timeout before anything was sent).
    #[error("{0}")]
    Retryable(String),
    /// Will not work however often it is tried: the transaction goes to `error`.
    #[error("{0}")]
    Permanent(String),
}

/// What the rails know of a round that was cut short.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// It reached the rails, with this outcome.
    Executed(Outcome),
    /// It never reached the rails: safe to execute.
    NotExecuted,
    /// The rails cannot tell: the round is held for the operator.
    Unknown,
}

pub trait Rails: Send + Sync {
    /// For logs and the start-up banner.
    fn name(&self) -> &'static str;

    fn execute<'a>(&'a self, payout: &'a Payout<'a>) -> BoxFuture<'a, Result<Outcome, RailsError>>;

    /// Whether [`Rails::execute_all`] pays a batch in one call. Rails that keep the default
    /// (false) are called once per round, each round begun (and its lease renewed) right
    /// before its own call.
    fn executes_in_batches(&self) -> bool {
        false
    }

    /// Executes several rounds (distinct idempotency keys), with an answer per round in the
    /// order given, bound by one timeout. The default calls [`Rails::execute`] for each in
    /// turn.
    fn execute_all<'a>(
        &'a self,
        payouts: &'a [Payout<'a>],
    ) -> BoxFuture<'a, Vec<Result<Outcome, RailsError>>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(payouts.len());
            for payout in payouts {
                answers.push(self.execute(payout).await);
            }
            answers
        })
    }

    /// The payouts among `transactions` (all `pending_external`) that moved on, with their
    /// outcome; the others are left out. Rails that settle at once, and so never answer
    /// pending_external, keep this default: nothing moved.
    fn poll<'a>(
        &'a self,
        _transactions: &'a [TransactionRow],
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, RailsError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// What became of a round whose call was cut short. Rails that cannot look a payout up
    /// by its key keep this default: the round is held for the operator.
    fn reconcile<'a>(
        &'a self,
        _payout: &'a Payout<'a>,
    ) -> BoxFuture<'a, Result<Reconciled, RailsError>> {
        Box::pin(async { Ok(Reconciled::Unknown) })
    }
}
