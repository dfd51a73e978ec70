//! `GET /info`: the assets this anchor converts, with the off-chain assets' delivery
//! methods (the SEP-31 funding methods) and country codes.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{delivery_methods_json, offchain_for, stellar_id};
use crate::anchor::AppState;
use crate::http::Session;

/// Answers with or without a token (a token that is sent must be valid).
pub async fn info(State(anchor): State<AppState>, _token: Option<Session>) -> Json<Value> {
    let mut assets = Vec::new();
    for stellar in &anchor.receive_assets {
        if offchain_for(&anchor, stellar).next().is_some() {
            assets.push(json!({ "asset": stellar_id(stellar) }));
        }
    }
    for offchain in &anchor.config.sep38.assets {
        let mut a = json!({ "asset": offchain.asset });
        if !offchain.delivery_methods.is_empty() {
            // This anchor only pays off-chain assets out: it never buys them.
            a["buy_delivery_methods"] = delivery_methods_json(offchain);
        }
        if !offchain.country_codes.is_empty() {
            a["country_codes"] = json!(offchain.country_codes);
        }
        assets.push(a);
    }
    Json(json!({ "assets": assets }))
}
