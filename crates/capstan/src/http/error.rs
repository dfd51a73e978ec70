//! The one HTTP error type. Every layer's error converts into it here, and it renders as
//! `{"error": "..."}` with the status the SEPs name. Internal details are logged, not sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stellar::horizon::HorizonError;
use stellar::sep10::ChallengeError;

use crate::kyc::KycError;
use crate::sep31::integration::{FeeError, Unavailable};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429, with the seconds after which to try again (`Retry-After`).
    #[error("{0}")]
    TooManyRequests(String, u64),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn too_large() -> Self {
        ApiError::PayloadTooLarge("request body is larger than this endpoint accepts".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) | ApiError::BadGateway(detail) => {
                tracing::warn!(%detail, "dependency unavailable")
            }
            _ => tracing::debug!(error = %self, "request rejected"),
        }
        let mut response =
            (self.status(), Json(json!({ "error": self.to_string() }))).into_response();
        if let ApiError::TooManyRequests(_, retry_after) = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Busy(_) | StoreError::WriterGone => {
                ApiError::Unavailable("the database is unavailable; try again shortly".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<KycError> for ApiError {
    fn from(e: KycError) -> Self {
        match e {
            KycError::BadRequest(m) => ApiError::BadRequest(m),
            KycError::NotFound(m) => ApiError::NotFound(m),
            KycError::BadGateway(m) => ApiError::BadGateway(m),
            KycError::Unavailable(m) => ApiError::Unavailable(m),
            KycError::Store(e) => e.into(),
        }
    }
}

impl From<Unavailable> for ApiError {
    fn from(e: Unavailable) -> Self {
        ApiError::Unavailable(e.0)
    }
}

impl From<FeeError> for ApiError {
    fn from(e: FeeError) -> Self {
        match e {
            FeeError::Refused(m) => ApiError::BadRequest(m),
            FeeError::Unavailable(e) => e.into(),
        }
    }
}

impl From<ChallengeError> for ApiError {
    fn from(e: ChallengeError) -> Self {
        match e {
            ChallengeError::Encode => ApiError::Internal(e.to_string()),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl From<HorizonError> for ApiError {
    /// Without Horizon the signers of an account are unknown; guessing would be unsafe.
    fn from(e: HorizonError) -> Self {
        tracing::warn!(error = %e, "Horizon lookup failed");
        ApiError::Unavailable("cannot verify the account's signers right now: Horizon is unavailable; try again shortly".into())
    }
}
