//! `GET /health`: liveness (the process answers) and readiness (the database answers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::anchor::AppState;

pub async fn health(State(anchor): State<AppState>) -> (StatusCode, Json<Value>) {
    match anchor.store.ping().await {
        Ok(()) => {
            let mut body =
                json!({ "status": "ok", "database": "ok", "version": env!("CARGO_PKG_VERSION") });
            let streams = anchor.streams.snapshot();
            if !streams.is_empty() {
                body["watcher"] = json!({ "streams": streams });
            }
            (StatusCode::OK, Json(body))
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "unavailable", "database": "unavailable", "error": "the database is unavailable" }),
                ),
            )
        }
    }
}
