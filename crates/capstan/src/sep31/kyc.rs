//! Transactions waiting on KYC move on by themselves once their sender and receiver are
//! ACCEPTED:
//! - created without customer ids (SEP-31 3.0 asynchronous KYC), `pending_receiver`
//!   becomes `pending_sender`, with the account and memo to pay;
//! - waiting for corrected KYC, `pending_customer_info_update` goes back to
//!   `pending_receiver` (SEP31-39, SEP31-49).

use super::status::Status;
use super::transactions::{new_memo, transaction_body};
use crate::anchor::AppState;
use crate::kyc::{Caller, CustomerQuery, CustomerStatus, Lookup};
use crate::store::{TransactionRow, TransitionError, unix_now};

const BATCH: i64 = 100;

/// After a change to one customer.
pub async fn customer_changed(anchor: &AppState, customer_id: &str) {
    resume_waiting(anchor, Some(customer_id)).await;
}

/// A transaction created without its customers, not yet payable.
pub fn awaits_kyc(transaction: &TransactionRow) -> bool {
    transaction.status() == Status::PendingReceiver
        && !transaction.paid
        && transaction.stellar_memo.is_none()
}

/// Every waiting transaction, looked at again (changes on a business server, or missed
/// through a crash).
pub async fn recheck_waiting(anchor: &AppState) {
    resume_waiting(anchor, None).await;
}

/// Resumes the waiting transactions (of one customer, or all of them, page by page) whose
/// customers are ACCEPTED.
async fn resume_waiting(anchor: &AppState, customer: Option<&str>) {
    let mut after = None;
    loop {
        let page = match anchor
            .store
            .transactions_waiting_on_customers(customer, after.take(), BATCH)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for transactions waiting on customers");
                return;
            }
        };
        for transaction in &page {
            resume_if_ready(anchor, transaction).await;
        }
        match page.last() {
            Some(last) if page.len() as i64 == BATCH => {
                after = Some((last.started_at, last.id.clone()));
            }
            _ => return,
        }
    }
}

async fn resume_if_ready(anchor: &AppState, transaction: &TransactionRow) {
    match customers_accepted(anchor, transaction).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read a transaction's customers; retrying later");
            return;
        }
    }
    let result = if awaits_kyc(transaction) {
        let Some(asset) = anchor
            .receive_assets
            .iter()
            .find(|a| a.code == transaction.asset_code)
        else {
            return;
        };
        let account = asset.distribution_account.to_string();
        let expires_at = crate::sep38::sep31::payment_deadline(
            transaction,
            unix_now() + anchor.config.sep31.payment_timeout_secs as i64,
        );
        anchor
            .store
            .transition(
                &transaction.id,
                Status::PendingSender,
                "kyc",
                Some("the sender and receiver are accepted: ready for the payment"),
                |t| {
                    t.status_message = None;
                    t.stellar_account_id = Some(account.clone());
                    t.stellar_memo_type = Some("id".into());
                    t.stellar_memo = Some(new_memo());
                    t.expires_at = Some(expires_at);
                },
                |t| transaction_body(t).to_string(),
            )
            .await
    } else {
        anchor
            .store
            .transition(
                &transaction.id,
                Status::PendingReceiver,
                "kyc",
                Some("the customers' information was updated and accepted"),
                |t| t.status_message = None,
                |t| transaction_body(t).to_string(),
            )
            .await
    };
    match result {
        Ok(_) => {
            anchor.outbox_wake.notify_one();
            anchor.payout_wake.notify_one();
        }
        // Another request or replica moved it first.
        Err(TransitionError::Illegal(_)) => {}
        Err(e) => {
            tracing::warn!(transaction = %transaction.id, error = %e, "cannot resume a transaction")
        }
    }
}

/// Whether every customer the transaction needs is ACCEPTED for its type.
pub async fn customers_accepted(
    anchor: &AppState,
    transaction: &TransactionRow,
) -> Result<bool, crate::kyc::KycError> {
    let Some(asset) = anchor
        .receive_assets
        .iter()
        .find(|a| a.code == transaction.asset_code)
    else {
        return Ok(false);
    };
    let Ok(account) = stellar::PublicKey::from_strkey(&transaction.sending_anchor) else {
        return Ok(false);
    };
    let parties = [
        (&asset.settings.sender_type, &transaction.sender_id),
        (&asset.settings.receiver_type, &transaction.receiver_id),
    ];
    for (kind, customer) in parties {
        let Some(kind) = kind else { continue };
        let Some(customer) = customer else {
            return Ok(false);
        };
        if customer_status(anchor, account, customer, kind).await? != CustomerStatus::Accepted {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A customer's status for `kind`, as the sending anchor that registered it sees it: any
/// memo of its base account (AMB-14). Another anchor's customer is `NotFound`.
pub async fn customer_status(
    anchor: &AppState,
    sending_anchor: stellar::PublicKey,
    customer_id: &str,
    kind: &str,
) -> Result<CustomerStatus, crate::kyc::KycError> {
    let query = CustomerQuery {
        caller: Caller {
            account: sending_anchor,
            token_memo: None,
        },
        lookup: Lookup::Id(customer_id.to_owned()),
        kind: kind.to_owned(),
        lang: "en".into(),
    };
    Ok(anchor.customers.get(&query).await?.status)
}
