//! The `[kyc]` and `[admin]` sections: customer types and their SEP-9 fields, how customers
//! are reviewed, where their data lives, and the operator API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret, key_err, lenient};

/// SEP-12's suggested upload limit.
const DEFAULT_MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// How long an upload waits for a `PUT` to attach it by default: a week.
const DEFAULT_UNATTACHED_FILE_LIFETIME_SECS: u64 = 7 * 86_400;
const MIN_API_KEY_BYTES: usize = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KycSection {
    #[serde(default)]
    types: BTreeMap<String, TypeSection>,
    default_type: Option<String>,
    review: Option<ReviewMode>,
    #[serde(default, deserialize_with = "lenient::list")]
    verify_fields: Vec<String>,
    business_url: Option<String>,
    business_api_key: Option<Secret>,
    #[serde(default, deserialize_with = "lenient::opt")]
    business_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    max_file_bytes: Option<usize>,
    files_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "lenient::opt")]
    unattached_file_lifetime_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeSection {
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminSection {
    listen: Option<String>,
    api_key: Option<Secret>,
}

/// Who decides that a customer's data is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewMode {
    /// Valid data is accepted as it arrives: for test networks and demos.
    Auto,
    /// Data waits in `PROCESSING` until an operator accepts or rejects it.
    Manual,
}

/// One SEP-12 customer type (`sep31-sender`, `sep31-receiver`, ...): the SEP-9 fields it
/// requires, and those it takes when offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerType {
    pub required: Vec<String>,
    pub optional: Vec<String>,
}

impl CustomerType {
    /// Every field of the type with whether it is optional, required ones first.
    pub fn fields(&self) -> impl Iterator<Item = (&str, bool)> {
        self.required
            .iter()
            .map(|f| (f.as_str(), false))
            .chain(self.optional.iter().map(|f| (f.as_str(), true)))
    }

    pub fn has(&self, field: &str) -> bool {
        self.required
            .iter()
            .chain(&self.optional)
            .any(|f| f == field)
    }
}

/// The anchor's own business server, which an integration's calls are forwarded to
/// (`kyc.business_url`, `sep31.business_url`).
#[derive(Debug, Clone)]
pub struct BusinessServer {
    pub url: String,
    pub api_key: Option<Secret>,
    pub timeout: Duration,
}

impl BusinessServer {
    /// The HTTP client for its calls: capstan's user agent, the configured timeout, and no
    /// redirects (a redirect would carry the API key to wherever it points).
    pub fn http_client(&self) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct KycConfig {
    pub types: BTreeMap<String, CustomerType>,
    /// The type used when a request names none.
    pub default_type: String,
    pub review: ReviewMode,
    /// Fields whose values must be confirmed with a code (`<field>_verification`).
    pub verify_fields: Vec<String>,
    /// When set, customers are kept by the business server rather than by capstan.
    pub business: Option<BusinessServer>,
    pub max_file_bytes: usize,
    /// Where uploaded files are written; `None` keeps them in the database.
    pub files_dir: Option<PathBuf>,
    /// How long an upload no `PUT` has attached to a customer is kept; `None`: for ever.
    pub unattached_file_lifetime: Option<Duration>,
}

impl KycConfig {
    /// Every field some type asks for: the fields a client may send.
    pub fn collects(&self, field: &str) -> bool {
        self.types.values().any(|t| t.has(field))
    }

    pub fn type_names(&self) -> String {
        self.types.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub api_key: Secret,
}

/// The types a fresh anchor serves: what SEP-31 sending anchors register.
fn default_types() -> BTreeMap<String, CustomerType> {
    let list = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect();
    BTreeMap::from([
        (
            "sep31-sender".to_owned(),
            CustomerType {
                required: list(&["first_name", "last_name", "email_address"]),
                optional: list(&["mobile_number"]),
            },
        ),
        (
            "sep31-receiver".to_owned(),
            CustomerType {
                required: list(&[
                    "first_name",
                    "last_name",
                    "email_address",
                    "bank_account_number",
                    "bank_number",
                ]),
                optional: Vec::new(),
            },
        ),
    ])
}

pub(super) fn validate_kyc(section: KycSection) -> Result<KycConfig, ConfigError> {
    let mut types = BTreeMap::new();
    for (name, t) in section.types {
        let key = |k: &str| format!("kyc.types.{name}.{k}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(key_err(
                &format!("kyc.types.{name}"),
                "a type name is letters, digits, '-' and '_' (e.g. sep31-sender)",
            ));
        }
        if t.fields.is_empty() && t.optional.is_empty() {
            return Err(key_err(&key("fields"), "a type needs at least one field"));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (list, field) in t
            .fields
            .iter()
            .map(|f| ("fields", f))
            .chain(t.optional.iter().map(|f| ("optional", f)))
        {
            known_field(&key(list), field)?;
            if seen.contains(&field.as_str()) {
                return Err(key_err(&key(list), format!("{field:?} is listed twice")));
            }
            seen.push(field);
        }
        types.insert(
            name,
            CustomerType {
                required: t.fields,
                optional: t.optional,
            },
        );
    }
    if types.is_empty() {
        types = default_types();
    }
    let default_type = match section.default_type {
        Some(name) if types.contains_key(&name) => name,
        Some(name) => {
            return Err(key_err(
                "kyc.default_type",
                format!("{name:?} is not one of the types in [kyc.types]"),
            ));
        }
        None if types.contains_key("sep31-sender") => "sep31-sender".to_owned(),
        // Non-empty: filled with the defaults above when the configuration has none.
        None => types.keys().next().cloned().unwrap_or_default(),
    };
    for field in &section.verify_fields {
        known_field("kyc.verify_fields", field)?;
        if stellar::sep9::field(field).is_some_and(|f| f.kind == stellar::sep9::FieldType::Binary) {
            return Err(key_err(
                "kyc.verify_fields",
                format!("{field:?} is a file; only text fields can be confirmed with a code"),
            ));
        }
    }
    let business = business_server(
        "kyc",
        section.business_url,
        section.business_api_key,
        section.business_timeout_secs,
    )?;
    let max_file_bytes = section.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES);
    if !(1024..=100 * 1024 * 1024).contains(&max_file_bytes) {
        return Err(key_err(
            "kyc.max_file_bytes",
            "must be between 1 KiB and 100 MiB",
        ));
    }
    let unattached_file_lifetime = match section
        .unattached_file_lifetime_secs
        .unwrap_or(DEFAULT_UNATTACHED_FILE_LIFETIME_SECS)
    {
        0 => None,
        secs if secs <= 10 * 365 * 86_400 => Some(Duration::from_secs(secs)),
        _ => {
            return Err(key_err(
                "kyc.unattached_file_lifetime_secs",
                "must be at most ten years (0 keeps unattached uploads for ever)",
            ));
        }
    };
    Ok(KycConfig {
        types,
        default_type,
        review: section.review.unwrap_or(ReviewMode::Auto),
        verify_fields: section.verify_fields,
        business,
        max_file_bytes,
        files_dir: section.files_dir,
        unattached_file_lifetime,
    })
}

/// `<section>.business_url`, `business_api_key` and `business_timeout_secs`: the anchor's own
/// service an integration is forwarded to. The same rules for every section that has one.
pub(super) fn business_server(
    section: &str,
    url: Option<String>,
    api_key: Option<Secret>,
    timeout_secs: Option<u64>,
) -> Result<Option<BusinessServer>, ConfigError> {
    let key = |k: &str| format!("{section}.{k}");
    match url {
        Some(url) => {
            let parsed = url::Url::parse(&url)
                .map_err(|e| key_err(&key("business_url"), format!("{url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(key_err(&key("business_url"), "must be an http(s) URL"));
            }
            Ok(Some(BusinessServer {
                url: url.trim_end_matches('/').to_owned(),
                api_key,
                timeout: Duration::from_secs(timeout_secs.unwrap_or(10).clamp(1, 60)),
            }))
        }
        None if api_key.is_some() => Err(key_err(
            &key("business_api_key"),
            format!("is only used with {}", key("business_url")),
        )),
        None => Ok(None),
    }
}

fn known_field(key: &str, field: &str) -> Result<(), ConfigError> {
    if stellar::sep9::field(field).is_none() {
        return Err(key_err(
            key,
            format!(
                "{field:?} is not a SEP-9 field name (e.g. first_name, email_address, bank_account_number)"
            ),
        ));
    }
    Ok(())
}

pub(super) fn validate_admin(section: AdminSection) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(api_key) = section.api_key else {
        if section.listen.is_some() {
            return Err(key_err(
                "admin.api_key",
                "must be set to serve the admin API (admin.listen is set)",
            ));
        }
        return Ok(None);
    };
    if api_key.expose().len() < MIN_API_KEY_BYTES {
        return Err(key_err(
            "admin.api_key",
            format!("must be at least {MIN_API_KEY_BYTES} characters long"),
        ));
    }
    let listen_text = section.listen.unwrap_or_else(|| "127.0.0.1:8001".into());
    let listen = listen_text.parse().map_err(|_| {
        key_err(
            "admin.listen",
            format!("{listen_text:?} is not an address like 127.0.0.1:8001"),
        )
    })?;
    Ok(Some(AdminConfig { listen, api_key }))
}
