//! The `[sep38]` section: the off-chain assets this anchor pays out through SEP-38 quotes
//! (`iso4217:BRL`, ...), with their delivery methods and country codes, where prices come
//! from (fixed rates with a spread, or the business server), and how long firm quotes live.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{AssetConfig, ConfigError, Secret, key_err, lenient};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sep38Section {
    rates: Option<RatesKind>,
    business_url: Option<String>,
    business_api_key: Option<Secret>,
    spread_percent: Option<toml::Value>,
    #[serde(default, deserialize_with = "lenient::opt")]
    min_expiry_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    max_expiry_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::list")]
    quotes_required: Vec<String>,
    #[serde(default)]
    assets: BTreeMap<String, OffchainSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffchainSection {
    #[serde(default, deserialize_with = "lenient::opt")]
    decimals: Option<u32>,
    #[serde(default, deserialize_with = "lenient::list")]
    country_codes: Vec<String>,
    /// name -> description
    #[serde(default)]
    delivery_methods: BTreeMap<String, String>,
    /// Stellar asset code -> price of one unit of this asset in that Stellar asset, before
    /// the spread.
    #[serde(default)]
    rates: BTreeMap<String, toml::Value>,
    liquidity: Option<toml::Value>,
}

/// The largest `liquidity` an asset may have: reservations are summed as integers of
/// 10^-7 units, and this keeps every sum far inside an i64.
pub const MAX_LIQUIDITY: i64 = 100_000_000_000;

/// Where prices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RatesKind {
    /// `[sep38.assets."<asset>".rates]`, with `spread_percent` added.
    Fixed,
    /// `GET <business_url>/rate` on the anchor's own service.
    Business,
}

/// A delivery method of an off-chain asset (the SEP-31 funding method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryMethod {
    pub name: String,
    pub description: String,
}

/// An off-chain asset paid out through quotes.
#[derive(Debug, Clone)]
pub struct OffchainAsset {
    /// The SEP-38 id: `iso4217:BRL`.
    pub asset: String,
    /// Decimal places of its amounts.
    pub decimals: u32,
    pub country_codes: Vec<String>,
    pub delivery_methods: Vec<DeliveryMethod>,
    /// Stellar asset code -> configured price of one unit (before the spread).
    pub rates: BTreeMap<String, Decimal>,
    /// The most of this asset that unexpired firm quotes may promise at once (SEP38-09): a
    /// quote that would take the reserved total above it is refused until others expire.
    /// None: no limit.
    pub liquidity: Option<Decimal>,
}

#[derive(Debug, Clone)]
pub struct Sep38Config {
    /// Off-chain assets by SEP-38 id; empty: SEP-38 is off.
    pub assets: Vec<OffchainAsset>,
    pub rates: RatesKind,
    /// Base URL of the business server, with `rates = "business"`.
    pub business_url: Option<String>,
    pub business_api_key: Option<Secret>,
    /// Percentage points added to fixed rates.
    pub spread_percent: Decimal,
    /// A firm quote lives at least this long...
    pub min_expiry_secs: u64,
    /// ...and at most this long; an `expire_after` beyond it is refused.
    pub max_expiry_secs: u64,
    /// Stellar asset codes whose SEP-31 transactions need a quote.
    pub quotes_required: Vec<String>,
}

impl Sep38Config {
    pub fn enabled(&self) -> bool {
        !self.assets.is_empty()
    }

    pub fn asset(&self, id: &str) -> Option<&OffchainAsset> {
        self.assets.iter().find(|a| a.asset == id)
    }
}

fn positive_decimal(key: &str, value: &toml::Value) -> Result<Decimal, ConfigError> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        _ => {
            return Err(key_err(
                key,
                "must be a decimal as a string, like \"0.18\", so it stays exact",
            ));
        }
    };
    Decimal::from_str(text.trim())
        .ok()
        .filter(|d| d.is_sign_positive() && !d.is_zero())
        .map(|d| d.normalize())
        .ok_or_else(|| key_err(key, format!("{text:?} is not a positive decimal")))
}

pub(super) fn validate_sep38(
    section: Sep38Section,
    assets: &[AssetConfig],
    public_network: bool,
) -> Result<Sep38Config, ConfigError> {
    let rates = section.rates.unwrap_or(RatesKind::Fixed);
    let business_url = match (rates, section.business_url) {
        (RatesKind::Business, Some(url)) => {
            let parsed = url::Url::parse(&url)
                .map_err(|e| key_err("sep38.business_url", format!("{url:?} is not a URL: {e}")))?;
            let local = matches!(
                parsed.host_str(),
                Some("localhost" | "127.0.0.1" | "::1" | "[::1]")
            );
            if public_network && parsed.scheme() != "https" && !local {
                return Err(key_err(
                    "sep38.business_url",
                    "must be https on the public network (or on this machine)",
                ));
            }
            Some(url.trim_end_matches('/').to_owned())
        }
        (RatesKind::Business, None) => {
            return Err(key_err(
                "sep38.business_url",
                "is required with sep38.rates = \"business\"",
            ));
        }
        (RatesKind::Fixed, Some(_)) => {
            return Err(key_err(
                "sep38.business_url",
                "is only read with sep38.rates = \"business\"",
            ));
        }
        (RatesKind::Fixed, None) => None,
    };
    let spread_percent = match &section.spread_percent {
        None => Decimal::ZERO,
        Some(toml::Value::Integer(0)) => Decimal::ZERO,
        Some(v) => positive_decimal("sep38.spread_percent", v)?,
    };
    if spread_percent >= Decimal::ONE_HUNDRED {
        return Err(key_err("sep38.spread_percent", "must be below 100"));
    }
    let min_expiry_secs = section.min_expiry_secs.unwrap_or(60);
    let max_expiry_secs = section.max_expiry_secs.unwrap_or(86_400);
    if !(10..=7 * 86_400).contains(&min_expiry_secs) {
        return Err(key_err(
            "sep38.min_expiry_secs",
            "must be between 10 seconds and 7 days",
        ));
    }
    if !(min_expiry_secs..=30 * 86_400).contains(&max_expiry_secs) {
        return Err(key_err(
            "sep38.max_expiry_secs",
            "must be between min_expiry_secs and 30 days",
        ));
    }
    let mut offchain = Vec::new();
    for (id, a) in section.assets {
        let key = |k: &str| format!("sep38.assets.\"{id}\".{k}");
        let code = id.strip_prefix("iso4217:").unwrap_or_default();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(key_err(
                &format!("sep38.assets.\"{id}\""),
                "is not an off-chain asset id like \"iso4217:BRL\"",
            ));
        }
        let decimals = a.decimals.unwrap_or(2);
        if decimals > 7 {
            return Err(key_err(&key("decimals"), "must be between 0 and 7"));
        }
        for c in &a.country_codes {
            let valid = (c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
                || (c.len() > 3
                    && c.as_bytes()[2] == b'-'
                    && c[..2].bytes().all(|b| b.is_ascii_uppercase()));
            if !valid {
                return Err(key_err(
                    &key("country_codes"),
                    format!("{c:?} is not an ISO 3166-1 alpha-2 or ISO 3166-2 code"),
                ));
            }
        }
        let delivery_methods: Vec<DeliveryMethod> = a
            .delivery_methods
            .into_iter()
            .map(|(name, description)| DeliveryMethod { name, description })
            .collect();
        if delivery_methods.iter().any(|m| m.name.trim().is_empty()) {
            return Err(key_err(&key("delivery_methods"), "a method has no name"));
        }
        let mut asset_rates = BTreeMap::new();
        for (code, value) in &a.rates {
            if !assets.is_empty() && !assets.iter().any(|s| &s.code == code) {
                return Err(key_err(
                    &key(&format!("rates.{code}")),
                    "is not an asset of [[assets]]",
                ));
            }
            asset_rates.insert(
                code.clone(),
                positive_decimal(&key(&format!("rates.{code}")), value)?,
            );
        }
        if rates == RatesKind::Fixed && asset_rates.is_empty() {
            return Err(key_err(
                &key("rates"),
                "must give the price of one unit in at least one Stellar asset (like USDC = \"0.18\") with sep38.rates = \"fixed\"",
            ));
        }
        let liquidity = match &a.liquidity {
            None => None,
            Some(v) => {
                let d = positive_decimal(&key("liquidity"), v)?;
                if d > Decimal::from(MAX_LIQUIDITY) {
                    return Err(key_err(
                        &key("liquidity"),
                        format!("must be at most {MAX_LIQUIDITY}"),
                    ));
                }
                Some(d)
            }
        };
        offchain.push(OffchainAsset {
            asset: id,
            decimals,
            country_codes: a.country_codes,
            delivery_methods,
            rates: asset_rates,
            liquidity,
        });
    }
    for code in &section.quotes_required {
        if !assets.is_empty() && !assets.iter().any(|s| &s.code == code) {
            return Err(key_err(
                "sep38.quotes_required",
                format!("{code} is not an asset of [[assets]]"),
            ));
        }
    }
    if offchain.is_empty() && !section.quotes_required.is_empty() {
        return Err(key_err(
            "sep38.quotes_required",
            "needs [sep38.assets] to quote for",
        ));
    }
    Ok(Sep38Config {
        assets: offchain,
        rates,
        business_url,
        business_api_key: section.business_api_key,
        spread_percent,
        min_expiry_secs,
        max_expiry_secs,
        quotes_required: section.quotes_required,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(text: &str) -> String {
        Config::from_parts(text, Vec::new())
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    const BRL: &str = "[sep38.assets.\"iso4217:BRL\"]\nrates = { USDC = \"0.18\" }\n";

    #[test]
    fn quotes_are_off_without_assets_and_on_with_them() {
        let c = Config::from_parts("", Vec::new()).unwrap();
        assert!(!c.sep38.enabled());
        let c = Config::from_parts(
            &format!("[sep38]\nspread_percent = \"0.5\"\nmax_expiry_secs = \"600\"\n{BRL}delivery_methods = {{ PIX = \"Pix\" }}\ncountry_codes = [\"BR\"]\n"),
            vec![("CAPSTAN_SEP38_MIN_EXPIRY_SECS".into(), "30".into())],
        )
        .unwrap();
        let s = &c.sep38;
        assert!(s.enabled());
        assert_eq!((s.min_expiry_secs, s.max_expiry_secs), (30, 600));
        assert_eq!(s.spread_percent, "0.5".parse().unwrap());
        let brl = s.asset("iso4217:BRL").unwrap();
        assert_eq!(brl.decimals, 2);
        assert_eq!(brl.rates["USDC"], "0.18".parse().unwrap());
        assert_eq!(brl.delivery_methods[0].name, "PIX");
        assert_eq!(brl.liquidity, None);
        let c =
            Config::from_parts(&format!("{BRL}liquidity = \"250000.50\"\n"), Vec::new()).unwrap();
        let brl = c.sep38.asset("iso4217:BRL").unwrap();
        assert_eq!(brl.liquidity, Some("250000.5".parse().unwrap()));
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (text, key) in [
            (
                "[sep38.assets.\"BRL\"]\nrates = { USDC = \"1\" }\n",
                "sep38.assets.\"BRL\"",
            ),
            ("[sep38.assets.\"iso4217:BRL\"]\n", "rates"),
            (
                "[sep38.assets.\"iso4217:BRL\"]\nrates = { USDC = 0.18 }\n",
                "rates.USDC",
            ),
            (
                "[sep38.assets.\"iso4217:BRL\"]\nrates = { USDC = \"-1\" }\n",
                "rates.USDC",
            ),
            (
                "[sep38.assets.\"iso4217:BRL\"]\ndecimals = 9\nrates = { USDC = \"1\" }\n",
                "decimals",
            ),
            (
                "[sep38.assets.\"iso4217:BRL\"]\ncountry_codes = [\"Brazil\"]\nrates = { USDC = \"1\" }\n",
                "country_codes",
            ),
            (
                &format!("[sep38]\nmin_expiry_secs = 5\n{BRL}"),
                "sep38.min_expiry_secs",
            ),
            (
                &format!("[sep38]\nmin_expiry_secs = 600\nmax_expiry_secs = 60\n{BRL}"),
                "sep38.max_expiry_secs",
            ),
            (
                &format!("[sep38]\nrates = \"business\"\n{BRL}"),
                "sep38.business_url",
            ),
            (
                &format!("[sep38]\nbusiness_url = \"http://x\"\n{BRL}"),
                "sep38.business_url",
            ),
            (
                &format!("[sep38]\nspread_percent = \"100\"\n{BRL}"),
                "sep38.spread_percent",
            ),
            (&format!("{BRL}liquidity = \"0\"\n"), "liquidity"),
            (&format!("{BRL}liquidity = 1.5\n"), "liquidity"),
            (
                &format!("{BRL}liquidity = \"1000000000000\"\n"),
                "liquidity",
            ),
            (
                "[sep38]\nquotes_required = [\"USDC\"]\n",
                "sep38.quotes_required",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
