//! The HTTP surface: one router, one error type, shared extractors and layers.

mod auth;
mod error;
mod extract;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::{Session, bearer_token};
pub use error::ApiError;
pub use extract::{FormOrJson, FormOrJsonText, PathSegment, Query, media_type};

use crate::anchor::AppState;
use crate::{health, sep1, sep10, sep12, sep31};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// No request may hold a connection longer than this (outgoing calls have shorter limits).
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// Every route capstan serves. `extra` lets an embedding binary (or a test) add its own
/// routes behind the same layers.
pub fn router(state: AppState, extra: Option<Router<AppState>>) -> Router {
    let mut routes = Router::new()
        .route("/.well-known/stellar.toml", get(sep1::stellar_toml))
        .route("/auth", get(sep10::challenge).post(sep10::token))
        .route("/health", get(health::health));
    routes = routes.merge(sep12::router(
        state.config.kyc.max_file_bytes,
        state.config.max_body_bytes,
    ));
    routes = routes.merge(sep31::router());
    if let Some(extra) = extra {
        routes = routes.merge(extra);
    }
    let max_body = state.config.max_body_bytes;
    routes
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed("method not allowed on this endpoint".into()) })
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal("a request handler panicked".into()))
        }))
        .layer(axum::middleware::from_fn(deadline))
        // SEP-10 requires `Access-Control-Allow-Origin: *` on every response, errors included,
        // and answers to preflight requests; the other SEPs expect the same.
        .layer(CorsLayer::permissive())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Ends a request that outlives the deadline with a JSON 503, like every other error.
async fn deadline(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::Unavailable(
            "the request took too long; try again shortly".into(),
        )),
    }
}
