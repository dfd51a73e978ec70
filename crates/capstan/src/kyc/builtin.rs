//! The built-in customers store: SEP-9 values kept by capstan, judged by the configured
//! review mode.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::files::FileStore;
use super::status::{FieldState, customer_info};
use super::{
    Caller, CustomerInfo, CustomerQuery, CustomerUpdate, Customers, FieldStatus, Identity,
    KycError, KycResult, Lookup, check_sharing, not_found_for_id, sharing_conflict,
};
use crate::config::{CustomerType, KycConfig, ReviewMode};
use crate::store::{CustomerRow, FieldRow, FieldWrite, Store};

pub struct BuiltinCustomers {
    store: Store,
    config: Arc<KycConfig>,
    files: FileStore,
}

impl BuiltinCustomers {
    pub fn new(store: Store, config: Arc<KycConfig>, files: FileStore) -> BuiltinCustomers {
        BuiltinCustomers {
            store,
            config,
            files,
        }
    }

    fn kind(&self, name: &str) -> KycResult<&CustomerType> {
        self.config.types.get(name).ok_or_else(|| {
            KycError::BadRequest(format!(
                "unknown type: {name}; this anchor's types are {}",
                self.config.type_names()
            ))
        })
    }

    /// The customer a lookup names, if it exists and the caller owns it, with its fields.
    async fn find(
        &self,
        caller: &Caller,
        lookup: &Lookup,
    ) -> KycResult<Option<(CustomerRow, Vec<FieldRow>)>> {
        match lookup {
            Lookup::Id(id) => match self.store.customer_with_fields_by_id(id).await? {
                Some((row, fields)) if caller.owns(&row.account, &row.memo) => {
                    Ok(Some((row, fields)))
                }
                _ => Err(not_found_for_id(id)),
            },
            // The HTTP layer resolves transaction ids to the customers they name; one that
            // reaches here named none.
            Lookup::Transaction(id) => {
                Err(KycError::NotFound(format!("transaction not found: {id}")))
            }
            Lookup::Identity(identity) => Ok(self
                .store
                .customer_with_fields_by_identity(
                    &identity.account.to_string(),
                    identity.memo_key(),
                )
                .await?),
        }
    }

    /// The status a newly provided value starts with.
    fn fresh_status(&self, name: &str) -> (FieldStatus, Option<String>) {
        if self.config.verify_fields.iter().any(|f| f == name) {
            (FieldStatus::VerificationRequired, Some(verification_code()))
        } else {
            (self.reviewed_status(), None)
        }
    }

    fn reviewed_status(&self) -> FieldStatus {
        match self.config.review {
            ReviewMode::Auto => FieldStatus::Accepted,
            ReviewMode::Manual => FieldStatus::Processing,
        }
    }

    async fn plan_writes(
        &self,
        update: &CustomerUpdate,
        customer_id: Option<&str>,
        existing: &[FieldRow],
    ) -> KycResult<(Vec<FieldWrite>, Vec<String>)> {
        let current = |name: &str| existing.iter().find(|f| f.name == name);
        let mut writes = Vec::new();
        for (name, value) in &update.fields {
            // Sending the same value again changes nothing (PUT is idempotent).
            if let Some(f) = current(name)
                && f.value.as_deref() == Some(value.as_str())
                && f.status != FieldStatus::Rejected.as_str()
            {
                continue;
            }
            let (status, code) = self.fresh_status(name);
            writes.push(FieldWrite {
                name: name.clone(),
                value: Some(value.clone()),
                file_id: None,
                status: status.as_str().into(),
                error: None,
                verification_code: code,
            });
        }
        let mut attach = Vec::new();
        for (name, file_id) in &update.files {
            self.files
                .attachable(&update.caller, name, file_id, customer_id)
                .await?;
            if current(name).and_then(|f| f.file_id.as_deref()) == Some(file_id.as_str()) {
                continue;
            }
            writes.push(FieldWrite {
                name: name.clone(),
                value: None,
                file_id: Some(file_id.clone()),
                status: self.reviewed_status().as_str().into(),
                error: None,
                verification_code: None,
            });
            attach.push(file_id.clone());
        }
        for (name, code) in &update.verifications {
            if update.fields.contains_key(name) {
                return Err(KycError::BadRequest(format!(
                    "{name}_verification: {name} is being changed in the same request; send the code for the new value in a later request"
                )));
            }
            let pending = current(name)
                .filter(|f| f.status == FieldStatus::VerificationRequired.as_str())
                .ok_or_else(|| {
                    KycError::BadRequest(format!(
                        "{name}_verification: {name} is not waiting for a verification code"
                    ))
                })?;
            if pending.verification_code.as_deref() != Some(code.trim()) {
                let replaced = match customer_id {
                    Some(id) => {
                        // A replacement must differ from the code it replaces.
                        let mut new_code = verification_code();
                        while pending.verification_code.as_deref() == Some(new_code.as_str()) {
                            new_code = verification_code();
                        }
                        self.store
                            .verification_failed(id, name, MAX_VERIFICATION_FAILURES, &new_code)
                            .await?
                    }
                    None => false,
                };
                return Err(KycError::BadRequest(if replaced {
                    format!(
                        "{name}_verification: the code is not the one sent for {name}; after {MAX_VERIFICATION_FAILURES} wrong codes it was replaced, and a new one will be sent"
                    )
                } else {
                    format!("{name}_verification: the code is not the one sent for {name}")
                }));
            }
            writes.push(FieldWrite {
                name: name.clone(),
                value: pending.value.clone(),
                file_id: pending.file_id.clone(),
                status: self.reviewed_status().as_str().into(),
                error: None,
                verification_code: None,
            });
        }
        Ok((writes, attach))
    }
}

impl Customers for BuiltinCustomers {
    fn get<'a>(&'a self, query: &'a CustomerQuery) -> BoxFuture<'a, KycResult<CustomerInfo>> {
        Box::pin(async move {
            let kind = self.kind(&query.kind)?;
            let Some((row, fields)) = self.find(&query.caller, &query.lookup).await? else {
                return Ok(customer_info(None, kind, &[], None));
            };
            Ok(customer_info(
                Some(&row.id),
                kind,
                &field_states(&fields),
                row.rejection.as_deref(),
            ))
        })
    }

    fn put<'a>(&'a self, update: &'a CustomerUpdate) -> BoxFuture<'a, KycResult<String>> {
        Box::pin(async move {
            if let Some(kind) = &update.kind {
                self.kind(kind)?;
            }
            let (row, existing) = match self.find(&update.caller, &update.lookup).await? {
                Some((row, fields)) => (Some(row), fields),
                None => (None, Vec::new()),
            };
            // Everything is checked before a new customer is created, so a bad request
            // leaves nothing behind.
            let (writes, attach) = self
                .plan_writes(update, row.as_ref().map(|r| r.id.as_str()), &existing)
                .await?;
            let row = match row {
                Some(row) => row,
                None => {
                    let identity = &update.identity;
                    let account = identity.account.to_string();
                    let memo_type = identity.memo.as_ref().map_or("", |m| m.kind.as_str());
                    let created = self
                        .store
                        .create_customer(
                            &new_customer_id(),
                            &account,
                            identity.memo_key(),
                            memo_type,
                            update.kind.as_deref(),
                            sharing_conflict(identity),
                            &writes,
                            &attach,
                        )
                        .await?;
                    if let Some(created) = created {
                        return Ok(created.id);
                    }
                    // Refused for the account's other customers (the error says so), or
                    // registered by a concurrent PUT meanwhile: these fields go to it.
                    check_sharing(&self.store, identity).await?;
                    self.store
                        .find_or_create_customer(
                            &new_customer_id(),
                            &account,
                            identity.memo_key(),
                            memo_type,
                        )
                        .await?
                }
            };
            if !self
                .store
                .save_customer_fields(&row.id, update.kind.as_deref(), &writes, &attach)
                .await?
            {
                return Err(KycError::NotFound(
                    "the customer was deleted while this request ran".into(),
                ));
            }
            Ok(row.id)
        })
    }

    fn delete<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, KycResult<()>> {
        Box::pin(async move {
            let erased = self
                .store
                .erase_customer(&identity.account.to_string(), identity.memo_key())
                .await?;
            self.files.remove(&erased.file_ids).await;
            if erased.customer_id.is_none() && erased.file_ids.is_empty() {
                return Err(KycError::NotFound(
                    "no customer is registered for this account and memo".into(),
                ));
            }
            Ok(())
        })
    }
}

pub fn field_states(rows: &[FieldRow]) -> Vec<FieldState> {
    rows.iter()
        .map(|f| FieldState {
            name: f.name.clone(),
            provided: f.value.is_some() || f.file_id.is_some(),
            // Written by this module only; an unknown value reads as "look again".
            status: FieldStatus::parse(&f.status).unwrap_or(FieldStatus::Processing),
            error: f.error.clone(),
        })
        .collect()
}

/// Wrong codes in a row before a code is replaced: a million codes, five guesses each.
const MAX_VERIFICATION_FAILURES: i64 = 5;

/// A six-digit code for `<field>_verification`.
fn verification_code() -> String {
    let n = u32::from_le_bytes(stellar::random_bytes::<4>()) % 1_000_000;
    format!("{n:06}")
}

/// A new customer's id: time-ordered (UUIDv7, 74 random bits), so a new customer's rows go
/// to the end of the indexes keyed by it, not to a random page of each (BENCHMARKS.md).
fn new_customer_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
