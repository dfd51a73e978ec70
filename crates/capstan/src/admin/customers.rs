//! Operator endpoints for SEP-12 customers: list, read, accept, reject, ask for fields again.
//! Every decision is followed by a status check, so registered callbacks hear of it.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::anchor::AppState;
use crate::http::{ApiError, FormOrJson, PathSegment, Query};
use crate::kyc::builtin::field_states;
use crate::kyc::status::customer_info;
use crate::store::CustomerRow;
use crate::store::iso_time;

const MAX_PAGE: i64 = 200;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pending_review: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    /// `updated_at` (unix seconds) of the last customer of the previous page.
    #[serde(default)]
    before: Option<String>,
    /// The id of that customer: with it, the others changed in the same second are not
    /// skipped.
    #[serde(default)]
    before_id: Option<String>,
}

pub async fn list(
    State(anchor): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let number = |name: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be a whole number")))
            })
            .transpose()
    };
    let limit = number("limit", &query.limit)?
        .unwrap_or(50)
        .clamp(1, MAX_PAGE);
    let before = number("before", &query.before)?;
    let before_id = query.before_id.as_deref().filter(|id| !id.is_empty());
    if before_id.is_some_and(|id| id.contains('\0')) {
        return Err(ApiError::bad_request("before_id holds a NUL character"));
    }
    let after = match (before, before_id) {
        (Some(at), id) => Some((at, id)),
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "before_id goes with before (the updated_at_unix of the same customer)",
            ));
        }
    };
    let pending = match query.pending_review.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "pending_review must be true or false",
            ));
        }
    };
    let rows = anchor.store.list_customers(limit, after, pending).await?;
    let mut customers = Vec::with_capacity(rows.len());
    for row in &rows {
        customers.push(summary(&anchor, row).await?);
    }
    Ok(Json(json!({ "customers": customers })))
}

pub async fn show(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
) -> Result<Json<Value>, ApiError> {
    let row = customer(&anchor, &id).await?;
    detail(&anchor, &row).await.map(Json)
}

pub async fn accept(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
) -> Result<Json<Value>, ApiError> {
    let row = builtin_customer(&anchor, &id).await?;
    anchor.store.accept_customer(&row.id).await?;
    decided(&anchor, &row.id).await
}

#[derive(Deserialize)]
pub struct RejectBody {
    reason: Option<String>,
}

pub async fn reject(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<RejectBody>,
) -> Result<Json<Value>, ApiError> {
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("reason is required: it is the message the client reads")
        })?;
    no_nul("reason", &reason)?;
    let row = builtin_customer(&anchor, &id).await?;
    anchor
        .store
        .set_customer_rejection(&row.id, Some(&reason))
        .await?;
    decided(&anchor, &row.id).await
}

#[derive(Deserialize)]
pub struct RequestInfoBody {
    fields: Option<BTreeMap<String, String>>,
}

/// Asks for fields again (or for fields the type does not list): each becomes `REJECTED`
/// with the reason given, and the customer `NEEDS_INFO`.
pub async fn request_info(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
    FormOrJson(body): FormOrJson<RequestInfoBody>,
) -> Result<Json<Value>, ApiError> {
    let fields = body.fields.filter(|f| !f.is_empty()).ok_or_else(|| {
        ApiError::bad_request("fields is required: an object of SEP-9 field name to reason")
    })?;
    let mut reasons = Vec::with_capacity(fields.len());
    for (name, reason) in fields {
        if stellar::sep9::field(&name).is_none() {
            return Err(ApiError::bad_request(format!(
                "{name} is not a SEP-9 field name"
            )));
        }
        let reason = reason.trim().to_owned();
        if reason.is_empty() {
            return Err(ApiError::bad_request(format!(
                "the reason for {name} is empty: it is the message the client reads"
            )));
        }
        no_nul(&format!("the reason for {name}"), &reason)?;
        reasons.push((name, reason));
    }
    let row = builtin_customer(&anchor, &id).await?;
    anchor
        .store
        .request_customer_fields(&row.id, &reasons)
        .await?;
    decided(&anchor, &row.id).await
}

/// For a business server that changed a customer's status: capstan reads the customer
/// again and tells a registered callback URL.
pub async fn notify(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
) -> Result<Json<Value>, ApiError> {
    let row = customer(&anchor, &id).await?;
    crate::kyc::changed(&anchor, &row.id).await;
    Ok(Json(json!({ "id": row.id })))
}

/// An uploaded file's bytes, for a reviewer or the business server.
pub async fn file(
    State(anchor): State<AppState>,
    PathSegment(id): PathSegment,
) -> Result<Response, ApiError> {
    let file = anchor
        .store
        .file(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("file not found: {id}")))?;
    let bytes = anchor
        .files
        .bytes(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("the bytes of file {id} are missing")))?;
    Ok((
        [
            (CONTENT_TYPE, file.content_type.clone()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// PostgreSQL cannot store a NUL in TEXT, and the client could not read one.
pub(super) fn no_nul(what: &str, text: &str) -> Result<(), ApiError> {
    if text.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "{what} holds a NUL character"
        )));
    }
    Ok(())
}

async fn customer(anchor: &AppState, id: &str) -> Result<CustomerRow, ApiError> {
    anchor
        .store
        .customer_by_id(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("customer not found for id: {id}")))
}

/// Decisions are made on customers capstan keeps; a business server decides on its own.
async fn builtin_customer(anchor: &AppState, id: &str) -> Result<CustomerRow, ApiError> {
    if anchor.config.kyc.business.is_some() {
        return Err(ApiError::bad_request(
            "customers are kept by the business server (kyc.business_url): decide there, then POST /admin/customers/{id}/notify",
        ));
    }
    customer(anchor, id).await
}

async fn decided(anchor: &AppState, id: &str) -> Result<Json<Value>, ApiError> {
    crate::kyc::changed(anchor, id).await;
    let row = customer(anchor, id).await?;
    detail(anchor, &row).await.map(Json)
}

/// The customer's status for each configured type (built-in store only).
async fn statuses(anchor: &AppState, row: &CustomerRow) -> Result<Value, ApiError> {
    if anchor.config.kyc.business.is_some() {
        return Ok(Value::Null);
    }
    let fields = field_states(&anchor.store.customer_fields(&row.id).await?);
    let statuses: BTreeMap<&str, &str> = anchor
        .config
        .kyc
        .types
        .iter()
        .map(|(name, kind)| {
            let info = customer_info(Some(&row.id), kind, &fields, row.rejection.as_deref());
            (name.as_str(), info.status.as_str())
        })
        .collect();
    Ok(json!(statuses))
}

async fn summary(anchor: &AppState, row: &CustomerRow) -> Result<Value, ApiError> {
    Ok(json!({
        "id": row.id,
        "account": row.account,
        "memo": (!row.memo.is_empty()).then_some(&row.memo),
        "memo_type": (!row.memo_type.is_empty()).then_some(&row.memo_type),
        "type": (!row.last_type.is_empty()).then_some(&row.last_type),
        "statuses": statuses(anchor, row).await?,
        "rejection": row.rejection,
        "created_at": iso_time(row.created_at),
        "updated_at": iso_time(row.updated_at),
        "updated_at_unix": row.updated_at,
    }))
}

/// Everything capstan holds on the customer: values included, since this API is the
/// operator's own.
async fn detail(anchor: &AppState, row: &CustomerRow) -> Result<Value, ApiError> {
    let mut value = summary(anchor, row).await?;
    let fields: BTreeMap<String, Value> = anchor
        .store
        .customer_fields(&row.id)
        .await?
        .into_iter()
        .map(|f| {
            (
                f.name,
                json!({
                    "value": f.value,
                    "file_id": f.file_id,
                    "status": f.status,
                    "error": f.error,
                    "verification_code": f.verification_code,
                    "updated_at": iso_time(f.updated_at),
                }),
            )
        })
        .collect();
    let files: Vec<Value> = anchor
        .store
        .files_of_customer(&row.id)
        .await?
        .into_iter()
        .map(|f| json!({"file_id": f.id, "content_type": f.content_type, "size": f.size, "created_at": iso_time(f.created_at)}))
        .collect();
    let callback = anchor
        .store
        .customer_callback(&row.id)
        .await?
        .map(|c| json!({"url": c.url, "type": c.kyc_type, "last_status": c.last_status}));
    value["fields"] = json!(fields);
    value["files"] = json!(files);
    value["callback"] = json!(callback);
    Ok(value)
}
