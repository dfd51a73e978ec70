//! SEP-12 KYC API, served under KYC_SERVER (`<base_url>/kyc`).
//!
//! The handlers authenticate the caller, work out which customer a request names and check
//! every value against SEP-9; the [`Customers`](crate::kyc::Customers) integration does the
//! rest. Every endpoint requires a SEP-10 token, and a caller only reaches the customers
//! its own account registered.

mod params;

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, put};
use serde_json::{Value, json};
use stellar::ClientAccount;
use stellar::sep9::{self, FieldType};

use crate::anchor::AppState;
use crate::http::{ApiError, PathSegment, Session};
use crate::kyc::{
    Caller, CustomerQuery, CustomerUpdate, FieldStatus, Identity, Lookup, MAX_TEXT_MEMO_BYTES,
    Memo, MemoError, MemoType,
};
use params::{Params, Sep12Params};

/// The SEP-12 version these endpoints follow.
pub const SEP12_VERSION: &str = "1.15.0";

pub fn router(max_file_bytes: usize, max_body_bytes: usize) -> Router<AppState> {
    // A PUT may carry a few documents at once; each file is held to max_file_bytes.
    let upload_limit = max_file_bytes
        .saturating_mul(3)
        .saturating_add(max_body_bytes);
    Router::new()
        .route("/kyc/customer", get(get_customer).put(put_customer))
        .route("/kyc/customer/{account}", delete(delete_customer))
        .route("/kyc/customer/callback", put(put_callback))
        .route("/kyc/customer/verification", put(put_verification))
        .route("/kyc/customer/files", get(get_files).post(post_file))
        .layer(DefaultBodyLimit::max(upload_limit))
}

/// The caller, and the customer identity the request's account and memo name.
struct Resolved {
    caller: Caller,
    identity: Identity,
    /// A SEP-31 transaction (and whether the sender, else the receiver) that a customer
    /// created by this request is to be linked to.
    link: Option<(String, bool)>,
}

/// Applies SEP12-07..11: `account` must be the token's; a token that names one user of a
/// shared account (`G:memo`, `M...`) only reaches that user; a token of a whole account
/// may name any memo.
fn resolve(session: &Session, params: &mut Params) -> Result<Resolved, ApiError> {
    if let Some(account) = params.take("account") {
        let named = ClientAccount::parse(&account, None).map_err(|_| {
            ApiError::bad_request(format!(
                "account {account:?} is not a Stellar account (G... or M...)"
            ))
        })?;
        let same = named.account == session.account()
            && (named.memo.is_none() || named.memo == session.memo());
        if !same {
            return Err(ApiError::Forbidden(
                "account does not match the authenticated account".into(),
            ));
        }
    }
    let memo_type = params.take("memo_type");
    let memo = params
        .take("memo")
        .map(|m| parse_memo(&m, memo_type.as_deref()))
        .transpose()?;
    let memo = match session.memo() {
        Some(token_memo) => {
            let own = Memo {
                value: token_memo.to_string(),
                kind: MemoType::Id,
            };
            if memo.as_ref().is_some_and(|m| m.value != own.value) {
                return Err(ApiError::Forbidden(format!(
                    "memo does not match the authenticated account's memo ({token_memo})"
                )));
            }
            Some(own)
        }
        None => memo,
    };
    Ok(Resolved {
        caller: Caller {
            account: session.account(),
            token_memo: session.memo().map(|m| m.to_string()),
        },
        identity: Identity {
            account: session.account(),
            memo,
        },
        link: None,
    })
}

/// A memo in canonical form (see [`Memo::parse`]), with SEP-12's messages.
fn parse_memo(value: &str, memo_type: Option<&str>) -> Result<Memo, ApiError> {
    Memo::parse(value, memo_type).map_err(|e| {
        ApiError::bad_request(match e {
            MemoError::UnknownType(other) => {
                format!("memo_type {other:?} is not one of id, text, hash")
            }
            MemoError::Invalid(MemoType::Id) => format!(
                "memo {value:?} is not an id memo: a whole number from 0 to {}",
                u64::MAX
            ),
            MemoError::Invalid(MemoType::Hash) => {
                "memo is not a hash memo: the base64 encoding of 32 bytes".into()
            }
            MemoError::Invalid(_) => {
                format!("memo is longer than the {MAX_TEXT_MEMO_BYTES} bytes a text memo holds")
            }
        })
    })
}

/// `type`, checked against the configured types (400 for an unknown one, SEP12-22).
fn customer_type(anchor: &AppState, params: &mut Params) -> Result<Option<String>, ApiError> {
    match params.take("type") {
        Some(kind) if anchor.config.kyc.types.contains_key(&kind) => Ok(Some(kind)),
        Some(kind) => Err(ApiError::bad_request(format!(
            "unknown type: {kind}; this anchor's types are {}",
            anchor.config.kyc.type_names()
        ))),
        None => Ok(None),
    }
}

/// `id`, else `transaction_id` (which needs `type`, SEP12-19), else the account and memo.
fn lookup(
    params: &mut Params,
    kind: Option<&str>,
    identity: &Identity,
) -> Result<Lookup, ApiError> {
    if let Some(id) = params.take("id") {
        return Ok(Lookup::Id(id));
    }
    if let Some(transaction) = params.take("transaction_id") {
        if kind.is_none() {
            return Err(ApiError::bad_request(
                "type is required with transaction_id (sep31-sender or sep31-receiver)",
            ));
        }
        return Ok(Lookup::Transaction(transaction));
    }
    Ok(Lookup::Identity(identity.clone()))
}

/// A `transaction_id` + `type` names the sender or receiver of a SEP-31 transaction the
/// caller's account created (SEP12-19, SEP31-48). Transactions belong to the sending
/// anchor's base account, so its customers are reached through them whatever memo the
/// token carries (AMB-14).
async fn via_transaction(
    anchor: &AppState,
    resolved: &mut Resolved,
    lookup: Lookup,
    kind: Option<&str>,
) -> Result<Lookup, ApiError> {
    let Lookup::Transaction(id) = lookup else {
        return Ok(lookup);
    };
    let transaction = anchor
        .store
        .transaction(&id)
        .await?
        .filter(|t| t.sending_anchor == resolved.caller.account.to_string())
        .ok_or_else(|| ApiError::NotFound(format!("transaction not found: {id}")))?;
    let settings = anchor
        .receive_assets
        .iter()
        .find(|a| a.code == transaction.asset_code)
        .map(|a| &a.settings);
    let sender_type = settings.and_then(|s| s.sender_type.as_deref());
    let receiver_type = settings.and_then(|s| s.receiver_type.as_deref());
    let (customer, sender) = if kind.is_some() && kind == sender_type {
        (transaction.sender_id, true)
    } else if kind.is_some() && kind == receiver_type {
        (transaction.receiver_id, false)
    } else {
        return Err(ApiError::bad_request(format!(
            "type {} is neither the sender type ({}) nor the receiver type ({}) of transaction {id}",
            kind.unwrap_or_default(),
            sender_type.unwrap_or("none"),
            receiver_type.unwrap_or("none"),
        )));
    };
    resolved.caller.token_memo = None;
    if let Some(customer) = customer {
        return Ok(Lookup::Id(customer));
    }
    // SEP-31 3.0 asynchronous KYC: the party is not registered yet. It is registered under
    // a name of the transaction's own (GET answers NEEDS_INFO with the type's fields), and a
    // PUT links the new customer to the transaction.
    let role = if sender { "sender" } else { "receiver" };
    resolved.identity = Identity {
        account: resolved.caller.account,
        memo: Some(Memo {
            value: format!("{id}:{role}"),
            kind: MemoType::Transaction,
        }),
    };
    resolved.link = Some((id, sender));
    Ok(Lookup::Identity(resolved.identity.clone()))
}

/// Links a customer registered through `transaction_id` + `type` to its transaction, unless
/// the transaction got a customer for that party meanwhile.
async fn link_customer(
    anchor: &AppState,
    (transaction_id, sender): (String, bool),
    customer_id: &str,
) -> Result<(), ApiError> {
    for _ in 0..5 {
        let Some(transaction) = anchor.store.transaction(&transaction_id).await? else {
            return Ok(());
        };
        let linked = if sender {
            &transaction.sender_id
        } else {
            &transaction.receiver_id
        };
        if linked.is_some() {
            return Ok(());
        }
        if anchor
            .store
            .link_transaction_customer(&transaction, sender, customer_id)
            .await?
        {
            return Ok(());
        }
    }
    Err(ApiError::Unavailable(
        "the transaction kept changing; send the request again".into(),
    ))
}

/// `lang` is accepted and answered in English, the one language served (an unknown
/// language falls back rather than failing).
fn lang(params: &mut Params) -> String {
    params.take("lang");
    "en".into()
}

pub async fn get_customer(
    State(anchor): State<AppState>,
    session: Session,
    Sep12Params(mut params): Sep12Params,
) -> Result<impl IntoResponse, ApiError> {
    let mut resolved = resolve(&session, &mut params)?;
    let kind = customer_type(&anchor, &mut params)?;
    let lookup = lookup(&mut params, kind.as_deref(), &resolved.identity)?;
    let lookup = via_transaction(&anchor, &mut resolved, lookup, kind.as_deref()).await?;
    let query = CustomerQuery {
        caller: resolved.caller,
        lookup,
        kind: kind.unwrap_or_else(|| anchor.config.kyc.default_type.clone()),
        lang: lang(&mut params),
    };
    let info = anchor.customers.get(&query).await?;
    Ok(Json(info.to_json()))
}

pub async fn put_customer(
    State(anchor): State<AppState>,
    session: Session,
    Sep12Params(mut params): Sep12Params,
) -> Result<impl IntoResponse, ApiError> {
    let mut resolved = resolve(&session, &mut params)?;
    let kind = customer_type(&anchor, &mut params)?;
    let lookup = lookup(&mut params, kind.as_deref(), &resolved.identity)?;
    let lookup = via_transaction(&anchor, &mut resolved, lookup, kind.as_deref()).await?;
    lang(&mut params);
    let link = resolved.link.take();
    let mut update = CustomerUpdate {
        caller: resolved.caller,
        lookup,
        identity: resolved.identity,
        kind,
        fields: BTreeMap::new(),
        files: BTreeMap::new(),
        verifications: BTreeMap::new(),
    };
    // Only a SEP-9 name no type collects needs the operator's requests (and their query).
    let requested = if names_uncollected(&anchor, &params) {
        requested_fields(&anchor, &update.caller, &update.lookup).await?
    } else {
        Vec::new()
    };
    classify_fields(&anchor, &mut params, &mut update, &requested)?;
    // Binary fields become uploads of the caller's, attached by the PUT.
    let mut uploaded = Vec::new();
    for (name, upload) in std::mem::take(&mut params.files) {
        let file = anchor
            .files
            .save(
                &update.caller,
                update.identity.memo_key(),
                &upload.content_type,
                &upload.bytes,
            )
            .await;
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                discard(&anchor, &uploaded).await;
                return Err(e.into());
            }
        };
        uploaded.push(file.id.clone());
        update.files.insert(name, file.id);
    }
    let id = match anchor.customers.put(&update).await {
        Ok(id) => id,
        Err(e) => {
            discard(&anchor, &uploaded).await;
            return Err(e.into());
        }
    };
    if let Some(link) = link {
        link_customer(&anchor, link, &id).await?;
    }
    crate::kyc::changed(&anchor, &id).await;
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))))
}

async fn discard(anchor: &AppState, files: &[String]) {
    for id in files {
        anchor.files.discard(id).await;
    }
}

/// The fields an operator asked this customer for (`request-info`), which it may send even
/// when no type lists them: otherwise such a request could never be answered.
async fn requested_fields(
    anchor: &AppState,
    caller: &Caller,
    lookup: &Lookup,
) -> Result<Vec<String>, ApiError> {
    let row = match lookup {
        Lookup::Id(id) => anchor
            .store
            .customer_by_id(id)
            .await?
            .filter(|row| caller.owns(&row.account, &row.memo)),
        Lookup::Identity(identity) => {
            anchor
                .store
                .customer_by_identity(&identity.account.to_string(), identity.memo_key())
                .await?
        }
        Lookup::Transaction(_) => None,
    };
    let Some(row) = row else {
        return Ok(Vec::new());
    };
    Ok(anchor
        .store
        .customer_fields(&row.id)
        .await?
        .into_iter()
        .filter(|f| f.status == FieldStatus::Rejected.as_str())
        .map(|f| f.name)
        .collect())
}

/// Whether the request names a SEP-9 field (as a value, `_file_id` or `_verification`)
/// that no configured type collects.
fn names_uncollected(anchor: &AppState, params: &Params) -> bool {
    params.text.keys().chain(params.files.keys()).any(|key| {
        let name = if sep9::field(key).is_some() {
            key.as_str()
        } else {
            key.strip_suffix("_verification")
                .or_else(|| key.strip_suffix("_file_id"))
                .unwrap_or(key)
        };
        sep9::field(name).is_some() && !anchor.config.kyc.collects(name)
    })
}

/// Sorts the remaining parameters into SEP-9 values, `<field>_file_id` references and
/// `<field>_verification` codes, checking each (400 with the field's name otherwise).
fn classify_fields(
    anchor: &AppState,
    params: &mut Params,
    update: &mut CustomerUpdate,
    requested: &[String],
) -> Result<(), ApiError> {
    let kyc = &anchor.config.kyc;
    let collected = |name: &str| -> Result<sep9::FieldSpec, ApiError> {
        let spec = sep9::field(name).ok_or_else(|| {
            ApiError::bad_request(format!("unknown field: {name} is not a SEP-9 field name"))
        })?;
        if !kyc.collects(name) && !requested.iter().any(|r| r == name) {
            return Err(ApiError::bad_request(format!(
                "{name} is not a field this anchor collects; GET /customer lists the fields of each type"
            )));
        }
        Ok(spec)
    };
    for (key, value) in std::mem::take(&mut params.text) {
        if sep9::field(&key).is_none() {
            if let Some(name) = key.strip_suffix("_verification") {
                collected(name)?;
                update.verifications.insert(name.to_owned(), value);
                continue;
            }
            if let Some(name) = key.strip_suffix("_file_id") {
                if collected(name)?.kind != FieldType::Binary {
                    return Err(ApiError::bad_request(format!(
                        "{key}: {name} is not a binary field; send its value as {name}"
                    )));
                }
                update.files.insert(name.to_owned(), value);
                continue;
            }
        }
        let spec = collected(&key)?;
        if spec.kind == FieldType::Binary {
            return Err(ApiError::bad_request(format!(
                "{key} is a binary field: upload it as a file part of a multipart/form-data body, or send {key}_file_id"
            )));
        }
        spec.validate(&value)
            .map_err(|reason| ApiError::bad_request(format!("invalid {key}: {reason}")))?;
        update.fields.insert(key, value);
    }
    for (name, upload) in &params.files {
        let spec = collected(name)?;
        if spec.kind != FieldType::Binary {
            return Err(ApiError::bad_request(format!(
                "{name} is a {} field, not a file; send it as a text part",
                spec.kind
            )));
        }
        if upload.bytes.is_empty() {
            return Err(ApiError::bad_request(format!("{name} is an empty file")));
        }
        if update.files.contains_key(name) {
            return Err(ApiError::bad_request(format!(
                "{name} is given both as a file and as {name}_file_id"
            )));
        }
    }
    Ok(())
}

/// `DELETE /customer/{account}`: only the account itself (with its memo, for one user of a
/// shared account) may erase its customer (SEP12-30).
pub async fn delete_customer(
    State(anchor): State<AppState>,
    session: Session,
    PathSegment(account): PathSegment,
    Sep12Params(mut params): Sep12Params,
) -> Result<impl IntoResponse, ApiError> {
    let named = ClientAccount::parse(&account, None).map_err(|_| {
        ApiError::bad_request(format!(
            "{account:?} is not a Stellar account (G... or M...)"
        ))
    })?;
    if named.account != session.account() || (named.memo.is_some() && named.memo != session.memo())
    {
        return Err(ApiError::Forbidden(
            "a customer can only be deleted with a token of its own account".into(),
        ));
    }
    if let Some(memo) = named.memo
        && !params.text.contains_key("memo")
    {
        params.text.insert("memo".into(), memo.to_string());
    }
    let resolved = resolve(&session, &mut params)?;
    anchor.customers.delete(&resolved.identity).await?;
    Ok(Json(json!({})))
}

/// `PUT /customer/callback`: registers (or replaces) the URL told of status changes.
pub async fn put_callback(
    State(anchor): State<AppState>,
    session: Session,
    Sep12Params(mut params): Sep12Params,
) -> Result<impl IntoResponse, ApiError> {
    let mut resolved = resolve(&session, &mut params)?;
    let kind = customer_type(&anchor, &mut params)?;
    let url = params
        .take("url")
        .ok_or_else(|| ApiError::bad_request("url is required"))?;
    let parsed = crate::notify::CallbackPolicy::from_config(&anchor.config)
        .check(&url)
        .map_err(ApiError::BadRequest)?;
    let lookup = lookup(&mut params, kind.as_deref(), &resolved.identity)?;
    let lookup = via_transaction(&anchor, &mut resolved, lookup, kind.as_deref()).await?;
    let row = match &lookup {
        Lookup::Id(id) => anchor
            .store
            .customer_by_id(id)
            .await?
            .filter(|row| resolved.caller.owns(&row.account, &row.memo))
            .ok_or_else(|| ApiError::NotFound(format!("customer not found for id: {id}")))?,
        Lookup::Identity(identity) => anchor
            .store
            .customer_by_identity(&identity.account.to_string(), identity.memo_key())
            .await?
            .ok_or_else(|| {
                ApiError::NotFound("no customer is registered for this account and memo".into())
            })?,
        Lookup::Transaction(id) => {
            return Err(ApiError::NotFound(format!("transaction not found: {id}")));
        }
    };
    let kind = kind
        .or_else(|| Some(row.last_type.clone()).filter(|t| anchor.config.kyc.types.contains_key(t)))
        .unwrap_or_else(|| anchor.config.kyc.default_type.clone());
    let query = CustomerQuery {
        caller: resolved.caller,
        lookup: Lookup::Id(row.id.clone()),
        kind: kind.clone(),
        lang: "en".into(),
    };
    let info = anchor.customers.get(&query).await?;
    anchor
        .store
        .set_customer_callback(&row.id, parsed.as_str(), &kind, info.status.as_str())
        .await?;
    Ok(Json(json!({})))
}

/// `PUT /customer/verification` (deprecated since SEP-12 v1.12.0, kept for older clients):
/// `id` and `<field>_verification` codes; answers with the customer as GET does.
pub async fn put_verification(
    State(anchor): State<AppState>,
    session: Session,
    Sep12Params(mut params): Sep12Params,
) -> Result<impl IntoResponse, ApiError> {
    let resolved = resolve(&session, &mut params)?;
    let kind = customer_type(&anchor, &mut params)?;
    let id = params
        .take("id")
        .ok_or_else(|| ApiError::bad_request("id is required"))?;
    let mut verifications = BTreeMap::new();
    for (key, value) in std::mem::take(&mut params.text) {
        match key.strip_suffix("_verification") {
            Some(name) if sep9::field(name).is_some() => {
                verifications.insert(name.to_owned(), value);
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{key} is not a <field>_verification parameter"
                )));
            }
        }
    }
    if verifications.is_empty() {
        return Err(ApiError::bad_request(
            "send at least one <field>_verification code",
        ));
    }
    let update = CustomerUpdate {
        caller: resolved.caller.clone(),
        lookup: Lookup::Id(id.clone()),
        identity: resolved.identity,
        kind: None,
        fields: BTreeMap::new(),
        files: BTreeMap::new(),
        verifications,
    };
    let id = anchor.customers.put(&update).await?;
    crate::kyc::changed(&anchor, &id).await;
    let query = CustomerQuery {
        caller: resolved.caller,
        lookup: Lookup::Id(id),
        kind: kind.unwrap_or_else(|| anchor.config.kyc.default_type.clone()),
        lang: "en".into(),
    };
    Ok(Json(anchor.customers.get(&query).await?.to_json()))
}

/// `POST /customer/files`: one `file` part; the file can then be named in a PUT as
/// `<field>_file_id` (SEP12-37).
pub async fn post_file(
    State(anchor): State<AppState>,
    session: Session,
    Sep12Params(mut params): Sep12Params,
) -> Result<impl IntoResponse, ApiError> {
    let upload = params.files.remove("file").ok_or_else(|| {
        ApiError::bad_request("send the file as a multipart/form-data part named file")
    })?;
    if upload.bytes.is_empty() {
        return Err(ApiError::bad_request("file is empty"));
    }
    if let Some(other) = params.files.keys().next() {
        return Err(ApiError::bad_request(format!(
            "only one file per request: the part {other} is not expected"
        )));
    }
    let resolved = resolve(&session, &mut params)?;
    let file = anchor
        .files
        .save(
            &resolved.caller,
            resolved.identity.memo_key(),
            &upload.content_type,
            &upload.bytes,
        )
        .await?;
    Ok(Json(file_json(&file)))
}

/// `GET /customer/files?file_id=` or `?customer_id=`: always 200, with the files the
/// caller may see (none for an unknown or foreign id).
pub async fn get_files(
    State(anchor): State<AppState>,
    session: Session,
    Sep12Params(mut params): Sep12Params,
) -> Result<impl IntoResponse, ApiError> {
    let resolved = resolve(&session, &mut params)?;
    let files = match (params.take("file_id"), params.take("customer_id")) {
        (Some(file_id), None) => anchor
            .files
            .owned(&resolved.caller, &file_id)
            .await?
            .into_iter()
            .collect(),
        (None, Some(customer_id)) => match anchor.store.customer_by_id(&customer_id).await? {
            Some(row) if resolved.caller.owns(&row.account, &row.memo) => {
                anchor.store.files_of_customer(&row.id).await?
            }
            _ => Vec::new(),
        },
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of file_id and customer_id",
            ));
        }
    };
    let files: Vec<Value> = files.iter().map(file_json).collect();
    Ok(Json(json!({ "files": files })))
}

fn file_json(file: &crate::store::FileRow) -> Value {
    json!({
        "file_id": file.id,
        "content_type": file.content_type,
        "size": file.size,
        "customer_id": file.customer_id,
    })
}
