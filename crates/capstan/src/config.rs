//! One typed configuration, read from a TOML file and `CAPSTAN_<SECTION>_<KEY>` environment
//! variables, and validated before anything starts: a bad value stops the program with one
//! line that names the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use stellar::{Keypair, Network, PublicKey};

mod kyc;
mod rails;
mod sep31;
mod sep38;
mod watcher;

pub use kyc::{AdminConfig, BusinessServer, CustomerType, KycConfig, ReviewMode};
pub use rails::{BusinessRails, RailsConfig, RailsKind, SimulatedMode};
pub use sep31::{ReceiveAsset, ReceiveSettings, STELLAR_DECIMALS, Sep31Config, TransactionField};
pub use sep38::{DeliveryMethod, OffchainAsset, RatesKind, Sep38Config};
pub use watcher::{ShortPayments, StartAt, WatcherConfig};

/// Where `capstan` looks for its configuration when neither `--config` nor `CAPSTAN_CONFIG`
/// names a file.
pub const DEFAULT_CONFIG_FILE: &str = "capstan.toml";
const ENV_PREFIX: &str = "CAPSTAN_";
const SECTIONS: &[&str] = &[
    "server",
    "stellar",
    "auth",
    "database",
    "toml",
    "kyc",
    "admin",
    "sep31",
    "sep38",
    "watcher",
    "rails",
    "callbacks",
];
const MIN_JWT_SECRET_BYTES: usize = 32;

/// A secret string. It never prints, so a `{:?}` of the configuration is safe to log.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration key {key}: {reason}")]
    Key { key: String, reason: String },
}

fn key_err(key: &str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

/// How SEP-10 treats the `client_domain` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientDomainMode {
    /// The parameter is ignored.
    Off,
    /// Verified when sent (and on the allow-list, if there is one); otherwise ignored.
    Allowed,
    /// Every login must come with a verified client domain.
    Required,
}

/// How `GET /auth` treats the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestAuthMode {
    /// The header is ignored: wallets that send their last session token everywhere still
    /// get challenges.
    Off,
    /// Verified when sent.
    Optional,
    /// Every challenge request must carry a valid one (401 without it).
    Required,
}

// ---- the file's shape --------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    stellar: StellarSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    toml: TomlSection,
    #[serde(default)]
    kyc: kyc::KycSection,
    #[serde(default)]
    admin: kyc::AdminSection,
    #[serde(default)]
    sep31: sep31::Sep31Section,
    #[serde(default)]
    sep38: sep38::Sep38Section,
    #[serde(default)]
    watcher: watcher::WatcherSection,
    #[serde(default)]
    rails: rails::RailsSection,
    #[serde(default)]
    callbacks: CallbacksSection,
    #[serde(default)]
    documentation: BTreeMap<String, String>,
    #[serde(default)]
    assets: Vec<AssetSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    base_url: Option<String>,
    home_domain: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    extra_home_domains: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    max_body_bytes: Option<usize>,
    #[serde(default, deserialize_with = "lenient::opt")]
    request_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    auth_rate_limit_per_minute: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt")]
    auth_rate_limit_loopback: Option<bool>,
    #[serde(default, deserialize_with = "lenient::list")]
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbacksSection {
    #[serde(default, deserialize_with = "lenient::opt")]
    allow_private: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StellarSection {
    network: Option<String>,
    horizon_url: Option<String>,
    signing_seed: Option<Secret>,
    #[serde(default, deserialize_with = "lenient::opt")]
    horizon_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    jwt_secret: Option<Secret>,
    #[serde(default, deserialize_with = "lenient::opt")]
    jwt_lifetime_secs: Option<u64>,
    client_domain: Option<ClientDomainMode>,
    #[serde(default, deserialize_with = "lenient::list")]
    client_domain_allowlist: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    client_domain_timeout_secs: Option<u64>,
    challenge_request_auth: Option<RequestAuthMode>,
    /// Fetch client domains' stellar.toml over plain HTTP. For local tests only.
    #[serde(default, deserialize_with = "lenient::opt")]
    client_domain_insecure_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    url: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    max_connections: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt")]
    connect_wait_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlSection {
    append_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetSection {
    code: String,
    issuer: String,
    distribution_account: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    desc: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    anchor_asset_type: Option<String>,
    #[serde(default)]
    anchor_asset: Option<String>,
    #[serde(default)]
    display_decimals: Option<u8>,
}

/// Environment values are strings; these accept either a native TOML value or a string that
/// parses as one, so `CAPSTAN_AUTH_JWT_LIFETIME_SECS=3600` works like `jwt_lifetime_secs = 3600`.
mod lenient {
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Native(T),
        Text(String),
    }

    pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + FromStr,
        T::Err: std::fmt::Display,
    {
        match Either::<T>::deserialize(d)? {
            Either::Native(v) => Ok(Some(v)),
            Either::Text(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| D::Error::custom(format!("{s:?}: {e}"))),
        }
    }

    /// A list, or a comma-separated string.
    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Either::<Vec<String>>::deserialize(d)? {
            Either::Native(v) => v,
            Either::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

// ---- the validated configuration ----------------------------------------------------------

/// An anchored asset from `[[assets]]`.
#[derive(Debug, Clone)]
pub struct AssetConfig {
    pub code: String,
    pub issuer: PublicKey,
    pub distribution_account: PublicKey,
    pub status: String,
    pub desc: String,
    pub name: Option<String>,
    pub anchor_asset_type: String,
    pub anchor_asset: Option<String>,
    pub display_decimals: u8,
}

#[derive(Debug, Clone)]
pub struct ClientDomainPolicy {
    pub mode: ClientDomainMode,
    /// Empty means any domain.
    pub allowlist: Vec<String>,
    pub timeout: Duration,
    pub scheme: &'static str,
}

impl ClientDomainPolicy {
    pub fn allows(&self, domain: &str) -> bool {
        self.allowlist.is_empty()
            || self
                .allowlist
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file the configuration came from, if any.
    pub file: Option<PathBuf>,
    pub listen: SocketAddr,
    /// Public URL without a trailing slash; every published endpoint starts with it.
    pub base_url: String,
    /// SEP-10 home domains; the first is the default.
    pub home_domains: Vec<String>,
    /// host[:port] of `base_url`: the `web_auth_domain` of challenges.
    pub web_auth_domain: String,
    pub max_body_bytes: usize,
    /// The longest a request may take, its body included (`server.request_timeout_secs`).
    pub request_timeout: Duration,
    /// `/auth` requests per minute from one client IP; 0: no limit.
    pub auth_rate_limit_per_minute: u32,
    /// Whether clients on loopback addresses are held to that limit too.
    pub auth_rate_limit_loopback: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`server.trusted_proxies`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Whether callback URLs may name loopback, private or link-local hosts
    /// (`callbacks.allow_private`; default: no on the public network, yes on test networks).
    pub callbacks_allow_private: bool,
    pub network: Network,
    pub horizon_url: String,
    pub horizon_timeout: Duration,
    /// `None`: generated on first start and kept in the database.
    pub signing_key: Option<Keypair>,
    /// `None`: generated on first start and kept in the database.
    pub jwt_secret: Option<Secret>,
    pub jwt_lifetime: Duration,
    pub client_domain: ClientDomainPolicy,
    /// SEP-10 v3.4 signed `Authorization` header on `GET /auth`.
    pub challenge_request_auth: RequestAuthMode,
    pub database_url: String,
    pub database_max_connections: u32,
    /// How long a starting process waits for a PostgreSQL server that does not answer yet
    /// (`database.connect_wait_secs`; 0: not at all).
    pub database_connect_wait: Duration,
    pub documentation: BTreeMap<String, String>,
    /// Operator TOML appended to the generated stellar.toml.
    pub toml_append: Option<String>,
    /// The assets served. Left empty by the configuration, it gets a demo asset at start
    /// (never on the public network).
    pub assets: Vec<AssetConfig>,
    pub kyc: KycConfig,
    /// The operator API; `None` when no `admin.api_key` is configured.
    pub admin: Option<AdminConfig>,
    pub sep31: Sep31Config,
    /// SEP-38 quotes; off when no off-chain asset is configured.
    pub sep38: Sep38Config,
    pub watcher: WatcherConfig,
    pub rails: RailsConfig,
}

/// The `[DOCUMENTATION]` keys SEP-1 defines.
const DOCUMENTATION_KEYS: &[&str] = &[
    "ORG_NAME",
    "ORG_DBA",
    "ORG_URL",
    "ORG_LOGO",
    "ORG_DESCRIPTION",
    "ORG_PHYSICAL_ADDRESS",
    "ORG_PHYSICAL_ADDRESS_ATTESTATION",
    "ORG_PHONE_NUMBER",
    "ORG_PHONE_NUMBER_ATTESTATION",
    "ORG_KEYBASE",
    "ORG_TWITTER",
    "ORG_GITHUB",
    "ORG_OFFICIAL_EMAIL",
    "ORG_SUPPORT_EMAIL",
    "ORG_LICENSING_AUTHORITY",
    "ORG_LICENSE_TYPE",
    "ORG_LICENSE_NUMBER",
];
const ANCHOR_ASSET_TYPES: &[&str] = &[
    "fiat",
    "crypto",
    "nft",
    "stock",
    "bond",
    "commodity",
    "realestate",
    "other",
];
const ASSET_STATUSES: &[&str] = &["live", "dead", "test", "private"];

impl Config {
    /// Picks the file (`explicit`, else `CAPSTAN_CONFIG`, else `./capstan.toml` when present)
    /// and loads it with the process environment.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let from_env = env
            .iter()
            .find(|(k, _)| k == "CAPSTAN_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        let default = Path::new(DEFAULT_CONFIG_FILE);
        let file = explicit
            .map(Path::to_path_buf)
            .or(from_env)
            .or_else(|| default.exists().then(|| default.to_path_buf()));
        let text = match &file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            None => String::new(),
        };
        let mut config = Self::from_parts(&text, env)?;
        if let Some(path) = &file {
            config.resolve_relative_to(path)?;
        }
        config.file = file;
        Ok(config)
    }

    /// Builds a configuration from TOML text and environment pairs (only `CAPSTAN_*` pairs
    /// are read). Used by `load` and by tests, which must not touch the process environment.
    pub fn from_parts(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::Invalid(e.message().to_owned() + &span_hint(text, e.span()))
        })?;
        let from_env = apply_env(&mut table, env)?;
        let file: FileConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let mut message = e.to_string().trim().replace('\n', " ");
                    // Serde names the field; when the environment supplied it, name the variable too.
                    if let Some((var, _)) = from_env
                        .iter()
                        .find(|(_, key)| message.contains(&format!("`{key}`")))
                    {
                        message = format!("{var}: {message}");
                    }
                    ConfigError::Invalid(message)
                })?;
        Self::validate(file)
    }

    fn validate(file: FileConfig) -> Result<Config, ConfigError> {
        let FileConfig {
            server,
            stellar,
            auth,
            database,
            toml,
            kyc,
            admin,
            sep31,
            sep38,
            watcher,
            rails,
            callbacks,
            documentation,
            assets,
        } = file;

        let listen_text = server.listen.unwrap_or_else(|| "127.0.0.1:8000".into());
        let listen = listen_text.parse().map_err(|_| {
            key_err(
                "server.listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:8000"),
            )
        })?;

        let base_url = server
            .base_url
            .unwrap_or_else(|| "http://localhost:8000".into());
        let parsed = url::Url::parse(&base_url)
            .map_err(|e| key_err("server.base_url", format!("{base_url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(key_err(
                "server.base_url",
                format!("{base_url:?} must be an http(s) URL with a host and no query"),
            ));
        }
        let host = parsed.host_str().unwrap_or_default();
        let web_auth_domain = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let base_url = base_url.trim_end_matches('/').to_owned();

        let default_home = server
            .home_domain
            .unwrap_or_else(|| web_auth_domain.clone());
        let mut home_domains = vec![default_home];
        home_domains.extend(server.extra_home_domains);
        for (i, domain) in home_domains.iter().enumerate() {
            let key = if i == 0 {
                "server.home_domain"
            } else {
                "server.extra_home_domains"
            };
            if !stellar::sep10::is_valid_domain(domain) {
                return Err(key_err(
                    key,
                    format!("{domain:?} is not a domain (host or host:port)"),
                ));
            }
            if domain.len() > 59 {
                return Err(key_err(
                    key,
                    format!("{domain:?} is longer than the 59 characters SEP-10 allows"),
                ));
            }
        }

        let network_name = stellar.network.unwrap_or_else(|| "testnet".into());
        let network = Network::parse(&network_name).map_err(|e| key_err("stellar.network", e))?;
        let horizon_url = match stellar.horizon_url {
            Some(url) => {
                url::Url::parse(&url).map_err(|e| {
                    key_err("stellar.horizon_url", format!("{url:?} is not a URL: {e}"))
                })?;
                url.trim_end_matches('/').to_owned()
            }
            None if network.is_public() => "https://horizon.stellar.org".into(),
            None if network == Network::testnet() => "https://horizon-testnet.stellar.org".into(),
            None => {
                return Err(key_err(
                    "stellar.horizon_url",
                    "must be set for a network other than testnet or public",
                ));
            }
        };
        let signing_key = stellar
            .signing_seed
            .map(|s| {
                Keypair::from_secret_seed(s.expose())
                    .map_err(|e| key_err("stellar.signing_seed", e))
            })
            .transpose()?;

        if let Some(secret) = &auth.jwt_secret
            && secret.expose().len() < MIN_JWT_SECRET_BYTES
        {
            return Err(key_err(
                "auth.jwt_secret",
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes long"),
            ));
        }
        let jwt_lifetime_secs = auth.jwt_lifetime_secs.unwrap_or(86_400);
        if !(60..=30 * 86_400).contains(&jwt_lifetime_secs) {
            return Err(key_err(
                "auth.jwt_lifetime_secs",
                "must be between 60 seconds and 30 days",
            ));
        }
        for domain in &auth.client_domain_allowlist {
            if !stellar::sep10::is_valid_domain(domain) {
                return Err(key_err(
                    "auth.client_domain_allowlist",
                    format!("{domain:?} is not a domain"),
                ));
            }
        }
        let client_domain = ClientDomainPolicy {
            mode: auth.client_domain.unwrap_or(ClientDomainMode::Allowed),
            allowlist: auth.client_domain_allowlist,
            timeout: Duration::from_secs(auth.client_domain_timeout_secs.unwrap_or(5).clamp(1, 60)),
            scheme: if auth.client_domain_insecure_http.unwrap_or(false) {
                "http"
            } else {
                "https"
            },
        };

        if network.is_public() {
            // SEP31-08: HTTPS only. Plain http is left to a loopback address (a proxy in
            // front terminating TLS, or a local test).
            let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
            if base_url.starts_with("http://") && !loopback {
                return Err(key_err(
                    "server.base_url",
                    "must be an https URL on the public network",
                ));
            }
            if signing_key.is_none() {
                return Err(key_err(
                    "stellar.signing_seed",
                    "must be set on the public network (keys are only generated for test networks)",
                ));
            }
            if auth.jwt_secret.is_none() {
                return Err(key_err(
                    "auth.jwt_secret",
                    "must be set on the public network",
                ));
            }
            if assets.is_empty() {
                return Err(key_err(
                    "assets",
                    "at least one [[assets]] entry is required on the public network",
                ));
            }
        }

        for key in documentation.keys() {
            if !DOCUMENTATION_KEYS.contains(&key.as_str()) {
                return Err(key_err(
                    &format!("documentation.{key}"),
                    format!(
                        "not a SEP-1 [DOCUMENTATION] field; use one of {}",
                        DOCUMENTATION_KEYS.join(", ")
                    ),
                ));
            }
        }

        let mut validated_assets = Vec::with_capacity(assets.len());
        for (i, a) in assets.into_iter().enumerate() {
            let key = |field: &str| format!("assets[{i}].{field}");
            if a.code.is_empty()
                || a.code.len() > 12
                || !a.code.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(key_err(
                    &key("code"),
                    format!(
                        "{:?} is not an asset code (1 to 12 letters and digits)",
                        a.code
                    ),
                ));
            }
            let issuer =
                PublicKey::from_strkey(&a.issuer).map_err(|e| key_err(&key("issuer"), e))?;
            let distribution_account = PublicKey::from_strkey(&a.distribution_account)
                .map_err(|e| key_err(&key("distribution_account"), e))?;
            let status = a.status.unwrap_or_else(|| {
                if network.is_public() {
                    "live".into()
                } else {
                    "test".into()
                }
            });
            if !ASSET_STATUSES.contains(&status.as_str()) {
                return Err(key_err(
                    &key("status"),
                    format!("must be one of {}", ASSET_STATUSES.join(", ")),
                ));
            }
            let anchor_asset_type = a.anchor_asset_type.unwrap_or_else(|| "fiat".into());
            if !ANCHOR_ASSET_TYPES.contains(&anchor_asset_type.as_str()) {
                return Err(key_err(
                    &key("anchor_asset_type"),
                    format!("must be one of {}", ANCHOR_ASSET_TYPES.join(", ")),
                ));
            }
            let display_decimals = a.display_decimals.unwrap_or(2);
            if display_decimals > 7 {
                return Err(key_err(&key("display_decimals"), "must be between 0 and 7"));
            }
            if validated_assets
                .iter()
                .any(|v: &AssetConfig| v.code == a.code && v.issuer == issuer)
            {
                return Err(key_err(
                    &key("code"),
                    format!("asset {}:{} is listed twice", a.code, a.issuer),
                ));
            }
            validated_assets.push(AssetConfig {
                desc: a.desc.unwrap_or_else(|| {
                    format!("{} received by this anchor and paid out off-chain", a.code)
                }),
                code: a.code,
                issuer,
                distribution_account,
                status,
                name: a.name,
                anchor_asset_type,
                anchor_asset: a.anchor_asset,
                display_decimals,
            });
        }

        let kyc = kyc::validate_kyc(kyc)?;
        let sep31 = sep31::validate_sep31(sep31, &validated_assets, &kyc, network.is_public())?;
        let database_url = database.url.unwrap_or_else(|| "sqlite://capstan.db".into());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(key_err(
                "database.url",
                "must start with sqlite: or postgres://",
            ));
        }

        let rails = rails::validate_rails(rails, network.is_public())?;
        let sep38 = sep38::validate_sep38(sep38, &validated_assets, network.is_public())?;
        Ok(Config {
            file: None,
            listen,
            base_url,
            home_domains,
            web_auth_domain,
            max_body_bytes: server.max_body_bytes.unwrap_or(1024 * 1024),
            request_timeout: Duration::from_secs(
                server.request_timeout_secs.unwrap_or(30).clamp(1, 600),
            ),
            auth_rate_limit_per_minute: server.auth_rate_limit_per_minute.unwrap_or(60),
            auth_rate_limit_loopback: server.auth_rate_limit_loopback.unwrap_or(false),
            trusted_proxies: server
                .trusted_proxies
                .iter()
                .map(|p| {
                    p.trim().parse().map_err(|_| {
                        key_err(
                            "server.trusted_proxies",
                            format!("{p:?} is not an IP address"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            callbacks_allow_private: callbacks.allow_private.unwrap_or(!network.is_public()),
            network,
            horizon_url,
            horizon_timeout: Duration::from_secs(
                stellar.horizon_timeout_secs.unwrap_or(10).clamp(1, 120),
            ),
            signing_key,
            jwt_secret: auth.jwt_secret,
            jwt_lifetime: Duration::from_secs(jwt_lifetime_secs),
            client_domain,
            challenge_request_auth: auth.challenge_request_auth.unwrap_or(RequestAuthMode::Off),
            database_url,
            database_max_connections: database.max_connections.unwrap_or(10).max(1),
            database_connect_wait: Duration::from_secs(
                database.connect_wait_secs.unwrap_or(60).min(3600),
            ),
            documentation,
            toml_append: toml.append_file.map(|p| p.display().to_string()),
            assets: validated_assets,
            sep31,
            sep38,
            kyc,
            admin: kyc::validate_admin(admin)?,
            watcher: watcher::validate_watcher(watcher)?,
            rails,
        })
    }

    /// Reads the file named by `toml.append_file`, and resolves `kyc.files_dir`, relative to
    /// the configuration file.
    fn resolve_relative_to(&mut self, config_path: &Path) -> Result<(), ConfigError> {
        let base = config_path.parent().unwrap_or(Path::new("."));
        if let Some(dir) = &self.kyc.files_dir
            && dir.is_relative()
        {
            self.kyc.files_dir = Some(base.join(dir));
        }
        if let Some(name) = &self.toml_append {
            let path = base.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| key_err("toml.append_file", format!("{}: {e}", path.display())))?;
            self.toml_append = Some(text);
        }
        Ok(())
    }

    pub fn default_home_domain(&self) -> &str {
        &self.home_domains[0]
    }

    /// KYC_SERVER: where the SEP-12 endpoints are served.
    pub fn kyc_server(&self) -> String {
        format!("{}/kyc", self.base_url)
    }

    /// DIRECT_PAYMENT_SERVER: where the SEP-31 endpoints are served.
    pub fn direct_payment_server(&self) -> String {
        format!("{}/sep31", self.base_url)
    }

    /// ANCHOR_QUOTE_SERVER: where the SEP-38 endpoints are served.
    pub fn anchor_quote_server(&self) -> String {
        format!("{}/sep38", self.base_url)
    }

    /// WEB_AUTH_ENDPOINT, and the `iss` of the tokens it issues.
    pub fn web_auth_endpoint(&self) -> String {
        format!("{}/auth", self.base_url)
    }
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => format!(
            " (line {})",
            text[..span.start.min(text.len())].lines().count().max(1)
        ),
        None => String::new(),
    }
}

/// Overlays `CAPSTAN_<SECTION>_<KEY>=value` onto the table. Section names have no
/// underscore, so the first `_` after the prefix splits section from key.
/// Returns the (variable, key) pairs it applied.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // Not configuration keys: the file selector and the test suite's own settings.
        if rest == "CONFIG" || rest.starts_with("TEST_") {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = lower
            .split_once('_')
            .filter(|(s, k)| SECTIONS.contains(s) && !k.is_empty())
        else {
            return Err(ConfigError::Key {
                key: name.clone(),
                reason: format!(
                    "not a configuration variable; use CAPSTAN_<SECTION>_<KEY> with a section among {}",
                    SECTIONS.join(", ")
                ),
            });
        };
        let entry = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(key_err(section, "must be a table"));
        };
        section_table.insert(key.to_owned(), toml::Value::String(value));
        applied.push((name.clone(), key.to_owned()));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests;
