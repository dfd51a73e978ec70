//! The `[watcher]` section: where the payment watcher starts on its first run, what it does
//! with a payment smaller than the transaction expects, and when a silent stream counts as
//! dead, and how long a replica holds a stream.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, key_err, lenient};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WatcherSection {
    #[serde(default, deserialize_with = "lenient::opt")]
    enabled: Option<bool>,
    start: Option<String>,
    short_payments: Option<ShortPayments>,
    #[serde(default, deserialize_with = "lenient::opt")]
    silence_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    max_backoff_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    lease_secs: Option<u64>,
}

/// What to do with a payment below the transaction's `amount_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShortPayments {
    /// Record it as unmatched for the operator, who attaches or refunds it (the default:
    /// nothing is paid out on a guess).
    Hold,
    /// Fund the transaction with what arrived; fees and `amount_out` are recomputed.
    Accept,
}

/// Where a stream with no stored cursor starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// Only payments made from now on.
    Now,
    /// Just after this paging token (to catch up on payments made before the first start).
    Cursor(String),
}

impl StartAt {
    pub fn as_cursor(&self) -> &str {
        match self {
            StartAt::Now => "now",
            StartAt::Cursor(c) => c,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// Whether `capstan serve` runs the watcher beside the API (`capstan watch` always does).
    pub enabled: bool,
    pub start: StartAt,
    pub short_payments: ShortPayments,
    /// A stream that sends nothing for this long is reconnected.
    pub silence_timeout: Duration,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// How long a replica's hold on a stream lasts without renewal: when the replica that
    /// streams an account dies, another takes over within about this long.
    pub lease: Duration,
}

pub(super) fn validate_watcher(section: WatcherSection) -> Result<WatcherConfig, ConfigError> {
    let start = match section.start.as_deref() {
        None | Some("now") => StartAt::Now,
        Some(token) if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) => {
            StartAt::Cursor(token.to_owned())
        }
        Some(other) => {
            return Err(key_err(
                "watcher.start",
                format!("{other:?} is neither \"now\" nor a paging token (digits)"),
            ));
        }
    };
    let silence = section.silence_timeout_secs.unwrap_or(60);
    if !(5..=3600).contains(&silence) {
        return Err(key_err(
            "watcher.silence_timeout_secs",
            "must be between 5 and 3600",
        ));
    }
    let backoff = section.max_backoff_secs.unwrap_or(60);
    if !(1..=3600).contains(&backoff) {
        return Err(key_err(
            "watcher.max_backoff_secs",
            "must be between 1 and 3600",
        ));
    }
    let lease = section.lease_secs.unwrap_or(10);
    if !(2..=600).contains(&lease) {
        return Err(key_err("watcher.lease_secs", "must be between 2 and 600"));
    }
    Ok(WatcherConfig {
        enabled: section.enabled.unwrap_or(true),
        start,
        short_payments: section.short_payments.unwrap_or(ShortPayments::Hold),
        silence_timeout: Duration::from_secs(silence),
        max_backoff: Duration::from_secs(backoff),
        lease: Duration::from_secs(lease),
    })
}
