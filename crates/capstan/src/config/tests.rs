use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err(text: &str, vars: &[(&str, &str)]) -> String {
    Config::from_parts(text, env(vars)).unwrap_err().to_string()
}

const SEED: &str = "SBZVMB74Z76QZ3ZOY7UTDFYKMEGKW5XFJEB6PFKBF4UYSSWHG4EDH7PY";

#[test]
fn empty_configuration_is_a_development_anchor() {
    let c = Config::from_parts("", env(&[])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(c.base_url, "http://localhost:8000");
    assert_eq!(c.home_domains, vec!["localhost:8000".to_string()]);
    assert_eq!(c.web_auth_domain, "localhost:8000");
    assert_eq!(c.network, Network::testnet());
    assert_eq!(c.horizon_url, "https://horizon-testnet.stellar.org");
    assert_eq!(c.database_url, "sqlite://capstan.db");
    assert!(c.signing_key.is_none() && c.jwt_secret.is_none() && c.assets.is_empty());
    assert_eq!(c.jwt_lifetime, Duration::from_secs(86_400));
    assert_eq!(c.client_domain.mode, ClientDomainMode::Allowed);
}

#[test]
fn file_values_and_env_overrides() {
    let text = format!(
        r#"
[server]
base_url = "https://anchor.example.com/"
extra_home_domains = ["example.com"]
[stellar]
network = "public"
signing_seed = "{SEED}"
[auth]
jwt_secret = "0123456789abcdef0123456789abcdef"
[[assets]]
code = "USDC"
issuer = "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ"
distribution_account = "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ"
"#
    );
    let c = Config::from_parts(
        &text,
        env(&[
            ("CAPSTAN_DATABASE_URL", "postgres://root@127.0.0.1/test"),
            ("CAPSTAN_AUTH_JWT_LIFETIME_SECS", "3600"),
            (
                "CAPSTAN_AUTH_CLIENT_DOMAIN_ALLOWLIST",
                "wallet.example, other.example",
            ),
            ("CAPSTAN_CONFIG", "ignored.toml"),
            ("CAPSTAN_TEST_POSTGRES_URL", "ignored"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(c.base_url, "https://anchor.example.com");
    assert_eq!(
        c.home_domains,
        vec!["anchor.example.com".to_string(), "example.com".to_string()]
    );
    assert_eq!(c.horizon_url, "https://horizon.stellar.org");
    assert_eq!(c.database_url, "postgres://root@127.0.0.1/test");
    assert_eq!(c.jwt_lifetime, Duration::from_secs(3600));
    assert_eq!(
        c.client_domain.allowlist,
        vec!["wallet.example", "other.example"]
    );
    assert_eq!(c.assets[0].status, "live");
    assert_eq!(c.web_auth_endpoint(), "https://anchor.example.com/auth");
}

#[test]
fn errors_name_the_key() {
    assert!(err("[server]\nlisten = 5", &[]).contains("listen"));
    assert!(err("[server]\nlistne = \"x\"", &[]).contains("listne"));
    assert!(err("[stellar]\nsigning_seed = \"SXXX\"", &[]).contains("stellar.signing_seed"));
    assert!(err("[stellar]\nnetwork = \"tesnet\"", &[]).contains("stellar.network"));
    assert!(err("", &[("CAPSTAN_AUTH_JWT_SECRET", "short")]).contains("auth.jwt_secret"));
    assert!(err("", &[("CAPSTAN_AUTH_JWT_LIFETIME_SECS", "soon")]).contains("soon"));
    assert!(err("", &[("CAPSTAN_SERVR_LISTEN", "x")]).contains("CAPSTAN_SERVR_LISTEN"));
    assert!(err("", &[("CAPSTAN_SERVER_LISTEN", "nowhere")]).contains("server.listen"));
    assert!(err("", &[("CAPSTAN_SERVER_BASE_URL", "ftp://x")]).contains("server.base_url"));
    assert!(err("", &[("CAPSTAN_DATABASE_URL", "mysql://x")]).contains("database.url"));
    assert!(err("[documentation]\nORG_NAEM = \"x\"", &[]).contains("documentation.ORG_NAEM"));
    assert!(err("[stellar]\nnetwork = \"public\"", &[]).contains("stellar.signing_seed"));
    assert!(
        err(
            "[[assets]]\ncode = \"USDC\"\nissuer = \"GBAD\"\ndistribution_account = \"GBAD\"",
            &[]
        )
        .contains("assets[0].issuer")
    );
    assert!(err("this is not toml", &[]).contains("line 1"));
}

#[test]
fn secrets_never_print() {
    let c = Config::from_parts(&format!("[stellar]\nsigning_seed = \"{SEED}\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef-secret\""), env(&[])).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains(SEED));
    assert!(!shown.contains("0123456789abcdef0123456789abcdef-secret"));
}
