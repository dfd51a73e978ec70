//! The payments stream of one account: `GET /accounts/{id}/payments?join=transactions` over
//! Server-Sent Events.
//!
//! The payments endpoint rather than `/accounts/{id}/transactions`: it gives one record per
//! payment operation with the amount and asset already decoded (the transactions endpoint
//! would mean decoding every envelope's XDR to find them), and each record carries its own
//! paging token, so a resumed stream can start between two operations of one transaction.
//! `join=transactions` brings each operation's transaction along (memo, success, hash).
//!
//! SSE framing is parsed by `eventsource-stream`; this module only reads Horizon's records.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Deserializer};

use super::{Horizon, HorizonError};

/// One record of the payments endpoint, as far as a receiving anchor reads it. Fields the
/// record kind does not have stay `None`.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentRecord {
    /// The operation id: unique on the network.
    pub id: String,
    pub paging_token: String,
    #[serde(default)]
    pub transaction_successful: Option<bool>,
    /// payment, path_payment_strict_send, path_payment_strict_receive, create_account,
    /// account_merge, ...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub created_at: Option<String>,
    pub transaction_hash: String,
    #[serde(default)]
    pub source_account: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    /// The base `G...` account, also when the payment went to a muxed address.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub to_muxed: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub to_muxed_id: Option<String>,
    #[serde(default)]
    pub asset_type: Option<String>,
    #[serde(default)]
    pub asset_code: Option<String>,
    #[serde(default)]
    pub asset_issuer: Option<String>,
    /// What the destination received (for path payments too), with 7 decimals.
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub transaction: Option<TransactionRecord>,
}

/// The joined transaction. For a fee bump, Horizon gives the outer hash in `hash` and the
/// inner transaction's memo.
#[derive(Debug, Clone, Deserialize)]
pub struct TransactionRecord {
    pub hash: String,
    #[serde(default)]
    pub successful: Option<bool>,
    /// none, id, text, hash, return
    #[serde(default)]
    pub memo_type: Option<String>,
    /// id as a decimal string, text as the text, hash and return in base64.
    #[serde(default)]
    pub memo: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl PaymentRecord {
    /// Whether its transaction succeeded. Horizon leaves failed transactions out unless asked
    /// for them; this is read anyway, so a server that sends them changes nothing.
    pub fn successful(&self) -> bool {
        self.transaction_successful
            .or_else(|| self.transaction.as_ref().and_then(|t| t.successful))
            .unwrap_or(true)
    }
}

/// Horizon writes some 64-bit numbers as JSON strings; accept both.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(u64),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|v| match v {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    }))
}

/// A stream of records; it ends when Horizon closes the connection.
pub type PaymentStream = BoxStream<'static, Result<PaymentRecord, HorizonError>>;

impl Horizon {
    /// Opens the payments stream of `account` just after `cursor` (a paging token, or
    /// `now`). A connection that stays silent longer than the streaming read timeout ends
    /// with an error, so a dead connection is noticed.
    pub async fn payments_stream(
        &self,
        account: &str,
        cursor: &str,
    ) -> Result<PaymentStream, HorizonError> {
        let url = format!("{}/accounts/{account}/payments", self.base_url);
        let response = self
            .stream_http
            .get(&url)
            // Horizon ends a stream after `limit` records (default 10) with a "byebye"; the
            // largest page makes catching up cost one reconnect per 200 records.
            .query(&[
                ("cursor", cursor),
                ("join", "transactions"),
                ("limit", "200"),
            ])
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| HorizonError::Unreachable(e.to_string()))?;
        if response.status().as_u16() != 200 {
            return Err(rejected(&response, url));
        }
        let events = response.bytes_stream().eventsource();
        Ok(events
            .filter_map(|event| async move {
                match event {
                    Ok(event) => record(event).transpose(),
                    Err(e) => Some(Err(HorizonError::Unreachable(format!(
                        "the payments stream broke: {e}"
                    )))),
                }
            })
            .boxed())
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(rename = "_embedded")]
    embedded: Embedded,
}

#[derive(Deserialize)]
struct Embedded {
    records: Vec<TokenOnly>,
}

#[derive(Deserialize)]
struct TokenOnly {
    paging_token: String,
}

impl Horizon {
    /// The paging token of the newest payment of `account`, `None` when it has none (or
    /// does not exist yet). What "now" means, pinned down so it can be stored.
    pub async fn latest_payment_token(
        &self,
        account: &str,
    ) -> Result<Option<String>, HorizonError> {
        let url = format!("{}/accounts/{account}/payments", self.base_url);
        let response = self
            .http
            .get(&url)
            .query(&[("order", "desc"), ("limit", "1")])
            .send()
            .await
            .map_err(|e| HorizonError::Unreachable(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(rejected(&response, url)),
        }
        let page: Page = response
            .json()
            .await
            .map_err(|e| HorizonError::BadResponse(e.to_string()))?;
        Ok(page
            .embedded
            .records
            .into_iter()
            .next()
            .map(|r| r.paging_token))
    }
}

/// A refusal, with the wait a `Retry-After` header (429, 503) asks for.
fn rejected(response: &reqwest::Response, url: String) -> HorizonError {
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    HorizonError::Rejected {
        status: response.status().as_u16(),
        url,
        retry_after,
    }
}

/// The record an event carries, or `None` for Horizon's own messages (the opening "hello",
/// a closing "byebye", anything without an id).
fn record(event: Event) -> Result<Option<PaymentRecord>, HorizonError> {
    if event.id.is_empty() || event.event == "open" || event.event == "close" {
        return Ok(None);
    }
    serde_json::from_str(&event.data)
        .map(Some)
        .map_err(|e| HorizonError::BadRecord {
            paging_token: event.id.clone(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_path_payment_to_a_muxed_address_with_a_numeric_muxed_id() {
        let json = r#"{"id":"12884905985","paging_token":"12884905985","transaction_successful":true,
            "type":"path_payment_strict_send","transaction_hash":"ab","to":"GA","to_muxed":"MA",
            "to_muxed_id":42,"asset_type":"credit_alphanum4","asset_code":"USDC","asset_issuer":"GI",
            "amount":"10.0000000","transaction":{"hash":"ab","memo_type":"id","memo":"7","successful":true}}"#;
        let r: PaymentRecord = serde_json::from_str(json).unwrap();
        assert_eq!(r.to_muxed_id.as_deref(), Some("42"));
        assert!(r.successful());
        assert_eq!(r.transaction.unwrap().memo.as_deref(), Some("7"));
    }

    #[test]
    fn hello_and_idless_events_carry_no_record() {
        let hello = Event {
            event: "open".into(),
            data: "\"hello\"".into(),
            ..Event::default()
        };
        assert!(record(hello).unwrap().is_none());
        let bad = Event {
            id: "5".into(),
            data: "{".into(),
            ..Event::default()
        };
        assert!(record(bad).is_err());
    }

    #[test]
    fn a_failed_transaction_is_not_successful() {
        let json = r#"{"id":"1","paging_token":"1","type":"payment","transaction_hash":"ab",
            "transaction":{"hash":"ab","successful":false}}"#;
        let r: PaymentRecord = serde_json::from_str(json).unwrap();
        assert!(!r.successful());
    }
}
