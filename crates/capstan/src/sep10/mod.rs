//! SEP-10 web authentication: `GET /auth` hands out a challenge, `POST /auth` trades a
//! signed challenge for a session token.

mod request_auth;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use stellar::ClientAccount;
use stellar::sep10::{ChallengeRequest, ChallengeVerifier, build_challenge, is_valid_domain};

use crate::anchor::AppState;
use crate::config::{ClientDomainMode, RequestAuthMode};
use crate::http::{ApiError, FormOrJson, Query, bearer_token};
use crate::store::unix_now;

#[derive(Debug, Deserialize)]
pub struct ChallengeQuery {
    account: Option<String>,
    memo: Option<String>,
    home_domain: Option<String>,
    client_domain: Option<String>,
}

/// A query parameter, with an empty value treated as absent (`?memo=` is no memo).
fn param(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

pub async fn challenge(
    State(anchor): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ChallengeQuery>,
) -> Result<Json<Value>, ApiError> {
    let config = &anchor.config;
    let request_token = match config.challenge_request_auth {
        RequestAuthMode::Off => None,
        mode => {
            let token = bearer_token(&headers);
            if mode == RequestAuthMode::Required && token.is_none() {
                return Err(ApiError::Unauthorized(
                    "Missing authorization header".into(),
                ));
            }
            token
        }
    };
    // As sent; the home domain and client domain are resolved against the configuration below.
    let (memo, sent_home_domain, sent_client_domain) = (
        param(&q.memo),
        param(&q.home_domain),
        param(&q.client_domain),
    );
    let account = param(&q.account).ok_or_else(|| {
        ApiError::bad_request("missing required query parameter 'account' (a G... or M... address)")
    })?;
    let client = ClientAccount::parse(account, memo)
        .map_err(|e| ApiError::bad_request(format!("account {account:?}: {e}")))?;
    let home_domain = match sent_home_domain {
        None => config.default_home_domain(),
        Some(asked) => config
            .home_domains
            .iter()
            .find(|d| d.eq_ignore_ascii_case(asked))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "home_domain {asked:?} is not served here; use one of: {}",
                    config.home_domains.join(", ")
                ))
            })?,
    };

    let client_domain = match (config.client_domain.mode, sent_client_domain) {
        (ClientDomainMode::Required, None) => {
            return Err(ApiError::bad_request(
                "client_domain is required by this server",
            ));
        }
        // SEP-10: a server that does not verify client domains proceeds as if none was sent.
        (ClientDomainMode::Off, _) | (_, None) => None,
        (mode, Some(domain)) => {
            if !is_valid_domain(domain) {
                return Err(ApiError::bad_request(format!(
                    "client_domain {domain:?} is not a domain name"
                )));
            }
            match (config.client_domain.allows(domain), mode) {
                (true, _) => {
                    let policy = &config.client_domain;
                    let key = stellar::toml_file::fetch_signing_key(
                        &anchor.http,
                        policy.scheme,
                        domain,
                        policy.timeout,
                    )
                    .await
                    .map_err(|e| ApiError::bad_request(format!("client_domain {domain:?}: {e}")))?;
                    Some((domain, key))
                }
                (false, ClientDomainMode::Required) => {
                    return Err(ApiError::Forbidden(format!(
                        "client_domain {domain:?} is not allowed to authenticate here"
                    )));
                }
                (false, _) => None,
            }
        }
    };

    if let Some(token) = request_token {
        // Signed by the client domain's key when one is named, else by the account's.
        let signer = match (sent_client_domain, client_domain) {
            (None, _) => client.account,
            (Some(_), Some((_, key))) => key,
            (Some(domain), None) => {
                return Err(ApiError::Forbidden(format!(
                    "Application {domain} is not allowed to authenticate."
                )));
            }
        };
        let params = request_auth::SignedParams {
            account,
            memo,
            home_domain: sent_home_domain,
            client_domain: sent_client_domain,
        };
        request_auth::verify(token, &signer, &config.web_auth_endpoint(), &params)?;
    }

    let request = ChallengeRequest {
        client,
        home_domain,
        web_auth_domain: &config.web_auth_domain,
        client_domain,
        now: unix_now() as u64,
    };
    let transaction = build_challenge(&anchor.signing_key, &config.network, &request)?;
    Ok(Json(
        json!({ "transaction": transaction, "network_passphrase": config.network.passphrase() }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    transaction: Option<Value>,
}

pub async fn token(
    State(anchor): State<AppState>,
    FormOrJson(body): FormOrJson<TokenRequest>,
) -> Result<Json<Value>, ApiError> {
    let transaction = match body.transaction {
        Some(Value::String(t)) if !t.is_empty() => t,
        Some(Value::String(_)) | None => {
            return Err(ApiError::bad_request(
                "missing 'transaction': the signed challenge, base64 XDR",
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "'transaction' must be a string: the signed challenge, base64 XDR",
            ));
        }
    };
    let config = &anchor.config;
    let verifier = ChallengeVerifier {
        server: &anchor.signing_key,
        network: &config.network,
        home_domains: &config.home_domains,
        web_auth_domain: &config.web_auth_domain,
    };
    let now = unix_now() as u64;
    let challenge = verifier.read(&transaction, now)?;
    if config.client_domain.mode == ClientDomainMode::Required && challenge.client_domain.is_none()
    {
        return Err(ApiError::bad_request(
            "client_domain is required by this server: request a challenge with client_domain",
        ));
    }
    let signers = anchor
        .horizon
        .account_signers(&challenge.client.account)
        .await?;
    challenge.verify_client_signatures(signers.as_ref())?;
    let hash = challenge.hash_hex();
    if !anchor
        .store
        .consume_challenge(&hash, challenge.max_time as i64)
        .await?
    {
        return Err(ApiError::bad_request(
            "this challenge has already been used; request a new one",
        ));
    }
    let claims = anchor.jwt.claims(
        challenge.client.sub(),
        now,
        hash,
        challenge
            .client_domain
            .as_ref()
            .map(|(domain, _)| domain.clone()),
        challenge.home_domain.clone(),
    );
    let token = anchor
        .jwt
        .issue(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(sub = %claims.sub, client_domain = ?claims.client_domain, "SEP-10 token issued");
    Ok(Json(json!({ "token": token })))
}
