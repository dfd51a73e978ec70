//! The `Rates` integration: the price of one unit of an off-chain asset in a Stellar asset,
//! margin included. Built in: the configured fixed rates plus `sep38.spread_percent`. Over
//! HTTP: `GET <sep38.business_url>/rate` on the anchor's own service, signed like every
//! call capstan makes to it (`Signature: t=<t>, s=<sig>` over `<t>.<host>.` with the
//! anchor's SIGNING_KEY, and `Authorization: Bearer <sep38.business_api_key>` when set).
//!
//! The service answers `{"rate": {"price": "0.18"}}` (the price of one unit of `buy_asset`
//! in `sell_asset`), or a 4xx `{"error": "..."}` for a pair or an amount it does not quote.

use std::time::Duration;

use futures_util::future::BoxFuture;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use stellar::Keypair;

use super::PRICE_DECIMALS;
use crate::config::{RatesKind, Secret, Sep38Config};
use crate::notify::signature_header;
use crate::store::unix_now;

/// Indicative (`/prices`, `/price`, a SEP-31 `destination_asset`) or firm (`POST /quote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKind {
    Indicative,
    Firm,
}

impl RateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RateKind::Indicative => "indicative",
            RateKind::Firm => "firm",
        }
    }
}

/// What a price is asked for.
#[derive(Debug, Clone)]
pub struct RateRequest<'a> {
    pub kind: RateKind,
    /// SEP-38 asset ids: `stellar:USDC:G...`, `iso4217:BRL`.
    pub sell_asset: &'a str,
    pub buy_asset: &'a str,
    pub sell_amount: Option<Decimal>,
    pub buy_amount: Option<Decimal>,
    pub buy_delivery_method: Option<&'a str>,
    pub country_code: Option<&'a str>,
    /// `sep31`, or `sep6`/`sep24` when asked.
    pub context: Option<&'a str>,
    /// The SEP-10 account asking, when known.
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateError {
    /// This pair or amount is not quoted: the client reads the message (400).
    Refused(String),
    /// The price source cannot answer now (503).
    Unavailable(String),
}

pub trait Rates: Send + Sync {
    /// The price of one unit of `buy_asset` in `sell_asset`, margin included.
    fn rate<'a>(
        &'a self,
        request: &'a RateRequest<'a>,
    ) -> BoxFuture<'a, Result<Decimal, RateError>>;
}

/// The configured rates with the spread added, rounded to [`PRICE_DECIMALS`].
pub struct FixedRates {
    config: Sep38Config,
}

impl FixedRates {
    pub fn new(config: Sep38Config) -> FixedRates {
        FixedRates { config }
    }
}

/// The Stellar asset code of a `stellar:CODE:ISSUER` id.
fn stellar_code(id: &str) -> Option<&str> {
    id.strip_prefix("stellar:")?.split(':').next()
}

impl Rates for FixedRates {
    fn rate<'a>(
        &'a self,
        request: &'a RateRequest<'a>,
    ) -> BoxFuture<'a, Result<Decimal, RateError>> {
        Box::pin(async move {
            let refused = || {
                RateError::Refused(format!(
                    "no price for {} in {}",
                    request.buy_asset, request.sell_asset
                ))
            };
            let code = stellar_code(request.sell_asset).ok_or_else(refused)?;
            let rate = self
                .config
                .asset(request.buy_asset)
                .and_then(|a| a.rates.get(code))
                .ok_or_else(refused)?;
            let factor = Decimal::ONE + self.config.spread_percent / Decimal::ONE_HUNDRED;
            Ok((rate * factor)
                .round_dp_with_strategy(PRICE_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
                .normalize())
        })
    }
}

/// `GET <business_url>/rate` on the anchor's own service.
pub struct HttpRates {
    http: reqwest::Client,
    url: String,
    api_key: Option<Secret>,
    signing_key: Keypair,
}

impl HttpRates {
    pub fn new(
        url: String,
        api_key: Option<Secret>,
        signing_key: Keypair,
        timeout: Duration,
    ) -> Result<HttpRates, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpRates {
            http,
            url,
            api_key,
            signing_key,
        })
    }

    async fn ask(&self, request: &RateRequest<'_>) -> Result<Decimal, RateError> {
        let mut url = url::Url::parse(&format!("{}/rate", self.url))
            .map_err(|e| RateError::Unavailable(format!("sep38.business_url: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("type", request.kind.as_str());
            q.append_pair("sell_asset", request.sell_asset);
            q.append_pair("buy_asset", request.buy_asset);
            if let Some(a) = request.sell_amount {
                q.append_pair("sell_amount", &a.normalize().to_string());
            }
            if let Some(a) = request.buy_amount {
                q.append_pair("buy_amount", &a.normalize().to_string());
            }
            if let Some(m) = request.buy_delivery_method {
                q.append_pair("buy_delivery_method", m);
            }
            if let Some(c) = request.country_code {
                q.append_pair("country_code", c);
            }
            if let Some(c) = request.context {
                q.append_pair("context", c);
            }
            if let Some(c) = &request.client_id {
                q.append_pair("client_id", c);
            }
        }
        let mut call = self.http.get(url.clone()).header(
            "Signature",
            signature_header(&self.signing_key, &url, "", unix_now()),
        );
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key.expose());
        }
        let unavailable = |e: String| RateError::Unavailable(format!("the rate service: {e}"));
        let response = call
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let answer: Option<Value> = response
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if status.is_client_error() {
            let said = answer
                .as_ref()
                .and_then(|a| a.get("error").and_then(Value::as_str))
                .unwrap_or("no price for this pair")
                .to_owned();
            return Err(RateError::Refused(said));
        }
        if !status.is_success() {
            return Err(unavailable(format!("answered {status}")));
        }
        let price = answer
            .as_ref()
            .and_then(|a| a.get("rate"))
            .and_then(|r| r.get("price"))
            .and_then(Value::as_str)
            .and_then(|p| p.trim().parse::<Decimal>().ok())
            .filter(|p| p.is_sign_positive() && !p.is_zero())
            .ok_or_else(|| unavailable("no positive rate.price in the answer".into()))?;
        Ok(price.normalize())
    }
}

impl Rates for HttpRates {
    fn rate<'a>(
        &'a self,
        request: &'a RateRequest<'a>,
    ) -> BoxFuture<'a, Result<Decimal, RateError>> {
        Box::pin(self.ask(request))
    }
}

/// The configured rates integration.
pub fn configured(
    config: &Sep38Config,
    signing_key: &Keypair,
) -> Result<std::sync::Arc<dyn Rates>, String> {
    Ok(match config.rates {
        RatesKind::Fixed => std::sync::Arc::new(FixedRates::new(config.clone())),
        RatesKind::Business => {
            let url = config
                .business_url
                .clone()
                .ok_or("sep38.business_url is not set")?;
            std::sync::Arc::new(HttpRates::new(
                url,
                config.business_api_key.clone(),
                signing_key.clone(),
                Duration::from_secs(10),
            )?)
        }
    })
}
