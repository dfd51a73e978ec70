//! The `[rails]` section: how receivers are paid out, and how often the executor and the
//! poller run.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{ConfigError, Secret, key_err, lenient};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RailsSection {
    kind: Option<RailsKind>,
    #[serde(default, deserialize_with = "lenient::opt")]
    enabled: Option<bool>,
    business_url: Option<String>,
    business_api_key: Option<Secret>,
    simulated: Option<SimulatedMode>,
    customer_info_amount: Option<toml::Value>,
    transaction_info_amount: Option<toml::Value>,
    error_amount: Option<toml::Value>,
    refund_amount: Option<toml::Value>,
    #[serde(default, deserialize_with = "lenient::opt")]
    execute_interval_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    poll_interval_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt")]
    timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RailsKind {
    /// Payouts are simulated: for test networks and demos.
    Simulated,
    /// Payouts are made by the anchor's own service over HTTP (`rails.business_url`).
    Business,
    /// No rails in this process: funded transactions wait in pending_receiver for the
    /// operator (or an embedder's own rails).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimulatedMode {
    /// Delivered at once: completed.
    Instant,
    /// Submitted (pending_external), delivered on the next poll.
    External,
}

#[derive(Debug, Clone)]
pub struct BusinessRails {
    /// Base URL: capstan POSTs to `<url>/payouts` and `<url>/payouts/status`.
    pub url: String,
    /// Sent as `Authorization: Bearer <key>`, when set.
    pub api_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct RailsConfig {
    pub kind: RailsKind,
    /// The business server that pays out, with `kind = "business"`.
    pub business: Option<BusinessRails>,
    /// Whether `capstan serve` runs the executor and the poller (`capstan execute` and
    /// `capstan poll` always do).
    pub enabled: bool,
    pub simulated: SimulatedMode,
    /// amount_in values that make the simulated rails ask for corrections or fail, so
    /// wallet developers can run every flow.
    pub customer_info_amount: Option<Decimal>,
    pub transaction_info_amount: Option<Decimal>,
    pub error_amount: Option<Decimal>,
    pub refund_amount: Option<Decimal>,
    pub execute_interval: Duration,
    pub poll_interval: Duration,
    /// Attempts at a payout whose rails keep failing with a retryable error before the
    /// transaction goes to error.
    pub max_attempts: u32,
    /// The longest a rails call may take; the executor's lease outlasts it.
    pub timeout: Duration,
}

pub(super) fn validate_rails(
    section: RailsSection,
    public_network: bool,
) -> Result<RailsConfig, ConfigError> {
    let kind = match section.kind {
        Some(RailsKind::Simulated) if public_network => {
            return Err(key_err(
                "rails.kind",
                "simulated rails pay no one: they are refused on the public network",
            ));
        }
        Some(kind) => kind,
        None if public_network => RailsKind::None,
        None => RailsKind::Simulated,
    };
    let business = match (kind, section.business_url) {
        (RailsKind::Business, Some(url)) => {
            let parsed = url::Url::parse(&url)
                .map_err(|e| key_err("rails.business_url", format!("{url:?} is not a URL: {e}")))?;
            let local = matches!(
                parsed.host_str(),
                Some("localhost" | "127.0.0.1" | "::1" | "[::1]")
            );
            if public_network && parsed.scheme() != "https" && !local {
                return Err(key_err(
                    "rails.business_url",
                    "must be https on the public network (or on this machine)",
                ));
            }
            Some(BusinessRails {
                url: url.trim_end_matches('/').to_owned(),
                api_key: section.business_api_key,
            })
        }
        (RailsKind::Business, None) => {
            return Err(key_err(
                "rails.business_url",
                "is required with rails.kind = \"business\"",
            ));
        }
        (_, Some(_)) => {
            return Err(key_err(
                "rails.business_url",
                "is only read with rails.kind = \"business\"",
            ));
        }
        (_, None) => None,
    };
    let amount = |key: &str, value: Option<toml::Value>| -> Result<Option<Decimal>, ConfigError> {
        let text = match value {
            None => return Ok(None),
            Some(toml::Value::String(s)) => s,
            Some(toml::Value::Integer(i)) => i.to_string(),
            Some(_) => {
                return Err(key_err(
                    &format!("rails.{key}"),
                    "must be an amount as a string, like \"13.13\"",
                ));
            }
        };
        Decimal::from_str(text.trim())
            .ok()
            .filter(|d| d.is_sign_positive() && !d.is_zero())
            .map(|d| Some(d.normalize()))
            .ok_or_else(|| {
                key_err(
                    &format!("rails.{key}"),
                    format!("{text:?} is not a positive amount"),
                )
            })
    };
    let secs = |key: &str, value: Option<u64>, default: u64, max: u64| {
        let v = value.unwrap_or(default);
        if (1..=max).contains(&v) {
            Ok(Duration::from_secs(v))
        } else {
            Err(key_err(
                &format!("rails.{key}"),
                format!("must be between 1 and {max}"),
            ))
        }
    };
    let max_attempts = section.max_attempts.unwrap_or(5);
    if !(1..=100).contains(&max_attempts) {
        return Err(key_err("rails.max_attempts", "must be between 1 and 100"));
    }
    Ok(RailsConfig {
        kind,
        business,
        enabled: section.enabled.unwrap_or(true),
        simulated: section.simulated.unwrap_or(SimulatedMode::Instant),
        customer_info_amount: amount("customer_info_amount", section.customer_info_amount)?,
        transaction_info_amount: amount(
            "transaction_info_amount",
            section.transaction_info_amount,
        )?,
        error_amount: amount("error_amount", section.error_amount)?,
        refund_amount: amount("refund_amount", section.refund_amount)?,
        execute_interval: secs(
            "execute_interval_secs",
            section.execute_interval_secs,
            10,
            3600,
        )?,
        poll_interval: secs("poll_interval_secs", section.poll_interval_secs, 60, 86_400)?,
        max_attempts,
        timeout: secs("timeout_secs", section.timeout_secs, 60, 600)?,
    })
}
