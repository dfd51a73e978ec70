//! The SEP-31 receiver and its fees on the anchor's own business server, over HTTP, so an
//! anchor can decide who may send, which transactions it takes and what it charges in any
//! language (the Anchor Platform's business-server callbacks, for Polaris's
//! `SEP31ReceiverIntegration` and the fee).
//!
//! The contract (README, "SEP-31 on your own server"), on `sep31.business_url`:
//! - `GET /sending_anchor?account=G...` answers `{"allowed": true | false}`;
//! - `POST /sep31/transactions` with the request capstan accepted answers 2xx to take it,
//!   or 400 with `{"error": "customer_info_needed", "type"}`,
//!   `{"error": "transaction_info_needed", "fields": {"transaction": {...}}}` or
//!   `{"error": "<message>"}` to refuse it;
//! - `GET /fee?asset=stellar:CODE:ISSUER&amount=&funding_method=` answers
//!   `{"fee": {"total": "1.50", "details": [{"name", "description", "amount"}]}}`, amounts
//!   as strings, or 400 `{"error": "<message>"}` to refuse the amount.
//!
//! Every request carries `Authorization: Bearer <sep31.business_api_key>` when one is set,
//! and a `Signature: t=<t>, s=<sig>` made with the SIGNING_KEY over `<t>.<host>.<body>`, as
//! capstan's calls to the rates and payout services do. Anything else (no answer within
//! `business_timeout_secs`, a redirect, another status, an answer outside this contract) is
//! logged and becomes [`Unavailable`]: a 503 for the sending anchor, never a decision
//! either way. Nothing is cached: each request asks again.

use std::str::FromStr;

use futures_util::future::BoxFuture;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use stellar::{Keypair, PublicKey};

use super::amounts::{amount_string, json_kind};
use super::integration::{
    Fee, FeeError, FeePart, Fees, PostRejection, PostRequest, Sep31Receiver, Unavailable,
};
use crate::business_answer::{AnswerError, MAX_ANSWER_BYTES, read_answer};
use crate::config::{BusinessServer, ReceiveAsset, STELLAR_DECIMALS};
use crate::notify::signature_header;
use crate::store::unix_now;

/// The longest text capstan takes from the business server (a message, a fee line's name
/// or description, a field's description): these are shown to sending anchors and stored
/// with each transaction.
const MAX_TEXT_CHARS: usize = 1000;
/// The most lines a fee may be broken down in.
const MAX_FEE_PARTS: usize = 100;

/// One object for both integrations, so both share one HTTP client and one configuration.
pub struct BusinessReceiver {
    server: BusinessServer,
    /// The three calls' URLs, made once so no request can meet a URL that does not parse.
    sending_anchor_url: url::Url,
    transactions_url: url::Url,
    fee_url: url::Url,
    http: reqwest::Client,
    signing_key: Keypair,
}

/// The three calls, for their paths and for what the sending anchor is told when one fails.
#[derive(Debug, Clone, Copy)]
enum Call {
    SendingAnchor,
    Transaction,
    Fee,
}

impl Call {
    fn path(self) -> &'static str {
        match self {
            Call::SendingAnchor => "/sending_anchor",
            Call::Transaction => "/sep31/transactions",
            Call::Fee => "/fee",
        }
    }

    fn service(self) -> &'static str {
        match self {
            Call::SendingAnchor => "the check of sending anchors",
            Call::Transaction => "the review of transactions",
            Call::Fee => "the fee service",
        }
    }

    /// No answer, or an answer cut off.
    fn unreachable(self, error: reqwest::Error) -> Unavailable {
        tracing::warn!(
            call = self.path(),
            error = %error.without_url(),
            "the SEP-31 business server did not answer"
        );
        Unavailable(format!(
            "{} is unavailable; try again shortly",
            self.service()
        ))
    }

    /// An answer outside the contract: the operator reads why in the log; the sending
    /// anchor, whose request was not at fault, is told to try again.
    fn nonsense(self, status: StatusCode, why: &str) -> Unavailable {
        tracing::warn!(
            call = self.path(),
            %status,
            why,
            "the SEP-31 business server answered outside its contract"
        );
        Unavailable(format!(
            "{} gave an invalid answer; try again later",
            self.service()
        ))
    }
}

/// What came back: the status, and the body read as JSON (`None` when empty; `Err` when it
/// is not JSON).
struct Answer {
    status: StatusCode,
    body: Result<Option<Value>, String>,
}

impl Answer {
    /// The body, which must be a JSON object.
    fn object(&self) -> Result<&Map<String, Value>, String> {
        match &self.body {
            Ok(Some(Value::Object(object))) => Ok(object),
            Ok(Some(other)) => Err(format!("the answer is {}, not an object", json_kind(other))),
            Ok(None) => Err("the answer is empty".into()),
            Err(e) => Err(e.clone()),
        }
    }

    /// A refusal's `error`.
    fn error_message(&self) -> Result<String, String> {
        text(self.object()?.get("error"), "error")
    }
}

impl BusinessReceiver {
    pub fn new(server: BusinessServer, signing_key: Keypair) -> Result<BusinessReceiver, String> {
        let http = server.http_client()?;
        let url = |call: Call| {
            url::Url::parse(&format!("{}{}", server.url, call.path()))
                .map_err(|e| format!("{:?} is not a URL: {e}", server.url))
        };
        Ok(BusinessReceiver {
            sending_anchor_url: url(Call::SendingAnchor)?,
            transactions_url: url(Call::Transaction)?,
            fee_url: url(Call::Fee)?,
            server,
            http,
            signing_key,
        })
    }

    fn url(&self, call: Call) -> url::Url {
        match call {
            Call::SendingAnchor => self.sending_anchor_url.clone(),
            Call::Transaction => self.transactions_url.clone(),
            Call::Fee => self.fee_url.clone(),
        }
    }

    async fn send(
        &self,
        call: Call,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Answer, Unavailable> {
        let mut url = self.url(call);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = self.http.request(method.clone(), url.clone()).header(
            "Signature",
            signature_header(&self.signing_key, &url, &body, unix_now()),
        );
        if method == Method::POST {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if let Some(key) = &self.server.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| call.unreachable(e))?;
        let status = response.status();
        let bytes = read_answer(response).await.map_err(|e| match e {
            AnswerError::Cut(e) => call.unreachable(e),
            AnswerError::TooLong => call.nonsense(
                status,
                &format!("the answer is longer than {MAX_ANSWER_BYTES} bytes"),
            ),
        })?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(None)
        } else {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("the answer is not JSON: {e}"))
        };
        Ok(Answer { status, body })
    }
}

/// A text the business server wrote for people: a non-empty string, without NUL (which
/// PostgreSQL cannot store), of reasonable length.
fn text(value: Option<&Value>, key: &str) -> Result<String, String> {
    match value {
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Err(format!("{key} is empty"))
            } else if s.contains('\0') {
                Err(format!("{key} holds a NUL character"))
            } else if s.chars().count() > MAX_TEXT_CHARS {
                Err(format!("{key} is longer than {MAX_TEXT_CHARS} characters"))
            } else {
                Ok(s.to_owned())
            }
        }
        None | Some(Value::Null) => Err(format!("{key} is missing")),
        Some(other) => Err(format!("{key} is {}, not a string", json_kind(other))),
    }
}

/// An amount of the Stellar asset, as a string in plain decimal notation: never a JSON
/// number, which would have passed through a float.
fn amount(value: Option<&Value>, key: &str) -> Result<Decimal, String> {
    let s = match value {
        Some(Value::String(s)) => s.trim(),
        None | Some(Value::Null) => return Err(format!("{key} is missing")),
        Some(other) => {
            return Err(format!(
                "{key} is {}, not an amount as a string",
                json_kind(other)
            ));
        }
    };
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    let value = Decimal::from_str(s)
        .ok()
        .filter(|_| plain)
        .ok_or_else(|| format!("{key} {s:?} is not a decimal amount"))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("{key} {s} is negative"));
    }
    if value.normalize().scale() > STELLAR_DECIMALS {
        return Err(format!(
            "{key} {s} has more than the {STELLAR_DECIMALS} decimal places of a Stellar amount"
        ));
    }
    if value > Decimal::new(i64::MAX, STELLAR_DECIMALS) {
        return Err(format!("{key} {s} is larger than any Stellar amount"));
    }
    Ok(value.normalize())
}

/// `{"fee": {"total", "asset"?, "details"?: [{"name", "description"?, "amount"}]}}`; the
/// details, when given, add up to the total exactly.
fn read_fee(answer: &Map<String, Value>, asset: &str) -> Result<Fee, String> {
    let fee = match answer.get("fee") {
        Some(Value::Object(fee)) => fee,
        Some(other) => return Err(format!("fee is {}, not an object", json_kind(other))),
        None => return Err("fee is missing".into()),
    };
    let total = amount(fee.get("total"), "fee.total")?;
    match fee.get("asset") {
        None | Some(Value::Null) => {}
        Some(Value::String(a)) if a == asset => {}
        Some(other) => {
            return Err(format!(
                "fee.asset is {other}, not the asset asked about ({asset})"
            ));
        }
    }
    let parts = match fee.get("details") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(parts)) if parts.len() <= MAX_FEE_PARTS => parts,
        Some(Value::Array(_)) => {
            return Err(format!("fee.details has more than {MAX_FEE_PARTS} lines"));
        }
        Some(other) => {
            return Err(format!("fee.details is {}, not an array", json_kind(other)));
        }
    };
    let mut details = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let key = |k: &str| format!("fee.details[{i}].{k}");
        let Value::Object(part) = part else {
            return Err(format!("fee.details[{i}] is not an object"));
        };
        let description = match part.get("description") {
            None | Some(Value::Null) => None,
            value => Some(text(value, &key("description"))?),
        };
        details.push(FeePart {
            name: text(part.get("name"), &key("name"))?,
            description,
            amount: amount(part.get("amount"), &key("amount"))?,
        });
    }
    if !details.is_empty() {
        let sum = details
            .iter()
            .try_fold(Decimal::ZERO, |sum, p| sum.checked_add(p.amount))
            .ok_or("fee.details add up to more than any amount")?;
        if sum != total {
            return Err(format!(
                "fee.details add up to {}, not fee.total {}",
                amount_string(sum),
                amount_string(total)
            ));
        }
    }
    Ok(Fee { total, details })
}

/// A SEP-12 type name, as the configuration allows them.
fn customer_type(value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t))
            if !t.is_empty()
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(t.clone()))
        }
        Some(other) => Err(format!("type {other} is not a SEP-12 customer type name")),
    }
}

/// `fields.transaction` of a `transaction_info_needed`, in `/info`'s shape: each field with
/// a `description`, and `optional` and `choices` when given. Only those keys are passed on.
fn transaction_fields(answer: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let fields = answer
        .get("fields")
        .and_then(|f| f.get("transaction"))
        .and_then(Value::as_object)
        .filter(|f| !f.is_empty())
        .ok_or("transaction_info_needed needs fields.transaction: {name: {\"description\"}}")?;
    let mut checked = Map::new();
    for (name, spec) in fields {
        let key = |k: &str| format!("fields.transaction.{name}.{k}");
        if name.trim().is_empty() || name.contains('\0') || name.chars().count() > 100 {
            return Err(format!("fields.transaction has a bad field name {name:?}"));
        }
        let Value::Object(spec) = spec else {
            return Err(format!("fields.transaction.{name} is not an object"));
        };
        let mut field =
            json!({ "description": text(spec.get("description"), &key("description"))? });
        match spec.get("optional") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(optional)) => field["optional"] = json!(optional),
            Some(_) => return Err(format!("{} is not a boolean", key("optional"))),
        }
        match spec.get("choices") {
            None | Some(Value::Null) => {}
            Some(Value::Array(choices)) => {
                let choices = choices
                    .iter()
                    .map(|c| text(Some(c), &key("choices")))
                    .collect::<Result<Vec<_>, _>>()?;
                field["choices"] = json!(choices);
            }
            Some(_) => return Err(format!("{} is not an array of strings", key("choices"))),
        }
        checked.insert(name.clone(), field);
    }
    Ok(checked)
}

/// A 400 of `POST /sep31/transactions`: one of SEP-31's three refusals.
fn rejection(answer: &Answer) -> Result<PostRejection, String> {
    let message = answer.error_message()?;
    let object = answer.object()?;
    Ok(match message.as_str() {
        "customer_info_needed" => PostRejection::CustomerInfoNeeded {
            kind: customer_type(object.get("type"))?,
        },
        "transaction_info_needed" => PostRejection::TransactionInfoNeeded {
            fields: transaction_fields(object)?,
        },
        _ => PostRejection::Error(message),
    })
}

impl Sep31Receiver for BusinessReceiver {
    fn valid_sending_anchor<'a>(
        &'a self,
        account: &'a PublicKey,
    ) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(async move {
            let call = Call::SendingAnchor;
            let account = account.to_string();
            let answer = self.send(call, &[("account", &account)], None).await?;
            // Only an explicit answer decides: anything else is neither a yes nor a no.
            if answer.status != StatusCode::OK {
                return Err(call.nonsense(answer.status, "the status is not 200"));
            }
            let object = answer
                .object()
                .map_err(|e| call.nonsense(answer.status, &e))?;
            match object.get("allowed") {
                Some(Value::Bool(allowed)) => Ok(*allowed),
                _ => Err(call.nonsense(answer.status, "allowed is not a boolean")),
            }
        })
    }

    fn process_post_request<'a>(
        &'a self,
        request: &'a PostRequest<'a>,
    ) -> BoxFuture<'a, Result<(), PostRejection>> {
        Box::pin(async move {
            let call = Call::Transaction;
            let body = json!({
                "sending_anchor": request.sending_anchor.to_string(),
                "amount": amount_string(request.amount),
                "asset_code": request.asset.code,
                "asset_issuer": request.asset.issuer.to_string(),
                "funding_method": request.funding_method,
                "sender_id": request.sender_id,
                "receiver_id": request.receiver_id,
                "fields": request.fields,
                "request": request.body,
            });
            let answer = self
                .send(call, &[], Some(body))
                .await
                .map_err(PostRejection::Unavailable)?;
            let status = answer.status;
            let nonsense = |why: &str| PostRejection::Unavailable(call.nonsense(status, why));
            if status.is_success() {
                // The body says nothing more, but must be JSON if there is one: an HTML page
                // from a proxy in the way is not an acceptance.
                return match &answer.body {
                    Ok(None) | Ok(Some(Value::Object(_))) => Ok(()),
                    Ok(Some(_)) => Err(nonsense("a 2xx answer's body is not an object")),
                    Err(e) => Err(nonsense(e)),
                };
            }
            if status != StatusCode::BAD_REQUEST {
                return Err(nonsense("the status is neither 2xx nor 400"));
            }
            Err(rejection(&answer).unwrap_or_else(|e| nonsense(&e)))
        })
    }
}

impl Fees for BusinessReceiver {
    fn fee<'a>(
        &'a self,
        asset: &'a ReceiveAsset,
        amount: Decimal,
        funding_method: &'a str,
    ) -> BoxFuture<'a, Result<Fee, FeeError>> {
        Box::pin(async move {
            let call = Call::Fee;
            let asset_id = format!("stellar:{}:{}", asset.code, asset.issuer);
            let amount = amount_string(amount);
            let mut query = vec![("asset", asset_id.as_str()), ("amount", amount.as_str())];
            // SEP-38 prices may be asked without a delivery method.
            if !funding_method.is_empty() {
                query.push(("funding_method", funding_method));
            }
            let answer = self
                .send(call, &query, None)
                .await
                .map_err(FeeError::Unavailable)?;
            let status = answer.status;
            let nonsense = |why: &str| FeeError::Unavailable(call.nonsense(status, why));
            match status {
                StatusCode::OK => answer
                    .object()
                    .and_then(|object| read_fee(object, &asset_id))
                    .map_err(|e| nonsense(&e)),
                StatusCode::BAD_REQUEST => answer
                    .error_message()
                    .map(FeeError::Refused)
                    .map_err(|e| nonsense(&e))
                    .and_then(Err),
                _ => Err(nonsense("the status is neither 200 nor 400")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSET: &str = "stellar:USDC:GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ";

    fn fee_of(answer: Value) -> Result<Fee, String> {
        read_fee(answer.as_object().unwrap(), ASSET)
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn a_fee_is_read_exactly() {
        let fee = fee_of(json!({"fee": {"total": "1.50", "asset": ASSET, "details": [
            {"name": "transfer", "amount": "1.0000000"},
            {"name": "FX", "description": "0.5% of the amount", "amount": "0.5"},
        ]}}))
        .unwrap();
        assert_eq!(fee.total, d("1.5"));
        assert_eq!(fee.total.to_string(), "1.5");
        assert_eq!(
            fee.details,
            vec![
                FeePart {
                    name: "transfer".into(),
                    description: None,
                    amount: d("1")
                },
                FeePart {
                    name: "FX".into(),
                    description: Some("0.5% of the amount".into()),
                    amount: d("0.5")
                },
            ]
        );
        let free = fee_of(json!({"fee": {"total": "0"}})).unwrap();
        assert_eq!((free.total, free.details.len()), (Decimal::ZERO, 0));
        assert_eq!(
            fee_of(json!({"fee": {"total": "0.0000001", "details": []}}))
                .unwrap()
                .total,
            d("0.0000001")
        );
    }

    #[test]
    fn a_fee_outside_the_contract_is_refused() {
        let cases = [
            (json!({}), "fee is missing"),
            (json!({"fee": "1"}), "not an object"),
            (json!({"fee": {}}), "fee.total is missing"),
            (json!({"fee": {"total": 1.5}}), "not an amount as a string"),
            (json!({"fee": {"total": "-1"}}), "negative"),
            (json!({"fee": {"total": "1e2"}}), "not a decimal amount"),
            (json!({"fee": {"total": "one"}}), "not a decimal amount"),
            (json!({"fee": {"total": ""}}), "not a decimal amount"),
            (json!({"fee": {"total": "1_000"}}), "not a decimal amount"),
            (json!({"fee": {"total": "0.00000001"}}), "decimal places"),
            (json!({"fee": {"total": "99999999999999999999"}}), "larger"),
            (
                json!({"fee": {"total": "1", "asset": "iso4217:USD"}}),
                "not the asset asked about",
            ),
            (
                json!({"fee": {"total": "1", "details": {}}}),
                "not an array",
            ),
            (
                json!({"fee": {"total": "1", "details": ["x"]}}),
                "not an object",
            ),
            (
                json!({"fee": {"total": "1", "details": [{"amount": "1"}]}}),
                "name is missing",
            ),
            (
                json!({"fee": {"total": "1", "details": [{"name": "a\u{0}b", "amount": "1"}]}}),
                "NUL",
            ),
            (
                json!({"fee": {"total": "1", "details": [{"name": "x", "amount": "-1"}]}}),
                "negative",
            ),
            (
                json!({"fee": {"total": "1", "details": [{"name": "x", "amount": "0.4"}, {"name": "y", "amount": "0.5"}]}}),
                "add up to 0.9, not fee.total 1",
            ),
            (
                json!({"fee": {"total": "1", "details": [{"name": "x", "description": 3, "amount": "1"}]}}),
                "description is a number",
            ),
        ];
        for (answer, why) in cases {
            let e = fee_of(answer.clone()).unwrap_err();
            assert!(e.contains(why), "{answer}: {e}");
        }
        let many: Vec<Value> = (0..=MAX_FEE_PARTS)
            .map(|_| json!({"name": "x", "amount": "0"}))
            .collect();
        assert!(fee_of(json!({"fee": {"total": "0", "details": many}})).is_err());
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert!(
            fee_of(json!({"fee": {"total": "1", "details": [{"name": long, "amount": "1"}]}}))
                .is_err()
        );
    }

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: Ok(Some(body)),
        }
    }

    #[test]
    fn refusals_are_read_in_sep31_shapes() {
        assert_eq!(
            rejection(&answer(
                400,
                json!({"error": "customer_info_needed", "type": "sep31-large-sender"})
            )),
            Ok(PostRejection::CustomerInfoNeeded {
                kind: Some("sep31-large-sender".into())
            })
        );
        assert_eq!(
            rejection(&answer(400, json!({"error": "customer_info_needed"}))),
            Ok(PostRejection::CustomerInfoNeeded { kind: None })
        );
        let needed = rejection(&answer(
            400,
            json!({"error": "transaction_info_needed", "fields": {"transaction": {
                "purpose": {"description": "why", "optional": false, "choices": ["gift", "salary"], "extra": 1},
            }}}),
        ))
        .unwrap();
        let PostRejection::TransactionInfoNeeded { fields } = needed else {
            panic!("{needed:?}");
        };
        assert_eq!(
            Value::Object(fields),
            json!({"purpose": {"description": "why", "optional": false, "choices": ["gift", "salary"]}})
        );
        assert_eq!(
            rejection(&answer(
                400,
                json!({"error": "  the receiver is sanctioned "})
            )),
            Ok(PostRejection::Error("the receiver is sanctioned".into()))
        );

        let bad = [
            json!({}),
            json!([]),
            json!({"error": ""}),
            json!({"error": 400}),
            json!({"error": "customer_info_needed", "type": "no spaces allowed"}),
            json!({"error": "customer_info_needed", "type": 7}),
            json!({"error": "transaction_info_needed"}),
            json!({"error": "transaction_info_needed", "fields": {"transaction": {}}}),
            json!({"error": "transaction_info_needed", "fields": {"transaction": {"purpose": {}}}}),
            json!({"error": "transaction_info_needed", "fields": {"transaction": {"purpose": "why"}}}),
            json!({"error": "transaction_info_needed", "fields": {"transaction": {"purpose": {"description": "why", "optional": "no"}}}}),
            json!({"error": "transaction_info_needed", "fields": {"transaction": {"purpose": {"description": "why", "choices": [1]}}}}),
        ];
        for body in bad {
            assert!(rejection(&answer(400, body.clone())).is_err(), "{body}");
        }
        let not_json = Answer {
            status: StatusCode::BAD_REQUEST,
            body: Err("the answer is not JSON".into()),
        };
        assert!(rejection(&not_json).is_err());
        let empty = Answer {
            status: StatusCode::BAD_REQUEST,
            body: Ok(None),
        };
        assert!(rejection(&empty).is_err());
    }
}
