//! SEP-1: the stellar.toml, generated from the configuration.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use stellar::Keypair;
use toml::{Table, Value};

use crate::anchor::AppState;
use crate::config::Config;

/// The SEP-1 version the generated file follows.
pub const SEP1_VERSION: &str = "2.7.0";
/// SEP-1's size limit.
const MAX_TOML_BYTES: usize = 100 * 1024;

pub async fn stellar_toml(State(anchor): State<AppState>) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        anchor.stellar_toml.clone(),
    )
}

/// Builds the file, merging in the operator's own TOML (`toml.append_file`) for sections
/// capstan does not generate. Fails when that TOML is invalid, redefines a key capstan
/// generates, or makes the file larger than SEP-1 allows: better to refuse to
/// start than to publish a file wallets reject.
pub fn render(config: &Config, signing_key: &Keypair) -> Result<String, String> {
    let assets = &config.assets;
    let mut root = Table::new();
    let s = |v: &str| Value::String(v.to_owned());
    root.insert("VERSION".into(), s(SEP1_VERSION));
    root.insert("NETWORK_PASSPHRASE".into(), s(config.network.passphrase()));
    root.insert(
        "SIGNING_KEY".into(),
        s(&signing_key.public_key().to_string()),
    );
    root.insert("HORIZON_URL".into(), s(&config.horizon_url));
    root.insert("WEB_AUTH_ENDPOINT".into(), s(&config.web_auth_endpoint()));
    root.insert("KYC_SERVER".into(), s(&config.kyc_server()));
    root.insert(
        "DIRECT_PAYMENT_SERVER".into(),
        s(&config.direct_payment_server()),
    );
    if config.sep38.enabled() {
        root.insert(
            "ANCHOR_QUOTE_SERVER".into(),
            s(&config.anchor_quote_server()),
        );
    }
    let mut accounts: Vec<String> = assets
        .iter()
        .map(|a| a.distribution_account.to_string())
        .collect();
    accounts.sort();
    accounts.dedup();
    root.insert(
        "ACCOUNTS".into(),
        Value::Array(accounts.into_iter().map(Value::String).collect()),
    );

    if !config.documentation.is_empty() {
        let docs: Table = config
            .documentation
            .iter()
            .map(|(k, v)| (k.clone(), s(v)))
            .collect();
        root.insert("DOCUMENTATION".into(), Value::Table(docs));
    }
    let currencies = assets
        .iter()
        .map(|a| {
            let mut c = Table::new();
            c.insert("code".into(), s(&a.code));
            c.insert("issuer".into(), s(&a.issuer.to_string()));
            c.insert("status".into(), s(&a.status));
            c.insert("is_asset_anchored".into(), Value::Boolean(true));
            c.insert("anchor_asset_type".into(), s(&a.anchor_asset_type));
            if let Some(anchor_asset) = &a.anchor_asset {
                c.insert("anchor_asset".into(), s(anchor_asset));
            }
            if let Some(name) = &a.name {
                c.insert("name".into(), s(name));
            }
            c.insert("desc".into(), s(&a.desc));
            c.insert(
                "display_decimals".into(),
                Value::Integer(a.display_decimals.into()),
            );
            // SEP-1: exactly one of fixed_number, max_number, is_unlimited.
            c.insert("is_unlimited".into(), Value::Boolean(true));
            Value::Table(c)
        })
        .collect();
    root.insert("CURRENCIES".into(), Value::Array(currencies));

    if let Some(extra) = &config.toml_append {
        let extra: Table = extra
            .parse()
            .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message()))?;
        for (key, value) in extra {
            match (root.get_mut(&key), value) {
                (None, value) => {
                    root.insert(key, value);
                }
                // More [[CURRENCIES]] or ACCOUNTS extend the generated ones.
                (Some(Value::Array(mine)), Value::Array(theirs)) => {
                    for item in theirs {
                        if !mine.contains(&item) {
                            mine.push(item);
                        }
                    }
                }
                (Some(Value::Table(mine)), Value::Table(theirs)) if key == "DOCUMENTATION" => {
                    for (k, v) in theirs {
                        if mine.insert(k.clone(), v).is_some() {
                            return Err(format!(
                                "redefines DOCUMENTATION.{k}, which the configuration already sets"
                            ));
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "redefines {key}, which capstan generates from the configuration"
                    ));
                }
            }
        }
    }
    let text = toml::to_string(&root).map_err(|e| e.to_string())?;
    if text.len() > MAX_TOML_BYTES {
        return Err(format!(
            "the stellar.toml would be {} bytes; SEP-1 allows at most 100 KB",
            text.len()
        ));
    }
    Ok(text)
}
