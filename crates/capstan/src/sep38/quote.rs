//! `POST /quote` and `GET /quote/:id`: firm quotes. A quote belongs to the SEP-10 account
//! (and memo) that asked for it: another account reads it as unknown (404) and cannot use
//! it. It expires at a time the anchor chooses between `sep38.min_expiry_secs` and
//! `sep38.max_expiry_secs` from now (no earlier than `expire_after`), funds one SEP-31
//! transaction at most, and stays readable after it expires (SEP38-12).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};

use super::PriceParams;
use super::price::{pair, priced, rate_request};
use super::rates::RateKind;
use crate::anchor::AppState;
use crate::http::{ApiError, FormOrJson, PathSegment, Session};
use crate::sep31::SendingAnchor;
use crate::sep31::amounts::amount_string;
use crate::store::{QuoteRow, Reserved, iso_time, unix_now};

/// The owner of a quote: the account and the memo ("" for none) of a session.
pub fn owner(session: &Session) -> (String, String) {
    (
        session.account().to_string(),
        session.memo().map(|m| m.to_string()).unwrap_or_default(),
    )
}

/// The quote as `POST /quote` and `GET /quote/:id` answer it.
pub fn quote_json(q: &QuoteRow) -> Value {
    let mut v = json!({
        "id": q.id,
        "expires_at": iso_time(q.expires_at),
        "total_price": q.total_price,
        "price": q.price,
        "sell_asset": q.sell_asset,
        "sell_amount": q.sell_amount,
        "buy_asset": q.buy_asset,
        "buy_amount": q.buy_amount,
        "fee": serde_json::from_str::<Value>(&q.fee).unwrap_or_else(|_| json!({})),
    });
    if let Some(m) = &q.sell_delivery_method {
        v["sell_delivery_method"] = json!(m);
    }
    if let Some(m) = &q.buy_delivery_method {
        v["buy_delivery_method"] = json!(m);
    }
    v
}

/// When a quote asked for now with `expire_after` expires: at least the configured minimum
/// from now, at `expire_after` when that is later; a 400 beyond the maximum (SEP38-08).
pub fn expiry(anchor: &AppState, now: i64, expire_after: Option<&str>) -> Result<i64, ApiError> {
    let config = &anchor.config.sep38;
    let earliest = now + config.min_expiry_secs as i64;
    let latest = now + config.max_expiry_secs as i64;
    let Some(text) = expire_after else {
        return Ok(earliest);
    };
    let wanted = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            ApiError::bad_request(format!(
                "expire_after {text:?} is not a UTC ISO 8601 time like 2030-01-31T12:00:00Z"
            ))
        })?
        .timestamp();
    if wanted > latest {
        return Err(ApiError::bad_request(format!(
            "expire_after {text}: quotes last at most {} seconds, until {}",
            config.max_expiry_secs,
            iso_time(latest)
        )));
    }
    Ok(wanted.max(earliest))
}

pub async fn post_quote(
    State(anchor): State<AppState>,
    SendingAnchor(session): SendingAnchor,
    FormOrJson(body): FormOrJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !anchor.config.sep38.enabled() {
        return Err(ApiError::NotFound("this anchor offers no quotes".into()));
    }
    let params = PriceParams::from_json(&body)?;
    let pair = pair(&anchor, &params, &["sep6", "sep24", "sep31"])?;
    let now = unix_now();
    let expires_at = expiry(&anchor, now, params.expire_after.as_deref())?;
    let rate = anchor
        .rates
        .rate(&rate_request(&pair, RateKind::Firm, Some(&session)))
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
    let (account, memo) = owner(&session);
    let row = QuoteRow {
        id: uuid::Uuid::new_v4().to_string(),
        account,
        memo,
        context: pair.context.clone(),
        sell_asset: pair.sell_asset.clone(),
        sell_amount: amount_string(p.sell_amount),
        sell_delivery_method: None,
        buy_asset: pair.buy.asset.clone(),
        buy_amount: amount_string(p.buy_amount),
        // Shown only when it was sent (a single method is implied, and kept).
        buy_delivery_method: pair.buy_delivery_method.clone(),
        country_code: pair.country_code.clone(),
        price: amount_string(p.price),
        total_price: amount_string(p.total_price),
        fee: p.fee_json(&pair.sell_asset).to_string(),
        expires_at,
        created_at: now,
        transaction_id: None,
        used_at: None,
    };
    reserve(&anchor, &row, p.buy_amount).await?;
    tracing::info!(quote = %row.id, sell = %row.sell_asset, buy = %row.buy_asset, "SEP-38 quote issued");
    Ok((StatusCode::CREATED, Json(quote_json(&row))))
}

/// 10^-7 units of an amount: how reservations are summed.
fn units(amount: Decimal) -> Option<i64> {
    (amount * Decimal::from(10_000_000)).trunc().to_i64()
}

fn unit_amount(units: i64) -> Decimal {
    Decimal::new(units, 7).normalize()
}

/// Stores a firm quote, holding its buy amount in reserve until it expires (SEP38-09):
/// with a `liquidity` configured for the asset, a quote that would take the amount promised
/// by unexpired quotes past it is a 400 that says how much is left.
async fn reserve(anchor: &AppState, row: &QuoteRow, buy_amount: Decimal) -> Result<(), ApiError> {
    let liquidity = anchor
        .config
        .sep38
        .asset(&row.buy_asset)
        .and_then(|a| a.liquidity);
    let too_much = |available: Decimal| {
        ApiError::bad_request(format!(
            "this anchor cannot promise {} {} now: {} is left for firm quotes until earlier quotes expire",
            amount_string(buy_amount),
            row.buy_asset,
            amount_string(available.max(Decimal::ZERO)),
        ))
    };
    let limit = liquidity.and_then(units);
    let amount_units = match (units(buy_amount), limit) {
        (Some(u), Some(l)) if u <= l => u,
        (_, Some(_)) => return Err(too_much(liquidity.unwrap_or_default())),
        // No limit: recorded for a limit set later; an amount beyond i64 units (over 900
        // billion) reserves nothing rather than failing.
        (u, None) => u.unwrap_or(0),
    };
    match anchor.store.insert_quote(row, amount_units, limit).await? {
        Reserved::Stored => Ok(()),
        Reserved::Short { reserved } => {
            Err(too_much(unit_amount(limit.unwrap_or_default() - reserved)))
        }
    }
}

/// The quote `id` if `session` owns it; another's is a 404 exactly like an unknown id.
pub async fn owned_quote(
    anchor: &AppState,
    session: &Session,
    id: &str,
) -> Result<Option<QuoteRow>, ApiError> {
    let (account, memo) = owner(session);
    Ok(anchor
        .store
        .quote(id)
        .await?
        .filter(|q| q.account == account && q.memo == memo))
}

pub async fn get_quote(
    State(anchor): State<AppState>,
    session: Session,
    PathSegment(id): PathSegment,
) -> Result<Json<Value>, ApiError> {
    let quote = owned_quote(&anchor, &session, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("quote not found: {id}")))?;
    Ok(Json(quote_json(&quote)))
}
