//! The SEP-31 integrations an anchor can replace: Polaris's `SEP31ReceiverIntegration`
//! (`valid_sending_anchor`, `process_post_request`) and the fee calculation. The built-in
//! implementations follow the configuration (`sep31.sending_anchors`, each asset's
//! `fee_fixed` and `fee_percent`); an embedding binary passes its own through
//! [`crate::Extensions`].

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

/// The three refusals SEP-31 (and Polaris's `process_post_request`) know.
#[derive(Debug, Clone, PartialEq)]
pub enum PostRejection {
    /// More (or other) KYC is needed: `type` is the SEP-12 type to fill in.
    CustomerInfoNeeded { kind: Option<String> },
    /// Per-transaction fields are needed, in `/info`'s `fields.transaction` shape.
    TransactionInfoNeeded { fields: Map<String, Value> },
    /// Anything else, with the message the sending anchor reads.
    Error(String),
}

pub trait Sep31Receiver: Send + Sync {
    /// Whether `account` is a sending anchor this anchor has an agreement with.
    fn valid_sending_anchor<'a>(&'a self, account: &'a PublicKey) -> BoxFuture<'a, bool>;

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

pub trait Fees: Send + Sync {
    /// The fee for receiving `amount` of `asset` to pay out by `funding_method`. An `Err`
    /// is a refusal the sending anchor reads (400).
    fn fee<'a>(
        &'a self,
        asset: &'a ReceiveAsset,
        amount: Decimal,
        funding_method: &'a str,
    ) -> BoxFuture<'a, Result<Fee, String>>;
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
    fn valid_sending_anchor<'a>(&'a self, account: &'a PublicKey) -> BoxFuture<'a, bool> {
        // An empty list allows any account (refused by the configuration on the public
        // network).
        Box::pin(async move { self.allowed.is_empty() || self.allowed.contains(account) })
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
    ) -> BoxFuture<'a, Result<Fee, String>> {
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
