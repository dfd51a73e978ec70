//! Operator endpoints for incoming payments: every payment the watcher recorded, and what
//! to do with the ones it held (no memo, unknown memo, wrong asset or account, a transaction
//! not waiting for one, less than expected). An operator attaches a held payment to the
//! transaction it was meant for, which the payment then funds through the status machine,
//! or marks it for refund.

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::customers::no_nul;
use super::transactions::{optional_text, page, required_text};
use crate::anchor::AppState;
use crate::http::{ApiError, FormOrJson, PathSegment, Query};
use crate::store::{PaymentFilter, PaymentRow, Resolved, iso_time};
use crate::watcher::fund;
use crate::watcher::matching::{Decision, Reason, asset_name};
use crate::watcher::source::IncomingPayment;

const ACTOR: &str = "operator";
/// How often an attach is redone when the transaction changed under it.
const ATTEMPTS: usize = 5;

#[derive(Deserialize)]
pub struct ListQuery {
    /// matched or unmatched
    outcome: Option<String>,
    /// true: only held payments nobody has resolved yet
    open: Option<String>,
    transaction_id: Option<String>,
    limit: Option<String>,
    /// The `recorded_at_unix` and `id` of the last payment of the previous page.
    before: Option<String>,
    before_id: Option<String>,
}

pub async fn list(
    State(anchor): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let outcome = match q.outcome.as_deref().filter(|s| !s.is_empty()) {
        Some(o @ ("matched" | "unmatched")) => Some(o.to_owned()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "outcome {other:?} is neither matched nor unmatched"
            )));
        }
        None => None,
    };
    let open = match q.open.as_deref().filter(|s| !s.is_empty()) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "open {other:?} is neither true nor false"
            )));
        }
        None => None,
    };
    for (name, value) in [
        ("transaction_id", &q.transaction_id),
        ("before_id", &q.before_id),
    ] {
        if let Some(v) = value {
            no_nul(name, v)?;
        }
    }
    let (limit, before) = page(q.limit.as_deref(), q.before.as_deref(), q.before_id)?;
    let rows = anchor
        .store
        .list_incoming_payments(&PaymentFilter {
            outcome,
            open,
            transaction_id: q.transaction_id.filter(|s| !s.is_empty()),
            before,
            limit,
        })
        .await?;
    let payments: Vec<Value> = rows.iter().map(payment_json).collect();
    Ok(Json(json!({ "payments": payments })))
}

pub fn payment_json(p: &PaymentRow) -> Value {
    json!({
        "id": p.id,
        "account": p.account,
        "stellar_transaction_id": p.stellar_transaction_id,
        "kind": p.kind,
        "from": p.from_account,
        "to_muxed_id": p.to_muxed_id,
        "asset": asset_name(&p.asset_code, &p.asset_issuer),
        "amount": p.amount,
        "memo_type": p.memo_type,
        "memo": p.memo,
        "paid_at": iso_time(p.paid_at),
        "recorded_at": iso_time(p.recorded_at),
        "recorded_at_unix": p.recorded_at,
        "outcome": p.outcome,
        "reason": p.reason,
        "detail": p.detail,
        "transaction_id": p.transaction_id,
        "resolution": p.resolution,
        "resolution_note": p.resolution_note,
        "resolved_by": p.resolved_by,
        "resolved_at": p.resolved_at.map(iso_time),
        "paging_token": p.cursor,
    })
}

async fn payment(anchor: &AppState, id: &str) -> Result<PaymentRow, ApiError> {
    no_nul("id", id)?;
    anchor
        .store
        .incoming_payment(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("payment not found: {id}")))
}

pub async fn show(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(payment_json(&payment(&anchor, &id).await?)))
}

fn still_open(p: &PaymentRow) -> Result<(), ApiError> {
    if p.outcome != "unmatched" {
        return Err(ApiError::bad_request(format!(
            "payment {} funded transaction {} already",
            p.id,
            p.transaction_id.as_deref().unwrap_or("?")
        )));
    }
    if let Some(resolution) = &p.resolution {
        return Err(ApiError::bad_request(format!(
            "payment {} was resolved already ({resolution})",
            p.id
        )));
    }
    Ok(())
}

/// Attaches a held payment to `transaction_id`, which it funds with the amount that arrived
/// (fees and `amount_out` recomputed). The transaction must be waiting for its payment, in
/// the asset and at the account the payment went to.
pub async fn attach(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let transaction_id = required_text(
        &body,
        "transaction_id",
        "the transaction this payment was meant for",
    )?;
    let note = optional_text(&body, "note")?;
    for _ in 0..ATTEMPTS {
        let p = payment(&anchor, &id).await?;
        still_open(&p)?;
        let t = anchor
            .store
            .transaction(&transaction_id)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("transaction not found: {transaction_id}"))
            })?;
        if t.stellar_account_id.as_deref() != Some(p.account.as_str()) {
            return Err(ApiError::bad_request(format!(
                "the payment went to {}; transaction {} is paid to {}",
                p.account,
                t.id,
                t.stellar_account_id.as_deref().unwrap_or("no account yet")
            )));
        }
        if p.asset_code != t.asset_code || p.asset_issuer != t.asset_issuer {
            return Err(ApiError::bad_request(format!(
                "the payment is in {}; transaction {} expects {}:{}. Refund it instead",
                asset_name(&p.asset_code, &p.asset_issuer),
                t.id,
                t.asset_code,
                t.asset_issuer
            )));
        }
        let incoming = incoming(&p)?;
        let funding = match fund(&anchor, &incoming, &t, incoming.amount).await {
            Ok(f) => f,
            // The operator can try again once the service answers: 503, not a refusal.
            Err(Decision::Hold {
                reason: Reason::FeeUnavailable,
                detail,
            }) => return Err(ApiError::Unavailable(detail)),
            Err(Decision::Hold { detail, .. }) => return Err(ApiError::BadRequest(detail)),
            Err(Decision::Fund { .. }) => {
                return Err(ApiError::Internal(
                    "funding refused without a reason".into(),
                ));
            }
        };
        match anchor
            .store
            .resolve_payment(&p.id, "attached", note.as_deref(), ACTOR, Some(&funding))
            .await?
        {
            Resolved::Done => {
                anchor.outbox_wake.notify_one();
                anchor.payout_wake.notify_one();
                tracing::info!(payment = %p.id, transaction = %t.id, "held payment attached by the operator");
                return Ok(Json(payment_json(&payment(&anchor, &id).await?)));
            }
            Resolved::NotOpen => {
                return Err(ApiError::bad_request(format!(
                    "payment {} was resolved meanwhile",
                    p.id
                )));
            }
            Resolved::Conflict => continue,
        }
    }
    Err(ApiError::Unavailable(
        "the transaction kept changing under this update; try again".into(),
    ))
}

/// Marks a held payment to be sent back; the refund itself is paid by the operator.
pub async fn refund(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let note = optional_text(&body, "note")?;
    let p = payment(&anchor, &id).await?;
    still_open(&p)?;
    match anchor
        .store
        .resolve_payment(&p.id, "refund", note.as_deref(), ACTOR, None)
        .await?
    {
        Resolved::Done => Ok(Json(payment_json(&payment(&anchor, &id).await?))),
        Resolved::NotOpen | Resolved::Conflict => Err(ApiError::bad_request(format!(
            "payment {} was resolved meanwhile",
            p.id
        ))),
    }
}

fn incoming(p: &PaymentRow) -> Result<IncomingPayment, ApiError> {
    let amount: Decimal = p
        .amount
        .parse()
        .map_err(|_| ApiError::Internal(format!("payment {} has amount {:?}", p.id, p.amount)))?;
    Ok(IncomingPayment {
        id: p.id.clone(),
        cursor: p.cursor.clone(),
        stellar_transaction_id: p.stellar_transaction_id.clone(),
        kind: p.kind.clone(),
        from: p.from_account.clone(),
        to: p.account.clone(),
        to_muxed_id: p.to_muxed_id.clone(),
        asset_code: p.asset_code.clone(),
        asset_issuer: p.asset_issuer.clone(),
        amount,
        memo_type: p.memo_type.clone(),
        memo: p.memo.clone(),
        paid_at: p.paid_at,
    })
}
