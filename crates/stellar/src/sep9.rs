//! SEP-9 standard KYC fields: every field's SEP-12 type, a description for the `fields`
//! object of `GET /customer`, and the checks its value must pass (SEP9-02: ISO dates,
//! alpha-3 countries, E.164 phones, the fixed choices).
//!
//! Names are flat strings: `organization.name` is one name, not a nested object. The
//! financial-account fields also exist with the `organization.` prefix.

use std::fmt;

/// The four field types SEP-12 knows (SEP9-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Binary,
    Number,
    Date,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Binary => "binary",
            FieldType::Number => "number",
            FieldType::Date => "date",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a text value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Any non-empty text.
    Text,
    /// ISO 8601 calendar date, `YYYY-MM-DD`.
    Date,
    /// ISO 3166-1 alpha-3 country code, e.g. `BRA`. Checked for shape (three letters).
    CountryAlpha3,
    /// ISO 3166-1 alpha-2 country code, e.g. `BR` (card fields).
    CountryAlpha2,
    /// ISO 639-1 language code, e.g. `en`.
    Language,
    /// E.164 phone number, e.g. `+14155552671`.
    E164,
    Email,
    /// A whole number of at least 0.
    Count,
    IpAddress,
    /// Card expiry, `YY-MM`.
    CardExpiry,
    /// One of a fixed list.
    OneOf(&'static [&'static str]),
    /// A file: validated by size, not by text.
    File,
}

/// One SEP-9 field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub kind: FieldType,
    pub format: Format,
    pub description: &'static str,
}

/// The longest text value accepted. SEP-9 sets none; this bounds what a client can store.
pub const MAX_TEXT_LEN: usize = 2_000;

const fn text(description: &'static str) -> FieldSpec {
    FieldSpec {
        kind: FieldType::String,
        format: Format::Text,
        description,
    }
}
const fn formatted(format: Format, description: &'static str) -> FieldSpec {
    FieldSpec {
        kind: FieldType::String,
        format,
        description,
    }
}
const fn date(description: &'static str) -> FieldSpec {
    FieldSpec {
        kind: FieldType::Date,
        format: Format::Date,
        description,
    }
}
const fn binary(description: &'static str) -> FieldSpec {
    FieldSpec {
        kind: FieldType::Binary,
        format: Format::File,
        description,
    }
}
const fn number(description: &'static str) -> FieldSpec {
    FieldSpec {
        kind: FieldType::Number,
        format: Format::Count,
        description,
    }
}

const NATURAL_PERSON: &[(&str, FieldSpec)] = &[
    ("family_name", text("Family or last name")),
    ("last_name", text("Family or last name")),
    ("given_name", text("Given or first name")),
    ("first_name", text("Given or first name")),
    (
        "additional_name",
        text("Middle name or other additional name"),
    ),
    (
        "address_country_code",
        formatted(
            Format::CountryAlpha3,
            "Country of current address (ISO 3166-1 alpha-3)",
        ),
    ),
    (
        "state_or_province",
        text("State, province, region or prefecture"),
    ),
    ("city", text("City or town")),
    (
        "postal_code",
        text("Postal or other code identifying the address"),
    ),
    ("address", text("Full address, possibly on several lines")),
    (
        "mobile_number",
        formatted(
            Format::E164,
            "Mobile phone number (E.164, e.g. +14155552671)",
        ),
    ),
    (
        "mobile_number_format",
        formatted(
            Format::OneOf(&["E.164", "hash"]),
            "Format of mobile_number: E.164 (default) or hash",
        ),
    ),
    ("email_address", formatted(Format::Email, "Email address")),
    ("birth_date", date("Date of birth (YYYY-MM-DD)")),
    ("birth_place", text("Place of birth (city, state, country)")),
    (
        "birth_country_code",
        formatted(
            Format::CountryAlpha3,
            "Country of birth (ISO 3166-1 alpha-3)",
        ),
    ),
    (
        "tax_id",
        text("Tax identifier of the user in their country (e.g. social security number)"),
    ),
    (
        "tax_id_name",
        text("Name of the tax identifier (e.g. SSN or ITIN)"),
    ),
    ("occupation", number("Occupation ISCO-08 code")),
    ("employer_name", text("Name of the employer")),
    ("employer_address", text("Address of the employer")),
    (
        "language_code",
        formatted(Format::Language, "Primary language (ISO 639-1)"),
    ),
    (
        "id_type",
        text("Type of identity document (passport, drivers_license, id_card, ...)"),
    ),
    (
        "id_country_code",
        formatted(
            Format::CountryAlpha3,
            "Country that issued the identity document (ISO 3166-1 alpha-3)",
        ),
    ),
    (
        "id_issue_date",
        date("Issue date of the identity document (YYYY-MM-DD)"),
    ),
    (
        "id_expiration_date",
        date("Expiration date of the identity document (YYYY-MM-DD)"),
    ),
    ("id_number", text("Number of the identity document")),
    (
        "photo_id_front",
        binary("Image of the front of the identity document"),
    ),
    (
        "photo_id_back",
        binary("Image of the back of the identity document"),
    ),
    (
        "notary_approval_of_photo_id",
        binary("Image of a notary's approval of the identity document"),
    ),
    (
        "ip_address",
        formatted(Format::IpAddress, "IP address of the customer's computer"),
    ),
    (
        "photo_proof_residence",
        binary("Image of a utility bill or bank statement with the customer's name and address"),
    ),
    (
        "sex",
        formatted(
            Format::OneOf(&["male", "female", "other"]),
            "male, female or other",
        ),
    ),
    ("proof_of_income", binary("Image of a proof of income")),
    (
        "proof_of_liveness",
        binary("Video or image proving the customer is a live person"),
    ),
    (
        "referral_id",
        text("Referral identifier: who referred the customer"),
    ),
];

const FINANCIAL_ACCOUNT: &[(&str, FieldSpec)] = &[
    ("bank_name", text("Name of the bank")),
    (
        "bank_account_type",
        formatted(
            Format::OneOf(&["checking", "savings"]),
            "Type of bank account: checking or savings",
        ),
    ),
    (
        "bank_account_number",
        text("Number identifying the bank account"),
    ),
    (
        "bank_number",
        text("Number identifying the bank in national banking (routing number in the US)"),
    ),
    (
        "bank_phone_number",
        text("Phone number of the bank or branch"),
    ),
    (
        "bank_branch_number",
        text("Number identifying the bank branch"),
    ),
    (
        "external_transfer_memo",
        text("Memo or reference to use for an external transfer"),
    ),
    (
        "clabe_number",
        text("Bank account number for Mexico (CLABE)"),
    ),
    (
        "cbu_number",
        text("Clave Bancaria Uniforme (CBU) or Clave Virtual Uniforme (CVU)"),
    ),
    ("cbu_alias", text("Alias for a CBU or CVU")),
    (
        "mobile_money_number",
        formatted(Format::E164, "Mobile money account number (E.164)"),
    ),
    (
        "mobile_money_provider",
        text("Name of the mobile money provider"),
    ),
    (
        "crypto_address",
        text("Address of a cryptocurrency account"),
    ),
    (
        "crypto_memo",
        text("Deprecated: use external_transfer_memo"),
    ),
];

const ORGANIZATION: &[(&str, FieldSpec)] = &[
    (
        "organization.name",
        text("Full organization name as on the incorporation papers"),
    ),
    ("organization.VAT_number", text("Organization VAT number")),
    (
        "organization.registration_number",
        text("Organization registration number"),
    ),
    (
        "organization.registration_date",
        text("Date the organization was registered"),
    ),
    (
        "organization.registered_address",
        text("Organization registered address"),
    ),
    (
        "organization.number_of_shareholders",
        number("Number of shareholders"),
    ),
    (
        "organization.shareholder_name",
        text("Name of a shareholder"),
    ),
    (
        "organization.photo_incorporation_doc",
        binary("Image of the incorporation documents"),
    ),
    (
        "organization.photo_proof_address",
        binary(
            "Image of a utility bill or bank statement with the organization's name and address",
        ),
    ),
    (
        "organization.address_country_code",
        formatted(
            Format::CountryAlpha3,
            "Country of the organization's address (ISO 3166-1 alpha-3)",
        ),
    ),
    (
        "organization.state_or_province",
        text("State, province, region or prefecture of the organization"),
    ),
    ("organization.city", text("City of the organization")),
    (
        "organization.postal_code",
        text("Postal code of the organization"),
    ),
    (
        "organization.director_name",
        text("Organization registered managing director"),
    ),
    ("organization.website", text("Organization website")),
    (
        "organization.email",
        formatted(Format::Email, "Organization contact email"),
    ),
    ("organization.phone", text("Organization contact phone")),
];

const CARD: &[(&str, FieldSpec)] = &[
    ("card.number", text("Card number")),
    (
        "card.expiration_date",
        formatted(
            Format::CardExpiry,
            "Card expiration date (YY-MM, e.g. 29-11)",
        ),
    ),
    (
        "card.cvc",
        text("Card CVC number (the digits on the back of the card)"),
    ),
    ("card.holder_name", text("Name of the card holder")),
    (
        "card.network",
        text("Card network (Visa, Mastercard, AmEx, ...)"),
    ),
    ("card.postal_code", text("Billing address postal code")),
    (
        "card.country_code",
        formatted(
            Format::CountryAlpha2,
            "Billing address country (ISO 3166-1 alpha-2)",
        ),
    ),
    (
        "card.state_or_province",
        text("Billing address state or province (ISO 3166-2)"),
    ),
    ("card.city", text("Billing address city")),
    (
        "card.address",
        text("Complete billing address, possibly on several lines"),
    ),
    (
        "card.token",
        text("Token representing the card in an external payment system"),
    ),
];

/// The SEP-9 field called `name`, if there is one.
pub fn field(name: &str) -> Option<FieldSpec> {
    let find = |table: &[(&str, FieldSpec)], key: &str| {
        table.iter().find(|(n, _)| *n == key).map(|(_, spec)| *spec)
    };
    find(NATURAL_PERSON, name)
        .or_else(|| find(FINANCIAL_ACCOUNT, name))
        .or_else(|| find(ORGANIZATION, name))
        .or_else(|| find(CARD, name))
        .or_else(|| {
            name.strip_prefix("organization.")
                .and_then(|rest| find(FINANCIAL_ACCOUNT, rest))
        })
}

/// Every SEP-9 field name (the `organization.` variants of the financial fields included).
pub fn names() -> impl Iterator<Item = String> {
    let plain = [NATURAL_PERSON, FINANCIAL_ACCOUNT, ORGANIZATION, CARD]
        .into_iter()
        .flatten()
        .map(|(n, _)| (*n).to_owned());
    plain.chain(
        FINANCIAL_ACCOUNT
            .iter()
            .map(|(n, _)| format!("organization.{n}")),
    )
}

impl FieldSpec {
    /// The choices a client must pick from, when the field has a fixed list.
    pub fn choices(&self) -> Option<&'static [&'static str]> {
        match self.format {
            Format::OneOf(choices) => Some(choices),
            _ => None,
        }
    }

    /// Checks a text value; the message says what the value should look like.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        if value.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if value.chars().count() > MAX_TEXT_LEN {
            return Err(format!("is longer than {MAX_TEXT_LEN} characters"));
        }
        let ok = match self.format {
            Format::Text | Format::File => true,
            Format::Date => is_date(value),
            Format::CountryAlpha3 => {
                value.len() == 3 && value.bytes().all(|b| b.is_ascii_alphabetic())
            }
            Format::CountryAlpha2 => {
                value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic())
            }
            Format::Language => value.len() == 2 && value.bytes().all(|b| b.is_ascii_lowercase()),
            Format::E164 => is_e164(value),
            Format::Email => is_email(value),
            Format::Count => {
                !value.is_empty() && value.len() <= 18 && value.bytes().all(|b| b.is_ascii_digit())
            }
            Format::IpAddress => value.parse::<std::net::IpAddr>().is_ok(),
            Format::CardExpiry => is_card_expiry(value),
            Format::OneOf(choices) => choices.contains(&value),
        };
        if ok { Ok(()) } else { Err(self.expected()) }
    }

    fn expected(&self) -> String {
        match self.format {
            Format::Date => "must be a date formatted YYYY-MM-DD".into(),
            Format::CountryAlpha3 => "must be an ISO 3166-1 alpha-3 country code, e.g. BRA".into(),
            Format::CountryAlpha2 => "must be an ISO 3166-1 alpha-2 country code, e.g. BR".into(),
            Format::Language => "must be an ISO 639-1 language code, e.g. en".into(),
            Format::E164 => "must be a phone number in E.164 format, e.g. +14155552671".into(),
            Format::Email => "must be an email address".into(),
            Format::Count => "must be a whole number".into(),
            Format::IpAddress => "must be an IPv4 or IPv6 address".into(),
            Format::CardExpiry => "must be a card expiry formatted YY-MM, e.g. 29-11".into(),
            Format::OneOf(choices) => format!("must be one of: {}", choices.join(", ")),
            Format::Text | Format::File => "is not valid".into(),
        }
    }
}

fn digits(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn is_date(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (
        digits(&value[0..4]),
        digits(&value[5..7]),
        digits(&value[8..10]),
    ) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

fn is_card_expiry(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 5
        && b[2] == b'-'
        && digits(&value[0..2]).is_some()
        && digits(&value[3..5]).is_some_and(|m| (1..=12).contains(&m))
}

/// `+`, then 7 to 15 digits, the first not 0: the E.164 shape.
fn is_e164(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_digit())
        && !rest.starts_with('0')
}

fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_resolves_with_its_type() {
        for name in names() {
            assert!(field(&name).is_some(), "{name}");
        }
        assert_eq!(
            names().count(),
            NATURAL_PERSON.len() + 2 * FINANCIAL_ACCOUNT.len() + ORGANIZATION.len() + CARD.len()
        );
        assert_eq!(field("birth_date").unwrap().kind, FieldType::Date);
        assert_eq!(field("photo_id_front").unwrap().kind, FieldType::Binary);
        assert_eq!(field("occupation").unwrap().kind, FieldType::Number);
        assert_eq!(
            field("organization.bank_account_number").unwrap().kind,
            FieldType::String
        );
        assert_eq!(
            field("sex").unwrap().choices(),
            Some(&["male", "female", "other"][..])
        );
        assert!(field("favourite_colour").is_none());
        assert!(field("organization.first_name").is_none());
        assert!(field("organization").is_none());
    }

    #[test]
    fn formats_are_checked() {
        let ok = |name: &str, value: &str| field(name).unwrap().validate(value);
        assert!(ok("birth_date", "1976-07-04").is_ok());
        assert!(ok("birth_date", "2000-02-29").is_ok());
        for bad in [
            "1976-7-4",
            "1976-13-01",
            "1900-02-29",
            "2023-04-31",
            "04/07/1976",
            "1976-07-04T00:00:00Z",
            "0000-01-01",
        ] {
            assert!(
                ok("birth_date", bad).unwrap_err().contains("YYYY-MM-DD"),
                "{bad}"
            );
        }
        assert!(ok("address_country_code", "BRA").is_ok());
        assert!(ok("address_country_code", "BR").is_err());
        assert!(ok("card.country_code", "BR").is_ok());
        assert!(ok("mobile_number", "+14155552671").is_ok());
        for bad in [
            "14155552671",
            "+1 415 555 2671",
            "+0123456789",
            "+12",
            "+1234567890123456",
        ] {
            assert!(ok("mobile_number", bad).is_err(), "{bad}");
        }
        assert!(ok("email_address", "jane@example.com").is_ok());
        for bad in [
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "ja ne@example.com",
            "a@b@c.com",
        ] {
            assert!(ok("email_address", bad).is_err(), "{bad}");
        }
        assert!(ok("sex", "female").is_ok());
        assert_eq!(
            ok("sex", "f").unwrap_err(),
            "must be one of: male, female, other"
        );
        assert!(ok("bank_account_type", "savings").is_ok());
        assert!(ok("occupation", "2512").is_ok());
        assert!(ok("occupation", "-1").is_err());
        assert!(ok("ip_address", "2001:db8::1").is_ok());
        assert!(ok("ip_address", "999.1.1.1").is_err());
        assert!(ok("card.expiration_date", "29-11").is_ok());
        assert!(ok("card.expiration_date", "29-13").is_err());
        assert!(ok("language_code", "en").is_ok());
        assert!(ok("language_code", "eng").is_err());
        assert!(ok("first_name", "  ").unwrap_err().contains("empty"));
        assert!(
            ok("first_name", &"x".repeat(MAX_TEXT_LEN + 1))
                .unwrap_err()
                .contains("longer")
        );
        assert!(ok("first_name", "Zoë").is_ok());
    }
}
