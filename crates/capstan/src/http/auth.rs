//! The SEP-10 session extractor that every authenticated endpoint uses.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use stellar::{ClientAccount, PublicKey};

use super::error::ApiError;
use crate::anchor::AppState;

/// The authenticated caller, from `Authorization: Bearer <SEP-10 JWT>`.
///
/// SEP-31 and SEP-38 answer a missing or bad token with 403; SEP-12 allows 401 or 403, and
/// deployed validators accept 403 there, so 403 is used everywhere.
#[derive(Debug, Clone)]
pub struct Session {
    pub client: ClientAccount,
    pub client_domain: Option<String>,
    pub home_domain: Option<String>,
    pub sub: String,
    pub jti: String,
}

impl Session {
    /// The base `G...` account: what owns customers and transactions.
    pub fn account(&self) -> PublicKey {
        self.client.account
    }

    /// The ID memo (or muxed id) naming one user of a shared account.
    pub fn memo(&self) -> Option<u64> {
        self.client.memo
    }

    /// The `M...` address, when the client authenticated as one.
    pub fn muxed(&self) -> Option<String> {
        self.client.muxed_address()
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is a non-empty one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim()).filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Err(ApiError::Forbidden(
                "missing Authorization header: send 'Authorization: Bearer <SEP-10 token>'".into(),
            ));
        }
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::Forbidden("Authorization header must be 'Bearer <SEP-10 token>'".into())
        })?;
        let claims = state
            .jwt
            .verify(token)
            .map_err(|e| ApiError::Forbidden(e.to_string()))?;
        let client = ClientAccount::from_sub(&claims.sub)
            .map_err(|_| ApiError::Forbidden("token subject is not a Stellar account".into()))?;
        Ok(Session {
            client,
            client_domain: claims.client_domain,
            home_domain: claims.home_domain,
            sub: claims.sub,
            jti: claims.jti,
        })
    }
}

/// An optional session: no `Authorization` header is `None`; a header must hold a valid
/// token (403 otherwise), so a client never mistakes a bad token for an accepted one.
impl axum::extract::OptionalFromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        <Session as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}
