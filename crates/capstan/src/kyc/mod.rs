//! SEP-12 customers: who sends and who receives. The [`Customers`] trait is the integration
//! an anchor can replace; capstan ships two implementations, a built-in store
//! ([`builtin::BuiltinCustomers`]) and a forwarder to the anchor's business server
//! ([`business::BusinessCustomers`]).
//!
//! The HTTP layer resolves who is asking and which customer a request names; the
//! implementations only answer for customers that caller owns.

use std::collections::BTreeMap;
use std::fmt;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use stellar::PublicKey;

use crate::store::{Store, StoreError};

pub mod builtin;
pub mod business;
pub mod callbacks;
pub mod files;
pub mod status;

/// A customer's SEP-12 status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CustomerStatus {
    Accepted,
    Processing,
    NeedsInfo,
    Rejected,
}

impl CustomerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerStatus::Accepted => "ACCEPTED",
            CustomerStatus::Processing => "PROCESSING",
            CustomerStatus::NeedsInfo => "NEEDS_INFO",
            CustomerStatus::Rejected => "REJECTED",
        }
    }

    /// SEP12-35: callbacks stop once a customer reaches one of these.
    pub fn is_final(self) -> bool {
        matches!(self, CustomerStatus::Accepted | CustomerStatus::Rejected)
    }
}

impl fmt::Display for CustomerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status of one provided field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldStatus {
    Accepted,
    Processing,
    Rejected,
    VerificationRequired,
}

impl FieldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldStatus::Accepted => "ACCEPTED",
            FieldStatus::Processing => "PROCESSING",
            FieldStatus::Rejected => "REJECTED",
            FieldStatus::VerificationRequired => "VERIFICATION_REQUIRED",
        }
    }

    pub fn parse(s: &str) -> Option<FieldStatus> {
        [
            FieldStatus::Accepted,
            FieldStatus::Processing,
            FieldStatus::Rejected,
            FieldStatus::VerificationRequired,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

/// An entry of `fields`: what a client must (or may) send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    #[serde(default)]
    pub optional: bool,
}

/// An entry of `provided_fields`: what was sent, and how it was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvidedField {
    #[serde(flatten)]
    pub field: FieldInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FieldStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `GET /customer` response body, which callbacks also carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: CustomerStatus,
    /// Always sent with `NEEDS_INFO` (SEP12-13a), even when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldInfo>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provided_fields: BTreeMap<String, ProvidedField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CustomerInfo {
    /// The JSON body: like the derived form, but `fields` is present with `NEEDS_INFO` even
    /// when empty, as SEP12-13a requires.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if self.status == CustomerStatus::NeedsInfo
            && let Some(object) = value.as_object_mut()
        {
            object
                .entry("fields")
                .or_insert_with(|| serde_json::json!({}));
        }
        value
    }
}

/// How a memo in a request was typed (`memo_type`, deprecated but still sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoType {
    Id,
    Text,
    Hash,
    /// Not a Stellar memo: a customer a sending anchor registered for one party of one
    /// SEP-31 transaction (`transaction_id` + `type`), named after it.
    Transaction,
}

impl MemoType {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoType::Id => "id",
            MemoType::Text => "text",
            MemoType::Hash => "hash",
            MemoType::Transaction => "transaction",
        }
    }
}

/// A memo naming one user of a shared account, in canonical form (ids in decimal, hashes
/// in standard base64), so `"007"` and `"7"` as ids are the same customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    pub value: String,
    pub kind: MemoType,
}

/// Why a memo was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoError {
    /// `memo_type` is none of id, text, hash.
    UnknownType(String),
    /// The value does not fit the type.
    Invalid(MemoType),
}

/// A text memo holds at most this many bytes on Stellar.
pub const MAX_TEXT_MEMO_BYTES: usize = 28;

impl Memo {
    /// A Stellar memo typed by `memo_type`, or, without one, by its look (digits are an
    /// id, anything else text), in canonical form.
    pub fn parse(value: &str, memo_type: Option<&str>) -> Result<Memo, MemoError> {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let id = || {
            value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .map(|n| Memo {
                    value: n.to_string(),
                    kind: MemoType::Id,
                })
        };
        let text = || {
            (value.len() <= MAX_TEXT_MEMO_BYTES).then(|| Memo {
                value: value.to_owned(),
                kind: MemoType::Text,
            })
        };
        match memo_type {
            None => id().or_else(text).ok_or(MemoError::Invalid(MemoType::Text)),
            Some("id") => id().ok_or(MemoError::Invalid(MemoType::Id)),
            Some("text") => text().ok_or(MemoError::Invalid(MemoType::Text)),
            Some("hash") => match STANDARD.decode(value) {
                Ok(bytes) if bytes.len() == 32 => Ok(Memo {
                    value: STANDARD.encode(bytes),
                    kind: MemoType::Hash,
                }),
                _ => Err(MemoError::Invalid(MemoType::Hash)),
            },
            Some(other) => Err(MemoError::UnknownType(other.to_owned())),
        }
    }
}

/// A customer's identity: the base `G...` account that registered it and, for a shared
/// account, the memo of one of its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: PublicKey,
    pub memo: Option<Memo>,
}

impl Identity {
    /// The memo as stored: `''` when there is none.
    pub fn memo_key(&self) -> &str {
        self.memo.as_ref().map_or("", |m| m.value.as_str())
    }
}

/// Who is asking: the authenticated account and, when the token names one user of a
/// shared account (`G:memo` or `M...`), that user's memo. Such a caller only reaches that
/// user's customer; a caller without one reaches every customer its account registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: PublicKey,
    pub token_memo: Option<String>,
}

impl Caller {
    /// Whether a customer registered as (account, memo) is this caller's.
    pub fn owns(&self, account: &str, memo: &str) -> bool {
        account == self.account.to_string() && self.token_memo.as_deref().is_none_or(|m| m == memo)
    }
}

/// Which customer a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `id` from an earlier `PUT`.
    Id(String),
    /// `transaction_id` (with `type`): the sender or receiver of that transaction.
    Transaction(String),
    /// The account and memo of the request.
    Identity(Identity),
}

/// `GET /customer`, resolved.
#[derive(Debug, Clone)]
pub struct CustomerQuery {
    pub caller: Caller,
    pub lookup: Lookup,
    /// A type the anchor configured (checked by the HTTP layer).
    pub kind: String,
    pub lang: String,
}

/// `PUT /customer`, resolved and with every value checked against SEP-9.
#[derive(Debug, Clone)]
pub struct CustomerUpdate {
    pub caller: Caller,
    pub lookup: Lookup,
    /// Whom a new customer is registered as.
    pub identity: Identity,
    pub kind: Option<String>,
    /// Text fields by SEP-9 name.
    pub fields: BTreeMap<String, String>,
    /// Binary fields: the file id of an upload the caller owns.
    pub files: BTreeMap<String, String>,
    /// `<field>_verification` codes by field name.
    pub verifications: BTreeMap<String, String>,
}

/// What can go wrong in a customers call; the HTTP layer maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum KycError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The business server answered with something capstan cannot use.
    #[error("{0}")]
    BadGateway(String),
    /// The business server did not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type KycResult<T> = Result<T, KycError>;

/// The customers integration: Polaris's `CustomerIntegration`, as an async Rust trait.
///
/// Callback URLs are not part of it: capstan keeps them and sends the signed callbacks
/// itself whichever implementation holds the data, and learns of status changes from
/// [`Customers::get`].
pub trait Customers: Send + Sync {
    /// The customer's status for `query.kind`. An unknown customer (by account) is
    /// `NEEDS_INFO` with every field of the type and no `id`; an unknown or foreign `id`
    /// is [`KycError::NotFound`].
    fn get<'a>(&'a self, query: &'a CustomerQuery) -> BoxFuture<'a, KycResult<CustomerInfo>>;

    /// Creates or updates a customer and returns its id.
    fn put<'a>(&'a self, update: &'a CustomerUpdate) -> BoxFuture<'a, KycResult<String>>;

    /// Erases every piece of personal data of the customer. [`KycError::NotFound`] when
    /// there is none.
    fn delete<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, KycResult<()>>;
}

/// The 404 message SEP12-21 prescribes.
pub fn not_found_for_id(id: &str) -> KycError {
    KycError::NotFound(format!("customer not found for id: {id}"))
}

/// The customers of an account that keep `identity` from being registered (SEP12-09):
/// `Some(true)` those with memos, `Some(false)` the one without; `None` for a customer
/// registered through a transaction, which is the transaction's, not a user's.
pub fn sharing_conflict(identity: &Identity) -> Option<bool> {
    match &identity.memo {
        Some(memo) if memo.kind == MemoType::Transaction => None,
        memo => Some(memo.is_none()),
    }
}

/// SEP12-09: an account registers customers either with memos (it is shared) or without,
/// never both. Checked before a new customer is created.
pub async fn check_sharing(store: &Store, identity: &Identity) -> KycResult<()> {
    let Some(conflicting) = sharing_conflict(identity) else {
        return Ok(());
    };
    let account = identity.account.to_string();
    let shared = identity.memo.is_some();
    if store.account_has_customers(&account, conflicting).await? {
        return Err(KycError::BadRequest(if shared {
            format!(
                "account {account} registered its customer without a memo, so it is not a shared account; send no memo"
            )
        } else {
            format!(
                "account {account} is shared: its customers are told apart by memo; send the memo of the customer"
            )
        }));
    }
    Ok(())
}

/// After anything that may change a customer's status: tell its callback URL, and resume
/// the SEP-31 transactions that waited for it.
pub async fn changed(anchor: &crate::anchor::AppState, customer_id: &str) {
    callbacks::customer_changed(anchor, customer_id).await;
    crate::sep31::kyc::customer_changed(anchor, customer_id).await;
}
