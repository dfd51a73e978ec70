//! SEP-12 status callbacks: a registered URL hears of every status change of its customer,
//! until the customer is ACCEPTED or REJECTED (SEP12-35).
//!
//! A change is noticed by comparing the status now with the last one reported, and the
//! report is queued in the same transaction that records the new status, so two replicas
//! noticing the same change queue one callback. Changes are looked for after each request
//! that may cause one, and periodically (a change made by a business server, or one whose
//! request crashed before looking, is still reported).

use crate::anchor::Anchor;
use crate::store::CallbackRow;

use super::{Caller, CustomerQuery, KycResult, Lookup};

/// Looks for a status change of one customer and queues its callback.
pub async fn customer_changed(anchor: &Anchor, customer_id: &str) {
    let registration = match anchor.store.customer_callback(customer_id).await {
        Ok(Some(registration)) => registration,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a customer's callback registration; the periodic check will retry");
            return;
        }
    };
    if let Err(e) = report_change(anchor, &registration).await {
        tracing::warn!(error = %e, "cannot check a customer's status for its callback; the periodic check will retry");
    }
}

/// Every registration, looked at again.
pub async fn check_all(anchor: &Anchor) {
    let registrations = match anchor.store.customer_callbacks().await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list customer callback registrations");
            return;
        }
    };
    for registration in registrations {
        if let Err(e) = report_change(anchor, &registration).await {
            tracing::debug!(error = %e, "customer status check failed; retrying later");
        }
    }
}

/// The query that reads a customer as its owner would.
pub async fn owner_query(
    anchor: &Anchor,
    customer_id: &str,
    kind: &str,
) -> KycResult<Option<CustomerQuery>> {
    let Some(row) = anchor.store.customer_by_id(customer_id).await? else {
        return Ok(None);
    };
    let Ok(account) = stellar::PublicKey::from_strkey(&row.account) else {
        return Ok(None);
    };
    Ok(Some(CustomerQuery {
        caller: Caller {
            account,
            token_memo: (!row.memo.is_empty()).then(|| row.memo.clone()),
        },
        lookup: Lookup::Id(row.id),
        kind: kind.to_owned(),
        lang: "en".into(),
    }))
}

async fn report_change(anchor: &Anchor, registration: &CallbackRow) -> KycResult<()> {
    let Some(query) =
        owner_query(anchor, &registration.customer_id, &registration.kyc_type).await?
    else {
        return Ok(());
    };
    let info = anchor.customers.get(&query).await?;
    if info.status.as_str() == registration.last_status {
        return Ok(());
    }
    let body = info.to_json().to_string();
    let queued = anchor
        .store
        .queue_customer_callback(
            registration,
            info.status.as_str(),
            info.status.is_final(),
            &body,
        )
        .await?;
    if queued {
        tracing::info!(status = %info.status, "customer status changed; callback queued");
        anchor.outbox_wake.notify_one();
    }
    Ok(())
}
