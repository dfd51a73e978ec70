//! Transactions whose payment never came: `pending_sender` past `expires_at` become
//! `expired` (the timeout is `sep31.payment_timeout_secs`). The same loop looks again at
//! transactions waiting for corrected KYC.

use std::time::Duration;

use tokio::sync::watch;

use super::status::Status;
use super::transactions::transaction_body;
use crate::anchor::AppState;
use crate::store::{TransitionError, unix_now};

const EVERY: Duration = Duration::from_secs(10);
const BATCH: i64 = 100;

pub async fn run(anchor: AppState, mut stopped: watch::Receiver<bool>) {
    loop {
        expire_overdue(&anchor).await;
        super::kyc::recheck_waiting(&anchor).await;
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Expires what is overdue now; returns how many transactions it expired.
pub async fn expire_overdue(anchor: &AppState) -> usize {
    let ids = match anchor.store.overdue_transactions(unix_now(), BATCH).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for overdue transactions");
            return 0;
        }
    };
    let mut expired = 0;
    for id in ids {
        let result = anchor
            .store
            .transition(
                &id,
                Status::Expired,
                "expiry",
                Some("no payment arrived in time"),
                |t| {
                    t.status_message =
                        Some("no payment arrived before the transaction expired".into())
                },
                |t| transaction_body(t).to_string(),
            )
            .await;
        match result {
            Ok(_) => expired += 1,
            // Paid, or expired by another replica, meanwhile: nothing to do.
            Err(TransitionError::Illegal(_)) => {}
            Err(e) => tracing::warn!(transaction = %id, error = %e, "cannot expire a transaction"),
        }
    }
    if expired > 0 {
        anchor.outbox_wake.notify_one();
    }
    expired
}
