//! SEP-31 with `[sep31] business_url`: who may send, which transactions are taken and their
//! fees are decided by the anchor's business server, faked here on a real port. Everything
//! goes through capstan's public HTTP API; the fake records every request it gets, so each
//! test can tell what was asked, with which key and signature, and what a failure stored.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use capstan::store::TransactionFilter;
use common::fake_business::{FakeBusiness, Recorded};
use common::{AppOptions, TestApp, json_of, on_both_backends};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use stellar::Keypair;

const BUSINESS_KEY: &str = "sep31-business-key-0123456789";

// ---- the fake business server --------------------------------------------------------------

/// Accounts that are no sending anchor of this business.
#[derive(Default)]
struct Refused(HashSet<String>);

type Business = FakeBusiness<Refused>;

impl FakeBusiness<Refused> {
    async fn for_sending_anchors() -> Business {
        Business::start(Refused::default(), business_handler).await
    }

    fn refuse(&self, account: &str) {
        self.state().0.insert(account.to_owned());
    }
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn business_handler(refused: &mut Refused, recorded: &Recorded) -> Response {
    let q = &recorded.query;
    match (recorded.method.as_str(), recorded.path.as_str()) {
        ("GET", "/sending_anchor") => {
            let refused = refused.0.contains(&q["account"]);
            axum::Json(json!({ "allowed": !refused })).into_response()
        }
        ("POST", "/sep31/transactions") => {
            let body = recorded.body.clone().unwrap_or_default();
            match body["amount"].as_str().unwrap_or_default() {
                "1500" => error(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "customer_info_needed", "type": "sep31-large-sender"}),
                ),
                "600" if body["fields"]["purpose"].is_null() => error(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "transaction_info_needed", "fields": {"transaction": {
                        "purpose": {
                            "description": "why the money is sent, above 500",
                            "choices": ["family support", "salary"],
                        },
                    }}}),
                ),
                _ if body["request"]["note"] == "sanctioned" => error(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "that receiver cannot be paid under AML rules"}),
                ),
                _ => StatusCode::NO_CONTENT.into_response(),
            }
        }
        ("GET", "/fee") => {
            let amount = Decimal::from_str(&q["amount"]).expect("a decimal amount");
            if amount < Decimal::from(10) {
                return error(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "amounts below 10 are not accepted by this corridor"}),
                );
            }
            match q.get("funding_method").map(String::as_str) {
                Some("SEPA") => axum::Json(json!({"fee": {
                    "total": "1.2345678",
                    "asset": q["asset"],
                    "details": [
                        {"name": "SEPA transfer", "amount": "1.00"},
                        {"name": "FX margin", "description": "at today's rate", "amount": "0.2345678"},
                    ],
                }}))
                .into_response(),
                _ => axum::Json(json!({"fee": {"total": "25"}})).into_response(),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            json!({"error": "no such endpoint on the business server"}),
        ),
    }
}

// ---- the anchor ------------------------------------------------------------------------------

struct Setup {
    app: TestApp,
    business: Business,
    /// A sending anchor the business server allows, and its token.
    partner: Keypair,
    token: String,
}

/// The anchor asking a fresh fake business server, with or without an API key.
async fn setup(database_url: Option<String>, api_key: bool) -> Setup {
    setup_with(database_url, api_key, "").await
}

/// The same with more configuration (`[sep38]`, ...).
async fn setup_with(database_url: Option<String>, api_key: bool, more: &str) -> Setup {
    let business = Business::for_sending_anchors().await;
    let key = if api_key {
        format!("business_api_key = \"{BUSINESS_KEY}\"\n")
    } else {
        String::new()
    };
    let toml = format!(
        "[sep31]\nbusiness_url = \"{}\"\n{key}business_timeout_secs = 1\n\
         [sep31.assets.USDC.fields.purpose]\ndescription = \"why\"\noptional = true\n\
         [kyc.types.sep31-large-sender]\nfields = [\"first_name\", \"id_number\"]\n{more}",
        business.url
    );
    // No SEP-12 types for SEP-31 (the configured type replaces the defaults): the business
    // server decides what KYC it needs.
    let app = TestApp::spawn_with(AppOptions {
        toml,
        database_url,
        ..Default::default()
    })
    .await;
    let partner = Keypair::random();
    let token = app.token_for(&partner, None).await;
    Setup {
        app,
        business,
        partner,
        token,
    }
}

async fn get_transaction(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    json_of(
        app.http
            .get(format!("{}/sep31/transactions/{id}", app.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn base(amount: &str) -> Value {
    json!({"amount": amount, "asset_code": "USDC", "funding_method": "SEPA"})
}

/// The SEP-38 id of the asset received (the demo USDC).
fn usdc(app: &TestApp) -> String {
    let asset = &app.running.anchor.receive_assets[0];
    format!("stellar:{}:{}", asset.code, asset.issuer)
}

async fn stored(app: &TestApp) -> usize {
    app.running
        .anchor
        .store
        .list_transactions(&TransactionFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

fn bearer() -> Option<String> {
    Some(format!("Bearer {BUSINESS_KEY}"))
}

/// The request carries `Signature: t=<t>, s=<sig>` by the anchor's SIGNING_KEY over
/// `<t>.<host:port>.<body>`.
fn assert_signed(app: &TestApp, business: &Business, request: &Recorded) {
    let header = request.signature.as_deref().expect("a Signature header");
    let (t, s) = header.split_once(", ").expect("t=<t>, s=<sig>");
    let t = t.strip_prefix("t=").expect("t=<t>");
    let signature = BASE64
        .decode(s.strip_prefix("s=").expect("s=<sig>"))
        .unwrap();
    let host = business.url.trim_start_matches("http://");
    let payload = format!("{t}.{host}.{}", request.raw_body);
    assert!(
        app.server_key
            .public_key()
            .verify(payload.as_bytes(), &signature),
        "signed over {payload:?}"
    );
}

// ---- the tests -------------------------------------------------------------------------------

on_both_backends! {
    the_business_fee_is_stored_exactly => the_business_fee_is_stored_exactly_sqlite, the_business_fee_is_stored_exactly_postgres;
    refusals_pass_through_in_sep31_shapes => refusals_pass_through_in_sep31_shapes_sqlite, refusals_pass_through_in_sep31_shapes_postgres;
    refused_sending_anchors_get_403 => refused_sending_anchors_get_403_sqlite, refused_sending_anchors_get_403_postgres;
    failures_are_503_and_store_nothing => failures_are_503_and_store_nothing_sqlite, failures_are_503_and_store_nothing_postgres;
    slow_or_stopped_business_server_is_503 => slow_or_stopped_business_server_is_503_sqlite, slow_or_stopped_business_server_is_503_postgres;
    no_api_key_no_authorization => no_api_key_no_authorization_sqlite, no_api_key_no_authorization_postgres;
    quotes_carry_the_business_fee => quotes_carry_the_business_fee_sqlite, quotes_carry_the_business_fee_postgres;
    a_payment_waits_for_the_fee_service => a_payment_waits_for_the_fee_service_sqlite, a_payment_waits_for_the_fee_service_postgres;
}

async fn the_business_fee_is_stored_exactly(db: Option<String>) {
    let Setup {
        app,
        business,
        partner,
        token,
    } = setup(db, true).await;
    let account = partner.public_key().to_string();

    let mut body = base("100.5");
    body["note"] = json!("for the rent");
    let (status, created) = app.post_transaction(&token, body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();

    // The three calls, each with the API key and signed by the SIGNING_KEY.
    let check = business.last_to("/sending_anchor");
    assert_eq!(check.method, "GET");
    assert_eq!(
        check.query,
        BTreeMap::from([("account".to_owned(), account.clone())])
    );
    let review = business.last_to("/sep31/transactions");
    assert_eq!(review.method, "POST");
    assert!(review.query.is_empty(), "{:?}", review.query);
    let asset = &app.running.anchor.receive_assets[0];
    assert_eq!(
        review.body,
        Some(json!({
            "sending_anchor": account,
            "amount": "100.5",
            "asset_code": "USDC",
            "asset_issuer": asset.issuer.to_string(),
            "funding_method": "SEPA",
            "sender_id": null,
            "receiver_id": null,
            "fields": {},
            "request": {
                "amount": "100.5",
                "asset_code": "USDC",
                "funding_method": "SEPA",
                "note": "for the rent",
            },
        }))
    );
    let fee = business.last_to("/fee");
    assert_eq!(fee.method, "GET");
    assert_eq!(
        fee.query,
        BTreeMap::from([
            ("asset".to_owned(), usdc(&app)),
            ("amount".to_owned(), "100.5".to_owned()),
            ("funding_method".to_owned(), "SEPA".to_owned()),
        ])
    );
    for request in [&check, &review, &fee] {
        assert_eq!(request.authorization, bearer(), "{}", request.path);
        assert_signed(&app, &business, request);
    }
    assert_eq!(
        business.requests().len(),
        3,
        "one of each: {:?}",
        business.requests()
    );

    // The fee is what the business server said, to the stroop, with its lines.
    let (status, got) = get_transaction(&app, &token, id).await;
    assert_eq!(status, 200, "{got}");
    let t = &got["transaction"];
    assert_eq!(t["status"], "pending_sender");
    assert_eq!(
        (&t["amount_in"], &t["amount_fee"], &t["amount_out"]),
        (&json!("100.5"), &json!("1.2345678"), &json!("99.2654322"))
    );
    assert_eq!(
        t["fee_details"],
        json!({
            "total": "1.2345678",
            "asset": usdc(&app),
            "details": [
                {"name": "SEPA transfer", "amount": "1"},
                {"name": "FX margin", "description": "at today's rate", "amount": "0.2345678"},
            ],
        })
    );
    let row = app
        .running
        .anchor
        .store
        .transaction(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.amount_fee.as_str(), row.amount_out.as_str()),
        ("1.2345678", "99.2654322")
    );

    // A fee without details; a 200 `{}` takes the transaction as a 204 does.
    business.answer_to("/sep31/transactions", 200, "{}", "application/json");
    let mut swift = base("100");
    swift["funding_method"] = json!("SWIFT");
    let (status, created) = app.post_transaction(&token, swift).await;
    assert_eq!(status, 201, "{created}");
    let (_, got) = get_transaction(&app, &token, created["id"].as_str().unwrap()).await;
    let t = &got["transaction"];
    assert_eq!(
        (&t["amount_fee"], &t["amount_out"]),
        (&json!("25"), &json!("75"))
    );
    assert_eq!(
        t["fee_details"],
        json!({"total": "25", "asset": usdc(&app)})
    );

    // /info publishes no configured fee: there is none.
    let (status, info) = json_of(app.get("/sep31/info").await).await;
    assert_eq!(status, 200, "{info}");
    let usdc_info = &info["receive"]["USDC"];
    assert!(
        usdc_info.get("fee_fixed").is_none() && usdc_info.get("fee_percent").is_none(),
        "{info}"
    );
}

async fn refusals_pass_through_in_sep31_shapes(db: Option<String>) {
    let Setup {
        app,
        business,
        token,
        ..
    } = setup(db, true).await;

    assert_eq!(
        app.post_transaction(&token, base("1500")).await,
        (
            400,
            json!({"error": "customer_info_needed", "type": "sep31-large-sender"})
        )
    );
    assert_eq!(
        app.post_transaction(&token, base("600")).await,
        (
            400,
            json!({"error": "transaction_info_needed", "fields": {"transaction": {"purpose": {
                "description": "why the money is sent, above 500",
                "choices": ["family support", "salary"],
            }}}})
        )
    );
    let mut sanctioned = base("100");
    sanctioned["note"] = json!("sanctioned");
    assert_eq!(
        app.post_transaction(&token, sanctioned).await,
        (
            400,
            json!({"error": "that receiver cannot be paid under AML rules"})
        )
    );
    // The fee service refuses too, after the review took the transaction.
    let seen = business.requests_to("/sep31/transactions").len();
    assert_eq!(
        app.post_transaction(&token, base("5")).await,
        (
            400,
            json!({"error": "amounts below 10 are not accepted by this corridor"})
        )
    );
    assert_eq!(business.requests_to("/sep31/transactions").len(), seen + 1);
    assert_eq!(stored(&app).await, 0);

    // A request capstan refuses itself never reaches the business server's review.
    let seen = business.requests_to("/sep31/transactions").len();
    let (status, answer) = app.post_transaction(&token, base("-3")).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = app
        .post_transaction(
            &token,
            json!({"amount": "100", "asset_code": "EURC", "funding_method": "SEPA"}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(business.requests_to("/sep31/transactions").len(), seen);

    // With the field asked for, the transaction is taken; the field is forwarded.
    let mut with_purpose = base("600");
    with_purpose["fields"] = json!({"transaction": {"purpose": "family support"}});
    let (status, created) = app.post_transaction(&token, with_purpose).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        business.last_to("/sep31/transactions").body.unwrap()["fields"],
        json!({"purpose": "family support"})
    );
    assert_eq!(stored(&app).await, 1);
}

async fn refused_sending_anchors_get_403(db: Option<String>) {
    let Setup {
        app,
        business,
        token,
        ..
    } = setup(db, true).await;
    let (status, created) = app.post_transaction(&token, base("100")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();

    let stranger = Keypair::random();
    let stranger_account = stranger.public_key().to_string();
    business.refuse(&stranger_account);
    let stranger_token = app.token_for(&stranger, None).await;
    let seen = business.requests().len();
    let (status, answer) = app.post_transaction(&stranger_token, base("100")).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains(&stranger_account)),
        "{answer}"
    );
    // Asked once, and nothing else: no review, no fee.
    let asked: Vec<Recorded> = business.requests()[seen..].to_vec();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].path, "/sending_anchor");
    assert_eq!(asked[0].query["account"], stranger_account);
    // Every SEP-31 endpoint with a token asks.
    let (status, answer) = get_transaction(&app, &stranger_token, id).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(stored(&app).await, 1);

    // Nothing is cached: a partner the business server stops allowing is refused at once.
    let (status, _) = get_transaction(&app, &token, id).await;
    assert_eq!(status, 200);
    let partner = business.last_to("/sending_anchor").query["account"].clone();
    business.refuse(&partner);
    let (status, answer) = get_transaction(&app, &token, id).await;
    assert_eq!(status, 403, "{answer}");

    // /info needs no token, and asks nothing.
    let seen = business.requests().len();
    let (status, _) = json_of(app.get("/sep31/info").await).await;
    assert_eq!(status, 200);
    assert_eq!(business.requests().len(), seen);
}

async fn failures_are_503_and_store_nothing(db: Option<String>) {
    let Setup {
        app,
        business,
        token,
        ..
    } = setup(db, true).await;
    let json_type = "application/json";
    // Answers outside the contract on any of the three calls.
    let anywhere: [(u16, &str, &str); 8] = [
        (500, r#"{"error": "database down"}"#, json_type),
        (503, "", "text/plain"),
        (502, "<html>bad gateway</html>", "text/html"),
        (401, r#"{"error": "bad key"}"#, json_type),
        (404, r#"{"error": "no such endpoint"}"#, json_type),
        (302, "", "text/plain"),
        (200, "<html>maintenance</html>", "text/html"),
        (200, "{\"fee\":", json_type),
    ];
    // A valid answer padded past the 1 MiB that is read.
    let too_long = format!(r#"{{"allowed": true}}{}"#, " ".repeat(1 << 20));
    let mut cases: Vec<(&str, u16, &str, &str)> =
        vec![("/sending_anchor", 200, &too_long, json_type)];
    for path in ["/sending_anchor", "/sep31/transactions", "/fee"] {
        for (status, body, content_type) in anywhere {
            cases.push((path, status, body, content_type));
        }
        // A 400 that says nothing readable is no refusal.
        cases.push((path, 400, "<html>bad request</html>", "text/html"));
        cases.push((path, 400, r#"{"error": ""}"#, json_type));
    }
    cases.extend([
        ("/sending_anchor", 200, "{}", json_type),
        ("/sending_anchor", 200, r#"{"allowed": "yes"}"#, json_type),
        ("/sending_anchor", 403, r#"{"allowed": false}"#, json_type),
        ("/sep31/transactions", 200, "[1]", json_type),
        (
            "/sep31/transactions",
            400,
            r#"{"error": "customer_info_needed", "type": "not a type"}"#,
            json_type,
        ),
        (
            "/sep31/transactions",
            400,
            r#"{"error": "transaction_info_needed"}"#,
            json_type,
        ),
        ("/fee", 200, r#"{"fee": {"total": "-1"}}"#, json_type),
        ("/fee", 200, r#"{"fee": {"total": 1.5}}"#, json_type),
        ("/fee", 200, r#"{"fee": {"total": "1,50"}}"#, json_type),
        (
            "/fee",
            200,
            r#"{"fee": {"total": "0.00000001"}}"#,
            json_type,
        ),
        ("/fee", 200, r#"{"total": "1"}"#, json_type),
        (
            "/fee",
            200,
            r#"{"fee": {"total": "2", "details": [{"name": "transfer", "amount": "1"}]}}"#,
            json_type,
        ),
        (
            "/fee",
            200,
            r#"{"fee": {"total": "1", "asset": "iso4217:EUR"}}"#,
            json_type,
        ),
    ]);
    for (path, code, text, content_type) in cases {
        business.answer_normally();
        business.answer_to(path, code, text, content_type);
        let (status, answer) = app.post_transaction(&token, base("100")).await;
        assert_eq!(
            status, 503,
            "{path} answered {code} {text:?}: capstan said {answer}"
        );
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{answer}");
        assert!(
            !message.contains("database down") && !message.contains("bad key"),
            "the business server's internals stay in the log: {answer}"
        );
    }
    assert_eq!(stored(&app).await, 0, "no failure stored a transaction");
    assert!(
        business.requests_to("/elsewhere").is_empty(),
        "redirects are not followed"
    );

    // Once the business server answers again, so does capstan.
    business.answer_normally();
    let (status, created) = app.post_transaction(&token, base("100")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(stored(&app).await, 1);
}

async fn slow_or_stopped_business_server_is_503(db: Option<String>) {
    let Setup {
        app,
        mut business,
        token,
        ..
    } = setup(db, true).await;

    // Each call is cut off after business_timeout_secs = 1, not the business server's 4 s.
    business.delay(Some(Duration::from_secs(4)));
    let started = Instant::now();
    let (status, answer) = app.post_transaction(&token, base("100")).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{answer}"
    );
    assert!(elapsed < Duration::from_millis(3500), "took {elapsed:?}");
    business.delay(None);
    assert_eq!(stored(&app).await, 0);

    business.stop().await;
    let (status, answer) = app.post_transaction(&token, base("100")).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{answer}"
    );
    assert_eq!(stored(&app).await, 0);
}

async fn no_api_key_no_authorization(db: Option<String>) {
    let Setup {
        app,
        business,
        token,
        ..
    } = setup(db, false).await;
    let (status, created) = app.post_transaction(&token, base("100")).await;
    assert_eq!(status, 201, "{created}");
    let requests = business.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for request in &requests {
        assert_eq!(request.authorization, None, "{}", request.path);
        assert_signed(&app, &business, request);
    }
}

async fn quotes_carry_the_business_fee(db: Option<String>) {
    let Setup {
        app,
        business,
        token,
        ..
    } = setup_with(
        db,
        true,
        "[sep38.assets.\"iso4217:EUR\"]\ndecimals = 2\ncountry_codes = [\"DE\"]\n\
         delivery_methods = { SEPA = \"SEPA credit transfer\" }\nrates = { USDC = \"1.1\" }\n",
    )
    .await;
    let quote_request = json!({
        "sell_asset": usdc(&app),
        "buy_asset": "iso4217:EUR",
        "sell_amount": "100",
        "buy_delivery_method": "SEPA",
        "context": "sep31",
    });
    let (status, quote) = json_of(
        app.http
            .post(format!("{}/sep38/quote", app.url))
            .bearer_auth(&token)
            .json(&quote_request)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{quote}");
    let lines = json!([
        {"name": "SEPA transfer", "amount": "1"},
        {"name": "FX margin", "description": "at today's rate", "amount": "0.2345678"},
    ]);
    assert_eq!(
        quote["fee"],
        json!({"total": "1.2345678", "asset": usdc(&app), "details": lines})
    );
    assert_eq!(business.last_to("/fee").query["funding_method"], "SEPA");

    // An indicative price needs the fee service too: without it, 503.
    business.answer_to("/fee", 500, "", "text/plain");
    let (status, answer) = json_of(
        app.http
            .get(format!("{}/sep38/price", app.url))
            .query(&[
                ("sell_asset", usdc(&app).as_str()),
                ("buy_asset", "iso4217:EUR"),
                ("sell_amount", "100"),
                ("buy_delivery_method", "SEPA"),
                ("context", "sep31"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503, "{answer}");

    // The quoted transaction keeps the quote's fee, and does not ask for it again.
    let fee_calls = business.requests_to("/fee").len();
    let mut body = base("100");
    body["destination_asset"] = json!("iso4217:EUR");
    body["quote_id"] = quote["id"].clone();
    let (status, created) = app.post_transaction(&token, body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(business.requests_to("/fee").len(), fee_calls);
    let (_, got) = get_transaction(&app, &token, created["id"].as_str().unwrap()).await;
    let t = &got["transaction"];
    assert_eq!(t["amount_fee"], "1.2345678");
    assert_eq!(t["amount_out"], quote["buy_amount"]);
    assert_eq!(t["fee_details"]["details"], lines);
}

/// A payment of another amount needs a new fee. While the fee service is down the watcher
/// holds it as `fee_unavailable` (not refused), the operator's attach answers 503 and leaves
/// it open, and once the service answers the attach funds the transaction with its fee.
async fn a_payment_waits_for_the_fee_service(db: Option<String>) {
    let business = Business::for_sending_anchors().await;
    let w = common::world::world_with(
        db,
        "short_payments = \"accept\"\n",
        &format!(
            "[sep31]\nbusiness_url = \"{}\"\nbusiness_timeout_secs = 1\n",
            business.url
        ),
    )
    .await;
    let (id, memo) = w.create("20").await;
    let created = w.transaction(&id).await;
    assert_eq!(created["amount_fee"], "1.2345678", "{created}");

    business.answer_to(
        "/fee",
        500,
        r#"{"error": "rates feed down"}"#,
        "application/json",
    );
    w.pay(fake_horizon::Memo::Id(memo), "15");
    let held = w.wait_recorded(1).await;
    assert_eq!(held[0]["reason"], "fee_unavailable", "{}", held[0]);
    let payment = held[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(w.transaction(&id).await["status"], "pending_sender");

    let attach = format!("/admin/payments/{payment}/attach");
    let (status, answer) = w
        .admin(Method::POST, &attach, Some(json!({"transaction_id": id})))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be computed now")),
        "{answer}"
    );
    assert_eq!(w.transaction(&id).await["status"], "pending_sender");

    business.answer_normally();
    let (status, answer) = w
        .admin(Method::POST, &attach, Some(json!({"transaction_id": id})))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["resolution"], "attached");
    let t = w.wait_status(&id, "pending_receiver").await;
    assert_eq!(t["amount_in"], "15");
    assert_eq!(t["amount_fee"], "1.2345678");
    assert_eq!(t["amount_out"], "13.7654322");
    let asked: Vec<String> = business
        .requests_to("/fee")
        .iter()
        .map(|r| r.query["amount"].clone())
        .collect();
    assert_eq!(
        asked,
        ["20", "15", "15", "15"],
        "created, watched, attached twice"
    );
}
