//! Operator endpoints for SEP-31 transactions: list and filter, read one with its event
//! history, and act on it. Every action goes through the status machine
//! (`Store::transition`), so it is checked, logged as an event and reported to the
//! transaction's callback URL.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::customers::no_nul;
use crate::anchor::AppState;
use crate::config::STELLAR_DECIMALS;
use crate::http::{ApiError, FormOrJson, PathSegment, Query};
use crate::sep31::amounts::amount_string;
use crate::sep31::status::Status;
use crate::sep31::transactions::{transaction_body, transition_error};
use crate::store::{TransactionFilter, TransactionRow, iso_time};

pub(super) const MAX_PAGE: i64 = 200;
const ACTOR: &str = "operator";

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    asset_code: Option<String>,
    sending_anchor: Option<String>,
    /// ISO 8601 or unix seconds: transactions started at or after.
    from: Option<String>,
    /// ISO 8601 or unix seconds: transactions started at or before.
    until: Option<String>,
    limit: Option<String>,
    /// The `started_at_unix` and `id` of the last transaction of the previous page.
    before: Option<String>,
    before_id: Option<String>,
}

/// A list's paging: `limit` (default 50, at most [`MAX_PAGE`]) and the keyset position
/// after which the page starts (`before`, a time, and `before_id`).
pub(super) fn page(
    limit: Option<&str>,
    before: Option<&str>,
    before_id: Option<String>,
) -> Result<(i64, Option<(i64, String)>), ApiError> {
    let limit = match limit {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request("limit must be a whole number"))?,
        None => 50,
    }
    .clamp(1, MAX_PAGE);
    let before = match (time_param("before", before)?, before_id) {
        (Some(at), id) => Some((at, id.unwrap_or_else(|| "\u{10ffff}".into()))),
        (None, Some(_)) => return Err(ApiError::bad_request("before_id needs before")),
        (None, None) => None,
    };
    Ok((limit, before))
}

pub(super) fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(secs) = value.parse::<i64>() {
        return Ok(Some(secs));
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| Some(t.timestamp()))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name} must be an ISO 8601 time (2026-01-31T00:00:00Z) or unix seconds"
            ))
        })
}

pub async fn list(
    State(anchor): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("status {s:?} is not a SEP-31 status"))
                })?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    for (name, value) in [
        ("asset_code", &q.asset_code),
        ("sending_anchor", &q.sending_anchor),
        ("before_id", &q.before_id),
    ] {
        if let Some(v) = value {
            no_nul(name, v)?;
        }
    }
    let (limit, before) = page(q.limit.as_deref(), q.before.as_deref(), q.before_id)?;
    let filter = TransactionFilter {
        status,
        asset_code: q.asset_code.filter(|s| !s.is_empty()),
        sending_anchor: q.sending_anchor.filter(|s| !s.is_empty()),
        started_from: time_param("from", q.from.as_deref())?,
        started_until: time_param("until", q.until.as_deref())?,
        before,
        limit,
    };
    let rows = anchor.store.list_transactions(&filter).await?;
    let transactions: Vec<Value> = rows.iter().map(summary).collect();
    Ok(Json(json!({ "transactions": transactions })))
}

fn summary(row: &TransactionRow) -> Value {
    let mut value = serde_json::to_value(transaction_body(row).transaction).unwrap_or_default();
    value["sending_anchor"] = json!(row.sending_anchor);
    value["asset_code"] = json!(row.asset_code);
    value["started_at_unix"] = json!(row.started_at);
    value
}

pub async fn show(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
) -> Result<Json<Value>, ApiError> {
    let row = transaction(&anchor, &id).await?;
    detail(&anchor, &row).await.map(Json)
}

async fn transaction(anchor: &AppState, id: &str) -> Result<TransactionRow, ApiError> {
    no_nul("id", id)?;
    anchor
        .store
        .transaction(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("transaction not found: {id}")))
}

/// Everything held on the transaction, with its event history.
async fn detail(anchor: &AppState, row: &TransactionRow) -> Result<Value, ApiError> {
    let mut value = summary(row);
    value["funding_method"] = json!(row.funding_method);
    value["sender_id"] = json!(row.sender_id);
    value["receiver_id"] = json!(row.receiver_id);
    value["refund_memo"] = json!(row.refund_memo);
    value["refund_memo_type"] = json!(row.refund_memo_type);
    value["fields"] = serde_json::from_str(&row.fields).unwrap_or(Value::Null);
    value["paid"] = json!(row.paid);
    value["callback_url"] = json!(row.callback_url);
    value["expires_at"] = json!(row.expires_at.map(iso_time));
    let events: Vec<Value> = anchor
        .store
        .transaction_events(&row.id)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "from": e.from_status,
                "to": e.to_status,
                "actor": e.actor,
                "reason": e.reason,
                "at": iso_time(e.at),
            })
        })
        .collect();
    value["events"] = json!(events);
    value["payout"] = match anchor.store.payout(&row.id).await? {
        Some(p) => json!({
            "round": p.round,
            "idempotency_key": p.idempotency_key,
            "state": p.state,
            "attempts": p.attempts,
            "last_error": p.last_error,
            "updated_at": iso_time(p.updated_at),
        }),
        None => Value::Null,
    };
    // The payments that funded it, or that named it and were held.
    let payments = anchor
        .store
        .list_incoming_payments(&crate::store::PaymentFilter {
            transaction_id: Some(row.id.clone()),
            limit: MAX_PAGE,
            ..Default::default()
        })
        .await?;
    value["payments"] = json!(
        payments
            .iter()
            .map(super::payments::payment_json)
            .collect::<Vec<_>>()
    );
    Ok(value)
}

/// A required, non-empty text member of a JSON body.
pub(super) fn required_text(body: &Value, key: &str, why: &str) -> Result<String, ApiError> {
    match body.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            no_nul(key, s)?;
            Ok(s.trim().to_owned())
        }
        _ => Err(ApiError::bad_request(format!("{key} is required: {why}"))),
    }
}

pub(super) fn optional_text(body: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            no_nul(key, s)?;
            Ok(Some(s.trim().to_owned()))
        }
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

async fn act(
    anchor: &AppState,
    id: &str,
    to: Status,
    reason: &str,
    edit: impl Fn(&mut TransactionRow),
) -> Result<Json<Value>, ApiError> {
    let row = transaction(anchor, id).await?;
    let updated = anchor
        .store
        .transition(&row.id, to, ACTOR, Some(reason), edit, |t| {
            transaction_body(t).to_string()
        })
        .await
        .map_err(transition_error)?;
    anchor.outbox_wake.notify_one();
    detail(anchor, &updated).await.map(Json)
}

/// `pending_customer_info_update`: the sending anchor must correct its customers' SEP-12
/// data. With the built-in store, `sender_fields` / `receiver_fields` (field → reason) mark
/// what to correct, so `GET /customer` answers `NEEDS_INFO` naming them (SEP31-38).
pub async fn request_customer_info(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let row = transaction(&anchor, &id).await?;
    let message = optional_text(&body, "message")?;
    let mut requests = Vec::new();
    for (key, customer) in [
        ("sender_fields", &row.sender_id),
        ("receiver_fields", &row.receiver_id),
    ] {
        let Some(fields) = body.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(fields) = fields.as_object() else {
            return Err(ApiError::bad_request(format!(
                "{key} must be an object of SEP-9 field name to reason"
            )));
        };
        let customer = customer.clone().ok_or_else(|| {
            ApiError::bad_request(format!("{key}: the transaction has no such customer"))
        })?;
        if anchor.config.kyc.business.is_some() {
            return Err(ApiError::bad_request(format!(
                "{key}: customers are kept by the business server; ask for the fields there"
            )));
        }
        let mut reasons = Vec::new();
        for (name, reason) in fields {
            if stellar::sep9::field(name).is_none() {
                return Err(ApiError::bad_request(format!(
                    "{key}.{name} is not a SEP-9 field name"
                )));
            }
            let reason = reason.as_str().map(str::trim).filter(|r| !r.is_empty());
            let Some(reason) = reason else {
                return Err(ApiError::bad_request(format!(
                    "{key}.{name} needs a reason: the message the client reads"
                )));
            };
            no_nul(key, reason)?;
            reasons.push((name.clone(), reason.to_owned()));
        }
        requests.push((customer, reasons));
    }
    if requests.iter().all(|(_, reasons)| reasons.is_empty())
        && anchor.config.kyc.business.is_none()
    {
        // Without a field to correct (no map, or only empty ones) the customers stay
        // ACCEPTED, and the transaction would resume at once.
        return Err(ApiError::bad_request(
            "name the fields to correct in sender_fields or receiver_fields (field → reason)",
        ));
    }
    // Refused before any customer is touched, so a refused request changes nothing.
    crate::sep31::status::check(
        row.status(),
        Status::PendingCustomerInfoUpdate,
        crate::sep31::status::Facts { paid: row.paid },
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The customers first: once the transaction waits, it resumes as soon as they are
    // ACCEPTED, which they must no longer be.
    for (customer, reasons) in &requests {
        anchor
            .store
            .request_customer_fields(customer, reasons)
            .await?;
    }
    let status_message = message
        .clone()
        .unwrap_or_else(|| "the sender's or receiver's KYC information must be updated".into());
    let response = act(
        &anchor,
        &row.id,
        Status::PendingCustomerInfoUpdate,
        "customer information requested",
        |t| t.status_message = Some(status_message.clone()),
    )
    .await?;
    for (customer, _) in &requests {
        crate::kyc::callbacks::customer_changed(&anchor, customer).await;
    }
    Ok(response)
}

/// `pending_transaction_info_update` (deprecated SEP-31 path): `fields` names the
/// per-transaction fields to send again through PATCH, each with its description.
pub async fn request_transaction_info(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let message = optional_text(&body, "message")?;
    let fields = body
        .get("fields")
        .and_then(Value::as_object)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "fields is required: an object of field name to {\"description\": ...}",
            )
        })?;
    let mut requested = Map::new();
    for (name, spec) in fields {
        no_nul("fields", name)?;
        let description = spec
            .get("description")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!("fields.{name}.description is required"))
            })?;
        no_nul("description", description)?;
        let mut entry = json!({ "description": description });
        if let Some(optional) = spec.get("optional") {
            entry["optional"] = json!(optional.as_bool().ok_or_else(|| {
                ApiError::bad_request(format!("fields.{name}.optional must be true or false"))
            })?);
        }
        if let Some(choices) = spec.get("choices") {
            // An empty list would leave no answer the PATCH could give.
            let valid = choices
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(Value::is_string));
            if !valid {
                return Err(ApiError::bad_request(format!(
                    "fields.{name}.choices must be a non-empty list of strings"
                )));
            }
            entry["choices"] = choices.clone();
        }
        requested.insert(name.clone(), entry);
    }
    let updates = json!({ "transaction": requested }).to_string();
    act(
        &anchor,
        &id,
        Status::PendingTransactionInfoUpdate,
        "transaction information requested",
        |t| {
            t.required_info_updates = Some(updates.clone());
            t.required_info_message = message.clone();
        },
    )
    .await
}

/// `error`, with the message the sending anchor reads.
pub async fn mark_error(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let message = required_text(
        &body,
        "message",
        "the status_message the sending anchor reads",
    )?;
    act(
        &anchor,
        &id,
        Status::Error,
        "marked as error by an operator",
        |t| t.status_message = Some(message.clone()),
    )
    .await
}

/// Records refund payments (`payments`: `[{"id", "amount", "fee"}]`, added to those
/// already recorded). When the amounts refunded reach `amount_in` the transaction is
/// `refunded`; a partial refund leaves the status as it is (SEP31-40).
pub async fn refund(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let payments = body
        .get("payments")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "payments is required: [{\"id\": <stellar transaction hash>, \"amount\": \"...\", \"fee\": \"...\"}]",
            )
        })?;
    let amount = |p: &Value, key: &str, i: usize| -> Result<Decimal, ApiError> {
        let text = match p.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None if key == "fee" => "0".into(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "payments[{i}].{key} must be a decimal amount"
                )));
            }
        };
        // At most the largest Stellar amount, so no sum of them overflows a Decimal.
        let largest = Decimal::new(i64::MAX, STELLAR_DECIMALS);
        let value = Decimal::from_str(text.trim())
            .ok()
            .filter(|d| {
                !d.is_sign_negative()
                    && d.normalize().scale() <= STELLAR_DECIMALS
                    && *d <= largest
            })
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "payments[{i}].{key} {text:?} is not an amount (at least 0, at most 7 decimals, at most {largest})"
                ))
            })?;
        Ok(value.normalize())
    };
    let mut new_payments = Vec::new();
    for (i, p) in payments.iter().enumerate() {
        let id = p
            .get("id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "payments[{i}].id is required: the Stellar transaction hash of the refund"
                ))
            })?;
        no_nul("payments.id", id)?;
        let paid = amount(p, "amount", i)?;
        if paid.is_zero() {
            return Err(ApiError::bad_request(format!(
                "payments[{i}].amount must be positive"
            )));
        }
        new_payments.push((id.to_owned(), paid, amount(p, "fee", i)?));
    }

    for _ in 0..8 {
        let row = transaction(&anchor, &id).await?;
        if !row.paid {
            return Err(ApiError::bad_request(
                "nothing can be refunded: no payment has arrived for this transaction",
            ));
        }
        if row.status().is_terminal() {
            return Err(ApiError::bad_request(format!(
                "the transaction is {}; refunds are recorded on unfinished transactions",
                row.status
            )));
        }
        let mut all: Vec<Value> = row
            .refunds
            .as_deref()
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
            .and_then(|r| r.get("payments").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        for (pid, paid, fee) in &new_payments {
            // A retried request must not record the same refund payment twice.
            if all
                .iter()
                .any(|p| p.get("id").and_then(Value::as_str) == Some(pid))
            {
                return Err(ApiError::bad_request(format!(
                    "refund payment {pid} is already recorded"
                )));
            }
            all.push(
                json!({"id": pid, "amount": amount_string(*paid), "fee": amount_string(*fee)}),
            );
        }
        let sum = |key: &str| -> Decimal {
            all.iter()
                .filter_map(|p| p.get(key).and_then(Value::as_str))
                .filter_map(|s| Decimal::from_str(s).ok())
                .sum()
        };
        let refunded = sum("amount");
        let fees = sum("fee");
        let amount_in = Decimal::from_str(&row.amount_in).unwrap_or_default();
        let amount_fee = Decimal::from_str(&row.amount_fee).unwrap_or_default();
        if refunded > amount_in {
            return Err(ApiError::bad_request(format!(
                "the refunds ({}) would exceed amount_in ({})",
                amount_string(refunded),
                row.amount_in
            )));
        }
        let full = refunded == amount_in;
        // SEP-31's invariant: amount_out = amount_in - amount_fee - refunded - refund fees.
        // A full refund returns everything, so nothing is paid out: 0, not below.
        let amount_out = amount_in - amount_fee - refunded - fees;
        if !full && amount_out.is_sign_negative() {
            return Err(ApiError::bad_request(format!(
                "the refunds ({} plus {} in fees) would leave less than nothing to pay out of {} after the fee of {}",
                amount_string(refunded),
                amount_string(fees),
                row.amount_in,
                row.amount_fee
            )));
        }
        // A converting transaction pays out the off-chain asset, at its price (SEP-38).
        let amount_out = crate::sep38::sep31::converted_amount_out(&row, amount_out)
            .unwrap_or_else(|| amount_string(amount_out.max(Decimal::ZERO)));
        let refunds = json!({
            "amount_refunded": amount_string(refunded),
            "amount_fee": amount_string(fees),
            "payments": all,
        })
        .to_string();
        // Both kinds are written only over the row read here, so a refund recorded
        // meanwhile is never lost: the loop reads again and adds to it.
        let edit = |t: &mut TransactionRow| {
            t.refunds = Some(refunds.clone());
            t.amount_out = amount_out.clone();
        };
        let written = if full {
            let next = crate::store::prepare_transition(&row, Status::Refunded, edit)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let body = next
                .callback_url
                .as_ref()
                .map(|_| transaction_body(&next).to_string());
            anchor
                .store
                .transition_from(
                    &row,
                    &next,
                    ACTOR,
                    Some("refunded in full"),
                    body.as_deref(),
                )
                .await?
        } else {
            let mut next = row.clone();
            edit(&mut next);
            next.updated_at = crate::store::unix_now();
            let body = next
                .callback_url
                .as_ref()
                .map(|_| transaction_body(&next).to_string());
            anchor
                .store
                .record_refunds(
                    &row,
                    &next,
                    ACTOR,
                    "partial refund recorded",
                    body.as_deref(),
                )
                .await?
        };
        if written {
            anchor.outbox_wake.notify_one();
            let row = transaction(&anchor, &id).await?;
            return detail(&anchor, &row).await.map(Json);
        }
    }
    Err(ApiError::Unavailable(
        "the transaction kept changing; try again".into(),
    ))
}

/// A payout outcome reported by the operator or by a business server through the operator
/// API, in the business rails' answer shape (`{"status": "completed", ...}`).
pub async fn report_payout(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Json<Value>, ApiError> {
    no_nul("id", &id)?;
    let outcome =
        crate::payout::business::outcome_from_json(&body).map_err(ApiError::BadRequest)?;
    match crate::payout::report(&anchor, &id, &outcome, ACTOR).await {
        Ok(row) => detail(&anchor, &row).await.map(Json),
        Err(crate::payout::Ended::Refused(m)) if m.starts_with("transaction not found") => {
            Err(ApiError::NotFound(m))
        }
        Err(crate::payout::Ended::Refused(m)) => Err(ApiError::BadRequest(m)),
        Err(crate::payout::Ended::LeaseLost) => Err(ApiError::Unavailable(
            "an executor took the round over meanwhile; look again".into(),
        )),
        Err(crate::payout::Ended::Failed(m)) => Err(ApiError::Unavailable(m)),
    }
}

/// The operator's word that a held payout round was not paid: it is retried.
pub async fn retry_payout(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
) -> Result<Json<Value>, ApiError> {
    let row = transaction(&anchor, &id).await?;
    if !anchor.store.release_held_payout(&row.id).await? {
        return Err(ApiError::bad_request(
            "no payout round of this transaction is held",
        ));
    }
    anchor.payout_wake.notify_one();
    detail(&anchor, &row).await.map(Json)
}

/// Payout rounds held for the operator: cut short, and the rails could not tell whether
/// they paid.
pub async fn held_payouts(State(anchor): State<AppState>) -> Result<Json<Value>, ApiError> {
    let held: Vec<Value> = anchor
        .store
        .held_payouts(MAX_PAGE)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "transaction_id": p.transaction_id,
                "round": p.round,
                "idempotency_key": p.idempotency_key,
                "attempts": p.attempts,
                "last_error": p.last_error,
                "updated_at": iso_time(p.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({ "held": held })))
}
