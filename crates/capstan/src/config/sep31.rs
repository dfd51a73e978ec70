//! The `[sep31]` section: which sending anchors may send, how long a payment may take, and
//! what each asset is received with (limits, fees, funding methods, KYC types, the
//! deprecated per-transaction fields); or the business server that decides who may send,
//! what is accepted and the fees.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use stellar::PublicKey;

use super::kyc::business_server;
use super::{AssetConfig, BusinessServer, ConfigError, KycConfig, Secret, key_err, lenient};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sep31Section {
    #[serde(default, deserialize_with = "lenient::list")]
    sending_anchors: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    payment_timeout_secs: Option<u64>,
    business_url: Option<String>,
    business_api_key: Option<Secret>,
    #[serde(default, deserialize_with = "lenient::opt")]
    business_timeout_secs: Option<u64>,
    #[serde(default)]
    assets: BTreeMap<String, AssetSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetSection {
    #[serde(default)]
    funding_methods: Option<Vec<String>>,
    min_amount: Option<toml::Value>,
    max_amount: Option<toml::Value>,
    fee_fixed: Option<toml::Value>,
    fee_percent: Option<toml::Value>,
    sender_type: Option<String>,
    receiver_type: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, FieldSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSection {
    description: String,
    /// The description in other languages, by ISO 639-1 code (`pt = "..."`), for
    /// `GET /info?lang=`.
    #[serde(default)]
    translations: BTreeMap<String, String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    choices: Option<Vec<String>>,
}

/// A deprecated per-transaction field (`/info` `fields.transaction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionField {
    pub description: String,
    /// Descriptions by lowercase language code; `description` is the English one.
    pub translations: BTreeMap<String, String>,
    pub optional: bool,
    pub choices: Option<Vec<String>>,
}

impl TransactionField {
    /// The description in `lang` (`pt-BR` falls back to `pt`), else the default one
    /// (AMB-33: an unknown language is not an error).
    pub fn description_in(&self, lang: Option<&str>) -> &str {
        let Some(lang) = lang.map(str::to_ascii_lowercase) else {
            return &self.description;
        };
        let primary = lang.split(['-', '_']).next().unwrap_or_default();
        self.translations
            .get(&lang)
            .or_else(|| self.translations.get(primary))
            .map(String::as_str)
            .unwrap_or(&self.description)
    }
}

/// How one asset is received.
#[derive(Debug, Clone)]
pub struct ReceiveAsset {
    pub code: String,
    pub issuer: PublicKey,
    /// Where sending anchors pay.
    pub distribution_account: PublicKey,
    pub settings: ReceiveSettings,
}

/// The `[sep31.assets.<code>]` settings, defaults filled in.
#[derive(Debug, Clone)]
pub struct ReceiveSettings {
    pub funding_methods: Vec<String>,
    pub min_amount: Option<Decimal>,
    pub max_amount: Option<Decimal>,
    pub fee_fixed: Decimal,
    /// Percentage points.
    pub fee_percent: Decimal,
    pub sender_type: Option<String>,
    pub receiver_type: Option<String>,
    pub fields: BTreeMap<String, TransactionField>,
}

#[derive(Debug, Clone)]
pub struct Sep31Config {
    /// Accounts allowed to send; empty means any (only off the public network).
    pub sending_anchors: Vec<PublicKey>,
    /// A transaction still waiting for its payment after this long expires.
    pub payment_timeout_secs: u64,
    /// Settings by asset code.
    pub settings: BTreeMap<String, ReceiveSettings>,
    /// For an asset without settings of its own (the demo asset among them).
    pub default_settings: ReceiveSettings,
    /// When set, the business server decides which sending anchors may send, accepts or
    /// refuses each transaction, and sets its fee (`sending_anchors` and the assets'
    /// `fee_fixed`/`fee_percent` are then not configured).
    pub business: Option<BusinessServer>,
}

impl Sep31Config {
    /// Every asset received: one per code (SEP-31 names assets by code; the first issuer
    /// listed is the one received).
    pub fn receive_assets(&self, assets: &[AssetConfig]) -> Vec<ReceiveAsset> {
        let mut receive: Vec<ReceiveAsset> = Vec::new();
        for asset in assets {
            if receive.iter().any(|r| r.code == asset.code) {
                continue;
            }
            receive.push(ReceiveAsset {
                code: asset.code.clone(),
                issuer: asset.issuer,
                distribution_account: asset.distribution_account,
                settings: self
                    .settings
                    .get(&asset.code)
                    .unwrap_or(&self.default_settings)
                    .clone(),
            });
        }
        receive
    }
}

/// Stellar amounts have seven decimal places.
pub const STELLAR_DECIMALS: u32 = 7;

fn decimal(key: &str, value: Option<toml::Value>) -> Result<Option<Decimal>, ConfigError> {
    let text = match value {
        None => return Ok(None),
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Integer(i)) => i.to_string(),
        // A float has already lost exactness; insist on a string or an integer.
        Some(toml::Value::Float(f)) => {
            return Err(key_err(
                key,
                format!("write {f} as a string (\"{f}\") so it stays exact"),
            ));
        }
        Some(other) => {
            return Err(key_err(key, format!("{other} is not an amount")));
        }
    };
    let value = Decimal::from_str(text.trim())
        .map_err(|_| key_err(key, format!("{text:?} is not a decimal amount")))?;
    if value.is_sign_negative() {
        return Err(key_err(key, "must not be negative"));
    }
    if value.scale() > STELLAR_DECIMALS {
        return Err(key_err(key, "has more than 7 decimal places"));
    }
    Ok(Some(value))
}

pub(super) fn validate_sep31(
    section: Sep31Section,
    assets: &[AssetConfig],
    kyc: &KycConfig,
    public_network: bool,
) -> Result<Sep31Config, ConfigError> {
    let mut sending_anchors = Vec::new();
    for account in &section.sending_anchors {
        sending_anchors.push(
            PublicKey::from_strkey(account)
                .map_err(|e| key_err("sep31.sending_anchors", format!("{account:?}: {e}")))?,
        );
    }
    let business = business_server(
        "sep31",
        section.business_url,
        section.business_api_key,
        section.business_timeout_secs,
    )?;
    // Two sources for one decision would disagree sooner or later: the business server
    // decides alone.
    if business.is_some() {
        if !sending_anchors.is_empty() {
            return Err(key_err(
                "sep31.sending_anchors",
                "the business server (sep31.business_url) decides which sending anchors may send; leave this out",
            ));
        }
        for (code, asset) in &section.assets {
            for (key, value) in [
                ("fee_fixed", &asset.fee_fixed),
                ("fee_percent", &asset.fee_percent),
            ] {
                if value.is_some() {
                    return Err(key_err(
                        &format!("sep31.assets.{code}.{key}"),
                        "the business server (sep31.business_url) sets the fees; leave this out",
                    ));
                }
            }
        }
    }
    if sending_anchors.is_empty() && public_network && business.is_none() {
        return Err(key_err(
            "sep31.sending_anchors",
            "must list the accounts of the sending anchors you have agreements with on the public network (or set sep31.business_url)",
        ));
    }
    for code in section.assets.keys() {
        // Without [[assets]] the demo asset is served, whatever its settings are named.
        if !assets.is_empty() && !assets.iter().any(|a| &a.code == code) {
            return Err(key_err(
                &format!("sep31.assets.{code}"),
                "is not an asset of [[assets]]",
            ));
        }
    }
    let mut settings = BTreeMap::new();
    for (code, s) in section.assets {
        settings.insert(code.clone(), receive_settings(&code, s, kyc)?);
    }
    let default_settings = receive_settings("<code>", AssetSection::default(), kyc)?;
    let payment_timeout_secs = section.payment_timeout_secs.unwrap_or(86_400);
    if !(60..=30 * 86_400).contains(&payment_timeout_secs) {
        return Err(key_err(
            "sep31.payment_timeout_secs",
            "must be between 60 seconds and 30 days",
        ));
    }
    Ok(Sep31Config {
        sending_anchors,
        payment_timeout_secs,
        settings,
        default_settings,
        business,
    })
}

fn receive_settings(
    code: &str,
    s: AssetSection,
    kyc: &KycConfig,
) -> Result<ReceiveSettings, ConfigError> {
    let key = |k: &str| format!("sep31.assets.{code}.{k}");
    let funding_methods = s
        .funding_methods
        .unwrap_or_else(|| vec!["SEPA".into(), "SWIFT".into()]);
    if funding_methods.is_empty() || funding_methods.iter().any(|m| m.trim().is_empty()) {
        return Err(key_err(
            &key("funding_methods"),
            "must list at least one method, none empty",
        ));
    }
    let min_amount = decimal(&key("min_amount"), s.min_amount)?;
    let max_amount = decimal(&key("max_amount"), s.max_amount)?;
    if let (Some(min), Some(max)) = (min_amount, max_amount)
        && min > max
    {
        return Err(key_err(&key("min_amount"), "is above max_amount"));
    }
    let fee_percent = decimal(&key("fee_percent"), s.fee_percent)?.unwrap_or_default();
    if fee_percent >= Decimal::ONE_HUNDRED {
        return Err(key_err(&key("fee_percent"), "must be below 100"));
    }
    let kyc_type = |k: &str, value: Option<String>, default: &str| match value {
        Some(t) if kyc.types.contains_key(&t) => Ok(Some(t)),
        Some(t) => Err(key_err(
            &key(k),
            format!("{t:?} is not one of the [kyc.types]"),
        )),
        None => Ok(kyc.types.contains_key(default).then(|| default.to_owned())),
    };
    let sender_type = kyc_type("sender_type", s.sender_type, "sep31-sender")?;
    let receiver_type = kyc_type("receiver_type", s.receiver_type, "sep31-receiver")?;
    let mut fields = BTreeMap::new();
    for (name, f) in s.fields {
        if f.description.trim().is_empty() {
            return Err(key_err(
                &key(&format!("fields.{name}.description")),
                "must not be empty",
            ));
        }
        let mut translations = BTreeMap::new();
        for (lang, text) in f.translations {
            let valid_code = (2..=8).contains(&lang.len())
                && lang
                    .split('-')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphabetic()));
            if !valid_code || text.trim().is_empty() {
                return Err(key_err(
                    &key(&format!("fields.{name}.translations.{lang}")),
                    "needs a language code like pt or pt-BR and a description",
                ));
            }
            translations.insert(lang.to_ascii_lowercase(), text);
        }
        fields.insert(
            name,
            TransactionField {
                translations,
                description: f.description,
                optional: f.optional,
                choices: f.choices,
            },
        );
    }
    Ok(ReceiveSettings {
        funding_methods,
        min_amount,
        max_amount,
        fee_fixed: decimal(&key("fee_fixed"), s.fee_fixed)?.unwrap_or_default(),
        fee_percent,
        sender_type,
        receiver_type,
        fields,
    })
}
