//! Reading another domain's stellar.toml (SEP-1), for example to learn a client domain's
//! SIGNING_KEY during SEP-10.

use std::time::Duration;

use crate::keys::PublicKey;

/// SEP-1 caps stellar.toml at 100 KB; anything larger is not one.
pub const MAX_TOML_BYTES: usize = 100 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TomlError {
    #[error("could not fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url} is larger than the 100 KB SEP-1 allows")]
    TooLarge { url: String },
    #[error("{url} is not valid TOML")]
    NotToml { url: String },
    #[error("{url} has no valid SIGNING_KEY")]
    NoSigningKey { url: String },
}

/// Fetches `<scheme>://<domain>/.well-known/stellar.toml` and returns its `SIGNING_KEY`.
pub async fn fetch_signing_key(
    http: &reqwest::Client,
    scheme: &str,
    domain: &str,
    timeout: Duration,
) -> Result<PublicKey, TomlError> {
    let url = format!("{scheme}://{domain}/.well-known/stellar.toml");
    let fetch_err = |reason: String| TomlError::Fetch {
        url: url.clone(),
        reason,
    };
    let mut response = http
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| fetch_err(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fetch_err(format!("status {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fetch_err(e.to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOML_BYTES {
            return Err(TomlError::TooLarge { url });
        }
    }
    let text = String::from_utf8(body).map_err(|_| TomlError::NotToml { url: url.clone() })?;
    let table: toml::Table = text
        .parse()
        .map_err(|_| TomlError::NotToml { url: url.clone() })?;
    table
        .get("SIGNING_KEY")
        .and_then(|v| v.as_str())
        .and_then(|k| PublicKey::from_strkey(k).ok())
        .ok_or(TomlError::NoSigningKey { url })
}
