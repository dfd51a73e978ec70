//! `capstan init`: a commented configuration file with fresh keys.

use stellar::Keypair;

/// The text of a new `capstan.toml`, with a new signing key and JWT secret, and new
/// testnet issuer and distribution accounts for the example asset.
pub fn config_template() -> String {
    let signing = Keypair::random();
    let issuer = Keypair::random();
    let distribution = Keypair::random();
    let jwt_secret = hex::encode(stellar::random_bytes::<32>());
    format!(
        r#"# capstan configuration. Every key can be overridden by an environment variable
# CAPSTAN_<SECTION>_<KEY>, for example CAPSTAN_DATABASE_URL or CAPSTAN_AUTH_JWT_SECRET.

[server]
listen = "127.0.0.1:8000"
# The public URL; every endpoint in stellar.toml is built from it. Use https in production.
base_url = "http://localhost:8000"
# SEP-10 home domain (default: host[:port] of base_url). More can be served:
# extra_home_domains = ["example.com"]
# max_body_bytes = 1048576

[stellar]
# "testnet", "public", or a full network passphrase.
network = "testnet"
horizon_url = "https://horizon-testnet.stellar.org"
# The SEP-10 server key, published as SIGNING_KEY ({signing_public}). Keep it secret.
signing_seed = "{signing_seed}"
# horizon_timeout_secs = 10

[auth]
# HS256 secret for session tokens, at least 32 bytes. Keep it secret.
jwt_secret = "{jwt_secret}"
jwt_lifetime_secs = 86400
# SEP-10 client_domain: "off" (ignored), "allowed" (verified when sent), "required".
client_domain = "allowed"
# Only these client domains are verified (empty: any).
# client_domain_allowlist = ["wallet.example.com"]
# client_domain_timeout_secs = 5
# SEP-10 v3.4 signed Authorization header on GET /auth: "off", "optional", "required".
# challenge_request_auth = "off"

[database]
# SQLite file (created if missing) or postgres://user:password@host/db
url = "sqlite://capstan.db"
# max_connections = 10

# [toml]
# TOML merged into the generated stellar.toml, for sections capstan does not generate
# (PRINCIPALS, more CURRENCIES, ...). Relative to this file.
# append_file = "stellar-extra.toml"

[kyc]
# "auto": valid data is accepted as it arrives (testnet, demos); "manual": it waits in
# PROCESSING until an operator accepts it through the admin API.
review = "auto"
# Fields confirmed with a code the client sends back as <field>_verification.
# verify_fields = ["mobile_number"]
# max_file_bytes = 10485760
# Uploaded files go to this folder (relative to this file) instead of the database.
# files_dir = "kyc-files"
# Uploads that no PUT names within this many seconds are deleted (0: never).
# unattached_file_lifetime_secs = 604800
# Keep customers on your own service instead (README: "KYC on your own server"):
# business_url = "https://kyc.internal.example"
# business_api_key = "..."
# business_timeout_secs = 10

# The SEP-9 fields each customer type needs; `optional` ones are taken when offered.
[kyc.types.sep31-sender]
fields = ["first_name", "last_name", "email_address"]
optional = ["mobile_number"]

[kyc.types.sep31-receiver]
fields = ["first_name", "last_name", "email_address", "bank_account_number", "bank_number"]

# SEP-31: the sending anchors you have agreements with (empty: any account, on test
# networks only), and how long a transaction may wait for its payment.
# [sep31]
# sending_anchors = ["G..."]
# payment_timeout_secs = 86400
# Or let your own service decide who may send, which transactions are taken and the fees
# (README: "SEP-31 on your own server"):
# business_url = "https://sep31.internal.example"
# business_api_key = "..."
# business_timeout_secs = 10

[admin]
# The operator API: keep it on a private address. Keep the key secret.
listen = "127.0.0.1:8001"
api_key = "{admin_key}"

[documentation]
ORG_NAME = "Example Anchor"
# ORG_URL = "https://example.com"
# ORG_SUPPORT_EMAIL = "support@example.com"

# One entry per asset this anchor receives. The accounts below are new testnet keys, not
# yet funded: fund them (friendbot) and issue the asset, or use your own.
# Issuer seed: {issuer_seed}
# Distribution seed: {distribution_seed}
[[assets]]
code = "USDC"
issuer = "{issuer}"
distribution_account = "{distribution}"
status = "test"
anchor_asset_type = "fiat"
anchor_asset = "USD"
desc = "US dollars, paid out to bank accounts"
"#,
        admin_key = hex::encode(stellar::random_bytes::<24>()),
        signing_public = signing.public_key(),
        signing_seed = signing.secret_seed(),
        issuer = issuer.public_key(),
        issuer_seed = issuer.secret_seed(),
        distribution = distribution.public_key(),
        distribution_seed = distribution.secret_seed(),
    )
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn template_is_a_valid_configuration() {
        let config = Config::from_parts(&super::config_template(), Vec::new()).unwrap();
        assert!(config.signing_key.is_some());
        assert!(config.jwt_secret.is_some());
        assert_eq!(config.assets.len(), 1);
        assert_eq!(config.documentation["ORG_NAME"], "Example Anchor");
        assert!(config.admin.is_some());
        assert_eq!(config.kyc.types.len(), 2);
    }
}
