//! SEP-31 receive API, served under DIRECT_PAYMENT_SERVER (`<base_url>/sep31`): what this
//! anchor receives (`/info`), and the transactions sending anchors create and follow.

pub mod amounts;
pub mod business;
pub mod expiry;
pub mod info;
pub mod integration;
pub mod kyc;
pub mod status;
pub mod transactions;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post, put};

use crate::anchor::AppState;
use crate::http::{ApiError, Session};

/// The SEP-31 version these endpoints follow.
pub const SEP31_VERSION: &str = "3.1.0";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sep31/info", get(info::info))
        .route("/sep31/transactions", post(transactions::post_transaction))
        .route(
            "/sep31/transactions/{id}",
            get(transactions::get_transaction).patch(transactions::patch_transaction),
        )
        .route(
            "/sep31/transactions/{id}/callback",
            put(transactions::put_callback),
        )
}

/// An authenticated sending anchor: a SEP-10 session whose account is on
/// `sep31.sending_anchors` (any account when the list is empty, off the public network), or
/// that the receiver integration accepts. Everyone else gets 403 (SEP31-06, SEP31-07); 503
/// when the integration cannot tell now.
pub struct SendingAnchor(pub Session);

impl FromRequestParts<AppState> for SendingAnchor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        if !state
            .sep31_receiver
            .valid_sending_anchor(&session.account())
            .await?
        {
            return Err(ApiError::Forbidden(format!(
                "account {} is not a sending anchor this anchor has an agreement with",
                session.account()
            )));
        }
        Ok(SendingAnchor(session))
    }
}
