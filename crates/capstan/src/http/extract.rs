//! Request extractors whose rejections are JSON `{"error"}` 4xx answers rather than axum's
//! plain-text ones.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The query string, parsed into `T`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::bad_request(
                format!("invalid query string: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// One path segment, decoded. A segment that is not UTF-8 once decoded, or that holds a NUL
/// (which no id or account has, and PostgreSQL cannot even compare), is a 400.
pub struct PathSegment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(segment)) if segment.contains('\0') => Err(
                ApiError::bad_request("the path holds a NUL character (%00)"),
            ),
            Ok(axum::extract::Path(segment)) => Ok(PathSegment(segment)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::bad_request(
                format!("invalid path: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// The request's media type, lower-cased and without parameters (`charset`, `boundary`).
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// A body sent as JSON or as an HTML form, both of which the SEPs allow for the same fields.
/// Without a content type, a body that starts with `{` is read as JSON.
pub struct FormOrJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for FormOrJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, _) = form_or_json(req, state).await?;
        Ok(FormOrJson(value))
    }
}

/// Like [`FormOrJson`], also keeping a JSON body's bytes, for what must be read exactly as
/// written (a JSON number amount, which `Value` would round through an f64).
pub struct FormOrJsonText<T>(pub T, pub Option<Bytes>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for FormOrJsonText<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, json) = form_or_json(req, state).await?;
        Ok(FormOrJsonText(value, json))
    }
}

async fn form_or_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(T, Option<Bytes>), ApiError> {
    let content_type = media_type(req.headers());
    let bytes = read_body(req, state).await?;
    let json = match content_type.as_deref() {
        Some("application/json") => true,
        Some("application/x-www-form-urlencoded") => false,
        None | Some("") | Some("text/plain") => bytes.trim_ascii_start().starts_with(b"{"),
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type {other} is not accepted; send application/json or application/x-www-form-urlencoded"
            )));
        }
    };
    if json {
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        Ok((value, Some(bytes)))
    } else {
        let value = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))?;
        Ok((value, None))
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", e.body_text()))
            }
        })
}
