//! SEP-38 quotes, black-box: the real anchor on a real port, over HTTP, on SQLite and on
//! PostgreSQL (checklist §6 SEP38-01..12 and §6.7, and the quote items of §5: SEP31-21..23,
//! the §5.5 amounts, SEP31-42/43), down to a payment on the fake Horizon paid out at the
//! quoted amount by the simulated rails.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::on_both_backends;
use common::world::{World, g, world_with};
use common::{json_of, serve};
use fake_horizon::Memo;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use stellar::Keypair;

on_both_backends! {
    the_quote_server_is_published_and_describes_its_assets => the_quote_server_is_published_and_describes_its_assets_sqlite, the_quote_server_is_published_and_describes_its_assets_postgres;
    prices_list_what_an_asset_converts_to => prices_list_what_an_asset_converts_to_sqlite, prices_list_what_an_asset_converts_to_postgres;
    a_price_follows_the_formulas_and_the_request_rules => a_price_follows_the_formulas_and_the_request_rules_sqlite, a_price_follows_the_formulas_and_the_request_rules_postgres;
    a_firm_quote_belongs_to_its_account_and_expires_within_bounds => a_firm_quote_belongs_to_its_account_and_expires_within_bounds_sqlite, a_firm_quote_belongs_to_its_account_and_expires_within_bounds_postgres;
    a_quote_pays_out_its_amount_once => a_quote_pays_out_its_amount_once_sqlite, a_quote_pays_out_its_amount_once_postgres;
    a_transaction_must_agree_with_its_quote => a_transaction_must_agree_with_its_quote_sqlite, a_transaction_must_agree_with_its_quote_postgres;
    two_transactions_racing_for_one_quote_one_wins => two_transactions_racing_for_one_quote_one_wins_sqlite, two_transactions_racing_for_one_quote_one_wins_postgres;
    an_expired_quote_is_refused_and_expires_its_transaction => an_expired_quote_is_refused_and_expires_its_transaction_sqlite, an_expired_quote_is_refused_and_expires_its_transaction_postgres;
    a_destination_asset_is_paid_at_the_price_when_the_payment_arrives => a_destination_asset_is_paid_at_the_price_when_the_payment_arrives_sqlite, a_destination_asset_is_paid_at_the_price_when_the_payment_arrives_postgres;
    quotes_required_refuses_a_transaction_without_one => quotes_required_refuses_a_transaction_without_one_sqlite, quotes_required_refuses_a_transaction_without_one_postgres;
    quotes_are_for_sending_anchors_only => quotes_are_for_sending_anchors_only_sqlite, quotes_are_for_sending_anchors_only_postgres;
    prices_come_from_the_business_server => prices_come_from_the_business_server_sqlite, prices_come_from_the_business_server_postgres;
    firm_quotes_hold_their_amount_in_reserve_until_they_expire => firm_quotes_hold_their_amount_in_reserve_until_they_expire_sqlite, firm_quotes_hold_their_amount_in_reserve_until_they_expire_postgres;
    quotes_asked_at_once_never_promise_more_than_the_liquidity => quotes_asked_at_once_never_promise_more_than_the_liquidity_sqlite, quotes_asked_at_once_never_promise_more_than_the_liquidity_postgres;
}

/// EUR at 1.1 USDC and BRL at 0.18 USDC, plus a 1% spread: prices 1.111 and 0.1818. The
/// USDC fee is a fixed 1 (the world's). EUR is paid by SEPA or SWIFT, BRL by SWIFT only. The
/// simulated rails pay out at once.
const SEP38: &str = r#"
[rails]
enabled = true
execute_interval_secs = 1
poll_interval_secs = 1

[sep38]
spread_percent = "1"
min_expiry_secs = 10
max_expiry_secs = 3600

[sep38.assets."iso4217:EUR"]
decimals = 2
country_codes = ["DE", "FR"]
delivery_methods = { SEPA = "SEPA credit transfer", SWIFT = "SWIFT wire" }
rates = { USDC = "1.1" }

[sep38.assets."iso4217:BRL"]
decimals = 2
country_codes = ["BR"]
delivery_methods = { SWIFT = "SWIFT wire to a Brazilian bank" }
rates = { USDC = "0.18" }
"#;

async fn quote_world(db: Option<String>) -> World {
    world_with(db, "", SEP38).await
}

fn usdc_id(w: &World) -> String {
    format!("stellar:USDC:{}", w.issuer)
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("{v} is not a string")))
        .unwrap_or_else(|_| panic!("{v} is not a decimal"))
}

fn round(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

async fn get(w: &World, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = w.app.http.get(format!("{}{path}", w.app.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    json_of(request.send().await.unwrap()).await
}

async fn get_query(w: &World, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = w
        .app
        .http
        .get(format!("{}{path}", w.app.url))
        .query(query)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn post(w: &World, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = w.app.http.post(format!("{}{path}", w.app.url)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    json_of(request.send().await.unwrap()).await
}

/// A firm quote of `sell_amount` USDC for EUR by SEPA, as the world's sending anchor.
async fn eur_quote(w: &World, token: &str, sell_amount: &str) -> Value {
    let (status, body) = post(
        w,
        "/sep38/quote",
        Some(token),
        json!({
            "sell_asset": usdc_id(w),
            "buy_asset": "iso4217:EUR",
            "sell_amount": sell_amount,
            "buy_delivery_method": "SEPA",
            "context": "sep31",
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// A SEP-31 POST naming a quote.
async fn post_with_quote(w: &World, token: &str, amount: &str, quote_id: &str) -> (u16, Value) {
    post(
        w,
        "/sep31/transactions",
        Some(token),
        json!({
            "amount": amount,
            "asset_code": "USDC",
            "funding_method": "SEPA",
            "destination_asset": "iso4217:EUR",
            "quote_id": quote_id,
        }),
    )
    .await
}

fn assert_error(status: u16, body: &Value, want: u16, containing: &str) {
    assert_eq!(status, want, "{body}");
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {body}"));
    assert!(
        error.contains(containing),
        "{error:?} does not say {containing:?}"
    );
}

/// §6.7: the relations between amounts and prices, rounded to the bought asset's decimals,
/// and `fee.details` adding up to `fee.total`.
fn assert_formulas(body: &Value, decimals: u32) {
    let sell = dec(&body["sell_amount"]);
    let buy = dec(&body["buy_amount"]);
    let price = dec(&body["price"]);
    let total_price = dec(&body["total_price"]);
    let fee = dec(&body["fee"]["total"]);
    assert_eq!(round(sell / total_price, decimals), buy, "{body}");
    assert_eq!(round((sell - fee) / price, decimals), buy, "{body}");
    let parts: Decimal = body["fee"]["details"]
        .as_array()
        .map(|d| d.iter().map(|p| dec(&p["amount"])).sum())
        .unwrap_or(Decimal::ZERO);
    assert_eq!(parts, fee, "{body}");
}

// ---- SEP38-01..05, /info ------------------------------------------------------------------

async fn the_quote_server_is_published_and_describes_its_assets(db: Option<String>) {
    let w = quote_world(db).await;
    // SEP38-01
    let toml = w
        .app
        .get("/.well-known/stellar.toml")
        .await
        .text()
        .await
        .unwrap();
    let toml: toml::Table = toml.parse().unwrap();
    assert_eq!(
        toml["ANCHOR_QUOTE_SERVER"].as_str(),
        Some(format!("{}/sep38", w.app.url).as_str())
    );
    // SEP38-02: optional token on /info; SEP38-03: JSON.
    let response = w.app.get("/sep38/info").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("application/json")
    );
    let (status, info) = json_of(response).await;
    assert_eq!(status, 200, "{info}");
    let (status, with_token) = get(&w, "/sep38/info", Some(&w.token)).await;
    assert_eq!(status, 200);
    assert_eq!(with_token, info);
    // A token that is sent must be valid (SEP38-04).
    let (status, body) = get(&w, "/sep38/info", Some("not-a-token")).await;
    assert_error(status, &body, 403, "");
    // SEP38-05: asset ids; delivery methods (the SEP-31 funding methods) and countries.
    let assets = info["assets"].as_array().unwrap();
    assert_eq!(assets.len(), 3, "{info}");
    assert_eq!(assets[0], json!({"asset": usdc_id(&w)}));
    let eur = assets.iter().find(|a| a["asset"] == "iso4217:EUR").unwrap();
    assert_eq!(
        eur["buy_delivery_methods"],
        json!([
            {"name": "SEPA", "description": "SEPA credit transfer"},
            {"name": "SWIFT", "description": "SWIFT wire"}
        ])
    );
    assert_eq!(eur["country_codes"], json!(["DE", "FR"]));
    assert!(eur.get("sell_delivery_methods").is_none());
    // SEP-31 /info announces the quotes (SEP31-04, quotes_supported/quotes_required).
    let (status, sep31) = get(&w, "/sep31/info", None).await;
    assert_eq!(status, 200);
    assert_eq!(sep31["receive"]["USDC"]["quotes_supported"], true);
    assert_eq!(sep31["receive"]["USDC"]["quotes_required"], false);

    // Without [sep38.assets], none of it.
    let plain = world_with(None, "", "").await;
    let toml = plain
        .app
        .get("/.well-known/stellar.toml")
        .await
        .text()
        .await
        .unwrap();
    assert!(!toml.contains("ANCHOR_QUOTE_SERVER"));
    let (status, body) = get(&plain, "/sep38/info", None).await;
    assert_error(status, &body, 404, "");
    let (_, sep31) = get(&plain, "/sep31/info", None).await;
    assert_eq!(sep31["receive"]["USDC"]["quotes_supported"], false);
}

// ---- GET /prices ----------------------------------------------------------------------------

async fn prices_list_what_an_asset_converts_to(db: Option<String>) {
    let w = quote_world(db).await;
    let usdc = usdc_id(&w);
    let (status, body) = get_query(
        &w,
        "/sep38/prices",
        &[("sell_asset", &usdc), ("sell_amount", "100")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"buy_assets": [
            {"asset": "iso4217:BRL", "price": "0.1818", "decimals": 2},
            {"asset": "iso4217:EUR", "price": "1.111", "decimals": 2},
        ]})
    );
    // Without an amount, and filtered by delivery method or country.
    let (_, body) = get_query(&w, "/sep38/prices", &[("sell_asset", &usdc)]).await;
    assert_eq!(body["buy_assets"].as_array().unwrap().len(), 2);
    let (_, body) = get_query(
        &w,
        "/sep38/prices",
        &[("sell_asset", &usdc), ("buy_delivery_method", "SEPA")],
    )
    .await;
    assert_eq!(body["buy_assets"][0]["asset"], "iso4217:EUR");
    assert_eq!(body["buy_assets"].as_array().unwrap().len(), 1);
    let (_, body) = get_query(
        &w,
        "/sep38/prices",
        &[("sell_asset", &usdc), ("country_code", "BR")],
    )
    .await;
    assert_eq!(
        body,
        json!({"buy_assets": [{"asset": "iso4217:BRL", "price": "0.1818", "decimals": 2}]})
    );
    // By what is bought.
    let (status, body) = get_query(
        &w,
        "/sep38/prices",
        &[("buy_asset", "iso4217:EUR"), ("buy_amount", "50")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"sell_assets": [{"asset": usdc, "price": "1.111", "decimals": 7}]})
    );
    // An off-chain asset is never bought from the client: nothing to list.
    let (status, body) = get_query(
        &w,
        "/sep38/prices",
        &[("sell_asset", "iso4217:EUR"), ("sell_amount", "5")],
    )
    .await;
    assert_eq!((status, body), (200, json!({"buy_assets": []})));
    // Request rules: exactly one side, its own amount, known and well-formed assets.
    for (query, says) in [
        (vec![], "exactly one of sell_asset or buy_asset"),
        (
            vec![("sell_asset", usdc.as_str()), ("buy_asset", "iso4217:EUR")],
            "exactly one of sell_asset or buy_asset",
        ),
        (
            vec![("sell_asset", usdc.as_str()), ("buy_amount", "5")],
            "sell_amount is the only amount",
        ),
        (
            vec![("sell_asset", "iso4217:JPY")],
            "not an asset this anchor converts",
        ),
        (vec![("sell_asset", "USDC")], "not a SEP-38 asset"),
        (vec![("sell_asset", "stellar:USDC")], "not a SEP-38 asset"),
        (
            vec![(
                "sell_asset",
                "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
            )],
            "not an asset this anchor converts",
        ),
        (
            vec![("sell_asset", usdc.as_str()), ("sell_amount", "-1")],
            "sell_amount",
        ),
        (
            vec![("sell_asset", usdc.as_str()), ("sell_amount", "1e3")],
            "sell_amount",
        ),
        (
            vec![("sell_asset", usdc.as_str()), ("sell_amount", "0.00000001")],
            "decimal places",
        ),
        (
            vec![("buy_asset", "iso4217:EUR"), ("buy_amount", "1.001")],
            "decimal places",
        ),
        (
            vec![("buy_asset", "iso4217:EUR"), ("country_code", "BR")],
            "country_code",
        ),
    ] {
        let (status, body) = get_query(&w, "/sep38/prices", &query).await;
        assert_error(status, &body, 400, says);
    }
}

// ---- GET /price, §6.7 ------------------------------------------------------------------------

async fn a_price_follows_the_formulas_and_the_request_rules(db: Option<String>) {
    let w = quote_world(db).await;
    let usdc = usdc_id(&w);
    let price = |extra: Vec<(&'static str, String)>| {
        let mut query: Vec<(&str, String)> = vec![
            ("sell_asset", usdc.clone()),
            ("buy_asset", "iso4217:EUR".into()),
            ("buy_delivery_method", "SEPA".into()),
            ("context", "sep31".into()),
        ];
        for (k, v) in extra {
            query.retain(|(key, _)| *key != k);
            if !v.is_empty() {
                query.push((k, v));
            }
        }
        let w = &w;
        async move {
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get_query(w, "/sep38/price", &query).await
        }
    };
    // A sell amount: 100 USDC, 1 of fee, 99 at 1.111 = 89.108... EUR.
    let (status, body) = price(vec![("sell_amount", "100".into())]).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["buy_amount", "fee", "price", "sell_amount", "total_price"]
    );
    assert_eq!(body["sell_amount"], "100");
    assert_eq!(body["buy_amount"], "89.11");
    assert_eq!(body["price"], "1.111");
    assert_eq!(
        body["fee"],
        json!({"total": "1", "asset": usdc, "details": [{"name": "fixed fee", "amount": "1"}]})
    );
    assert_formulas(&body, 2);
    // A buy amount: 50 EUR cost 55.55 USDC and the fee.
    let (status, body) = price(vec![("buy_amount", "50".into())]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["buy_amount"], "50");
    assert_eq!(body["sell_amount"], "56.55");
    assert_formulas(&body, 2);
    // Odd amounts hold the formulas too.
    for amount in ["2.0000001", "12.3456789", "99999.99", "3"] {
        let (status, body) = price(vec![("sell_amount", amount.into())]).await;
        assert_eq!(status, 200, "{body}");
        assert_formulas(&body, 2);
    }
    for amount in ["0.01", "777.77", "1000000"] {
        let (status, body) = price(vec![("buy_amount", amount.into())]).await;
        assert_eq!(status, 200, "{body}");
        assert_formulas(&body, 2);
    }
    // BRL has one delivery method: it may be left out.
    let (status, body) = get_query(
        &w,
        "/sep38/price",
        &[
            ("sell_asset", usdc.as_str()),
            ("buy_asset", "iso4217:BRL"),
            ("sell_amount", "100"),
            ("context", "sep31"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["buy_amount"], "544.55");
    assert_formulas(&body, 2);
    // Request rules (SEP38-04, 06, 07).
    for (extra, says) in [
        (vec![], "exactly one of sell_amount or buy_amount"),
        (
            vec![("sell_amount", "10".into()), ("buy_amount", "10".into())],
            "exactly one of sell_amount or buy_amount",
        ),
        (
            vec![("sell_amount", "10".into()), ("context", String::new())],
            "context is required",
        ),
        (
            vec![("sell_amount", "10".into()), ("context", "sep6".into())],
            "only for sep31",
        ),
        (
            vec![("sell_amount", "10".into()), ("context", "sep24".into())],
            "not one of sep6, sep31",
        ),
        // SEP38-07 on /price: an off-chain asset with two methods needs one named.
        (
            vec![
                ("sell_amount", "10".into()),
                ("buy_delivery_method", String::new()),
            ],
            "buy_delivery_method is required",
        ),
        (
            vec![
                ("sell_amount", "10".into()),
                ("buy_delivery_method", "PIX".into()),
            ],
            "not a delivery method",
        ),
        (
            vec![
                ("sell_amount", "10".into()),
                ("sell_delivery_method", "SEPA".into()),
            ],
            "sell_delivery_method",
        ),
        (
            vec![("sell_amount", "10".into()), ("country_code", "US".into())],
            "country_code",
        ),
        (vec![("buy_amount", "10.001".into())], "decimal places"),
        (
            vec![("sell_amount", "0.5".into())],
            "does not cover the fee",
        ),
        (
            vec![("sell_amount", "10".into()), ("buy_asset", usdc.clone())],
            "does not sell",
        ),
        (
            vec![
                ("sell_amount", "10".into()),
                ("sell_asset", "iso4217:EUR".into()),
            ],
            "does not sell",
        ),
        (
            vec![
                ("sell_amount", "10".into()),
                ("buy_asset", "iso4217:XYZ".into()),
            ],
            "not an asset",
        ),
    ] {
        let (status, body) = price(extra).await;
        assert_error(status, &body, 400, says);
    }
}

// ---- POST /quote, GET /quote/:id (SEP38-02, 06..12) -----------------------------------------

async fn a_firm_quote_belongs_to_its_account_and_expires_within_bounds(db: Option<String>) {
    let w = quote_world(db).await;
    let usdc = usdc_id(&w);
    let body = json!({
        "sell_asset": usdc,
        "buy_asset": "iso4217:EUR",
        "sell_amount": "100",
        "buy_delivery_method": "SEPA",
        "context": "sep31",
    });
    // SEP38-02: a token is required.
    let (status, answer) = post(&w, "/sep38/quote", None, body.clone()).await;
    assert_error(status, &answer, 403, "Authorization");
    let (status, answer) = post(&w, "/sep38/quote", Some("bad"), body.clone()).await;
    assert_error(status, &answer, 403, "");

    let before = chrono::Utc::now().timestamp();
    let (status, quote) = post(&w, "/sep38/quote", Some(&w.token), body.clone()).await;
    assert_eq!(status, 201, "{quote}");
    let mut keys: Vec<&str> = quote
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "buy_amount",
            "buy_asset",
            "buy_delivery_method",
            "expires_at",
            "fee",
            "id",
            "price",
            "sell_amount",
            "sell_asset",
            "total_price"
        ]
    );
    assert_eq!(quote["sell_amount"], "100");
    assert_eq!(quote["buy_amount"], "89.11");
    assert_eq!(quote["buy_delivery_method"], "SEPA");
    assert_formulas(&quote, 2); // SEP38-11
    // The anchor's minimum lifetime, as an ISO 8601 time in UTC.
    let expires_at = quote["expires_at"].as_str().unwrap();
    assert!(expires_at.ends_with('Z'), "{expires_at}");
    let expires = chrono::DateTime::parse_from_rfc3339(expires_at)
        .unwrap()
        .timestamp();
    assert!(
        (before + 10..=before + 12).contains(&expires),
        "{expires_at}"
    );

    // GET /quote/:id by its owner; the same body.
    let id = quote["id"].as_str().unwrap();
    let (status, read) = get(&w, &format!("/sep38/quote/{id}"), Some(&w.token)).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, quote);
    // Without a token 403; another account, or the same account under a memo, 404 like an
    // unknown id.
    let (status, answer) = get(&w, &format!("/sep38/quote/{id}"), None).await;
    assert_error(status, &answer, 403, "");
    let other = w.app.token_for(&Keypair::random(), None).await;
    let (status, answer) = get(&w, &format!("/sep38/quote/{id}"), Some(&other)).await;
    assert_error(status, &answer, 404, "quote not found");
    let memo = w.app.token_for(&w.sender, Some("42")).await;
    let (status, answer) = get(&w, &format!("/sep38/quote/{id}"), Some(&memo)).await;
    assert_error(status, &answer, 404, "quote not found");
    let (status, answer) = get(&w, "/sep38/quote/no-such-quote", Some(&w.token)).await;
    assert_error(status, &answer, 404, "quote not found");
    // A memo's own quote is its own.
    let (status, mine) = post(&w, "/sep38/quote", Some(&memo), body.clone()).await;
    assert_eq!(status, 201, "{mine}");
    let (status, _) = get(
        &w,
        &format!("/sep38/quote/{}", mine["id"].as_str().unwrap()),
        Some(&memo),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &w,
        &format!("/sep38/quote/{}", mine["id"].as_str().unwrap()),
        Some(&w.token),
    )
    .await;
    assert_eq!(status, 404);

    // SEP38-08: expire_after within the bounds is honoured; beyond them a 400.
    let wanted = chrono::Utc::now() + chrono::Duration::minutes(30);
    let wanted_text = wanted.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut with_expiry = body.clone();
    with_expiry["expire_after"] = json!(wanted_text);
    let (status, later) = post(&w, "/sep38/quote", Some(&w.token), with_expiry.clone()).await;
    assert_eq!(status, 201, "{later}");
    assert_eq!(later["expires_at"], wanted_text.as_str());
    for (expire_after, says) in [
        ("10000-01-01T00:00:00Z", "expire_after"),
        ("2099-01-01T00:00:00Z", "at most 3600 seconds"),
        ("tomorrow", "not a UTC ISO 8601 time"),
    ] {
        with_expiry["expire_after"] = json!(expire_after);
        let (status, answer) = post(&w, "/sep38/quote", Some(&w.token), with_expiry.clone()).await;
        assert_error(status, &answer, 400, says);
    }
    // A past expire_after gets the minimum lifetime.
    with_expiry["expire_after"] = json!("2020-01-01T00:00:00Z");
    let (status, _) = post(&w, "/sep38/quote", Some(&w.token), with_expiry).await;
    assert_eq!(status, 201);

    // SEP38-06/07 and the rest of the request rules.
    let without = |key: &str| {
        let mut b = body.clone();
        b.as_object_mut().unwrap().remove(key);
        b
    };
    let with = |key: &str, value: Value| {
        let mut b = body.clone();
        b[key] = value;
        b
    };
    for (request, says) in [
        (
            without("sell_amount"),
            "exactly one of sell_amount or buy_amount",
        ),
        (
            with("buy_amount", json!("5")),
            "exactly one of sell_amount or buy_amount",
        ),
        // SEP38-07: the off-chain asset lists two methods, so one must be named.
        (
            without("buy_delivery_method"),
            "buy_delivery_method is required",
        ),
        (
            with("sell_delivery_method", json!("SEPA")),
            "sell_delivery_method",
        ),
        (without("context"), "context is required"),
        (with("context", json!("sep24")), "only for sep31"),
        (
            with("context", json!("sep99")),
            "not one of sep6, sep24, sep31",
        ),
        (without("sell_asset"), "sell_asset is required"),
        (without("buy_asset"), "buy_asset is required"),
        (with("sell_amount", json!("abc")), "sell_amount"),
        (with("sell_amount", json!([1])), "must be a string"),
        (json!([1, 2]), "JSON object"),
    ] {
        let (status, answer) = post(&w, "/sep38/quote", Some(&w.token), request).await;
        assert_error(status, &answer, 400, says);
    }
    // A body that is not JSON at all.
    let response = w
        .app
        .http
        .post(format!("{}/sep38/quote", w.app.url))
        .bearer_auth(&w.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_error(status, &answer, 400, "JSON");
}

// ---- the black-box flow: /prices, a firm quote, a payment, the payout -------------------------

async fn a_quote_pays_out_its_amount_once(db: Option<String>) {
    let w = quote_world(db).await;
    let usdc = usdc_id(&w);
    // The sending anchor asks what USDC converts to, then for a firm quote.
    let (status, prices) = get_query(
        &w,
        "/sep38/prices",
        &[("sell_asset", &usdc), ("sell_amount", "100")],
    )
    .await;
    assert_eq!(status, 200, "{prices}");
    assert!(
        prices["buy_assets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["asset"] == "iso4217:EUR")
    );
    let quote = eur_quote(&w, &w.token, "100").await;
    let quote_id = quote["id"].as_str().unwrap();

    // Another account can neither read nor use it.
    let other = w.app.token_for(&Keypair::random(), None).await;
    let (status, _) = get(&w, &format!("/sep38/quote/{quote_id}"), Some(&other)).await;
    assert_eq!(status, 404);
    let (status, body) = post_with_quote(&w, &other, "100", quote_id).await;
    assert_error(
        status,
        &body,
        400,
        &format!("quote(id={quote_id}) was not found."),
    );

    // The transaction with it.
    let (status, created) = post_with_quote(&w, &w.token, "100", quote_id).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let memo: u64 = created["stellar_memo"].as_str().unwrap().parse().unwrap();
    // §5.5 with a quote: amount_in = sell_amount, amount_out = buy_amount, the fee is the
    // quote's, the assets and the quote id are shown.
    let t = w.transaction(id).await;
    assert_eq!(t["status"], "pending_sender");
    assert_eq!(t["quote_id"], quote_id);
    assert_eq!(t["amount_in"], quote["sell_amount"]);
    assert_eq!(t["amount_out"], quote["buy_amount"]);
    assert_eq!(t["amount_fee"], quote["fee"]["total"]);
    assert_eq!(t["fee_details"], quote["fee"]);
    assert_eq!(t["amount_in_asset"], usdc.as_str());
    assert_eq!(t["amount_out_asset"], "iso4217:EUR");
    assert_eq!(t["amount_fee_asset"], quote["fee"]["asset"]);

    // The same quote cannot fund a second transaction.
    let (status, body) = post_with_quote(&w, &w.token, "100", quote_id).await;
    assert_error(status, &body, 400, "already used");
    // Still readable once used.
    let (status, read) = get(&w, &format!("/sep38/quote/{quote_id}"), Some(&w.token)).await;
    assert_eq!((status, read), (200, quote.clone()));

    // Paid on Stellar; the simulated rails pay out the quoted EUR amount.
    w.pay(Memo::Id(memo), "100");
    let done = w.wait_status(id, "completed").await;
    assert_eq!(done["amount_out"], "89.11");
    assert_eq!(done["amount_in"], "100");
    assert_eq!(done["quote_id"], quote_id);
    assert_eq!(done["fee_details"], quote["fee"]);
    let payout = w
        .app
        .running
        .anchor
        .store
        .simulated_payout_by_key(id)
        .await
        .unwrap()
        .expect("the simulated rails paid");
    assert_eq!(payout.amount, "89.11");
}

// ---- SEP31-21, 22 ------------------------------------------------------------------------------

async fn a_transaction_must_agree_with_its_quote(db: Option<String>) {
    let w = quote_world(db).await;
    let quote = eur_quote(&w, &w.token, "100").await;
    let quote_id = quote["id"].as_str().unwrap();
    let base = json!({
        "amount": "100",
        "asset_code": "USDC",
        "funding_method": "SEPA",
        "quote_id": quote_id,
    });
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };
    for (request, says) in [
        (
            with("amount", json!("99")),
            "does not match the quote's sell_amount",
        ),
        (
            with("destination_asset", json!("iso4217:BRL")),
            "does not match the quote's buy_asset",
        ),
        (
            with("funding_method", json!("SWIFT")),
            "does not match the quote's buy_delivery_method",
        ),
        (
            with("quote_id", json!("no-such-quote")),
            "quote(id=no-such-quote) was not found.",
        ),
        (
            with("asset_issuer", json!(g(&Keypair::random()))),
            "asset_issuer",
        ),
    ] {
        let (status, body) = post(&w, "/sep31/transactions", Some(&w.token), request).await;
        assert_error(status, &body, 400, says);
    }
    // None of those used it: the right request still can (destination_asset may be left out).
    let (status, body) = post(&w, "/sep31/transactions", Some(&w.token), base.clone()).await;
    assert_eq!(status, 201, "{body}");

    // SEP31-21: a destination_asset must be one /prices lists for the asset.
    for destination in ["iso4217:JPY", "stellar:USDC", "EUR", "iso4217:eur"] {
        let (status, body) = post(
            &w,
            "/sep31/transactions",
            Some(&w.token),
            json!({"amount": "10", "asset_code": "USDC", "funding_method": "SEPA", "destination_asset": destination}),
        )
        .await;
        assert_error(status, &body, 400, "does not convert");
    }
    // ... and its delivery method the funding method.
    let (status, body) = post(
        &w,
        "/sep31/transactions",
        Some(&w.token),
        json!({"amount": "10", "asset_code": "USDC", "funding_method": "SEPA", "destination_asset": "iso4217:BRL"}),
    )
    .await;
    assert_error(status, &body, 400, "not a delivery method of iso4217:BRL");
}

// ---- a quote funds one transaction, even when two race for it --------------------------------

async fn two_transactions_racing_for_one_quote_one_wins(db: Option<String>) {
    let w = quote_world(db).await;
    for _ in 0..5 {
        let quote = eur_quote(&w, &w.token, "20").await;
        let quote_id = quote["id"].as_str().unwrap();
        let (a, b, c) = tokio::join!(
            post_with_quote(&w, &w.token, "20", quote_id),
            post_with_quote(&w, &w.token, "20", quote_id),
            post_with_quote(&w, &w.token, "20", quote_id),
        );
        let statuses = [a.0, b.0, c.0];
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{a:?} {b:?} {c:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 400).count(),
            2,
            "{a:?} {b:?} {c:?}"
        );
    }
}

// ---- SEP31-42, SEP38-12: expiry ----------------------------------------------------------------

async fn an_expired_quote_is_refused_and_expires_its_transaction(db: Option<String>) {
    let w = quote_world(db).await;
    // Two quotes at the minimum lifetime (10 s): one used, one kept.
    let used = eur_quote(&w, &w.token, "30").await;
    let kept = eur_quote(&w, &w.token, "30").await;
    let (status, created) = post_with_quote(&w, &w.token, "30", used["id"].as_str().unwrap()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(kept["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let wait = expires - chrono::Utc::now().timestamp() + 1;
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;

    // An expired quote is refused.
    let (status, body) = post_with_quote(&w, &w.token, "30", kept["id"].as_str().unwrap()).await;
    assert_error(status, &body, 400, "expired");
    // SEP31-43: a payment whose Stellar transaction was made after the quote expired is
    // not paid at the quoted price: it is held for the operator, whether the transaction
    // was still waiting for it or already expired.
    let memo: u64 = created["stellar_memo"].as_str().unwrap().parse().unwrap();
    w.pay(Memo::Id(memo), "30");
    let payments = w.wait_recorded(1).await;
    assert_eq!(payments[0]["outcome"], "unmatched", "{}", payments[0]);
    assert_eq!(
        payments[0]["reason"], "not_awaiting_payment",
        "{}",
        payments[0]
    );
    // The transaction whose quote expired before a payment arrived expires.
    capstan::sep31::expiry::expire_overdue(&w.app.running.anchor).await;
    let t = w.transaction(id).await;
    assert_eq!(t["status"], "expired", "{t}");
    assert!(t.get("stellar_transaction_id").is_none(), "{t}");
    // Both quotes stay readable after they expire.
    for q in [&used, &kept] {
        assert_readable_by_owner(&w, q).await;
    }
}

/// `GET /quote/:id` answers the quote exactly as it was issued.
async fn assert_readable_by_owner(w: &World, quote: &Value) {
    let path = format!("/sep38/quote/{}", quote["id"].as_str().unwrap());
    let (status, read) = get(w, &path, Some(&w.token)).await;
    assert_eq!((status, &read), (200, quote));
}

// ---- SEP38-09: a firm quote's amount is held in reserve --------------------------------------

/// The world of [`SEP38`] with 1,000 BRL of liquidity for firm quotes.
async fn liquidity_world(db: Option<String>) -> World {
    let toml = SEP38.replace(
        "rates = { USDC = \"0.18\" }",
        "rates = { USDC = \"0.18\" }\nliquidity = \"1000\"",
    );
    assert_ne!(toml, SEP38);
    world_with(db, "", &toml).await
}

/// A firm quote for `buy_amount` BRL, as the world's sending anchor.
async fn brl_quote(w: &World, buy_amount: &str) -> (u16, Value) {
    post(
        w,
        "/sep38/quote",
        Some(&w.token),
        json!({
            "sell_asset": usdc_id(w),
            "buy_asset": "iso4217:BRL",
            "buy_amount": buy_amount,
            "buy_delivery_method": "SWIFT",
            "context": "sep31",
        }),
    )
    .await
}

async fn firm_quotes_hold_their_amount_in_reserve_until_they_expire(db: Option<String>) {
    let w = liquidity_world(db).await;
    let (status, first) = brl_quote(&w, "600").await;
    assert_eq!(status, 201, "{first}");
    // A quote used by a transaction still holds its amount until it expires.
    let (status, created) = post(
        &w,
        "/sep31/transactions",
        Some(&w.token),
        json!({
            "amount": first["sell_amount"],
            "asset_code": "USDC",
            "funding_method": "SWIFT",
            "quote_id": first["id"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, body) = brl_quote(&w, "600").await;
    assert_error(status, &body, 400, "400 is left");
    assert!(
        body["error"].as_str().unwrap().contains("600 iso4217:BRL"),
        "{body}"
    );
    // More than the whole liquidity is refused outright.
    let (status, body) = brl_quote(&w, "1000.01").await;
    assert_error(status, &body, 400, "cannot promise 1000.01 iso4217:BRL");
    // Indicative prices promise nothing and are not limited.
    let (status, price) = get_query(
        &w,
        "/sep38/price",
        &[
            ("sell_asset", usdc_id(&w).as_str()),
            ("buy_asset", "iso4217:BRL"),
            ("buy_amount", "600"),
            ("buy_delivery_method", "SWIFT"),
            ("context", "sep31"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{price}");
    // What is left can be promised, to the last cent, and then nothing more.
    let (status, second) = brl_quote(&w, "400").await;
    assert_eq!(status, 201, "{second}");
    let (status, body) = brl_quote(&w, "0.01").await;
    assert_error(status, &body, 400, "0 is left");
    // Once the first quotes expire, their amounts can be promised again.
    let expires = chrono::DateTime::parse_from_rfc3339(second["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let wait = expires - chrono::Utc::now().timestamp() + 1;
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;
    let (status, third) = brl_quote(&w, "1000").await;
    assert_eq!(status, 201, "{third}");
    assert_eq!(dec(&third["buy_amount"]), Decimal::from(1000));
}

async fn quotes_asked_at_once_never_promise_more_than_the_liquidity(db: Option<String>) {
    let w = liquidity_world(db).await;
    // 24 quotes of 100 BRL at once against 1,000: exactly 10 are issued, whatever the
    // interleaving of their database transactions.
    let asked = (0..24).map(|_| brl_quote(&w, "100"));
    let answers = futures_util::future::join_all(asked).await;
    let issued: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    for (status, body) in &answers {
        assert!(*status == 201 || *status == 400, "{status} {body}");
        if *status == 400 {
            assert_error(*status, body, 400, "is left");
        }
    }
    assert_eq!(issued.len(), 10, "{answers:?}");
    let promised: Decimal = issued.iter().map(|q| dec(&q["buy_amount"])).sum();
    assert_eq!(promised, Decimal::from(1000));
    // Every issued quote is stored and readable by its owner.
    for q in issued {
        assert_readable_by_owner(&w, q).await;
    }
}

// ---- SEP31-21 with an indicative price ---------------------------------------------------------

async fn a_destination_asset_is_paid_at_the_price_when_the_payment_arrives(db: Option<String>) {
    let w = quote_world(db).await;
    let (status, created) = post(
        &w,
        "/sep31/transactions",
        Some(&w.token),
        json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA", "destination_asset": "iso4217:EUR"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    // Before the payment: the assets, the fee, no amount_out yet (§5.5).
    let t = w.transaction(id).await;
    assert_eq!(t["amount_in_asset"], usdc_id(&w).as_str());
    assert_eq!(t["amount_out_asset"], "iso4217:EUR");
    assert_eq!(t["amount_fee_asset"], usdc_id(&w).as_str());
    assert_eq!(t["fee_details"]["total"], "1");
    assert!(t.get("amount_out").is_none(), "{t}");
    assert!(t.get("quote_id").is_none(), "{t}");
    let memo: u64 = created["stellar_memo"].as_str().unwrap().parse().unwrap();
    w.pay(Memo::Id(memo), "100");
    // 99 USDC at 1.111: 89.10891..., never more than the price gives.
    let done = w.wait_status(id, "completed").await;
    assert_eq!(done["amount_out"], "89.1", "{done}");
    let payout = w
        .app
        .running
        .anchor
        .store
        .simulated_payout_by_key(id)
        .await
        .unwrap()
        .expect("paid");
    assert_eq!(payout.amount, "89.1");
}

// ---- SEP31-23 ------------------------------------------------------------------------------------

async fn quotes_required_refuses_a_transaction_without_one(db: Option<String>) {
    let toml = SEP38.replace(
        "max_expiry_secs = 3600\n",
        "max_expiry_secs = 3600\nquotes_required = [\"USDC\"]\n",
    );
    let w = world_with(db, "", &toml).await;
    let (_, info) = get(&w, "/sep31/info", None).await;
    assert_eq!(info["receive"]["USDC"]["quotes_required"], true);
    for extra in [json!({}), json!({"destination_asset": "iso4217:EUR"})] {
        let mut body = json!({"amount": "10", "asset_code": "USDC", "funding_method": "SEPA"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, answer) = post(&w, "/sep31/transactions", Some(&w.token), body).await;
        assert_error(status, &answer, 400, "quote_id cannot be empty");
    }
    let quote = eur_quote(&w, &w.token, "10").await;
    let (status, body) = post_with_quote(&w, &w.token, "10", quote["id"].as_str().unwrap()).await;
    assert_eq!(status, 201, "{body}");
}

// ---- the Rates integration over HTTP --------------------------------------------------------------

async fn prices_come_from_the_business_server(db: Option<String>) {
    use axum::extract::Query;
    use axum::http::HeaderMap;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// Each call's query, and whether it was signed.
    type Calls = Arc<Mutex<Vec<(HashMap<String, String>, bool)>>>;
    let seen: Calls = Arc::default();
    let recorder = seen.clone();
    let router = axum::Router::new().route(
        "/rate",
        axum::routing::get(
            move |Query(q): Query<HashMap<String, String>>, headers: HeaderMap| {
                let recorder = recorder.clone();
                async move {
                    let signed = headers
                        .get("signature")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("t=") && v.contains(", s="));
                    let buy = q.get("buy_asset").cloned().unwrap_or_default();
                    recorder.lock().unwrap().push((q, signed));
                    if buy == "iso4217:BRL" {
                        (
                            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                            axum::Json(json!({"error": "no BRL today"})),
                        )
                    } else {
                        (
                            axum::http::StatusCode::OK,
                            axum::Json(json!({"rate": {"price": "1.25"}})),
                        )
                    }
                }
            },
        ),
    );
    let business = serve(router).await;
    let toml = SEP38.replace(
        "spread_percent = \"1\"",
        &format!("rates = \"business\"\nbusiness_url = \"http://{business}\""),
    );
    let w = world_with(db, "", &toml).await;
    let usdc = usdc_id(&w);
    let (status, body) = get_query(
        &w,
        "/sep38/prices",
        &[("sell_asset", &usdc), ("sell_amount", "100")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The pair the service refuses is left out.
    assert_eq!(
        body,
        json!({"buy_assets": [{"asset": "iso4217:EUR", "price": "1.25", "decimals": 2}]})
    );
    let quote = eur_quote(&w, &w.token, "100").await;
    assert_eq!(quote["price"], "1.25");
    assert_eq!(quote["buy_amount"], "79.2");
    assert_formulas(&quote, 2);
    let (status, body) = post(
        &w,
        "/sep38/quote",
        Some(&w.token),
        json!({"sell_asset": usdc, "buy_asset": "iso4217:BRL", "sell_amount": "100", "context": "sep31"}),
    )
    .await;
    assert_error(status, &body, 400, "no BRL today");
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|(_, signed)| *signed));
    let firm = seen
        .iter()
        .find(|(q, _)| q.get("type").map(String::as_str) == Some("firm"))
        .expect("a firm rate was asked");
    assert_eq!(firm.0["sell_asset"], usdc);
    assert_eq!(firm.0["buy_asset"], "iso4217:EUR");
    assert_eq!(firm.0["sell_amount"], "100");
    assert_eq!(firm.0["context"], "sep31");
    assert_eq!(firm.0["buy_delivery_method"], "SEPA");
}

// ---- SEP38-10: quotes only for the sending anchors this anchor has an agreement with -------------

async fn quotes_are_for_sending_anchors_only(db: Option<String>) {
    let partner = Keypair::random();
    let toml = format!(
        "{SEP38}\n[sep31]\nsending_anchors = [\"{}\"]\n",
        g(&partner)
    );
    let w = world_with(db, "", &toml).await;
    // The world's own account is not on the list: no quote, though prices are public.
    let (status, body) = post(
        &w,
        "/sep38/quote",
        Some(&w.token),
        json!({"sell_asset": usdc_id(&w), "buy_asset": "iso4217:EUR", "sell_amount": "10", "buy_delivery_method": "SEPA", "context": "sep31"}),
    )
    .await;
    assert_error(status, &body, 403, "not a sending anchor");
    let (status, _) = get_query(&w, "/sep38/prices", &[("sell_asset", &usdc_id(&w))]).await;
    assert_eq!(status, 200);
    let token = w.app.token_for(&partner, None).await;
    let quote = eur_quote(&w, &token, "10").await;
    assert_eq!(quote["buy_amount"], "8.1");
}
