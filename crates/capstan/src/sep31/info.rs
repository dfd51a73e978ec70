//! `GET /info`: what this anchor receives, and on what terms.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::amounts::info_number;
use crate::anchor::AppState;
use crate::config::{ReceiveAsset, TransactionField};
use crate::http::{Query, Session};

#[derive(Deserialize)]
pub struct InfoQuery {
    /// ISO 639-1; descriptions fall back to English.
    lang: Option<String>,
}

/// Answers with or without a token (AMB-01: deployed validators call it without one), and
/// to accounts without an agreement too; a token that is sent must be valid.
pub async fn info(
    State(anchor): State<AppState>,
    _token: Option<Session>,
    Query(query): Query<InfoQuery>,
) -> Json<Value> {
    let lang = query.lang.as_deref().filter(|l| !l.is_empty());
    let mut receive = Map::new();
    for asset in &anchor.receive_assets {
        receive.insert(asset.code.clone(), asset_info(&anchor, asset, lang));
    }
    Json(json!({ "receive": receive }))
}

/// A per-transaction field as `/info` and `transaction_info_needed` show it.
pub fn field_json(f: &TransactionField, lang: Option<&str>) -> Value {
    let mut v = json!({ "description": f.description_in(lang), "optional": f.optional });
    if let Some(choices) = &f.choices {
        v["choices"] = json!(choices);
    }
    v
}

fn asset_info(anchor: &AppState, asset: &ReceiveAsset, lang: Option<&str>) -> Value {
    let s = &asset.settings;
    let mut info = json!({
        // Dropped from SEP-31 in 1.3.0, still required by deployed validators.
        "enabled": true,
        "funding_methods": s.funding_methods,
        "quotes_supported": crate::sep38::offchain_for(anchor, asset).next().is_some(),
        "quotes_required": anchor.config.sep38.quotes_required.contains(&asset.code),
    });
    if let Some(min) = s.min_amount {
        info["min_amount"] = info_number(min);
    }
    if let Some(max) = s.max_amount {
        info["max_amount"] = info_number(max);
    }
    // SEP-31: left out when there is no such fee.
    if !s.fee_fixed.is_zero() {
        info["fee_fixed"] = info_number(s.fee_fixed);
    }
    if !s.fee_percent.is_zero() {
        info["fee_percent"] = info_number(s.fee_percent);
    }
    // The deprecated KYC type keys, for clients written before SEP-31 3.1.
    let types = |kind: &Option<String>| match kind {
        Some(name) => {
            json!({ "types": { name: { "description": type_description(anchor, name) } } })
        }
        None => json!({}),
    };
    info["sep12"] = json!({
        "sender": types(&s.sender_type),
        "receiver": types(&s.receiver_type),
    });
    if let Some(t) = &s.sender_type {
        info["sender_sep12_type"] = json!(t);
    }
    if let Some(t) = &s.receiver_type {
        info["receiver_sep12_type"] = json!(t);
    }
    let mut fields = Map::new();
    for (name, f) in &s.fields {
        fields.insert(name.clone(), field_json(f, lang));
    }
    info["fields"] = json!({ "transaction": fields });
    info
}

fn type_description(anchor: &AppState, name: &str) -> String {
    match anchor.config.kyc.types.get(name) {
        Some(kind) => format!(
            "{name}: {}; GET /customer?type={name} lists them",
            kind.required.join(", ")
        ),
        None => name.to_owned(),
    }
}
