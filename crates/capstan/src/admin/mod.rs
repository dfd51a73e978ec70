//! The operator API, on its own listener (`[admin] listen`) and behind its own bearer key
//! (`[admin] api_key`): never reachable through the public port. Customers today;
//! transactions join it later.

mod customers;
mod payments;
mod transactions;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::anchor::AppState;
use crate::http::ApiError;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/admin/customers", get(customers::list))
        .route("/admin/customers/{id}", get(customers::show))
        .route("/admin/customers/{id}/accept", post(customers::accept))
        .route("/admin/customers/{id}/reject", post(customers::reject))
        .route("/admin/customers/{id}/request-info", post(customers::request_info))
        .route("/admin/customers/{id}/notify", post(customers::notify))
        .route("/admin/files/{id}", get(customers::file))
        .route("/admin/callbacks", get(callbacks))
        .route("/admin/transactions", get(transactions::list))
        .route("/admin/transactions/{id}", get(transactions::show))
        .route(
            "/admin/transactions/{id}/request-customer-info",
            post(transactions::request_customer_info),
        )
        .route(
            "/admin/transactions/{id}/request-transaction-info",
            post(transactions::request_transaction_info),
        )
        .route("/admin/transactions/{id}/error", post(transactions::mark_error))
        .route("/admin/transactions/{id}/refund", post(transactions::refund))
        .route("/admin/transactions/{id}/payout", post(transactions::report_payout))
        .route("/admin/transactions/{id}/payout/retry", post(transactions::retry_payout))
        .route("/admin/payouts/held", get(transactions::held_payouts))
        .route("/admin/payments", get(payments::list))
        .route("/admin/payments/{id}", get(payments::show))
        .route("/admin/payments/{id}/attach", post(payments::attach))
        .route("/admin/payments/{id}/refund", post(payments::refund))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this endpoint".into())
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_api_key))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "a request handler panicked".into(),
            ))
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    tracing::info_span!("admin", method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

async fn require_api_key(
    State(anchor): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(admin) = &anchor.config.admin else {
        return Err(ApiError::NotFound("the admin API is not configured".into()));
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), admin.api_key.expose().as_bytes()) {
        return Err(ApiError::Unauthorized(
            "send 'Authorization: Bearer <admin.api_key>'".into(),
        ));
    }
    Ok(next.run(request).await)
}

/// The callback outbox: how many wait for delivery, and how many were given up on.
async fn callbacks(
    State(anchor): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (waiting, failed) = anchor.store.callback_backlog().await?;
    Ok(axum::Json(
        serde_json::json!({ "waiting": waiting, "failed": failed }),
    ))
}

/// Compares without stopping at the first difference, so timing tells nothing of the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
