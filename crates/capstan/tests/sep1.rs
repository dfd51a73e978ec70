//! SEP-1: the generated stellar.toml (checklist §2, SEP10-01).

mod common;

use common::{AppOptions, TestApp};

async fn fetch_toml(app: &TestApp) -> (reqwest::header::HeaderMap, String) {
    let response = app.get("/.well-known/stellar.toml").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

#[tokio::test]
async fn stellar_toml_is_served_with_the_right_headers_and_keys() {
    let app = TestApp::spawn_with(AppOptions {
        toml: r#"
[documentation]
ORG_NAME = "Capstan Test Anchor"
ORG_SUPPORT_EMAIL = "support@example.com"
[[assets]]
code = "USDC"
issuer = "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ"
distribution_account = "GCMQUVKPVRUIZXGEENTM65AKYPY4DLIXSL4OX62PP5DAZUA4MISPEFP4"
desc = "USD Coin"
"#
        .into(),
        ..Default::default()
    })
    .await;
    let (headers, text) = fetch_toml(&app).await;
    // SEP1-02, SEP1-03, SEP1-04
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(text.len() < 100 * 1024);
    // SEP1-05
    let toml: toml::Table = text.parse().expect("valid TOML");
    // SEP10-01, §2.3
    assert_eq!(
        toml["SIGNING_KEY"].as_str().unwrap(),
        app.server_key.public_key().to_string()
    );
    assert_eq!(
        toml["WEB_AUTH_ENDPOINT"].as_str().unwrap(),
        format!("{}/auth", app.url)
    );
    // SEP12-01: the SEP-12 endpoints' location.
    assert_eq!(
        toml["KYC_SERVER"].as_str().unwrap(),
        format!("{}/kyc", app.url)
    );
    assert_eq!(
        toml["NETWORK_PASSPHRASE"].as_str().unwrap(),
        "Test SDF Network ; September 2015"
    );
    assert_eq!(toml["VERSION"].as_str().unwrap(), "2.7.0");
    assert_eq!(
        toml["ACCOUNTS"].as_array().unwrap()[0].as_str().unwrap(),
        "GCMQUVKPVRUIZXGEENTM65AKYPY4DLIXSL4OX62PP5DAZUA4MISPEFP4"
    );
    assert_eq!(
        toml["DOCUMENTATION"]["ORG_NAME"].as_str().unwrap(),
        "Capstan Test Anchor"
    );
    let currencies = toml["CURRENCIES"].as_array().unwrap();
    assert_eq!(currencies.len(), 1);
    let usdc = currencies[0].as_table().unwrap();
    assert_eq!(usdc["code"].as_str(), Some("USDC"));
    assert_eq!(
        usdc["issuer"].as_str(),
        Some("GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ")
    );
    assert_eq!(usdc["status"].as_str(), Some("test"));
    assert_eq!(usdc["is_asset_anchored"].as_bool(), Some(true));
    assert_eq!(usdc["anchor_asset_type"].as_str(), Some("fiat"));
    assert_eq!(usdc["desc"].as_str(), Some("USD Coin"));
    // SEP1-10: exactly one of fixed_number, max_number, is_unlimited.
    let supply_keys = ["fixed_number", "max_number", "is_unlimited"]
        .iter()
        .filter(|k| usdc.contains_key(**k))
        .count();
    assert_eq!(supply_keys, 1);
    // X-05: no URL ends with a slash.
    for (key, value) in &toml {
        if let Some(s) = value.as_str() {
            assert!(
                !(s.starts_with("http") && s.ends_with('/')),
                "{key} ends with a slash: {s}"
            );
        }
    }
}

#[tokio::test]
async fn without_assets_a_demo_asset_is_published() {
    let app = TestApp::spawn().await;
    let (_, text) = fetch_toml(&app).await;
    let toml: toml::Table = text.parse().unwrap();
    let currencies = toml["CURRENCIES"].as_array().unwrap();
    assert_eq!(currencies.len(), 1);
    let issuer = currencies[0]["issuer"].as_str().unwrap();
    assert!(stellar::PublicKey::from_strkey(issuer).is_ok());
    let accounts = toml["ACCOUNTS"].as_array().unwrap();
    assert!(stellar::PublicKey::from_strkey(accounts[0].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn operator_toml_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("extra.toml"), "FEDERATION_SERVER = \"https://example.com/federation\"\n\n[[PRINCIPALS]]\nname = \"Jane Doe\"\nemail = \"jane@example.com\"\n").unwrap();
    let config_path = dir.path().join("capstan.toml");
    std::fs::write(&config_path, "[toml]\nappend_file = \"extra.toml\"\n[database]\nurl = \"sqlite::memory:\"\n[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let config = capstan::Config::load(Some(&config_path)).unwrap();
    let running = capstan::start(config, None).await.unwrap();
    let text = reqwest::get(format!("{}/.well-known/stellar.toml", running.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let toml: toml::Table = text.parse().unwrap();
    assert_eq!(
        toml["FEDERATION_SERVER"].as_str(),
        Some("https://example.com/federation")
    );
    assert_eq!(toml["PRINCIPALS"][0]["name"].as_str(), Some("Jane Doe"));
    assert!(toml.contains_key("SIGNING_KEY"));
    running.shutdown().await;
}

#[tokio::test]
async fn operator_toml_may_not_redefine_generated_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extra.toml"),
        "SIGNING_KEY = \"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"\n",
    )
    .unwrap();
    let config_path = dir.path().join("capstan.toml");
    std::fs::write(&config_path, "[toml]\nappend_file = \"extra.toml\"\n[database]\nurl = \"sqlite::memory:\"\n[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let config = capstan::Config::load(Some(&config_path)).unwrap();
    let Err(error) = capstan::start(config, None).await else {
        panic!("must refuse to start")
    };
    assert!(error.to_string().contains("SIGNING_KEY"), "{error}");
}
