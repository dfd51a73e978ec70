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
    check_sharing, not_found_for_id,
};
use crate::business_answer::{AnswerError, MAX_ANSWER_BYTES, read_answer};
use crate::config::BusinessServer;
use crate::store::{CustomerRow, Store};

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
        let http = server.http_client()?;
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
        let bytes = read_answer(response).await.map_err(|e| match e {
            AnswerError::Cut(e) => {
                tracing::warn!(error = %e, "the KYC business server's answer was cut off");
                KycError::Unavailable("the KYC service is unavailable; try again shortly".into())
            }
            AnswerError::TooLong => {
                tracing::warn!(
                    limit = MAX_ANSWER_BYTES,
                    "the KYC business server's answer is longer than the limit"
                );
                KycError::BadGateway("the KYC service gave an invalid answer".into())
            }
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
    /// sent to the business server. Returns the customer the id names.
    async fn check_owner(
        &self,
        query_caller: &super::Caller,
        lookup: &Lookup,
    ) -> KycResult<Option<CustomerRow>> {
        match lookup {
            Lookup::Id(id) => match self.store.customer_by_id(id).await? {
                Some(row) if query_caller.owns(&row.account, &row.memo) => Ok(Some(row)),
                _ => Err(not_found_for_id(id)),
            },
            _ => Ok(None),
        }
    }

    /// Every `<field>_file_id` must name an upload of the caller's that no other customer
    /// holds, as with the built-in store: the business server is told the file is this
    /// customer's and fetches it with the admin key, so nobody else's document may be named.
    async fn check_files(&self, update: &CustomerUpdate, customer: Option<&str>) -> KycResult<()> {
        for (name, file_id) in &update.files {
            self.files
                .attachable(&update.caller, name, file_id, customer)
                .await?;
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
            // An update by id is about that customer, whatever memo the request names.
            let known = match self.check_owner(&update.caller, &update.lookup).await? {
                Some(row) => Some(row),
                None => {
                    let identity = &update.identity;
                    self.store
                        .customer_by_identity(&identity.account.to_string(), identity.memo_key())
                        .await?
                }
            };
            if known.is_none() && matches!(update.lookup, Lookup::Identity(_)) {
                check_sharing(&self.store, &update.identity).await?;
            }
            self.check_files(update, known.as_ref().map(|row| row.id.as_str()))
                .await?;
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
                // Stored, and put in URLs: PostgreSQL cannot hold a NUL, and no sane id
                // has a control character.
                .filter(|id| !id.is_empty() && id.len() <= 200 && !id.chars().any(char::is_control))
                .ok_or_else(|| {
                    KycError::BadGateway("the KYC service did not return a customer id".into())
                })?;
            // Remember who owns the id, so later requests by id are checked here.
            let row = match known {
                Some(row) => row,
                None => {
                    let identity = &update.identity;
                    let account = identity.account.to_string();
                    match self.store.customer_by_id(&id).await? {
                        // A concurrent first PUT of the same customer recorded it already.
                        Some(row) if row.account == account && row.memo == identity.memo_key() => {
                            row
                        }
                        // Recording it would make two customers one.
                        Some(_) => {
                            tracing::warn!(
                                "the KYC business server returned the id of another customer for a new one"
                            );
                            return Err(KycError::BadGateway(
                                "the KYC service gave an invalid answer".into(),
                            ));
                        }
                        None => {
                            self.store
                                .find_or_create_customer(
                                    &id,
                                    &account,
                                    identity.memo_key(),
                                    identity.memo.as_ref().map_or("", |m| m.kind.as_str()),
                                )
                                .await?
                        }
                    }
                }
            };
            if row.id != id {
                tracing::warn!(
                    "the KYC business server returned a new id for a known customer; keeping the first"
                );
            }
            let attach: Vec<String> = update.files.values().cloned().collect();
            let kind = update.kind.as_deref();
            if !self
                .store
                .save_customer_fields(&row.id, kind, &[], &attach)
                .await?
            {
                return Err(KycError::NotFound(
                    "the customer was deleted while this request ran".into(),
                ));
            }
            // The id capstan recorded: the only one a later request by id can be checked
            // against.
            Ok(row.id)
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
            let forwarded: KycResult<Option<serde_json::Value>> = self
                .call(self.request(reqwest::Method::DELETE, &path).query(&params))
                .await;
            // A 404 from the business server (it erased the customer itself) still erases
            // what capstan holds: its record and the uploaded files.
            let business_not_found = match forwarded {
                Ok(_) => None,
                Err(KycError::NotFound(message)) => Some(message),
                Err(e) => return Err(e),
            };
            let erased = self
                .store
                .erase_customer(&identity.account.to_string(), identity.memo_key())
                .await?;
            self.files.remove(&erased.file_ids).await;
            match business_not_found {
                Some(message) if erased.customer_id.is_none() && erased.file_ids.is_empty() => {
                    Err(KycError::NotFound(message))
                }
                _ => Ok(()),
            }
        })
    }
}
