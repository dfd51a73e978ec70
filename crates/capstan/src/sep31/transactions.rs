//! `POST /transactions`, `GET /transactions/:id`, `PATCH /transactions/:id` (deprecated)
//! and `PUT /transactions/:id/callback`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::SendingAnchor;
use super::amounts::{amount_string, json_amount_literal, json_kind, parse_amount};
use super::integration::{Fee, PostRejection, PostRequest};
use super::status::Status;
use crate::anchor::AppState;
use crate::config::{ReceiveAsset, STELLAR_DECIMALS};
use crate::http::{ApiError, FormOrJson, FormOrJsonText, PathSegment};
use crate::kyc::{CustomerStatus, KycError, Memo, MemoError};
use crate::store::{Inserted, TransactionRow, TransitionError, iso_time, unix_now};

/// A 400 whose body is one of SEP-31's structured errors rather than `{"error": text}`.
fn structured_400(body: Value) -> Response {
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn customer_info_needed(kind: &str) -> Response {
    structured_400(json!({ "error": "customer_info_needed", "type": kind }))
}

/// Reads a string member; absent, null and "" are `None`. A NUL is refused: no id, code or
/// memo holds one, and PostgreSQL cannot store or even compare it.
fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(ApiError::bad_request(format!(
            "{key} holds a NUL character"
        ))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be a string, not {}",
            json_kind(other)
        ))),
    }
}

pub async fn post_transaction(
    State(anchor): State<AppState>,
    SendingAnchor(session): SendingAnchor,
    FormOrJsonText(body, json): FormOrJsonText<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let literal = json.as_deref().and_then(json_amount_literal);
    let amount = parse_amount(
        body.get("amount").unwrap_or(&Value::Null),
        literal.as_deref(),
    )
    .map_err(ApiError::BadRequest)?;
    let code = text(&body, "asset_code")?.ok_or_else(|| {
        ApiError::bad_request("asset_code is required: one of the assets of GET /info")
    })?;
    let asset = anchor
        .receive_assets
        .iter()
        .find(|a| a.code == code)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "asset_code {code} is not received by this anchor; GET /info lists the assets"
            ))
        })?;
    if let Some(issuer) = text(&body, "asset_issuer")?
        && issuer != asset.issuer.to_string()
    {
        return Err(ApiError::bad_request(format!(
            "asset_issuer {issuer} does not issue the {code} this anchor receives ({})",
            asset.issuer
        )));
    }
    let settings = &asset.settings;
    let funding_method = text(&body, "funding_method")?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "funding_method is required: one of {}",
            settings.funding_methods.join(", ")
        ))
    })?;
    if !settings.funding_methods.contains(&funding_method) {
        return Err(ApiError::bad_request(format!(
            "funding_method {funding_method} is not offered for {code}: use one of {}",
            settings.funding_methods.join(", ")
        )));
    }
    if let Some(min) = settings.min_amount
        && amount < min
    {
        return Err(ApiError::bad_request(format!(
            "amount {amount} is below the minimum of {min} {code}"
        )));
    }
    if let Some(max) = settings.max_amount
        && amount > max
    {
        return Err(ApiError::bad_request(format!(
            "amount {amount} is above the maximum of {max} {code}"
        )));
    }
    // SEP-38 conversion: a firm quote, or an indicative price (SEP31-21..23).
    let conversion = crate::sep38::sep31::post_conversion(
        &anchor,
        &session,
        asset,
        amount,
        &funding_method,
        text(&body, "quote_id")?,
        text(&body, "destination_asset")?,
    )
    .await?;
    let refund = refund_memo(&body)?;
    let fields = match transaction_fields(asset, &body)? {
        Ok(fields) => fields,
        Err(needed) => return Ok(needed),
    };

    let mut customers = BTreeMap::new();
    for (key, kind) in [
        ("sender_id", &settings.sender_type),
        ("receiver_id", &settings.receiver_type),
    ] {
        let id = text(&body, key)?;
        let Some(kind) = kind else {
            customers.insert(key, id);
            continue;
        };
        // SEP-31 3.0 asynchronous KYC: without an id, the customer is registered later
        // through SEP-12 `transaction_id` + `type`, and the transaction waits for it.
        let Some(id) = id else {
            customers.insert(key, None);
            continue;
        };
        match super::kyc::customer_status(&anchor, session.account(), &id, kind).await {
            Ok(CustomerStatus::Accepted) => {}
            Ok(_) => return Ok(customer_info_needed(kind)),
            Err(KycError::NotFound(_)) => {
                return Err(ApiError::bad_request(format!(
                    "{key} {id} is not a customer registered by this sending anchor"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        customers.insert(key, Some(id));
    }

    let sender_id = customers.get("sender_id").cloned().flatten();
    let receiver_id = customers.get("receiver_id").cloned().flatten();
    let request = PostRequest {
        sending_anchor: session.account(),
        asset,
        amount,
        funding_method: &funding_method,
        sender_id: sender_id.as_deref(),
        receiver_id: receiver_id.as_deref(),
        fields: &fields,
        body: &body,
    };
    match anchor.sep31_receiver.process_post_request(&request).await {
        Ok(()) => {}
        Err(PostRejection::CustomerInfoNeeded { kind }) => {
            let mut body = json!({ "error": "customer_info_needed" });
            if let Some(kind) = kind {
                body["type"] = json!(kind);
            }
            return Ok(structured_400(body));
        }
        Err(PostRejection::TransactionInfoNeeded { fields }) => {
            return Ok(structured_400(json!({
                "error": "transaction_info_needed",
                "fields": { "transaction": fields },
            })));
        }
        Err(PostRejection::Error(message)) => return Err(ApiError::BadRequest(message)),
        Err(PostRejection::Unavailable(e)) => return Err(e.into()),
    }
    // A quote's fee is the one it was quoted with (by the same integration, when the quote
    // was made): the fee service is not asked again, and need not be up.
    let fee = match conversion.as_ref().and_then(|c| c.quote.as_ref()) {
        Some(quote) => Fee {
            total: quote.amount_fee,
            details: Vec::new(),
        },
        None => anchor.fees.fee(asset, amount, &funding_method).await?,
    };
    // A fee integration's mistake is not the sending anchor's: refuse to store it.
    if fee.total.is_sign_negative() || fee.total.normalize().scale() > STELLAR_DECIMALS {
        return Err(ApiError::Internal(format!(
            "the fee integration returned {} for {code}, not a Stellar amount",
            fee.total
        )));
    }
    let mut fee_details = fee.details_json().to_string();
    let fee = fee.total.normalize();
    let amount_out = amount - fee;
    if amount_out <= Decimal::ZERO {
        return Err(ApiError::bad_request(format!(
            "amount {amount} does not cover the fee of {fee} {code}"
        )));
    }
    let mut amount_out = amount_string(amount_out);
    // A quote's amounts and fee parts are the ones it was quoted with.
    if let Some(quote) = conversion.as_ref().and_then(|c| c.quote.as_ref()) {
        amount_out = quote.amount_out.clone();
        fee_details = quote.fee_details.to_string();
    }
    let now = unix_now();
    // Ready to be paid once every customer it needs is known and ACCEPTED (they were
    // checked above); otherwise pending_receiver without payment details (SEP31-25).
    let awaiting_kyc = [
        (&settings.sender_type, customers.get("sender_id")),
        (&settings.receiver_type, customers.get("receiver_id")),
    ]
    .into_iter()
    .any(|(kind, id)| kind.is_some() && id.cloned().flatten().is_none());
    let mut row = TransactionRow {
        // Time-ordered (UUIDv7, 74 random bits): new rows go to the end of the id index
        // and of the events' index, not to a random page of each (BENCHMARKS.md).
        id: uuid::Uuid::now_v7().to_string(),
        sending_anchor: session.account().to_string(),
        status: Status::PendingSender.as_str().into(),
        status_message: None,
        asset_code: asset.code.clone(),
        asset_issuer: asset.issuer.to_string(),
        funding_method,
        amount_in: amount_string(amount),
        amount_fee: amount_string(fee),
        amount_out,
        fee_details,
        sender_id,
        receiver_id,
        stellar_account_id: Some(asset.distribution_account.to_string()),
        stellar_memo_type: Some("id".into()),
        stellar_memo: None,
        refund_memo: refund.as_ref().map(|r| r.0.clone()),
        refund_memo_type: refund.map(|r| r.1),
        fields: Value::Object(fields).to_string(),
        required_info_message: None,
        required_info_updates: None,
        stellar_transaction_id: None,
        external_transaction_id: None,
        refunds: None,
        paid: false,
        version: 0,
        callback_url: None,
        conversion: conversion.as_ref().map(|c| c.conversion.column()),
        started_at: now,
        updated_at: now,
        completed_at: None,
        expires_at: Some(now + anchor.config.sep31.payment_timeout_secs as i64),
    };
    // A quoted transaction expires with its quote (SEP31-42).
    if let Some(quote_expires_at) = conversion
        .as_ref()
        .and_then(|c| c.conversion.quote_expires_at)
    {
        row.expires_at = row.expires_at.map(|at| at.min(quote_expires_at));
    }
    if awaiting_kyc {
        row.status = Status::PendingReceiver.as_str().into();
        row.status_message = Some(
            "waiting for the sender's and receiver's KYC: register them with SEP-12 PUT /customer?transaction_id=<id>&type=<type>".into(),
        );
        row.stellar_account_id = None;
        row.stellar_memo_type = None;
        row.expires_at = None;
    }
    // A memo is one transaction's (SEP31-26): draw again in the unlikely case it is taken.
    let mut stored = false;
    let claim = conversion.as_ref().and_then(|c| c.claim());
    for _ in 0..5 {
        row.stellar_memo = (!awaiting_kyc).then(new_memo);
        match anchor
            .store
            .insert_transaction_using(
                &row,
                &format!("sending_anchor:{}", row.sending_anchor),
                claim,
            )
            .await?
        {
            Inserted::Stored => {
                stored = true;
                break;
            }
            Inserted::MemoTaken => {}
            Inserted::QuoteUnavailable => {
                return Err(ApiError::bad_request(format!(
                    "quote {} was already used by another transaction, or has expired",
                    claim.map(|c| c.id).unwrap_or_default()
                )));
            }
        }
    }
    if !stored {
        return Err(ApiError::Unavailable(
            "could not reserve a memo for the transaction; try again".into(),
        ));
    }
    tracing::info!(transaction = %row.id, asset = %row.asset_code, "SEP-31 transaction created");
    // Only these four keys (deployed validators allow no others); the payment details only
    // once the transaction can be paid.
    let body = if awaiting_kyc {
        json!({ "id": row.id })
    } else {
        json!({
            "id": row.id,
            "stellar_account_id": row.stellar_account_id,
            "stellar_memo_type": row.stellar_memo_type,
            "stellar_memo": row.stellar_memo,
        })
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// An id memo: a random number below 2^63, since some clients parse memos as signed
/// 64-bit integers (AMB-25), and never 0.
pub fn new_memo() -> String {
    let n = u64::from_le_bytes(stellar::random_bytes::<8>()) >> 1;
    n.max(1).to_string()
}

/// `refund_memo` and `refund_memo_type`: both or neither, and valid together (SEP31-19).
fn refund_memo(body: &Map<String, Value>) -> Result<Option<(String, String)>, ApiError> {
    let memo = match body.get("refund_memo") {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => text(body, "refund_memo")?,
    };
    let kind = text(body, "refund_memo_type")?;
    let (memo, kind) = match (memo, kind) {
        (None, None) => return Ok(None),
        (Some(memo), Some(kind)) => (memo, kind),
        _ => {
            return Err(ApiError::bad_request(
                "refund_memo and refund_memo_type go together: send both or neither",
            ));
        }
    };
    // Checked as a Stellar memo of that type; kept as sent, for the refund payment.
    let valid = match Memo::parse(&memo, Some(&kind)) {
        Ok(_) => true,
        Err(MemoError::UnknownType(other)) => {
            return Err(ApiError::bad_request(format!(
                "refund_memo_type {other:?} is not one of id, text, hash"
            )));
        }
        Err(MemoError::Invalid(_)) => false,
    };
    if !valid {
        return Err(ApiError::bad_request(format!(
            "refund_memo is not a valid {kind} memo ({})",
            match kind.as_str() {
                "id" => "a whole number below 2^64",
                "text" => "at most 28 bytes",
                _ => "the base64 of 32 bytes",
            }
        )));
    }
    Ok(Some((memo, kind)))
}

/// The deprecated `fields.transaction` values: known names only, every required one
/// present (else `transaction_info_needed`, SEP31-27).
fn transaction_fields(
    asset: &ReceiveAsset,
    body: &Map<String, Value>,
) -> Result<Result<Map<String, Value>, Response>, ApiError> {
    let wanted = &asset.settings.fields;
    let given = match body.get("fields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(fields)) => match fields.get("transaction") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(t)) => t.clone(),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fields.transaction must be an object, not {}",
                    json_kind(other)
                )));
            }
        },
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fields must be an object like {{\"transaction\": {{...}}}}, not {}",
                json_kind(other)
            )));
        }
    };
    let mut fields = Map::new();
    for (name, value) in given {
        if !wanted.contains_key(&name) {
            return Err(ApiError::bad_request(format!(
                "fields.transaction.{name} is not a field this anchor asks for; GET /info lists them"
            )));
        }
        let Value::String(value) = value else {
            return Err(ApiError::bad_request(format!(
                "fields.transaction.{name} must be a string"
            )));
        };
        if let Some(choices) = &wanted[&name].choices
            && !choices.contains(&value)
        {
            return Err(ApiError::bad_request(format!(
                "fields.transaction.{name} must be one of {}",
                choices.join(", ")
            )));
        }
        fields.insert(name, Value::String(value));
    }
    let missing: Map<String, Value> = wanted
        .iter()
        .filter(|(name, f)| !f.optional && !fields.contains_key(*name))
        .map(|(name, f)| {
            let lang = body.get("lang").and_then(Value::as_str);
            (name.clone(), super::info::field_json(f, lang))
        })
        .collect();
    if !missing.is_empty() {
        return Ok(Err(structured_400(json!({
            "error": "transaction_info_needed",
            "fields": { "transaction": missing },
        }))));
    }
    Ok(Ok(fields))
}

/// `{"transaction": {...}}`, as `GET /transactions/:id` answers and callbacks carry. Its
/// `Display` is the JSON. Serialized from the row's own strings, without building a
/// `serde_json::Value` tree first: that tree was a tenth of a GET.
#[derive(Serialize)]
pub struct TransactionBody<'a> {
    pub transaction: TransactionView<'a>,
}

#[derive(Serialize)]
pub struct TransactionView<'a> {
    id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<&'a str>,
    amount_in: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_in_asset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_out: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_out_asset: Option<String>,
    amount_fee: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_fee_asset: Option<String>,
    fee_details: FeeDetails<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quote_id: Option<String>,
    started_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stellar_account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stellar_memo_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stellar_memo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stellar_transaction_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_transaction_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_info_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_info_updates: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refunds: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct FeeDetails<'a> {
    total: &'a str,
    asset: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Vec<&'a RawValue>>,
}

impl std::fmt::Display for TransactionBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

/// The body of a transaction. The JSON columns are shown when they hold what they should
/// (an array of fee parts, JSON values), and left out otherwise; a converting transaction
/// has SEP-38's keys too: its assets (the fee is in the asset in), its quote, and no
/// `amount_out` before an indicative price is taken.
pub fn transaction_body(row: &TransactionRow) -> TransactionBody<'_> {
    let details = serde_json::from_str::<Vec<&RawValue>>(&row.fee_details)
        .ok()
        .filter(|details| !details.is_empty());
    fn json_column(column: &Option<String>) -> Option<&RawValue> {
        serde_json::from_str(column.as_deref()?).ok()
    }
    let conversion = crate::sep38::sep31::conversion_of(row);
    let amount_out = match &conversion {
        Some(c) if c.price.is_none() => None,
        _ => Some(row.amount_out.as_str()),
    };
    let (amount_in_asset, amount_out_asset, quote_id) = match conversion {
        Some(c) => (
            Some(c.amount_in_asset),
            Some(c.amount_out_asset),
            c.quote_id,
        ),
        None => (None, None, None),
    };
    TransactionBody {
        transaction: TransactionView {
            id: &row.id,
            status: &row.status,
            status_message: row.status_message.as_deref(),
            amount_in: &row.amount_in,
            amount_out,
            amount_out_asset,
            amount_fee: &row.amount_fee,
            amount_fee_asset: amount_in_asset.clone(),
            fee_details: FeeDetails {
                total: &row.amount_fee,
                asset: match &amount_in_asset {
                    Some(asset) => asset.clone(),
                    None => format!("stellar:{}:{}", row.asset_code, row.asset_issuer),
                },
                details,
            },
            amount_in_asset,
            quote_id,
            started_at: iso_time(row.started_at),
            updated_at: iso_time(row.updated_at),
            completed_at: row.completed_at.map(iso_time),
            stellar_account_id: row.stellar_account_id.as_deref(),
            stellar_memo_type: row.stellar_memo_type.as_deref(),
            stellar_memo: row.stellar_memo.as_deref(),
            stellar_transaction_id: row.stellar_transaction_id.as_deref(),
            external_transaction_id: row.external_transaction_id.as_deref(),
            required_info_message: row.required_info_message.as_deref(),
            required_info_updates: json_column(&row.required_info_updates),
            refunds: json_column(&row.refunds),
        },
    }
}

/// The transaction `id`, if this sending anchor created it; another's is a 404 exactly like
/// an unknown id (AMB-34).
async fn owned(
    anchor: &AppState,
    session: &crate::http::Session,
    id: &str,
) -> Result<TransactionRow, ApiError> {
    anchor
        .store
        .transaction(id)
        .await?
        .filter(|row| row.sending_anchor == session.account().to_string())
        .ok_or_else(|| ApiError::NotFound(format!("transaction not found: {id}")))
}

pub async fn get_transaction(
    State(anchor): State<AppState>,
    SendingAnchor(session): SendingAnchor,
    PathSegment(id): PathSegment,
) -> Result<Response, ApiError> {
    let row = owned(&anchor, &session, &id).await?;
    Ok(Json(transaction_body(&row)).into_response())
}

pub async fn put_callback(
    State(anchor): State<AppState>,
    SendingAnchor(session): SendingAnchor,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<StatusCode, ApiError> {
    let row = owned(&anchor, &session, &id).await?;
    let url = match body.get("url") {
        Some(Value::String(url)) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => {
            return Err(ApiError::bad_request(
                "url is required: the URL to POST status changes to",
            ));
        }
    };
    let parsed = crate::notify::CallbackPolicy::from_config(&anchor.config)
        .check(&url)
        .map_err(ApiError::BadRequest)?;
    anchor
        .store
        .set_transaction_callback(&row.id, parsed.as_str())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /transactions/:id` (deprecated since SEP-31 2.5): the fields asked for in
/// `required_info_updates`, only while the status is `pending_transaction_info_update`.
pub async fn patch_transaction(
    State(anchor): State<AppState>,
    SendingAnchor(session): SendingAnchor,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<Response, ApiError> {
    let row = owned(&anchor, &session, &id).await?;
    if row.status() != Status::PendingTransactionInfoUpdate {
        return Err(ApiError::bad_request(format!(
            "no update was requested: the transaction is {}, and fields can only be updated in pending_transaction_info_update",
            row.status
        )));
    }
    let requested: Map<String, Value> = row
        .required_info_updates
        .as_deref()
        .and_then(|u| serde_json::from_str::<Value>(u).ok())
        .and_then(|u| u.get("transaction").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    let given = body
        .get("fields")
        .and_then(|f| f.get("transaction"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::bad_request(
                "send {\"fields\": {\"transaction\": {...}}} with the fields asked for",
            )
        })?;
    for (name, value) in given {
        if !requested.contains_key(name) {
            return Err(ApiError::bad_request(format!(
                "fields.transaction.{name} was not asked for; only the fields in required_info_updates can be updated"
            )));
        }
        let Some(value) = value.as_str() else {
            return Err(ApiError::bad_request(format!(
                "fields.transaction.{name} must be a string"
            )));
        };
        // The choices the operator gave with the request, as POST holds to the configured ones.
        if let Some(choices) = requested[name].get("choices").and_then(Value::as_array)
            && !choices.iter().any(|c| c.as_str() == Some(value))
        {
            let choices: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
            return Err(ApiError::bad_request(format!(
                "fields.transaction.{name} must be one of {}",
                choices.join(", ")
            )));
        }
    }
    let missing: Vec<&String> = requested
        .iter()
        .filter(|(name, spec)| {
            !given.contains_key(*name)
                && !spec
                    .get("optional")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
        })
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!(
            "fields.transaction is missing {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let actor = format!("sending_anchor:{}", session.account());
    let updated = anchor
        .store
        .transition(
            &row.id,
            Status::PendingReceiver,
            &actor,
            Some("transaction fields updated (PATCH)"),
            |next| {
                let mut fields: Map<String, Value> =
                    serde_json::from_str(&next.fields).unwrap_or_default();
                for (name, value) in given {
                    fields.insert(name.clone(), value.clone());
                }
                next.fields = Value::Object(fields).to_string();
                next.required_info_message = None;
                next.required_info_updates = None;
            },
            |next| transaction_body(next).to_string(),
        )
        .await
        .map_err(transition_error)?;
    anchor.outbox_wake.notify_one();
    anchor.payout_wake.notify_one();
    Ok(Json(transaction_body(&updated)).into_response())
}

pub fn transition_error(e: TransitionError) -> ApiError {
    match e {
        TransitionError::NotFound(id) => ApiError::NotFound(format!("transaction not found: {id}")),
        TransitionError::Illegal(e) => ApiError::bad_request(e.to_string()),
        TransitionError::Busy => ApiError::Unavailable(e.to_string()),
        TransitionError::Store(e) => e.into(),
    }
}
