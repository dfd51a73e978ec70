//! Customers kept by the anchor's own business server: each call is forwarded over HTTP.
//!
//! The contract (README, "KYC on your own server"): `GET /customer`, `PUT /customer` and
//! `DELETE /customer/{account}` on `kyc.business_url`, answering in SEP-12's own shapes.
//! capstan still authenticates the caller, checks every value against SEP-9, keeps the
//! uploaded files (the business server downloads them from the admin API), records which
//! account owns each customer id, and sends the callbacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::files::FileStore;
use super::{
    CustomerInfo, CustomerQuery, CustomerUpdate, Customers, Identity, KycError, KycResult, Lookup,
    not_found_for_id,
};
use crate::config::BusinessServer;
use crate::store::Store;

pub struct BusinessCustomers {
    store: Store,
    files: FileStore,
    server: BusinessServer,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct PutAnswer {
    id: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

impl BusinessCustomers {
    pub fn new(
        store: Store,
        files: FileStore,
        server: BusinessServer,
    ) -> Result<Arc<BusinessCustomers>, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .timeout(server.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(BusinessCustomers {
            store,
            files,
            server,
            http,
        }))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}{path}", self.server.url));
        match &self.server.api_key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }

    /// Sends a request and reads a JSON answer, turning the server's 400 and 404 into the
    /// caller's and anything else unexpected into 502/503.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> KycResult<Option<T>> {
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "the KYC business server did not answer");
            KycError::Unavailable("the KYC service is unavailable; try again shortly".into())
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            tracing::warn!(error = %e, "the KYC business server's answer was cut off");
            KycError::Unavailable("the KYC service is unavailable; try again shortly".into())
        })?;
        let message = || {
            serde_json::from_slice::<ErrorAnswer>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("rejected by the KYC service ({status})"))
        };
        match status {
            s if s.is_success() => {
                if bytes.is_empty() || s == StatusCode::NO_CONTENT {
                    return Ok(None);
                }
                serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    tracing::warn!(error = %e, "the KYC business server answered with an unexpected body");
                    KycError::BadGateway("the KYC service gave an invalid answer".into())
                })
            }
            StatusCode::BAD_REQUEST => Err(KycError::BadRequest(message())),
            StatusCode::NOT_FOUND => Err(KycError::NotFound(message())),
            s => {
                tracing::warn!(status = %s, "the KYC business server failed");
                Err(KycError::BadGateway(format!(
                    "the KYC service failed ({s}); try again later"
                )))
            }
        }
    }

    /// For an id: the caller must own it here first, so no id of another account is ever
    /// sent to the business server.
    async fn check_owner(&self, query_caller: &super::Caller, lookup: &Lookup) -> KycResult<()> {
        if let Lookup::Id(id) = lookup {
            match self.store.customer_by_id(id).await? {
                Some(row) if query_caller.owns(&row.account, &row.memo) => {}
                _ => return Err(not_found_for_id(id)),
            }
        }
        Ok(())
    }
}

/// The customer-naming parameters of a forwarded request.
fn naming(lookup: &Lookup, caller: &super::Caller) -> BTreeMap<&'static str, String> {
    let mut params = BTreeMap::new();
    params.insert("account", caller.account.to_string());
    match lookup {
        Lookup::Id(id) => {
            params.insert("id", id.clone());
        }
        Lookup::Transaction(id) => {
            params.insert("transaction_id", id.clone());
        }
        Lookup::Identity(identity) => {
            if let Some(memo) = &identity.memo {
                params.insert("memo", memo.value.clone());
                params.insert("memo_type", memo.kind.as_str().into());
            }
        }
    }
    params
}

impl Customers for BusinessCustomers {
    fn get<'a>(&'a self, query: &'a CustomerQuery) -> BoxFuture<'a, KycResult<CustomerInfo>> {
        Box::pin(async move {
            self.check_owner(&query.caller, &query.lookup).await?;
            let mut params = naming(&query.lookup, &query.caller);
            params.insert("type", query.kind.clone());
            params.insert("lang", query.lang.clone());
            let info: Option<CustomerInfo> = self
                .call(
                    self.request(reqwest::Method::GET, "/customer")
                        .query(&params),
                )
                .await?;
            info.ok_or_else(|| KycError::BadGateway("the KYC service gave an empty answer".into()))
        })
    }

    fn put<'a>(&'a self, update: &'a CustomerUpdate) -> BoxFuture<'a, KycResult<String>> {
        Box::pin(async move {
            self.check_owner(&update.caller, &update.lookup).await?;
            let mut body = json!({
                "account": update.identity.account.to_string(),
                "fields": update.fields,
                "files": update.files,
                "verifications": update.verifications,
            });
            for (key, value) in naming(&update.lookup, &update.caller) {
                body[key] = json!(value);
            }
            if let Some(memo) = &update.identity.memo {
                body["memo"] = json!(memo.value);
                body["memo_type"] = json!(memo.kind.as_str());
            }
            if let Some(kind) = &update.kind {
                body["type"] = json!(kind);
            }
            let answer: Option<PutAnswer> = self
                .call(self.request(reqwest::Method::PUT, "/customer").json(&body))
                .await?;
            let id = answer
                .map(|a| a.id)
                .filter(|id| !id.is_empty() && id.len() <= 200)
                .ok_or_else(|| {
                    KycError::BadGateway("the KYC service did not return a customer id".into())
                })?;
            // Remember who owns the id, so later requests by id are checked here.
            let identity = &update.identity;
            let row = self
                .store
                .find_or_create_customer(
                    &id,
                    &identity.account.to_string(),
                    identity.memo_key(),
                    identity.memo.as_ref().map_or("", |m| m.kind.as_str()),
                )
                .await?;
            if row.id != id && !matches!(update.lookup, Lookup::Id(_)) {
                tracing::warn!(
                    "the KYC business server returned a new id for a known customer; keeping the first"
                );
            }
            let attach: Vec<String> = update.files.values().cloned().collect();
            let kind = update.kind.as_deref();
            self.store
                .save_customer_fields(&row.id, kind, &[], &attach)
                .await?;
            Ok(id)
        })
    }

    fn delete<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, KycResult<()>> {
        Box::pin(async move {
            let mut params = BTreeMap::new();
            if let Some(memo) = &identity.memo {
                params.insert("memo", memo.value.clone());
                params.insert("memo_type", memo.kind.as_str().to_owned());
            }
            let path = format!("/customer/{}", identity.account);
            let _: Option<serde_json::Value> = self
                .call(self.request(reqwest::Method::DELETE, &path).query(&params))
                .await?;
            let erased = self
                .store
                .erase_customer(&identity.account.to_string(), identity.memo_key())
                .await?;
            self.files.remove(&erased.file_ids).await;
            Ok(())
        })
    }
}
