//! The SEP-31 integrations an anchor can replace: Polaris's `SEP31ReceiverIntegration`
//! (`valid_sending_anchor`, `process_post_request`) and the fee calculation. The built-in
//! implementations follow the configuration (`sep31.sending_anchors`, each asset's
//! `fee_fixed` and `fee_percent`); with `sep31.business_url` both are asked of the anchor's
//! business server ([`super::business`]); an embedding binary passes its own through
//! [`crate::Extensions`].
//!
//! Each integration tells a refusal (the sending anchor's request is wrong for this anchor:
//! 400 or 403) from [`Unavailable`] (it cannot decide now: 503, and the sending anchor may
//! try again), so a service that is down never looks like a "no".

use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use stellar::PublicKey;

use super::amounts::{amount_string, fee};
use crate::config::{ReceiveAsset, Sep31Config};

/// A `POST /transactions` that passed capstan's own checks, before it is stored.
#[derive(Debug, Clone)]
pub struct PostRequest<'a> {
    pub sending_anchor: PublicKey,
    pub asset: &'a ReceiveAsset,
    pub amount: Decimal,
    pub funding_method: &'a str,
    pub sender_id: Option<&'a str>,
    pub receiver_id: Option<&'a str>,
    /// The deprecated per-transaction fields that were sent.
    pub fields: &'a Map<String, Value>,
    /// The whole request body, for anything else the anchor reads.
    pub body: &'a Map<String, Value>,
}

/// An integration cannot decide now (its service is down, slow, or answered something
/// unreadable). The request gets 503 with this message, nothing is stored, and the sending
/// anchor may try again; the details belong in the log, not here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl Unavailable {
    pub fn new(message: impl Into<String>) -> Unavailable {
        Unavailable(message.into())
    }
}

/// The three refusals SEP-31 (and Polaris's `process_post_request`) know, and "cannot
/// decide now".
#[derive(Debug, Clone, PartialEq)]
pub enum PostRejection {
    /// More (or other) KYC is needed: `type` is the SEP-12 type to fill in.
    CustomerInfoNeeded { kind: Option<String> },
    /// Per-transaction fields are needed, in `/info`'s `fields.transaction` shape.
    TransactionInfoNeeded { fields: Map<String, Value> },
    /// Anything else, with the message the sending anchor reads.
    Error(String),
    /// Not refused: the receiver cannot decide now (503).
    Unavailable(Unavailable),
}

pub trait Sep31Receiver: Send + Sync {
    /// Whether `account` is a sending anchor this anchor has an agreement with (`false`:
    /// 403), or [`Unavailable`] when that cannot be known now (503).
    fn valid_sending_anchor<'a>(
        &'a self,
        account: &'a PublicKey,
    ) -> BoxFuture<'a, Result<bool, Unavailable>>;

    /// Accepts or refuses a transaction before it is stored.
    fn process_post_request<'a>(
        &'a self,
        request: &'a PostRequest<'a>,
    ) -> BoxFuture<'a, Result<(), PostRejection>>;
}

/// One part of a fee, as `fee_details.details` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeePart {
    pub name: String,
    pub description: Option<String>,
    pub amount: Decimal,
}

/// A fee in units of the Stellar asset received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fee {
    pub total: Decimal,
    pub details: Vec<FeePart>,
}

impl Fee {
    pub fn details_json(&self) -> Value {
        Value::Array(
            self.details
                .iter()
                .map(|p| {
                    let mut part =
                        serde_json::json!({"name": p.name, "amount": amount_string(p.amount)});
                    if let Some(description) = &p.description {
                        part["description"] = Value::String(description.clone());
                    }
                    part
                })
                .collect(),
        )
    }
}

/// Why there is no fee.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// This amount or method is not taken: the sending anchor reads the message (400).
    #[error("{0}")]
    Refused(String),
    /// The fee cannot be computed now (503).
    #[error("unavailable: {0}")]
    Unavailable(Unavailable),
}

pub trait Fees: Send + Sync {
    /// The fee for receiving `amount` of `asset` to pay out by `funding_method`.
    fn fee<'a>(
        &'a self,
        asset: &'a ReceiveAsset,
        amount: Decimal,
        funding_method: &'a str,
    ) -> BoxFuture<'a, Result<Fee, FeeError>>;
}

/// The configuration's allow-list; every request that passed capstan's checks is taken.
pub struct ConfiguredReceiver {
    allowed: Vec<PublicKey>,
}

impl ConfiguredReceiver {
    pub fn new(config: &Sep31Config) -> ConfiguredReceiver {
        ConfiguredReceiver {
            allowed: config.sending_anchors.clone(),
        }
    }
}

impl Sep31Receiver for ConfiguredReceiver {
    fn valid_sending_anchor<'a>(
        &'a self,
        account: &'a PublicKey,
    ) -> BoxFuture<'a, Result<bool, Unavailable>> {
        // An empty list allows any account (refused by the configuration on the public
        // network).
        Box::pin(async move { Ok(self.allowed.is_empty() || self.allowed.contains(account)) })
    }

    fn process_post_request<'a>(
        &'a self,
        _request: &'a PostRequest<'a>,
    ) -> BoxFuture<'a, Result<(), PostRejection>> {
        Box::pin(async { Ok(()) })
    }
}

/// Each asset's `fee_fixed` plus `fee_percent`, rounded to the stroop.
pub struct ConfiguredFees;

impl Fees for ConfiguredFees {
    fn fee<'a>(
        &'a self,
        asset: &'a ReceiveAsset,
        amount: Decimal,
        _funding_method: &'a str,
    ) -> BoxFuture<'a, Result<Fee, FeeError>> {
        Box::pin(async move {
            let settings = &asset.settings;
            let total = fee(settings, amount);
            let mut details = Vec::new();
            if !settings.fee_fixed.is_zero() {
                details.push(FeePart {
                    name: "fixed fee".into(),
                    description: None,
                    amount: settings.fee_fixed,
                });
            }
            if !settings.fee_percent.is_zero() {
                details.push(FeePart {
                    name: "percentage fee".into(),
                    description: Some(format!(
                        "{}% of the amount",
                        amount_string(settings.fee_percent)
                    )),
                    amount: total - settings.fee_fixed,
                });
            }
            Ok(Fee { total, details })
        })
    }
}
