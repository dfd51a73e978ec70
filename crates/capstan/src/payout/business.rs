//! Rails on the anchor's own service, over HTTP, so an anchor can pay out without writing
//! Rust. capstan POSTs `<business_url>/payouts` with the transaction and the round's
//! idempotency key (a request the service must treat as idempotent: the same key is sent
//! again to learn what became of a round cut short), and `<business_url>/payouts/status`
//! to follow up submitted payouts. Each request carries `Authorization: Bearer <api key>`
//! when one is configured, and a `Signature` made with the anchor's SIGNING_KEY over
//! `<t>.<host>.<body>` (as callbacks are), so the service can check it came from capstan.
//!
//! The answers (and the operator API's payout reports) share one shape:
//! `{"status": "completed" | "pending_external" | "needs_customer_info" |
//! "needs_transaction_info" | "error" | "refunded" | "returned", "external_transaction_id",
//! "message", "refund": {"id": <Stellar transaction hash>, "fee"},
//! "sender_fields": {field: reason}, "receiver_fields": {field: reason},
//! "fields": {name: {"description": ...}}}`.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use stellar::Keypair;

use super::rails::{Outcome, Payout, Rails, RailsError, Reconciled};
use crate::config::BusinessRails;
use crate::notify::signature_header;
use crate::store::{TransactionRow, unix_now};

pub struct HttpRails {
    http: reqwest::Client,
    config: BusinessRails,
    signing_key: Keypair,
}

impl HttpRails {
    pub fn new(
        config: BusinessRails,
        signing_key: Keypair,
        timeout: Duration,
    ) -> Result<HttpRails, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpRails {
            http,
            config,
            signing_key,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, RailsError> {
        let url = format!("{}{path}", self.config.url);
        let parsed = url::Url::parse(&url)
            .map_err(|e| RailsError::Permanent(format!("rails.business_url: {e}")))?;
        let body = body.to_string();
        let mut request = self
            .http
            .post(parsed.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                "Signature",
                signature_header(&self.signing_key, &parsed, &body, unix_now()),
            )
            .body(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| RailsError::Retryable(format!("{path}: {}", e.without_url())))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| RailsError::Retryable(format!("{path}: {}", e.without_url())))?;
        let answer: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return answer.ok_or_else(|| {
                // The call may have been made: retried with the same key.
                RailsError::Retryable(format!("{path} answered {status} without JSON"))
            });
        }
        let said = answer
            .as_ref()
            .and_then(|a| a.get("error").and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("answered {status}"));
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            Err(RailsError::Permanent(said))
        } else {
            Err(RailsError::Retryable(format!("{path}: {said}")))
        }
    }
}

/// What capstan tells the service about a transaction to pay out.
fn transaction_json(t: &TransactionRow) -> Value {
    json!({
        "id": t.id,
        "status": t.status,
        "sending_anchor": t.sending_anchor,
        "asset_code": t.asset_code,
        "asset_issuer": t.asset_issuer,
        "funding_method": t.funding_method,
        "amount_in": t.amount_in,
        "amount_fee": t.amount_fee,
        "amount_out": t.amount_out,
        "sender_id": t.sender_id,
        "receiver_id": t.receiver_id,
        "fields": serde_json::from_str::<Value>(&t.fields).unwrap_or_else(|_| json!({})),
        "stellar_transaction_id": t.stellar_transaction_id,
        "external_transaction_id": t.external_transaction_id,
    })
}

/// Reads a payout answer (from the service, or an operator's report).
pub fn outcome_from_json(answer: &Value) -> Result<Outcome, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match answer.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.contains('\0') => {
                Err(format!("{key} holds a NUL character"))
            }
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            Some(_) => Err(format!("{key} must be a string")),
        }
    };
    let reasons = |key: &str| -> Result<Vec<(String, String)>, String> {
        match answer.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, reason)| {
                    if stellar::sep9::field(name).is_none() {
                        return Err(format!("{key}.{name} is not a SEP-9 field name"));
                    }
                    match reason.as_str().map(str::trim) {
                        Some(r) if !r.is_empty() && !r.contains('\0') => {
                            Ok((name.clone(), r.to_owned()))
                        }
                        _ => Err(format!("{key}.{name} needs a reason (a string)")),
                    }
                })
                .collect(),
            Some(_) => Err(format!(
                "{key} must be an object of SEP-9 field name to reason"
            )),
        }
    };
    let status = text("status")?.ok_or("status is required")?;
    let external_id = text("external_transaction_id")?;
    let message = text("message")?;
    Ok(match status.as_str() {
        "completed" => Outcome::Completed { external_id },
        "pending_external" => Outcome::PendingExternal { external_id },
        "needs_customer_info" => {
            let sender_fields = reasons("sender_fields")?;
            let receiver_fields = reasons("receiver_fields")?;
            if sender_fields.is_empty() && receiver_fields.is_empty() {
                return Err(
                    "needs_customer_info names the fields in sender_fields or receiver_fields"
                        .into(),
                );
            }
            Outcome::NeedsCustomerInfo {
                message: message
                    .unwrap_or_else(|| "the customers' information must be updated".into()),
                sender_fields,
                receiver_fields,
            }
        }
        "needs_transaction_info" => {
            let fields: Map<String, Value> = match answer.get("fields") {
                Some(Value::Object(f)) if !f.is_empty() => f.clone(),
                _ => {
                    return Err(
                        "needs_transaction_info needs fields: {name: {\"description\": ...}}"
                            .into(),
                    );
                }
            };
            for (name, spec) in &fields {
                let described = spec
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.trim().is_empty());
                if !described {
                    return Err(format!("fields.{name}.description is required"));
                }
            }
            Outcome::NeedsTransactionInfo {
                message: message
                    .unwrap_or_else(|| "some transaction information must be updated".into()),
                fields,
            }
        }
        "error" => Outcome::Error {
            message: message.ok_or("error needs a message: what the sending anchor reads")?,
        },
        "refunded" => {
            let refund = answer
                .get("refund")
                .ok_or("refunded needs refund: {\"id\": <the refund's Stellar transaction hash>, \"fee\": \"...\"}")?;
            let id = refund
                .get("id")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|id| !id.is_empty() && id.len() <= 128 && !id.contains('\0'))
                .ok_or("refund.id must be the refund's Stellar transaction hash")?;
            let fee = match refund.get("fee") {
                None | Some(Value::Null) => rust_decimal::Decimal::ZERO,
                Some(Value::String(f)) => f
                    .trim()
                    .parse::<rust_decimal::Decimal>()
                    .ok()
                    .filter(|f| {
                        !f.is_sign_negative()
                            && f.normalize().scale() <= crate::config::STELLAR_DECIMALS
                    })
                    .ok_or("refund.fee must be an amount as a string")?,
                Some(_) => return Err("refund.fee must be an amount as a string".into()),
            };
            Outcome::Refunded {
                message: message.unwrap_or_else(|| "the payment was refunded".into()),
                stellar_transaction_id: id.to_owned(),
                fee: fee.normalize(),
            }
        }
        "returned" => Outcome::Returned {
            message: message.unwrap_or_else(|| "the payout was returned".into()),
        },
        other => {
            return Err(format!(
                "status {other:?} is not one of completed, pending_external, needs_customer_info, needs_transaction_info, error, refunded, returned"
            ));
        }
    })
}

impl Rails for HttpRails {
    fn name(&self) -> &'static str {
        "business-server"
    }

    fn execute<'a>(&'a self, payout: &'a Payout<'a>) -> BoxFuture<'a, Result<Outcome, RailsError>> {
        Box::pin(async move {
            let body = json!({
                "idempotency_key": payout.idempotency_key,
                "round": payout.round,
                "transaction": transaction_json(payout.transaction),
            });
            let answer = self.post("/payouts", &body).await?;
            // A malformed answer leaves the outcome unknown: asked again with the same key.
            outcome_from_json(&answer)
                .map_err(|e| RailsError::Retryable(format!("/payouts answered {answer}: {e}")))
        })
    }

    fn poll<'a>(
        &'a self,
        transactions: &'a [TransactionRow],
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, RailsError>> {
        Box::pin(async move {
            let body = json!({
                "payouts": transactions.iter().map(|t| json!({
                    "transaction_id": t.id,
                    "external_transaction_id": t.external_transaction_id,
                })).collect::<Vec<_>>(),
            });
            let answer = self.post("/payouts/status", &body).await?;
            let mut moved = Vec::new();
            for entry in answer
                .get("payouts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(id) = entry.get("transaction_id").and_then(Value::as_str) else {
                    continue;
                };
                match outcome_from_json(entry) {
                    Ok(outcome) => moved.push((id.to_owned(), outcome)),
                    Err(e) => {
                        tracing::warn!(transaction = %id, error = %e, "the business server's payout status cannot be read")
                    }
                }
            }
            Ok(moved)
        })
    }

    /// The service is idempotent by key: asking again tells what became of the round.
    fn reconcile<'a>(
        &'a self,
        payout: &'a Payout<'a>,
    ) -> BoxFuture<'a, Result<Reconciled, RailsError>> {
        Box::pin(async move { self.execute(payout).await.map(Reconciled::Executed) })
    }
}
