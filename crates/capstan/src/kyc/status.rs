//! How a customer's SEP-12 status follows from the fields it provided: a pure function, so
//! the built-in store, the operator API and callbacks all agree.

use std::collections::BTreeMap;

use super::{CustomerInfo, CustomerStatus, FieldInfo, FieldStatus, ProvidedField};
use crate::config::CustomerType;

/// A stored field, as far as its status is concerned.
#[derive(Debug, Clone)]
pub struct FieldState {
    pub name: String,
    /// False for a field an operator asked for that was never sent.
    pub provided: bool,
    pub status: FieldStatus,
    pub error: Option<String>,
}

/// The `fields` entry SEP-9 describes for `name`.
pub fn field_info(name: &str, optional: bool) -> FieldInfo {
    match stellar::sep9::field(name) {
        Some(spec) => FieldInfo {
            kind: spec.kind.as_str().to_owned(),
            description: spec.description.to_owned(),
            choices: spec
                .choices()
                .map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
            optional,
        },
        // Only SEP-9 names are configured or accepted; a business server may still use others.
        None => FieldInfo {
            kind: "string".into(),
            description: name.replace('_', " "),
            choices: None,
            optional,
        },
    }
}

/// The customer as `GET /customer?type=<kind>` reports it.
///
/// - `REJECTED` once an operator rejected the customer (`rejection` is the message).
/// - `NEEDS_INFO` while a required field is missing, or a field of the type (or one an
///   operator asked for) is rejected or waits for its verification code.
/// - `PROCESSING` while a provided field waits for review.
/// - `ACCEPTED` otherwise.
pub fn customer_info(
    id: Option<&str>,
    kind: &CustomerType,
    stored: &[FieldState],
    rejection: Option<&str>,
) -> CustomerInfo {
    let mut fields = BTreeMap::new();
    let mut provided_fields = BTreeMap::new();
    let mut needs_info = false;
    let mut processing = false;
    let mut requests = Vec::new();

    let find = |name: &str| stored.iter().find(|f| f.name == name);
    // The type's fields, then those an operator asked for beyond it.
    let extra = stored
        .iter()
        .filter(|f| !kind.has(&f.name) && f.status == FieldStatus::Rejected)
        .map(|f| (f.name.as_str(), false));
    for (name, optional) in kind.fields().chain(extra) {
        let state = find(name);
        if let Some(state) = state.filter(|s| s.provided) {
            provided_fields.insert(
                name.to_owned(),
                ProvidedField {
                    field: field_info(name, optional),
                    status: Some(state.status),
                    error: state.error.clone(),
                },
            );
        }
        match state {
            None if optional => {
                fields.insert(name.to_owned(), field_info(name, true));
            }
            None => {
                fields.insert(name.to_owned(), field_info(name, false));
                needs_info = true;
            }
            Some(state) => match state.status {
                FieldStatus::Rejected => {
                    fields.insert(name.to_owned(), field_info(name, optional));
                    needs_info = true;
                    if let Some(error) = &state.error {
                        requests.push(format!("{name}: {error}"));
                    }
                }
                FieldStatus::VerificationRequired => needs_info = true,
                FieldStatus::Processing => processing = true,
                FieldStatus::Accepted => {}
            },
        }
    }

    let (status, message) = match rejection {
        Some(reason) => (CustomerStatus::Rejected, Some(reason.to_owned())),
        None if needs_info => (
            CustomerStatus::NeedsInfo,
            (!requests.is_empty()).then(|| format!("please send again: {}", requests.join("; "))),
        ),
        None if processing => (CustomerStatus::Processing, None),
        None => (CustomerStatus::Accepted, None),
    };
    CustomerInfo {
        id: id.map(str::to_owned),
        status,
        fields,
        provided_fields,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind() -> CustomerType {
        CustomerType {
            required: vec!["first_name".into(), "email_address".into()],
            optional: vec!["mobile_number".into()],
        }
    }

    fn state(name: &str, status: FieldStatus) -> FieldState {
        FieldState {
            name: name.into(),
            provided: true,
            status,
            error: None,
        }
    }

    #[test]
    fn unknown_customer_needs_every_field() {
        let info = customer_info(None, &kind(), &[], None);
        assert_eq!(info.status, CustomerStatus::NeedsInfo);
        assert_eq!(info.id, None);
        assert_eq!(info.fields.len(), 3);
        assert!(info.fields["mobile_number"].optional);
        assert!(!info.fields["first_name"].optional);
        assert_eq!(info.fields["email_address"].kind, "string");
        assert!(info.provided_fields.is_empty());
    }

    #[test]
    fn all_required_accepted_is_accepted_with_only_optional_fields_left() {
        let stored = [
            state("first_name", FieldStatus::Accepted),
            state("email_address", FieldStatus::Accepted),
        ];
        let info = customer_info(Some("c1"), &kind(), &stored, None);
        assert_eq!(info.status, CustomerStatus::Accepted);
        assert!(info.fields.values().all(|f| f.optional));
        assert_eq!(info.provided_fields.len(), 2);
    }

    #[test]
    fn processing_field_makes_the_customer_processing() {
        let stored = [
            state("first_name", FieldStatus::Processing),
            state("email_address", FieldStatus::Accepted),
        ];
        let info = customer_info(Some("c1"), &kind(), &stored, None);
        assert_eq!(info.status, CustomerStatus::Processing);
    }

    #[test]
    fn rejected_or_unverified_field_needs_info() {
        let mut rejected = state("email_address", FieldStatus::Rejected);
        rejected.error = Some("mailbox does not exist".into());
        let stored = [state("first_name", FieldStatus::Accepted), rejected];
        let info = customer_info(Some("c1"), &kind(), &stored, None);
        assert_eq!(info.status, CustomerStatus::NeedsInfo);
        assert!(info.fields.contains_key("email_address"));
        assert_eq!(
            info.provided_fields["email_address"].error.as_deref(),
            Some("mailbox does not exist")
        );
        assert!(info.message.unwrap().contains("mailbox does not exist"));

        let stored = [
            state("first_name", FieldStatus::Accepted),
            state("email_address", FieldStatus::Accepted),
            state("mobile_number", FieldStatus::VerificationRequired),
        ];
        let info = customer_info(Some("c1"), &kind(), &stored, None);
        assert_eq!(info.status, CustomerStatus::NeedsInfo);
        assert_eq!(
            info.provided_fields["mobile_number"].status,
            Some(FieldStatus::VerificationRequired)
        );
    }

    #[test]
    fn operator_request_beyond_the_type_is_a_required_field() {
        let stored = [
            state("first_name", FieldStatus::Accepted),
            state("email_address", FieldStatus::Accepted),
            FieldState {
                name: "id_number".into(),
                provided: false,
                status: FieldStatus::Rejected,
                error: Some("needed for amounts over 1000".into()),
            },
        ];
        let info = customer_info(Some("c1"), &kind(), &stored, None);
        assert_eq!(info.status, CustomerStatus::NeedsInfo);
        assert!(!info.fields["id_number"].optional);
        assert!(!info.provided_fields.contains_key("id_number"));
    }

    #[test]
    fn rejection_wins_and_carries_the_message() {
        let stored = [state("first_name", FieldStatus::Accepted)];
        let info = customer_info(Some("c1"), &kind(), &stored, Some("sanctions list match"));
        assert_eq!(info.status, CustomerStatus::Rejected);
        assert_eq!(info.message.as_deref(), Some("sanctions list match"));
    }

    #[test]
    fn needs_info_json_always_has_fields() {
        let stored = [
            state("first_name", FieldStatus::Accepted),
            state("email_address", FieldStatus::VerificationRequired),
        ];
        let kind = CustomerType {
            required: vec!["first_name".into(), "email_address".into()],
            optional: vec![],
        };
        let json = customer_info(Some("c1"), &kind, &stored, None).to_json();
        assert_eq!(json["status"], "NEEDS_INFO");
        assert!(json["fields"].is_object());
    }
}
