//! A thin Horizon client: just what an anchor needs, in Horizon's JSON shapes.

use std::time::Duration;

use serde::Deserialize;

use crate::keys::PublicKey;
use crate::sep10::AccountSigners;

pub mod payments;

/// How long a stream may stay silent (no byte at all) before it counts as dead.
pub const DEFAULT_STREAM_SILENCE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Horizon {
    http: reqwest::Client,
    /// For streams: no limit on the whole response, only on silence between reads.
    stream_http: reqwest::Client,
    base_url: String,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HorizonError {
    #[error("Horizon could not be reached: {0}")]
    Unreachable(String),
    #[error("Horizon answered {status} for {url}")]
    Status { status: u16, url: String },
    #[error("Horizon sent a response that could not be read: {0}")]
    BadResponse(String),
    /// One record of a stream could not be read; the stream goes on after it.
    #[error("Horizon sent record {paging_token} that could not be read: {detail}")]
    BadRecord {
        paging_token: String,
        detail: String,
    },
    #[error("Horizon answered {status} for {url}")]
    Rejected {
        status: u16,
        url: String,
        /// From a `Retry-After` header (429, 503).
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, Deserialize)]
struct AccountJson {
    thresholds: ThresholdsJson,
    signers: Vec<SignerJson>,
}

#[derive(Debug, Deserialize)]
struct ThresholdsJson {
    med_threshold: u32,
}

#[derive(Debug, Deserialize)]
struct SignerJson {
    key: String,
    weight: u32,
    #[serde(rename = "type")]
    kind: String,
}

impl Horizon {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, HorizonError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HorizonError::Unreachable(e.to_string()))?;
        Ok(Horizon {
            http,
            stream_http: stream_client(timeout, DEFAULT_STREAM_SILENCE)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
        })
    }

    /// The same client, with streams that count as dead after `silence` without a byte.
    pub fn with_stream_silence(mut self, silence: Duration) -> Result<Self, HorizonError> {
        self.stream_http = stream_client(self.timeout, silence)?;
        Ok(self)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The ed25519 signers and medium threshold of an account, or `None` when the account
    /// does not exist (Horizon's 404). Other signer kinds (pre-auth tx, hash-x, signed
    /// payload) cannot sign a challenge and are left out.
    pub async fn account_signers(
        &self,
        account: &PublicKey,
    ) -> Result<Option<AccountSigners>, HorizonError> {
        let url = format!("{}/accounts/{account}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| HorizonError::Unreachable(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(HorizonError::Status { status, url }),
        }
        let body: AccountJson = response
            .json()
            .await
            .map_err(|e| HorizonError::BadResponse(e.to_string()))?;
        let signers = body
            .signers
            .iter()
            .filter(|s| s.kind == "ed25519_public_key")
            .filter_map(|s| PublicKey::from_strkey(&s.key).ok().map(|k| (k, s.weight)))
            .collect();
        Ok(Some(AccountSigners {
            signers,
            medium_threshold: body.thresholds.med_threshold,
        }))
    }
}

fn stream_client(
    connect_timeout: Duration,
    silence: Duration,
) -> Result<reqwest::Client, HorizonError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(silence)
        .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HorizonError::Unreachable(e.to_string()))
}
