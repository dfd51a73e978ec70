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
[sep31]
sending_anchors = ["GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ"]
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

// ---- [kyc] and [admin] ------------------------------------------------------------------------

fn kyc_err(text: &str) -> String {
    err(text, &[])
}

#[test]
fn kyc_and_admin_defaults() {
    let c = Config::from_parts("", env(&[])).unwrap();
    let names: Vec<&str> = c.kyc.types.keys().map(String::as_str).collect();
    assert_eq!(names, ["sep31-receiver", "sep31-sender"]);
    let sender = &c.kyc.types["sep31-sender"];
    assert_eq!(
        sender.required,
        ["first_name", "last_name", "email_address"]
    );
    assert_eq!(sender.optional, ["mobile_number"]);
    let receiver = &c.kyc.types["sep31-receiver"];
    assert_eq!(
        receiver.required,
        [
            "first_name",
            "last_name",
            "email_address",
            "bank_account_number",
            "bank_number"
        ]
    );
    assert!(receiver.optional.is_empty());
    assert_eq!(c.kyc.default_type, "sep31-sender");
    assert_eq!(c.kyc.review, ReviewMode::Auto);
    assert!(c.kyc.verify_fields.is_empty());
    assert!(c.kyc.business.is_none());
    assert_eq!(c.kyc.max_file_bytes, 10 * 1024 * 1024);
    assert!(c.kyc.files_dir.is_none());
    assert_eq!(
        c.kyc.unattached_file_lifetime,
        Some(Duration::from_secs(7 * 86_400))
    );
    assert!(c.admin.is_none());
    assert!(c.kyc.collects("bank_number") && !c.kyc.collects("birth_date"));
}

#[test]
fn kyc_values_are_read() {
    let c = Config::from_parts(
        r#"
[kyc]
default_type = "person"
review = "manual"
verify_fields = ["mobile_number"]
business_url = "https://kyc.example.com/api/"
business_api_key = "business-secret"
business_timeout_secs = 5
max_file_bytes = 2048
[kyc.types.person]
fields = ["first_name", "mobile_number"]
optional = ["photo_id_front"]
[kyc.types.company]
fields = ["organization.name"]
[admin]
listen = "127.0.0.1:9100"
api_key = "0123456789abcdef"
"#,
        env(&[]),
    )
    .unwrap();
    let names: Vec<&str> = c.kyc.types.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["company", "person"],
        "configured types replace the defaults"
    );
    assert_eq!(
        c.kyc.types["person"],
        CustomerType {
            required: vec!["first_name".into(), "mobile_number".into()],
            optional: vec!["photo_id_front".into()],
        }
    );
    assert_eq!(c.kyc.default_type, "person");
    assert_eq!(c.kyc.review, ReviewMode::Manual);
    assert_eq!(c.kyc.verify_fields, ["mobile_number"]);
    let business = c.kyc.business.as_ref().unwrap();
    assert_eq!(business.url, "https://kyc.example.com/api");
    assert_eq!(
        business.api_key.as_ref().unwrap().expose(),
        "business-secret"
    );
    assert_eq!(business.timeout, Duration::from_secs(5));
    assert_eq!(c.kyc.max_file_bytes, 2048);
    let admin = c.admin.as_ref().unwrap();
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(admin.api_key.expose(), "0123456789abcdef");

    // Without sep31-sender among the types, the default is the first type by name.
    let c = Config::from_parts("[kyc.types.zeta]\nfields = [\"first_name\"]\n[kyc.types.alpha]\noptional = [\"last_name\"]", env(&[])).unwrap();
    assert_eq!(c.kyc.default_type, "alpha");
    // The business timeout is held to 1..=60 s, 10 s when unset.
    let timeout = |extra: &str| {
        Config::from_parts(
            &format!("[kyc]\nbusiness_url = \"http://127.0.0.1:9000\"\n{extra}"),
            env(&[]),
        )
        .unwrap()
        .kyc
        .business
        .unwrap()
        .timeout
    };
    assert_eq!(timeout(""), Duration::from_secs(10));
    assert_eq!(timeout("business_timeout_secs = 0"), Duration::from_secs(1));
    assert_eq!(
        timeout("business_timeout_secs = 3600"),
        Duration::from_secs(60)
    );
}

#[test]
fn kyc_types_are_checked_against_sep9() {
    let e = kyc_err("[kyc.types.x]\nfields = [\"not_a_field\"]");
    assert!(e.contains("kyc.types.x.fields"), "{e}");
    assert!(e.contains("not_a_field"), "{e}");
    let e = kyc_err("[kyc.types.x]\nfields = [\"first_name\"]\noptional = [\"middle_nmae\"]");
    assert!(
        e.contains("kyc.types.x.optional") && e.contains("middle_nmae"),
        "{e}"
    );

    let e = kyc_err("[kyc.types.x]\nfields = [\"first_name\", \"first_name\"]");
    assert!(
        e.contains("kyc.types.x.fields") && e.contains("twice"),
        "{e}"
    );
    let e = kyc_err("[kyc.types.x]\nfields = [\"first_name\"]\noptional = [\"first_name\"]");
    assert!(
        e.contains("kyc.types.x.optional") && e.contains("twice"),
        "{e}"
    );

    let e = kyc_err("[kyc.types.x]\nfields = []");
    assert!(
        e.contains("kyc.types.x.fields") && e.contains("at least one field"),
        "{e}"
    );
    let e = kyc_err("[kyc.types.x]");
    assert!(e.contains("kyc.types.x.fields"), "{e}");

    for name in ["\"bad name\"", "\"\"", "\"sep31/sender\"", &"a".repeat(65)] {
        let e = kyc_err(&format!("[kyc.types.{name}]\nfields = [\"first_name\"]"));
        assert!(
            e.contains("kyc.types.") && e.contains("type name"),
            "{name}: {e}"
        );
    }
    let e = kyc_err("[kyc.types.x]\nfields = [\"first_name\"]\nrequired = [\"last_name\"]");
    assert!(e.contains("required"), "{e}");

    let e = kyc_err("[kyc]\ndefault_type = \"sep31-sendr\"");
    assert!(
        e.contains("kyc.default_type") && e.contains("sep31-sendr"),
        "{e}"
    );
    let e = kyc_err(
        "[kyc]\ndefault_type = \"sep31-sender\"\n[kyc.types.person]\nfields = [\"first_name\"]",
    );
    assert!(
        e.contains("kyc.default_type"),
        "defaults are gone once types are configured: {e}"
    );
}

#[test]
fn kyc_settings_are_checked() {
    let e = kyc_err("[kyc]\nverify_fields = [\"photo_id_front\"]");
    assert!(
        e.contains("kyc.verify_fields") && e.contains("photo_id_front"),
        "{e}"
    );
    let e = kyc_err("[kyc]\nverify_fields = [\"mobile_numbr\"]");
    assert!(
        e.contains("kyc.verify_fields") && e.contains("mobile_numbr"),
        "{e}"
    );
    let e = kyc_err("[kyc]\nreview = \"sometimes\"");
    assert!(e.contains("sometimes"), "{e}");

    let e = kyc_err("[kyc]\nbusiness_api_key = \"business-secret\"");
    assert!(
        e.contains("kyc.business_api_key") && e.contains("kyc.business_url"),
        "{e}"
    );
    assert!(!e.contains("business-secret"), "{e}");
    for url in ["not a url", "ftp://kyc.example.com", "/customer"] {
        let e = kyc_err(&format!("[kyc]\nbusiness_url = \"{url}\""));
        assert!(e.contains("kyc.business_url"), "{url}: {e}");
    }

    for bytes in ["0", "1023", "104857601"] {
        let e = kyc_err(&format!("[kyc]\nmax_file_bytes = {bytes}"));
        assert!(e.contains("kyc.max_file_bytes"), "{bytes}: {e}");
    }
    for bytes in ["1024", "104857600"] {
        Config::from_parts(&format!("[kyc]\nmax_file_bytes = {bytes}"), env(&[])).unwrap();
    }

    let e = kyc_err("[kyc]\nunattached_file_lifetime_secs = 315360001");
    assert!(e.contains("kyc.unattached_file_lifetime_secs"), "{e}");
    for (secs, lifetime) in [("0", None), ("60", Some(Duration::from_secs(60)))] {
        let c = Config::from_parts(
            &format!("[kyc]\nunattached_file_lifetime_secs = {secs}"),
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.kyc.unattached_file_lifetime, lifetime, "{secs}");
    }
}

#[test]
fn admin_needs_a_long_key() {
    let e = kyc_err("[admin]\nlisten = \"127.0.0.1:9100\"");
    assert!(e.contains("admin.api_key"), "{e}");
    let e = kyc_err("[admin]\napi_key = \"short-key\"");
    assert!(e.contains("admin.api_key") && e.contains("16"), "{e}");
    assert!(!e.contains("short-key"), "{e}");
    let e = kyc_err("[admin]\napi_key = \"0123456789abcdef\"\nlisten = \"everywhere\"");
    assert!(e.contains("admin.listen"), "{e}");
    let c = Config::from_parts("[admin]\napi_key = \"0123456789abcdef\"", env(&[])).unwrap();
    assert_eq!(c.admin.unwrap().listen.to_string(), "127.0.0.1:8001");
}

#[test]
fn kyc_and_admin_env_overrides() {
    let c = Config::from_parts(
        "[kyc]\nreview = \"auto\"",
        env(&[
            ("CAPSTAN_KYC_REVIEW", "manual"),
            ("CAPSTAN_KYC_VERIFY_FIELDS", "mobile_number, email_address"),
            ("CAPSTAN_KYC_MAX_FILE_BYTES", "4096"),
            ("CAPSTAN_KYC_BUSINESS_URL", "http://127.0.0.1:9000"),
            ("CAPSTAN_KYC_BUSINESS_TIMEOUT_SECS", "3"),
            ("CAPSTAN_ADMIN_API_KEY", "admin-key-from-the-environment"),
            ("CAPSTAN_ADMIN_LISTEN", "127.0.0.1:9101"),
        ]),
    )
    .unwrap();
    assert_eq!(c.kyc.review, ReviewMode::Manual);
    assert_eq!(c.kyc.verify_fields, ["mobile_number", "email_address"]);
    assert_eq!(c.kyc.max_file_bytes, 4096);
    let business = c.kyc.business.as_ref().unwrap();
    assert_eq!(business.url, "http://127.0.0.1:9000");
    assert_eq!(business.timeout, Duration::from_secs(3));
    let admin = c.admin.as_ref().unwrap();
    assert_eq!(admin.api_key.expose(), "admin-key-from-the-environment");
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9101");

    let e = err("", &[("CAPSTAN_KYC_REVEIW", "manual")]);
    assert!(e.contains("CAPSTAN_KYC_REVEIW"), "{e}");
    let e = err("", &[("CAPSTAN_KYCREVIEW", "manual")]);
    assert!(e.contains("CAPSTAN_KYCREVIEW"), "{e}");
    let e = err("", &[("CAPSTAN_KYC_REVIEW", "sometimes")]);
    assert!(e.contains("sometimes"), "{e}");
    let e = err("", &[("CAPSTAN_KYC_MAX_FILE_BYTES", "big")]);
    assert!(e.contains("big"), "{e}");
    let e = err("", &[("CAPSTAN_ADMIN_API_KEY", "short")]);
    assert!(e.contains("admin.api_key"), "{e}");
}

#[test]
fn kyc_and_admin_secrets_never_print() {
    let c = Config::from_parts(
        "[kyc]\nbusiness_url = \"http://127.0.0.1:9000\"\nbusiness_api_key = \"business-secret-value\"\n[admin]\napi_key = \"admin-secret-value-0123\"",
        env(&[]),
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("business-secret-value"), "{shown}");
    assert!(!shown.contains("admin-secret-value-0123"), "{shown}");
}

#[test]
fn public_network_needs_an_https_base_url() {
    let text = |base_url: &str| {
        format!(
            "[server]\nbase_url = \"{base_url}\"\n[stellar]\nnetwork = \"public\"\nsigning_seed = \"{SEED}\"\n\
             [auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n\
             [sep31]\nsending_anchors = [\"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"]\n\
             [[assets]]\ncode = \"USDC\"\nissuer = \"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"\n\
             distribution_account = \"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"\n"
        )
    };
    let err = Config::from_parts(&text("http://anchor.example.com"), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("server.base_url"), "{err}");
    assert!(err.to_string().contains("https"), "{err}");
    // https, or plain http on loopback behind a TLS-terminating proxy, is fine.
    Config::from_parts(&text("https://anchor.example.com"), Vec::new()).unwrap();
    Config::from_parts(&text("http://127.0.0.1:8000"), Vec::new()).unwrap();
}

// ---- [sep31] business server -----------------------------------------------------------------

#[test]
fn sep31_business_server_is_read() {
    let c = Config::from_parts("", env(&[])).unwrap();
    assert!(c.sep31.business.is_none());

    let c = Config::from_parts(
        r#"
[sep31]
business_url = "https://sep31.example.com/api/"
business_api_key = "sep31-business-secret"
business_timeout_secs = 5
[sep31.assets.USDC]
min_amount = "1"
"#,
        env(&[]),
    )
    .unwrap();
    let business = c.sep31.business.as_ref().unwrap();
    assert_eq!(business.url, "https://sep31.example.com/api");
    assert_eq!(
        business.api_key.as_ref().unwrap().expose(),
        "sep31-business-secret"
    );
    assert_eq!(business.timeout, Duration::from_secs(5));
    assert!(!format!("{c:?}").contains("sep31-business-secret"));
    // The other integrations keep their own settings.
    assert!(c.kyc.business.is_none());

    // Held to 1..=60 s, 10 s when unset, as kyc.business_timeout_secs.
    let timeout = |extra: &str| {
        Config::from_parts(
            &format!("[sep31]\nbusiness_url = \"http://127.0.0.1:9000\"\n{extra}"),
            env(&[]),
        )
        .unwrap()
        .sep31
        .business
        .unwrap()
        .timeout
    };
    assert_eq!(timeout(""), Duration::from_secs(10));
    assert_eq!(timeout("business_timeout_secs = 0"), Duration::from_secs(1));
    assert_eq!(
        timeout("business_timeout_secs = 3600"),
        Duration::from_secs(60)
    );

    let c = Config::from_parts(
        "",
        env(&[
            ("CAPSTAN_SEP31_BUSINESS_URL", "http://127.0.0.1:9000"),
            ("CAPSTAN_SEP31_BUSINESS_API_KEY", "key-from-the-environment"),
            ("CAPSTAN_SEP31_BUSINESS_TIMEOUT_SECS", "3"),
        ]),
    )
    .unwrap();
    let business = c.sep31.business.as_ref().unwrap();
    assert_eq!(business.url, "http://127.0.0.1:9000");
    assert_eq!(
        business.api_key.as_ref().unwrap().expose(),
        "key-from-the-environment"
    );
    assert_eq!(business.timeout, Duration::from_secs(3));
}

#[test]
fn sep31_business_server_is_checked() {
    let e = err("[sep31]\nbusiness_api_key = \"sep31-business-secret\"", &[]);
    assert!(
        e.contains("sep31.business_api_key") && e.contains("sep31.business_url"),
        "{e}"
    );
    assert!(!e.contains("sep31-business-secret"), "{e}");
    for url in ["not a url", "ftp://sep31.example.com", "/fee"] {
        let e = err(&format!("[sep31]\nbusiness_url = \"{url}\""), &[]);
        assert!(e.contains("sep31.business_url"), "{url}: {e}");
    }
    let e = err("", &[("CAPSTAN_SEP31_BUSINESS_TIMEOUT_SECS", "soon")]);
    assert!(e.contains("soon"), "{e}");

    // The business server decides alone who may send and what the fees are.
    let e = err(
        "[sep31]\nbusiness_url = \"http://127.0.0.1:9000\"\n\
         sending_anchors = [\"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"]",
        &[],
    );
    assert!(
        e.contains("sep31.sending_anchors") && e.contains("sep31.business_url"),
        "{e}"
    );
    for key in ["fee_fixed", "fee_percent"] {
        let e = err(
            &format!(
                "[sep31]\nbusiness_url = \"http://127.0.0.1:9000\"\n[sep31.assets.USDC]\n{key} = \"1\""
            ),
            &[],
        );
        assert!(
            e.contains(&format!("sep31.assets.USDC.{key}")) && e.contains("sep31.business_url"),
            "{e}"
        );
    }

    // On the public network the business server stands in for the allow-list.
    let public = |sep31: &str| {
        format!(
            "[server]\nbase_url = \"https://anchor.example.com\"\n\
             [stellar]\nnetwork = \"public\"\nsigning_seed = \"{SEED}\"\n\
             [auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n{sep31}\n\
             [[assets]]\ncode = \"USDC\"\nissuer = \"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"\n\
             distribution_account = \"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"\n"
        )
    };
    let e = err(&public(""), &[]);
    assert!(
        e.contains("sep31.sending_anchors") && e.contains("sep31.business_url"),
        "{e}"
    );
    let c = Config::from_parts(
        &public("[sep31]\nbusiness_url = \"https://sep31.internal.example\""),
        env(&[]),
    )
    .unwrap();
    assert!(c.sep31.sending_anchors.is_empty() && c.sep31.business.is_some());
}
