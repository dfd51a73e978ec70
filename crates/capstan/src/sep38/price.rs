//! `GET /prices`, `GET /price`, and the arithmetic every price and quote shares.
//!
//! The fee is in the Stellar asset sold (the SEP-31 fee of that asset), and with `price` the
//! price of one unit of the off-chain asset bought, these hold (§6.7), the right-hand sides
//! rounded to the off-chain asset's decimals:
//!
//! ```text
//! buy_amount = (sell_amount - fee.total) / price
//! buy_amount = sell_amount / total_price
//! ```
//!
//! A `sell_amount` asked for is kept as it is and `buy_amount` rounded to the nearest unit
//! of the off-chain asset; a `buy_amount` asked for is kept as it is and `sell_amount`
//! rounded up to the stroop.

use axum::Json;
use axum::extract::State;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

use super::rates::{RateError, RateKind, RateRequest};
use super::{
    Known, PRICE_DECIMALS, PriceParams, known_asset, offchain_for, pair_offered, stellar_id,
};
use crate::anchor::AppState;
use crate::config::{OffchainAsset, ReceiveAsset, STELLAR_DECIMALS};
use crate::http::{ApiError, Query, Session};
use crate::sep31::amounts::amount_string;
use crate::sep31::integration::Fee;

impl From<RateError> for ApiError {
    fn from(e: RateError) -> Self {
        match e {
            RateError::Refused(m) => ApiError::BadRequest(m),
            RateError::Unavailable(m) => ApiError::Unavailable(m),
        }
    }
}

/// Which amount the client fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    Sell(Decimal),
    Buy(Decimal),
}

/// A validated `/price` or `POST /quote` request.
pub struct Pair<'a> {
    pub sell: &'a ReceiveAsset,
    pub buy: &'a OffchainAsset,
    pub sell_asset: String,
    pub amount: Fixed,
    pub buy_delivery_method: Option<String>,
    pub country_code: Option<String>,
    pub context: String,
}

/// An amount parameter: a positive decimal with at most `decimals` places.
pub fn parse_amount(key: &str, text: &str, decimals: u32) -> Result<Decimal, ApiError> {
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(ApiError::bad_request(format!(
            "{key} {text:?} is not a plain positive decimal (like \"100.50\")"
        )));
    }
    let amount: Decimal = text.parse().map_err(|_| {
        ApiError::bad_request(format!("{key} {text:?} is not a decimal within range"))
    })?;
    if amount.is_zero() {
        return Err(ApiError::bad_request(format!("{key} must be positive")));
    }
    if amount.normalize().scale() > decimals {
        return Err(ApiError::bad_request(format!(
            "{key} {text} has more than the {decimals} decimal places of its asset"
        )));
    }
    if amount > Decimal::new(i64::MAX, STELLAR_DECIMALS) {
        return Err(ApiError::bad_request(format!("{key} {text} is too large")));
    }
    Ok(amount.normalize())
}

/// Checks a `/price` or `POST /quote` request: both assets, exactly one amount (SEP38-06),
/// the delivery method of the off-chain asset (SEP38-07), the country and the context.
pub fn pair<'a>(
    anchor: &'a AppState,
    params: &PriceParams,
    contexts: &[&str],
) -> Result<Pair<'a>, ApiError> {
    let sell_id = params
        .sell_asset
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("sell_asset is required"))?;
    let buy_id = params
        .buy_asset
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("buy_asset is required"))?;
    let sell = known_asset(anchor, "sell_asset", sell_id)?;
    let buy = known_asset(anchor, "buy_asset", buy_id)?;
    let (sell, buy) = match (sell, buy) {
        (Known::Stellar(s), Known::Offchain(b)) if pair_offered(anchor, s, b) => (s, b),
        _ => {
            return Err(ApiError::bad_request(format!(
                "this anchor does not sell {buy_id} for {sell_id}; GET /prices lists what it converts"
            )));
        }
    };
    let amount = match (&params.sell_amount, &params.buy_amount) {
        (Some(s), None) => Fixed::Sell(parse_amount("sell_amount", s, STELLAR_DECIMALS)?),
        (None, Some(b)) => Fixed::Buy(parse_amount("buy_amount", b, buy.decimals)?),
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of sell_amount or buy_amount",
            ));
        }
    };
    if let Some(m) = &params.sell_delivery_method {
        return Err(ApiError::bad_request(format!(
            "sell_delivery_method {m}: {sell_id} is a Stellar asset, paid on Stellar; send buy_delivery_method"
        )));
    }
    let names: Vec<&str> = buy
        .delivery_methods
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let buy_delivery_method = match (&params.buy_delivery_method, names.as_slice()) {
        (Some(m), _) if names.contains(&m.as_str()) => Some(m.clone()),
        (Some(m), []) => {
            return Err(ApiError::bad_request(format!(
                "buy_delivery_method {m}: {buy_id} has no delivery methods to choose from"
            )));
        }
        (Some(m), _) => {
            return Err(ApiError::bad_request(format!(
                "buy_delivery_method {m} is not a delivery method of {buy_id}: use one of {}",
                names.join(", ")
            )));
        }
        (None, []) => None,
        (None, [only]) => Some((*only).to_owned()),
        (None, _) => {
            return Err(ApiError::bad_request(format!(
                "buy_delivery_method is required: one of {}",
                names.join(", ")
            )));
        }
    };
    let country_code = match &params.country_code {
        Some(c) if buy.country_codes.is_empty() || buy.country_codes.contains(c) => Some(c.clone()),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "country_code {c} is not one of {buy_id}'s: {}",
                buy.country_codes.join(", ")
            )));
        }
        None => None,
    };
    let context = match params.context.as_deref() {
        Some(c) if contexts.contains(&c) && c == "sep31" => c.to_owned(),
        Some(c) if contexts.contains(&c) => {
            return Err(ApiError::bad_request(format!(
                "context {c}: this anchor quotes only for sep31"
            )));
        }
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "context {c:?} is not one of {}",
                contexts.join(", ")
            )));
        }
        None => {
            return Err(ApiError::bad_request(
                "context is required: sep31 for a SEP-31 payment",
            ));
        }
    };
    Ok(Pair {
        sell_asset: stellar_id(sell),
        sell,
        buy,
        amount,
        buy_delivery_method,
        country_code,
        context,
    })
}

/// Amounts, prices and fee of a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub sell_amount: Decimal,
    pub buy_amount: Decimal,
    pub price: Decimal,
    pub total_price: Decimal,
    /// In the Stellar asset sold.
    pub fee: Fee,
}

impl Priced {
    /// The `fee` object: `{"total", "asset", "details"?}`.
    pub fn fee_json(&self, sell_asset: &str) -> Value {
        let mut fee = json!({ "total": amount_string(self.fee.total), "asset": sell_asset });
        if !self.fee.details.is_empty() {
            fee["details"] = self.fee.details_json();
        }
        fee
    }
}

fn round_buy(amount: Decimal, decimals: u32) -> Decimal {
    amount
        .round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// Prices `pair` at `price` (one unit of the off-chain asset in the Stellar asset), with the
/// Stellar asset's fee.
pub async fn priced(
    anchor: &AppState,
    sell: &ReceiveAsset,
    buy: &OffchainAsset,
    amount: Fixed,
    delivery_method: Option<&str>,
    price: Decimal,
) -> Result<Priced, ApiError> {
    let method = delivery_method.unwrap_or_default();
    let fee_of = |s: Decimal| async move {
        let fee = anchor.fees.fee(sell, s, method).await?;
        if fee.total.is_sign_negative() || fee.total.normalize().scale() > STELLAR_DECIMALS {
            return Err(ApiError::Internal(format!(
                "the fee integration returned {} for {}, not a Stellar amount",
                fee.total, sell.code
            )));
        }
        Ok::<Fee, ApiError>(fee)
    };
    let (sell_amount, buy_amount, fee) = match amount {
        Fixed::Sell(s) => {
            let fee = fee_of(s).await?;
            let net = s - fee.total;
            if net <= Decimal::ZERO {
                return Err(ApiError::bad_request(format!(
                    "sell_amount {s} does not cover the fee of {} {}",
                    amount_string(fee.total),
                    sell.code
                )));
            }
            let b = round_buy(net / price, buy.decimals);
            if b.is_zero() {
                return Err(ApiError::bad_request(format!(
                    "sell_amount {s} buys less than the smallest amount of {}",
                    buy.asset
                )));
            }
            (s, b, fee)
        }
        Fixed::Buy(b) => {
            let net = (price * b)
                .round_dp_with_strategy(STELLAR_DECIMALS, RoundingStrategy::AwayFromZero);
            // The fee depends on the amount sold, which includes the fee: settle it in a
            // few rounds (a fixed plus percent fee settles in two).
            let mut fee = fee_of(net).await?;
            for _ in 0..4 {
                let next = fee_of(net + fee.total).await?;
                if next.total == fee.total {
                    break;
                }
                fee = next;
            }
            (net + fee.total, b, fee)
        }
    };
    let total_price = (sell_amount / buy_amount)
        .round_dp_with_strategy(PRICE_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
        .normalize();
    let priced = Priced {
        sell_amount: sell_amount.normalize(),
        buy_amount,
        price: price.normalize(),
        total_price,
        fee: Fee {
            total: fee.total.normalize(),
            details: fee.details,
        },
    };
    check_limits(sell, &priced)?;
    Ok(priced)
}

/// The SEP-31 limits of the Stellar asset apply to what is sold.
fn check_limits(sell: &ReceiveAsset, priced: &Priced) -> Result<(), ApiError> {
    let s = &sell.settings;
    if let Some(min) = s.min_amount
        && priced.sell_amount < min
    {
        return Err(ApiError::bad_request(format!(
            "sell_amount {} is below the minimum of {} {}",
            amount_string(priced.sell_amount),
            amount_string(min),
            sell.code
        )));
    }
    if let Some(max) = s.max_amount
        && priced.sell_amount > max
    {
        return Err(ApiError::bad_request(format!(
            "sell_amount {} is above the maximum of {} {}",
            amount_string(priced.sell_amount),
            amount_string(max),
            sell.code
        )));
    }
    Ok(())
}

/// The request the Rates integration sees.
pub fn rate_request<'a>(
    pair: &'a Pair<'a>,
    kind: RateKind,
    client: Option<&Session>,
) -> RateRequest<'a> {
    let (sell_amount, buy_amount) = match pair.amount {
        Fixed::Sell(s) => (Some(s), None),
        Fixed::Buy(b) => (None, Some(b)),
    };
    RateRequest {
        kind,
        sell_asset: &pair.sell_asset,
        buy_asset: &pair.buy.asset,
        sell_amount,
        buy_amount,
        buy_delivery_method: pair.buy_delivery_method.as_deref(),
        country_code: pair.country_code.as_deref(),
        context: Some(&pair.context),
        client_id: client.map(|s| s.sub.clone()),
    }
}

/// `GET /price`: an indicative price for one conversion (SEP-38 §GET /price).
pub async fn price(
    State(anchor): State<AppState>,
    session: Option<Session>,
    Query(params): Query<PriceParams>,
) -> Result<Json<Value>, ApiError> {
    let params = params.normalized();
    if params.expire_after.is_some() {
        return Err(ApiError::bad_request(
            "expire_after is a POST /quote parameter",
        ));
    }
    let pair = pair(&anchor, &params, &["sep6", "sep31"])?;
    let rate = anchor
        .rates
        .rate(&rate_request(&pair, RateKind::Indicative, session.as_ref()))
        .await?;
    let p = priced(
        &anchor,
        pair.sell,
        pair.buy,
        pair.amount,
        pair.buy_delivery_method.as_deref(),
        rate,
    )
    .await?;
    Ok(Json(json!({
        "total_price": amount_string(p.total_price),
        "price": amount_string(p.price),
        "sell_amount": amount_string(p.sell_amount),
        "buy_amount": amount_string(p.buy_amount),
        "fee": p.fee_json(&pair.sell_asset),
    })))
}

/// `GET /prices`: indicative prices of what one asset converts to (`sell_asset`) or from
/// (`buy_asset`).
pub async fn prices(
    State(anchor): State<AppState>,
    session: Option<Session>,
    Query(params): Query<PriceParams>,
) -> Result<Json<Value>, ApiError> {
    let params = params.normalized();
    if params.context.is_some() || params.expire_after.is_some() {
        return Err(ApiError::bad_request(
            "GET /prices takes sell_asset or buy_asset, an amount, delivery methods and country_code",
        ));
    }
    let (key, id, amount_key, amount, other_amount) = match (&params.sell_asset, &params.buy_asset)
    {
        (Some(s), None) => (
            "sell_asset",
            s,
            "sell_amount",
            &params.sell_amount,
            &params.buy_amount,
        ),
        (None, Some(b)) => (
            "buy_asset",
            b,
            "buy_amount",
            &params.buy_amount,
            &params.sell_amount,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of sell_asset or buy_asset",
            ));
        }
    };
    if other_amount.is_some() {
        return Err(ApiError::bad_request(format!(
            "{amount_key} is the only amount that goes with {key}"
        )));
    }
    let asset = known_asset(&anchor, key, id)?;
    let method_ok = |o: &OffchainAsset| match &params.buy_delivery_method {
        Some(m) => o.delivery_methods.iter().any(|d| &d.name == m),
        None => true,
    };
    let country_ok = |o: &OffchainAsset| match &params.country_code {
        Some(c) => o.country_codes.is_empty() || o.country_codes.contains(c),
        None => true,
    };
    // Each pair: (Stellar asset, off-chain asset).
    let mut pairs: Vec<(&ReceiveAsset, &OffchainAsset)> = Vec::new();
    match (&asset, key) {
        (Known::Stellar(s), "sell_asset") => {
            if params.sell_delivery_method.is_some() {
                return Err(ApiError::bad_request(format!(
                    "sell_delivery_method: {id} is a Stellar asset, paid on Stellar"
                )));
            }
            for o in offchain_for(&anchor, s) {
                if method_ok(o) && country_ok(o) {
                    pairs.push((s, o));
                }
            }
        }
        (Known::Offchain(o), "buy_asset") => {
            if let Some(m) = &params.buy_delivery_method
                && !method_ok(o)
            {
                return Err(ApiError::bad_request(format!(
                    "buy_delivery_method {m} is not a delivery method of {id}"
                )));
            }
            if let Some(c) = &params.country_code
                && !country_ok(o)
            {
                return Err(ApiError::bad_request(format!(
                    "country_code {c} is not one of {id}'s"
                )));
            }
            for s in &anchor.receive_assets {
                if pair_offered(&anchor, s, o) {
                    pairs.push((s, o));
                }
            }
        }
        // An off-chain asset is never bought from the client, nor a Stellar asset sold to it.
        _ => {}
    }
    let amount = match (amount, &asset) {
        (None, _) => None,
        (Some(a), Known::Stellar(_)) => Some(parse_amount(amount_key, a, STELLAR_DECIMALS)?),
        (Some(a), Known::Offchain(o)) => Some(parse_amount(amount_key, a, o.decimals)?),
    };
    let mut listed = Vec::new();
    for (s, o) in pairs {
        let sell_asset = stellar_id(s);
        let (sell_amount, buy_amount) = match key {
            "sell_asset" => (amount, None),
            _ => (None, amount),
        };
        let request = RateRequest {
            kind: RateKind::Indicative,
            sell_asset: &sell_asset,
            buy_asset: &o.asset,
            sell_amount,
            buy_amount,
            buy_delivery_method: params.buy_delivery_method.as_deref(),
            country_code: params.country_code.as_deref(),
            context: None,
            client_id: session.as_ref().map(|s| s.sub.clone()),
        };
        match anchor.rates.rate(&request).await {
            Ok(price) => listed.push(if key == "sell_asset" {
                json!({ "asset": o.asset, "price": amount_string(price), "decimals": o.decimals })
            } else {
                json!({ "asset": sell_asset, "price": amount_string(price), "decimals": STELLAR_DECIMALS })
            }),
            // A pair the price source does not quote now is left out.
            Err(RateError::Refused(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(if key == "sell_asset" {
        json!({ "buy_assets": listed })
    } else {
        json!({ "sell_assets": listed })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The §6.7 relations, the right-hand side rounded to the off-chain asset's decimals.
    pub fn formulas_hold(p: &Priced, decimals: u32) -> bool {
        round_buy((p.sell_amount - p.fee.total) / p.price, decimals) == p.buy_amount
            && round_buy(p.sell_amount / p.total_price, decimals) == p.buy_amount
            && p.fee.details.iter().map(|d| d.amount).sum::<Decimal>() == p.fee.total
    }

    #[test]
    fn rounding_of_the_bought_amount() {
        assert_eq!(
            round_buy("490.099".parse().unwrap(), 2),
            "490.1".parse().unwrap()
        );
        assert_eq!(
            round_buy("490.005".parse().unwrap(), 2),
            "490.01".parse().unwrap()
        );
        let p = Priced {
            sell_amount: "100".parse().unwrap(),
            buy_amount: "490.1".parse().unwrap(),
            price: "0.202".parse().unwrap(),
            total_price: (Decimal::from(100) / "490.1".parse::<Decimal>().unwrap())
                .round_dp(PRICE_DECIMALS),
            fee: Fee {
                total: Decimal::ONE,
                details: vec![],
            },
        };
        assert!(!formulas_hold(&p, 2), "details must sum to the total");
        let p = Priced {
            fee: Fee {
                total: Decimal::ONE,
                details: vec![crate::sep31::integration::FeePart {
                    name: "fixed".into(),
                    description: None,
                    amount: Decimal::ONE,
                }],
            },
            ..p
        };
        assert!(formulas_hold(&p, 2));
    }
}
