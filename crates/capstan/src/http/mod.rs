//! The HTTP surface: one router, one error type, shared extractors and layers.

mod auth;
mod error;
mod extract;
mod listener;
mod rate_limit;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
pub use listener::{ClientAddr, TimedListener};

use crate::anchor::AppState;
use crate::{health, sep1, sep10, sep12, sep31, sep38};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route capstan serves. `extra` lets an embedding binary (or a test) add its own
/// routes behind the same layers.
pub fn router(state: AppState, extra: Option<Router<AppState>>) -> Router {
    let mut routes = Router::new()
        .route("/.well-known/stellar.toml", get(sep1::stellar_toml))
        .route(
            "/auth",
            get(sep10::challenge).post(sep10::token).route_layer(
                axum::middleware::from_fn_with_state(
                    rate_limit::RateLimiter::new(
                        state.config.auth_rate_limit_per_minute,
                        state.config.auth_rate_limit_loopback,
                        state.config.trusted_proxies.clone(),
                    ),
                    rate_limit::limit,
                ),
            ),
        )
        .route("/health", get(health::health));
    routes = routes.merge(sep12::router(
        state.config.kyc.max_file_bytes,
        state.config.max_body_bytes,
    ));
    routes = routes.merge(sep31::router());
    if state.config.sep38.enabled() {
        routes = routes.merge(sep38::router());
    }
    if let Some(extra) = extra {
        routes = routes.merge(extra);
    }
    let max_body = state.config.max_body_bytes;
    routes
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed("method not allowed on this endpoint".into()) })
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal("a request handler panicked".into()))
        }))
        .layer(axum::middleware::from_fn_with_state(state, deadline))
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

/// Ends a request that outlives `server.request_timeout_secs` with a JSON error: 408 when
/// its body had not all arrived (a client trickling bytes, slow-loris style, holds nothing
/// for longer), 503 when the anchor itself was too slow.
async fn deadline(
    axum::extract::State(anchor): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    use futures_util::StreamExt;

    let timeout = anchor.config.request_timeout;
    let (parts, body) = request.into_parts();
    let has_body = parts.headers.contains_key(TRANSFER_ENCODING)
        || parts
            .headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let received = Arc::new(AtomicBool::new(!has_body));
    let request = if has_body {
        let flag = received.clone();
        let end = futures_util::stream::once(async move {
            flag.store(true, Ordering::Relaxed);
        })
        .filter_map(|()| async { None::<Result<axum::body::Bytes, axum::Error>> });
        axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from_stream(body.into_data_stream().chain(end)),
        )
    } else {
        axum::extract::Request::from_parts(parts, body)
    };
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if !received.load(Ordering::Relaxed) => {
            axum::response::IntoResponse::into_response(ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            )))
        }
        Err(_) => axum::response::IntoResponse::into_response(ApiError::Unavailable(
            "the request took too long; try again shortly".into(),
        )),
    }
}
