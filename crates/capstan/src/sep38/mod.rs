//! SEP-38 (Anchor RFQ API), served under ANCHOR_QUOTE_SERVER (`<base_url>/sep38`) when
//! `[sep38.assets]` lists off-chain assets: what this anchor converts (`/info`), indicative
//! prices (`/prices`, `/price`) and firm quotes (`/quote`). This receiving anchor sells
//! off-chain assets for the Stellar assets it receives: a sending anchor pays USDC and its
//! receiver gets BRL.

pub mod info;
pub mod price;
pub mod quote;
pub mod rates;
pub mod sep31;

use axum::Router;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::anchor::AppState;
use crate::config::{OffchainAsset, ReceiveAsset};
use crate::http::ApiError;

/// The SEP-38 version these endpoints follow.
pub const SEP38_VERSION: &str = "2.5.0";

/// Decimal places of prices.
pub const PRICE_DECIMALS: u32 = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sep38/info", get(info::info))
        .route("/sep38/prices", get(price::prices))
        .route("/sep38/price", get(price::price))
        .route("/sep38/quote", post(quote::post_quote))
        .route("/sep38/quote/{id}", get(quote::get_quote))
}

/// The SEP-38 id of a Stellar asset this anchor receives.
pub fn stellar_id(asset: &ReceiveAsset) -> String {
    format!("stellar:{}:{}", asset.code, asset.issuer)
}

/// An asset named by a request, among those this anchor knows.
pub enum Known<'a> {
    Stellar(&'a ReceiveAsset),
    Offchain(&'a OffchainAsset),
}

/// Reads a SEP-38 asset id (`stellar:CODE:ISSUER`, `iso4217:XXX`): a malformed or unknown
/// one is a 400 that says which (SEP38-05).
pub fn known_asset<'a>(anchor: &'a AppState, key: &str, id: &str) -> Result<Known<'a>, ApiError> {
    let (scheme, rest) = id.split_once(':').ok_or_else(|| {
        ApiError::bad_request(format!(
            "{key} {id:?} is not a SEP-38 asset: use stellar:<code>:<issuer> or iso4217:<code>"
        ))
    })?;
    match scheme {
        "stellar" => anchor
            .receive_assets
            .iter()
            .find(|a| stellar_id(a) == id)
            .map(Known::Stellar)
            .ok_or_else(|| {
                ApiError::bad_request(if rest.contains(':') {
                    format!("{key} {id} is not an asset this anchor converts; GET /info lists them")
                } else {
                    format!("{key} {id:?} is not a SEP-38 asset: stellar:<code>:<issuer>")
                })
            }),
        "iso4217" => anchor
            .config
            .sep38
            .asset(id)
            .map(Known::Offchain)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{key} {id} is not an asset this anchor converts; GET /info lists them"
                ))
            }),
        _ => Err(ApiError::bad_request(format!(
            "{key} {id:?} is not a SEP-38 asset: use stellar:<code>:<issuer> or iso4217:<code>"
        ))),
    }
}

/// Whether a Stellar asset converts to an off-chain one: the fixed rates list it; the
/// business server is asked for every pair.
pub fn pair_offered(anchor: &AppState, stellar: &ReceiveAsset, offchain: &OffchainAsset) -> bool {
    match anchor.config.sep38.rates {
        crate::config::RatesKind::Fixed => offchain.rates.contains_key(&stellar.code),
        crate::config::RatesKind::Business => true,
    }
}

/// The off-chain assets a Stellar asset converts to.
pub fn offchain_for<'a>(
    anchor: &'a AppState,
    stellar: &'a ReceiveAsset,
) -> impl Iterator<Item = &'a OffchainAsset> + 'a {
    anchor
        .config
        .sep38
        .assets
        .iter()
        .filter(move |o| pair_offered(anchor, stellar, o))
}

/// A string parameter: absent, null and "" are `None`; anything else but a string is a 400.
pub fn text_param(
    body: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(ApiError::bad_request(format!(
            "{key} holds a NUL character"
        ))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) if key.ends_with("_amount") => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

/// The query of `/prices` and `/price`, and the body of `POST /quote`.
#[derive(Debug, Default, Deserialize)]
pub struct PriceParams {
    pub sell_asset: Option<String>,
    pub buy_asset: Option<String>,
    pub sell_amount: Option<String>,
    pub buy_amount: Option<String>,
    pub sell_delivery_method: Option<String>,
    pub buy_delivery_method: Option<String>,
    pub country_code: Option<String>,
    pub context: Option<String>,
    pub expire_after: Option<String>,
}

impl PriceParams {
    /// From a JSON body (numbers accepted for amounts).
    pub fn from_json(body: &Value) -> Result<PriceParams, ApiError> {
        let Value::Object(body) = body else {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        };
        Ok(PriceParams {
            sell_asset: text_param(body, "sell_asset")?,
            buy_asset: text_param(body, "buy_asset")?,
            sell_amount: text_param(body, "sell_amount")?,
            buy_amount: text_param(body, "buy_amount")?,
            sell_delivery_method: text_param(body, "sell_delivery_method")?,
            buy_delivery_method: text_param(body, "buy_delivery_method")?,
            country_code: text_param(body, "country_code")?,
            context: text_param(body, "context")?,
            expire_after: text_param(body, "expire_after")?,
        })
    }

    /// Empty strings read as absent, like in a JSON body.
    pub fn normalized(self) -> PriceParams {
        let f = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        PriceParams {
            sell_asset: f(self.sell_asset),
            buy_asset: f(self.buy_asset),
            sell_amount: f(self.sell_amount),
            buy_amount: f(self.buy_amount),
            sell_delivery_method: f(self.sell_delivery_method),
            buy_delivery_method: f(self.buy_delivery_method),
            country_code: f(self.country_code),
            context: f(self.context),
            expire_after: f(self.expire_after),
        }
    }
}

/// `{"name", "description"}` of each delivery method.
pub fn delivery_methods_json(asset: &OffchainAsset) -> Value {
    Value::Array(
        asset
            .delivery_methods
            .iter()
            .map(|m| json!({ "name": m.name, "description": m.description }))
            .collect(),
    )
}
