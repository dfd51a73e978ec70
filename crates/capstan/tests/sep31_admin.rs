//! The operator's side of SEP-31 over HTTP: the admin API for transactions (its key, list
//! and filters and paging, one transaction with its events, and the four actions:
//! request-customer-info, request-transaction-info, error, refund), the correction loops
//! they start (SEP-12 NEEDS_INFO, corrected data, back to pending_receiver; PATCH), the
//! callbacks each status change sends, and malformed input. Every test runs on SQLite, and
//! on PostgreSQL when CAPSTAN_TEST_POSTGRES_URL is set.
//!
//! The payment watcher does not exist yet, so a payment is recorded in-process through the
//! store's `transition`, as the watcher will.

mod common;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use capstan::sep31::status::Status;
use common::callbacks::{Delivery, Recorder, verified};
use common::{ADMIN_KEY, AppOptions, TestApp, admin_toml, json_of};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use stellar::Keypair;
use tokio::net::TcpListener;

// ---- one test, two databases ---------------------------------------------------------------

/// The database a test runs on; a SQLite file lives in a directory the test holds, so the
/// test can open it too.
struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
        Db {
            url,
            _dir: Some(dir),
        }
    }

    /// Runs one statement, as another process sharing the database would.
    async fn execute(&self, sql: String) {
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// `<body>_sqlite` and `<body>_postgres` tests running `body(Db)`.
macro_rules! on_both_databases {
    ($($body:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test]
        async fn $sqlite() {
            $body(Db::sqlite()).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let Some(url) = common::postgres_url(stringify!($postgres)).await else {
                return;
            };
            $body(Db { url, _dir: None }).await;
        }
    )*};
}

on_both_databases! {
    transactions_api_needs_the_key
        => transactions_api_needs_the_key_sqlite, transactions_api_needs_the_key_postgres;
    list_filters_and_pages
        => list_filters_and_pages_sqlite, list_filters_and_pages_postgres;
    show_holds_everything_and_the_events
        => show_holds_everything_and_the_events_sqlite, show_holds_everything_and_the_events_postgres;
    customer_correction_loop_end_to_end
        => customer_correction_loop_end_to_end_sqlite, customer_correction_loop_end_to_end_postgres;
    correction_waits_for_manual_review
        => correction_waits_for_manual_review_sqlite, correction_waits_for_manual_review_postgres;
    periodic_recheck_resumes_a_waiting_transaction
        => periodic_recheck_resumes_a_waiting_transaction_sqlite, periodic_recheck_resumes_a_waiting_transaction_postgres;
    request_customer_info_is_checked_first
        => request_customer_info_is_checked_first_sqlite, request_customer_info_is_checked_first_postgres;
    transaction_info_round_trip
        => transaction_info_round_trip_sqlite, transaction_info_round_trip_postgres;
    error_finishes_a_transaction
        => error_finishes_a_transaction_sqlite, error_finishes_a_transaction_postgres;
    refunds_partial_then_full
        => refunds_partial_then_full_sqlite, refunds_partial_then_full_postgres;
    malformed_requests_get_4xx_json
        => malformed_requests_get_4xx_json_sqlite, malformed_requests_get_4xx_json_postgres;
    business_server_customers
        => business_server_customers_sqlite, business_server_customers_postgres;
}

// ---- the anchor and its clients -----------------------------------------------------------------

async fn spawn(db: &Db, toml: &str) -> TestApp {
    TestApp::spawn_with(AppOptions {
        toml: format!("{}{toml}", admin_toml()),
        database_url: Some(db.url.clone()),
        ..AppOptions::default()
    })
    .await
}

const MANUAL: &str = "[kyc]\nreview = \"manual\"\n";
/// A deprecated per-transaction field for the demo asset.
const PURPOSE: &str = "[sep31.assets.USDC.fields.purpose]\n\
     description = \"why the money is sent\"\noptional = true\n";

/// A sending anchor: a SEP-10 token of a whole `G...` account, which files its senders and
/// receivers under memos and creates transactions.
struct SendingAnchor<'a> {
    app: &'a TestApp,
    key: Keypair,
    token: String,
}

impl<'a> SendingAnchor<'a> {
    async fn login(app: &'a TestApp) -> SendingAnchor<'a> {
        let key = Keypair::random();
        let token = app.token_for(&key, None).await;
        SendingAnchor { app, key, token }
    }

    fn account(&self) -> String {
        self.key.public_key().to_string()
    }

    async fn request(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.unwrap()).await
    }

    async fn kyc_get(&self, query: &[(&str, &str)]) -> Value {
        let response = self
            .app
            .http
            .get(format!("{}/customer", self.app.kyc_url()))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "GET /customer {query:?}: {body}");
        body
    }

    async fn kyc_put(&self, body: Value) -> String {
        let (status, put) = self.request(Method::PUT, "/kyc/customer", Some(body)).await;
        assert_eq!(status, 202, "{put}");
        put["id"].as_str().unwrap().to_owned()
    }

    /// A sender (memo 1) and a receiver (memo 2), ACCEPTED (by the operator, when review
    /// is manual); returns their ids.
    async fn customers(&self) -> (String, String) {
        let sender = self
            .kyc_put(json!({
                "memo": "1",
                "type": "sep31-sender",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email_address": "ada@example.com",
            }))
            .await;
        let receiver = self
            .kyc_put(json!({
                "memo": "2",
                "type": "sep31-receiver",
                "first_name": "Grace",
                "last_name": "Hopper",
                "email_address": "grace@example.com",
                "bank_account_number": "000123456789",
                "bank_number": "021000021",
            }))
            .await;
        for (id, kind) in [(&sender, "sep31-sender"), (&receiver, "sep31-receiver")] {
            if self.kyc_get(&[("id", id), ("type", kind)]).await["status"] != "ACCEPTED" {
                let path = format!("/admin/customers/{id}/accept");
                let (status, body) = admin_post(self.app, &path, json!({})).await;
                assert_eq!(status, 200, "{body}");
            }
            let seen = self.kyc_get(&[("id", id), ("type", kind)]).await;
            assert_eq!(seen["status"], "ACCEPTED", "{seen}");
        }
        (sender, receiver)
    }

    /// `POST /sep31/transactions` of 100 USDC by SEPA, with `extra` members added.
    async fn create(&self, sender: &str, receiver: &str, extra: Value) -> String {
        let mut body = json!({
            "amount": "100",
            "asset_code": "USDC",
            "funding_method": "SEPA",
            "sender_id": sender,
            "receiver_id": receiver,
        });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, created) = self
            .request(Method::POST, "/sep31/transactions", Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// `GET /sep31/transactions/{id}`: the whole `{"transaction": {...}}` body.
    async fn transaction(&self, id: &str) -> Value {
        let (status, body) = self
            .request(Method::GET, &format!("/sep31/transactions/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn status_of(&self, id: &str) -> String {
        self.transaction(id).await["transaction"]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn patch(&self, id: &str, body: Value) -> (u16, Value) {
        self.request(
            Method::PATCH,
            &format!("/sep31/transactions/{id}"),
            Some(body),
        )
        .await
    }

    async fn register_callback(&self, id: &str, url: &str) {
        let response = self
            .app
            .http
            .put(format!("{}/sep31/transactions/{id}/callback", self.app.url))
            .bearer_auth(&self.token)
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    }
}

/// The sending anchor's Stellar payment, matched: what the payment watcher will do.
async fn pay(app: &TestApp, id: &str) {
    app.running
        .anchor
        .store
        .transition(
            id,
            Status::PendingReceiver,
            "test",
            Some("payment"),
            |t| {
                t.paid = true;
                t.stellar_transaction_id = Some("ab".repeat(32));
            },
            |t| capstan::sep31::transactions::transaction_body(t).to_string(),
        )
        .await
        .expect("the payment is recorded");
    app.running.anchor.outbox_wake.notify_one();
}

// ---- the admin API ----------------------------------------------------------------------------

async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}{path}", app.admin_url()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn admin_list(app: &TestApp, query: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}/admin/transactions", app.admin_url()))
        .bearer_auth(ADMIN_KEY)
        .query(query)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.admin_url()))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

/// Any request, with the key; `path_and_query` is sent as written (percent escapes and all).
async fn admin_raw(
    app: &TestApp,
    method: Method,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path_and_query}", app.admin_url()))
        .bearer_auth(ADMIN_KEY);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    json_of(request.body(body).send().await.unwrap()).await
}

async fn show(app: &TestApp, id: &str) -> Value {
    let (status, body) = admin_get(app, &format!("/admin/transactions/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn act(app: &TestApp, id: &str, action: &str, body: Value) -> Value {
    let path = format!("/admin/transactions/{id}/{action}");
    let (status, answer) = admin_post(app, &path, body.clone()).await;
    assert_eq!(status, 200, "{action} {body}: {answer}");
    answer
}

/// The action is refused with 400, its message naming each of `names`, and the transaction
/// is exactly as it was.
async fn refused(app: &TestApp, id: &str, action: &str, body: Value, names: &[&str]) {
    let before = show(app, id).await;
    let path = format!("/admin/transactions/{id}/{action}");
    let (status, answer) = admin_post(app, &path, body.clone()).await;
    assert_eq!(status, 400, "{action} {body}: {answer}");
    let error = error_of(&answer);
    for name in names {
        assert!(
            error.contains(name),
            "{action} {body}: {error:?} names {name}"
        );
    }
    assert_eq!(
        show(app, id).await,
        before,
        "a refused {action} {body} changes nothing"
    );
}

fn ids_of(list: &Value) -> Vec<String> {
    list["transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("a transaction list: {list}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error body: {body}"))
}

/// The (to, actor, reason) of each event, oldest first.
fn events_of(detail: &Value) -> Vec<(String, String, String)> {
    detail["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events: {detail}"))
        .iter()
        .map(|e| {
            (
                e["to"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn event(to: &str, actor: &str, reason: &str) -> (String, String, String) {
    (to.to_owned(), actor.to_owned(), reason.to_owned())
}

/// Every member of the SEP-31 body is in the operator's view with the same value.
fn assert_includes(detail: &Value, sep31: &Value) {
    for (key, value) in sep31["transaction"].as_object().unwrap() {
        assert_eq!(&detail[key], value, "{key} in {detail}");
    }
}

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---- a sending anchor's callback endpoint ---------------------------------------------------------

/// How long a test waits for a callback.
const WITHIN: Duration = Duration::from_secs(10);

/// The status a callback reports.
fn callback_status(delivery: &Delivery) -> String {
    delivery.json()["transaction"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every callback so far, once the last one reports `status`.
async fn wait_until(wallet: &Recorder, status: &str) -> Vec<Delivery> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let got = wallet.all();
        if got.last().is_some_and(|d| callback_status(d) == status) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "expected a callback reporting {status}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- the key -----------------------------------------------------------------------------------------

async fn transactions_api_needs_the_key(db: Db) {
    let app = spawn(&db, "").await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    pay(&app, &id).await;
    let before = show(&app, &id).await;

    let requests = [
        (Method::GET, "/admin/transactions".to_owned(), json!(null)),
        (
            Method::GET,
            format!("/admin/transactions/{id}"),
            json!(null),
        ),
        (
            Method::POST,
            format!("/admin/transactions/{id}/request-customer-info"),
            json!({"sender_fields": {"email_address": "bounces"}}),
        ),
        (
            Method::POST,
            format!("/admin/transactions/{id}/request-transaction-info"),
            json!({"fields": {"purpose": {"description": "why"}}}),
        ),
        (
            Method::POST,
            format!("/admin/transactions/{id}/error"),
            json!({"message": "stop"}),
        ),
        (
            Method::POST,
            format!("/admin/transactions/{id}/refund"),
            json!({"payments": [{"id": "cd".repeat(32), "amount": "100"}]}),
        ),
    ];
    let wrong = [
        None,
        Some("Bearer not-the-key-0123456789".to_owned()),
        Some(format!("Bearer {ADMIN_KEY}x")),
        Some(format!("Basic {ADMIN_KEY}")),
        Some(ADMIN_KEY.to_owned()),
        // The sending anchor's SEP-10 token is no operator credential.
        Some(format!("Bearer {}", anchor.token)),
    ];
    for (method, path, body) in &requests {
        for header in &wrong {
            let mut request = app
                .http
                .request(method.clone(), format!("{}{path}", app.admin_url()))
                .json(body);
            if let Some(header) = header {
                request = request.header("authorization", header);
            }
            let (status, answer) = json_of(request.send().await.unwrap()).await;
            assert_eq!(status, 401, "{method} {path} with {header:?}: {answer}");
            assert!(answer["error"].is_string(), "{answer}");
        }
        // The public port serves no operator endpoint, whatever the key.
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.url))
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path} on the public port");
    }
    assert_eq!(show(&app, &id).await, before, "no refused request acted");
    assert_eq!(anchor.status_of(&id).await, "pending_receiver");
}

// ---- list -----------------------------------------------------------------------------------------

/// USDC and EURC, each from its own issuer.
fn two_assets() -> String {
    let key = || Keypair::random().public_key().to_string();
    format!(
        "[[assets]]\ncode = \"USDC\"\nissuer = \"{}\"\ndistribution_account = \"{}\"\n\
         [[assets]]\ncode = \"EURC\"\nissuer = \"{}\"\ndistribution_account = \"{}\"\n",
        key(),
        key(),
        key(),
        key()
    )
}

/// Every page of the list with `filters`, `limit` at a time, each page starting after the
/// last transaction of the one before; returns the ids in order and the number of pages.
async fn all_pages(app: &TestApp, filters: &[(&str, &str)], limit: usize) -> (Vec<String>, usize) {
    let limit_text = limit.to_string();
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut after: Option<(String, String)> = None;
    loop {
        let mut query: Vec<(&str, &str)> = filters.to_vec();
        query.push(("limit", limit_text.as_str()));
        if let Some((at, id)) = &after {
            query.push(("before", at.as_str()));
            query.push(("before_id", id.as_str()));
        }
        let (status, page) = admin_list(app, &query).await;
        assert_eq!(status, 200, "{query:?}: {page}");
        let page = page["transactions"].as_array().unwrap().clone();
        assert!(page.len() <= limit, "{page:?}");
        let Some(last) = page.last() else {
            return (ids, pages);
        };
        pages += 1;
        assert!(pages < 50, "paging never ends: {ids:?}");
        ids.extend(page.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        after = Some((
            last["started_at_unix"].to_string(),
            last["id"].as_str().unwrap().to_owned(),
        ));
    }
}

async fn list_filters_and_pages(db: Db) {
    let app = spawn(&db, &two_assets()).await;
    let a = SendingAnchor::login(&app).await;
    let b = SendingAnchor::login(&app).await;
    let (a_sender, a_receiver) = a.customers().await;
    let (b_sender, b_receiver) = b.customers().await;
    let a1 = a.create(&a_sender, &a_receiver, json!({})).await;
    let a2 = a.create(&a_sender, &a_receiver, json!({})).await;
    let a3 = a.create(&a_sender, &a_receiver, json!({})).await;
    let ae = a
        .create(&a_sender, &a_receiver, json!({"asset_code": "EURC"}))
        .await;
    let b1 = b.create(&b_sender, &b_receiver, json!({})).await;
    let b2 = b.create(&b_sender, &b_receiver, json!({})).await;
    pay(&app, &a1).await;
    act(&app, &b1, "error", json!({"message": "duplicate"})).await;

    // Start times apart, three of them in the same second.
    const T: i64 = 1_600_000_000;
    for (id, at) in [
        (&a1, T),
        (&a2, T + 100),
        (&a3, T + 100),
        (&ae, T + 100),
        (&b1, T + 200),
        (&b2, T + 300),
    ] {
        db.execute(format!(
            "UPDATE transactions SET started_at = {at} WHERE id = '{id}'"
        ))
        .await;
    }
    let mut same_second = [a2.clone(), a3.clone(), ae.clone()];
    same_second.sort();
    same_second.reverse();
    let mut newest_first = vec![b2.clone(), b1.clone()];
    newest_first.extend(same_second.iter().cloned());
    newest_first.push(a1.clone());

    let (status, all) = admin_list(&app, &[]).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids_of(&all), newest_first, "newest first, then by id");

    // Each item: the SEP-31 fields, plus who sent it, the asset and the start in seconds.
    let item = all["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == a1.as_str())
        .unwrap();
    assert_includes(item, &a.transaction(&a1).await);
    assert_eq!(item["status"], "pending_receiver");
    assert_eq!(item["sending_anchor"], a.account().as_str());
    assert_eq!(item["asset_code"], "USDC");
    assert_eq!(item["started_at_unix"], T);
    assert_eq!(item["started_at"], "2020-09-13T12:26:40Z");
    assert_eq!(item["amount_in"], "100");
    let eurc = all["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == ae.as_str())
        .unwrap();
    assert_eq!(eurc["asset_code"], "EURC");
    assert!(
        eurc["fee_details"]["asset"]
            .as_str()
            .unwrap()
            .starts_with("stellar:EURC:"),
        "{eurc}"
    );

    let anchor_a = a.account();
    let anchor_b = b.account();
    let from = (T + 100).to_string();
    let until = (T + 200).to_string();
    let just_before = (T + 99).to_string();
    let offset = chrono::DateTime::from_timestamp(T + 100, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    assert_eq!(offset, "2020-09-13T14:28:20+02:00");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a String>);
    let cases: Vec<Case> = vec![
        (vec![("status", "pending_receiver")], vec![&a1]),
        (vec![("status", "error")], vec![&b1]),
        (
            vec![("status", "pending_sender")],
            vec![&b2, &same_second[0], &same_second[1], &same_second[2]],
        ),
        (vec![("status", "completed")], vec![]),
        (vec![("asset_code", "EURC")], vec![&ae]),
        (vec![("asset_code", "XLM")], vec![]),
        (vec![("sending_anchor", anchor_b.as_str())], vec![&b2, &b1]),
        (
            vec![
                ("sending_anchor", anchor_a.as_str()),
                ("asset_code", "USDC"),
                ("status", "pending_sender"),
            ],
            same_second.iter().filter(|id| **id != ae).collect(),
        ),
        (vec![("sending_anchor", "GDOESNOTEXIST")], vec![]),
        // Bounds are inclusive, as unix seconds or ISO 8601 in any offset.
        (
            vec![("from", from.as_str())],
            newest_first.iter().take(5).collect(),
        ),
        (
            vec![("from", from.as_str()), ("until", until.as_str())],
            newest_first[1..5].iter().collect(),
        ),
        (
            vec![
                ("from", "2020-09-13T12:28:20Z"),
                ("until", "2020-09-13T12:30:00Z"),
            ],
            newest_first[1..5].iter().collect(),
        ),
        (
            vec![("until", offset.as_str())],
            newest_first[2..].iter().collect(),
        ),
        (vec![("until", just_before.as_str())], vec![&a1]),
        (vec![("from", "2020-09-14T00:00:00Z")], vec![]),
        // Empty values are no filter.
        (
            vec![
                ("status", ""),
                ("asset_code", ""),
                ("sending_anchor", ""),
                ("from", ""),
                ("until", ""),
            ],
            newest_first.iter().collect(),
        ),
        // Without before_id, before keeps every transaction of its own second.
        (
            vec![("before", from.as_str())],
            newest_first[2..].iter().collect(),
        ),
        (
            vec![("before", "2020-09-13T12:28:20Z")],
            newest_first[2..].iter().collect(),
        ),
        (
            vec![
                ("before", from.as_str()),
                ("before_id", same_second[1].as_str()),
            ],
            vec![&same_second[2], &a1],
        ),
        (vec![("limit", "2")], newest_first[..2].iter().collect()),
        (vec![("limit", "0")], newest_first[..1].iter().collect()),
        (vec![("limit", "-5")], newest_first[..1].iter().collect()),
        (vec![("limit", "100000")], newest_first.iter().collect()),
    ];
    for (query, expected) in cases {
        let (status, list) = admin_list(&app, &query).await;
        assert_eq!(status, 200, "{query:?}: {list}");
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids_of(&list), expected, "{query:?}");
    }

    // Paging reaches every transaction exactly once, in order, whatever the page size, and
    // even through a second three transactions share.
    for limit in [1, 2, 4, 6] {
        let (ids, pages) = all_pages(&app, &[], limit).await;
        assert_eq!(ids, newest_first, "limit {limit}");
        assert_eq!(pages, newest_first.len().div_ceil(limit), "limit {limit}");
    }
    let (ids, _) = all_pages(&app, &[("sending_anchor", anchor_a.as_str())], 1).await;
    assert_eq!(ids, newest_first[2..].to_vec(), "filters hold across pages");

    // Transactions created in the same second page apart too (no changed start times).
    let c1 = b.create(&b_sender, &b_receiver, json!({})).await;
    let c2 = b.create(&b_sender, &b_receiver, json!({})).await;
    let c3 = b.create(&b_sender, &b_receiver, json!({})).await;
    let (ids, _) = all_pages(&app, &[("sending_anchor", anchor_b.as_str())], 1).await;
    let mut fresh = ids[..3].to_vec();
    fresh.sort();
    let mut created = vec![c1, c2, c3];
    created.sort();
    assert_eq!(fresh, created, "{ids:?}");
    assert_eq!(ids[3..].to_vec(), vec![b2.clone(), b1.clone()]);

    // Bad values are refused, not ignored.
    for bad in [
        "status=bogus",
        "status=PENDING_SENDER",
        "status=pending",
        "limit=many",
        "limit=1.5",
        "limit=99999999999999999999",
        "from=yesterday",
        "from=2026-13-01T00:00:00Z",
        "until=31%2F01%2F2026",
        "until=1.5",
        "before=soon",
        "before_id=abc",
        "asset_code=US%00DC",
        "sending_anchor=%00",
        "before=1&before_id=a%00b",
        "status=%FF",
        "from=%00",
        "status=error&status=completed",
        "limit=1&limit=2",
    ] {
        let (status, body) = admin_raw(
            &app,
            Method::GET,
            &format!("/admin/transactions?{bad}"),
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        error_of(&body);
    }
}

// ---- show ----------------------------------------------------------------------------------------

async fn show_holds_everything_and_the_events(db: Db) {
    let app = spawn(&db, PURPOSE).await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor
        .create(
            &sender,
            &receiver,
            json!({
                "refund_memo": "42",
                "refund_memo_type": "id",
                "fields": {"transaction": {"purpose": "gift"}},
            }),
        )
        .await;

    let detail = show(&app, &id).await;
    let sep31 = anchor.transaction(&id).await;
    assert_includes(&detail, &sep31);
    assert_eq!(detail["status"], "pending_sender");
    assert_eq!(detail["sending_anchor"], anchor.account().as_str());
    assert_eq!(detail["asset_code"], "USDC");
    assert_eq!(detail["funding_method"], "SEPA");
    assert_eq!(detail["sender_id"], sender.as_str());
    assert_eq!(detail["receiver_id"], receiver.as_str());
    assert_eq!(detail["refund_memo"], "42");
    assert_eq!(detail["refund_memo_type"], "id");
    assert_eq!(detail["fields"], json!({"purpose": "gift"}));
    assert_eq!(detail["paid"], false);
    assert_eq!(detail["callback_url"], Value::Null);
    let started = detail["started_at_unix"].as_i64().unwrap();
    assert_eq!(detail["started_at"], iso(started).as_str());
    assert_eq!(
        detail["expires_at"],
        iso(started + 86_400).as_str(),
        "payment_timeout_secs after the start"
    );
    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{detail}");
    assert_eq!(
        events[0],
        json!({
            "from": null,
            "to": "pending_sender",
            "actor": format!("sending_anchor:{}", anchor.account()),
            "reason": "created",
            "at": iso(started),
        })
    );

    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    anchor.register_callback(&id, &url).await;
    pay(&app, &id).await;
    let detail = show(&app, &id).await;
    assert_includes(&detail, &anchor.transaction(&id).await);
    assert_eq!(detail["callback_url"], url.as_str());
    assert_eq!(detail["paid"], true);
    assert_eq!(detail["status"], "pending_receiver");
    assert_eq!(detail["stellar_transaction_id"], "ab".repeat(32).as_str());
    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{detail}");
    assert_eq!(events[1]["from"], "pending_sender");
    assert_eq!(events[1]["to"], "pending_receiver");
    assert_eq!(events[1]["actor"], "test");
    assert_eq!(events[1]["reason"], "payment");
    assert_eq!(events[1]["at"], detail["updated_at"]);
    let got = wallet.wait_for(1, WITHIN).await;
    assert_eq!(got[0].json(), anchor.transaction(&id).await);

    // The operator sees every sending anchor's transactions; unknown ids are 404.
    let other = SendingAnchor::login(&app).await;
    let (other_sender, other_receiver) = other.customers().await;
    let theirs = other
        .create(&other_sender, &other_receiver, json!({}))
        .await;
    assert_eq!(
        show(&app, &theirs).await["sending_anchor"],
        other.account().as_str()
    );
    for unknown in [
        "no-such-transaction",
        "00000000-0000-0000-0000-000000000000",
    ] {
        let (status, body) = admin_get(&app, &format!("/admin/transactions/{unknown}")).await;
        assert_eq!(status, 404, "{body}");
        error_of(&body);
    }
}

// ---- request-customer-info: the whole correction loop ------------------------------------------

async fn customer_correction_loop_end_to_end(db: Db) {
    let app = spawn(&db, "").await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    anchor.register_callback(&id, &url).await;
    let signer = app.server_key.public_key();

    pay(&app, &id).await;
    let got = wallet.wait_for(1, WITHIN).await;
    assert_eq!(callback_status(&got[0]), "pending_receiver");
    assert_eq!(got[0].json(), anchor.transaction(&id).await);

    // The operator asks for two corrections, one on each customer.
    let answer = act(
        &app,
        &id,
        "request-customer-info",
        json!({
            "message": "please correct the sender's email and the receiver's bank",
            "sender_fields": {"email_address": "mail to this address bounces"},
            "receiver_fields": {"bank_number": "no bank has this number"},
        }),
    )
    .await;
    assert_eq!(answer["status"], "pending_customer_info_update");
    assert_eq!(
        answer["status_message"],
        "please correct the sender's email and the receiver's bank"
    );
    assert_eq!(
        answer,
        show(&app, &id).await,
        "the answer is the new detail"
    );
    let last = answer["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["from"], "pending_receiver");
    assert_eq!(last["to"], "pending_customer_info_update");
    assert_eq!(last["actor"], "operator");
    assert_eq!(last["reason"], "customer information requested");
    let sep31 = anchor.transaction(&id).await;
    assert_eq!(
        sep31["transaction"]["status"],
        "pending_customer_info_update"
    );
    assert_eq!(
        sep31["transaction"]["status_message"],
        "please correct the sender's email and the receiver's bank"
    );
    let got = wallet.wait_for(2, WITHIN).await;
    assert_eq!(got[1].json(), sep31);

    // SEP-12 names the fields to correct, by customer id and through the transaction.
    let by_id = anchor
        .kyc_get(&[("id", &sender), ("type", "sep31-sender")])
        .await;
    assert_eq!(by_id["status"], "NEEDS_INFO", "{by_id}");
    assert_eq!(by_id["id"], sender.as_str());
    assert_eq!(
        by_id["fields"]["email_address"]["optional"], false,
        "{by_id}"
    );
    let email = &by_id["provided_fields"]["email_address"];
    assert_eq!(email["status"], "REJECTED", "{by_id}");
    assert_eq!(email["error"], "mail to this address bounces");
    assert_eq!(by_id["provided_fields"]["first_name"]["status"], "ACCEPTED");
    let via_transaction = anchor
        .kyc_get(&[("transaction_id", &id), ("type", "sep31-sender")])
        .await;
    assert_eq!(via_transaction, by_id);
    let receiver_seen = anchor
        .kyc_get(&[("transaction_id", &id), ("type", "sep31-receiver")])
        .await;
    assert_eq!(receiver_seen["status"], "NEEDS_INFO", "{receiver_seen}");
    assert_eq!(receiver_seen["id"], receiver.as_str());
    assert!(
        receiver_seen["fields"]["bank_number"].is_object(),
        "{receiver_seen}"
    );
    assert_eq!(
        receiver_seen["provided_fields"]["bank_number"]["error"],
        "no bank has this number"
    );
    assert_eq!(
        receiver_seen["provided_fields"]["bank_account_number"]["status"],
        "ACCEPTED"
    );

    // The sender is corrected first: the receiver still waits, so the transaction does.
    let put = anchor
        .kyc_put(json!({"id": sender, "type": "sep31-sender", "email_address": "ada@example.org"}))
        .await;
    assert_eq!(put, sender);
    let seen = anchor
        .kyc_get(&[("id", &sender), ("type", "sep31-sender")])
        .await;
    assert_eq!(seen["status"], "ACCEPTED", "{seen}");
    assert_eq!(anchor.status_of(&id).await, "pending_customer_info_update");
    wallet.stays_at(2, Duration::from_millis(1500)).await;

    // Then the receiver, through the transaction: it resumes at once.
    let put = anchor
        .kyc_put(json!({
            "transaction_id": id,
            "type": "sep31-receiver",
            "bank_number": "121000358",
        }))
        .await;
    assert_eq!(put, receiver, "the transaction's receiver was updated");
    let sep31 = anchor.transaction(&id).await;
    assert_eq!(
        sep31["transaction"]["status"], "pending_receiver",
        "{sep31}"
    );
    assert!(
        sep31["transaction"].get("status_message").is_none(),
        "the request's message is gone: {sep31}"
    );
    let detail = show(&app, &id).await;
    assert_eq!(
        events_of(&detail),
        vec![
            event(
                "pending_sender",
                &format!("sending_anchor:{}", anchor.account()),
                "created"
            ),
            event("pending_receiver", "test", "payment"),
            event(
                "pending_customer_info_update",
                "operator",
                "customer information requested"
            ),
            event(
                "pending_receiver",
                "kyc",
                "the customers' information was updated and accepted"
            ),
        ]
    );
    let got = wallet.wait_for(3, WITHIN).await;
    assert_eq!(got[2].json(), sep31);

    // Finished with a refund: the sending anchor hears that too.
    let payment = "ef".repeat(32);
    act(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": payment, "amount": "100"}]}),
    )
    .await;
    let got = wallet.wait_for(4, WITHIN).await;
    assert_eq!(got[3].json(), anchor.transaction(&id).await);
    let statuses: Vec<String> = got.iter().map(callback_status).collect();
    assert_eq!(
        statuses,
        [
            "pending_receiver",
            "pending_customer_info_update",
            "pending_receiver",
            "refunded"
        ]
    );
    for delivery in &got {
        verified(delivery, &signer, &url);
    }
    wallet.stays_at(4, Duration::from_millis(1000)).await;
}

async fn correction_waits_for_manual_review(db: Db) {
    let app = spawn(&db, MANUAL).await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    pay(&app, &id).await;
    let answer = act(
        &app,
        &id,
        "request-customer-info",
        json!({"receiver_fields": {"last_name": "does not match the account holder"}}),
    )
    .await;
    assert_eq!(
        answer["status_message"], "the sender's or receiver's KYC information must be updated",
        "a default message"
    );

    // A correction waits for the operator's review, and so does the transaction.
    anchor
        .kyc_put(json!({"id": receiver, "type": "sep31-receiver", "last_name": "Hopper-Smith"}))
        .await;
    let seen = anchor
        .kyc_get(&[("id", &receiver), ("type", "sep31-receiver")])
        .await;
    assert_eq!(seen["status"], "PROCESSING", "{seen}");
    assert_eq!(anchor.status_of(&id).await, "pending_customer_info_update");

    let (status, body) = admin_post(
        &app,
        &format!("/admin/customers/{receiver}/accept"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(anchor.status_of(&id).await, "pending_receiver");
    let detail = show(&app, &id).await;
    assert_eq!(
        events_of(&detail).last().unwrap(),
        &event(
            "pending_receiver",
            "kyc",
            "the customers' information was updated and accepted"
        )
    );
}

async fn periodic_recheck_resumes_a_waiting_transaction(db: Db) {
    let app = spawn(&db, "").await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    pay(&app, &id).await;
    act(
        &app,
        &id,
        "request-customer-info",
        json!({"sender_fields": {"email_address": "bounces"}}),
    )
    .await;

    // The field is accepted by another tool, straight in the database: no request tells
    // capstan, and the periodic check finds it.
    db.execute(format!(
        "UPDATE customer_fields SET status = 'ACCEPTED', error = NULL WHERE customer_id = '{sender}'"
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(25);
    while anchor.status_of(&id).await != "pending_receiver" {
        assert!(
            Instant::now() < deadline,
            "the periodic check resumes the transaction"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let detail = show(&app, &id).await;
    assert_eq!(
        events_of(&detail).last().unwrap(),
        &event(
            "pending_receiver",
            "kyc",
            "the customers' information was updated and accepted"
        )
    );
    assert_eq!(detail["status_message"], Value::Null);
}

async fn assert_accepted(anchor: &SendingAnchor<'_>, customer: &str, kind: &str) {
    let seen = anchor.kyc_get(&[("id", customer), ("type", kind)]).await;
    assert_eq!(
        seen["status"], "ACCEPTED",
        "{kind} {customer} is untouched: {seen}"
    );
}

async fn request_customer_info_is_checked_first(db: Db) {
    let app = spawn(&db, "").await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    let good = json!({"sender_fields": {"email_address": "bounces"}});

    // Before the payment there is nothing to correct.
    refused(
        &app,
        &id,
        "request-customer-info",
        good.clone(),
        &["pending_sender", "pending_customer_info_update"],
    )
    .await;
    assert_accepted(&anchor, &sender, "sep31-sender").await;

    pay(&app, &id).await;
    for bad in [
        json!({}),
        json!({"message": "fix it"}),
        json!({"sender_fields": null}),
        // Empty maps name nothing to correct either.
        json!({"sender_fields": {}}),
        json!({"sender_fields": {}, "receiver_fields": {}}),
        json!({"sender_fields": "email_address"}),
        json!({"sender_fields": ["email_address"]}),
        json!({"sender_fields": {"favourite_colour": "blue"}}),
        json!({"sender_fields": {"email_address": ""}}),
        json!({"sender_fields": {"email_address": "   "}}),
        json!({"sender_fields": {"email_address": 5}}),
        json!({"sender_fields": {"email_address": null}}),
        json!({"sender_fields": {"email_address": "a\u{0}b"}}),
        json!({"sender_fields": {"email\u{0}": "x"}}),
        json!({"message": 5, "sender_fields": {"email_address": "bounces"}}),
        json!({"message": "a\u{0}b", "sender_fields": {"email_address": "bounces"}}),
        // One bad map refuses the other too.
        json!({"sender_fields": {"email_address": "bounces"}, "receiver_fields": {"nope": "x"}}),
        json!([]),
        json!("sender_fields"),
        json!(null),
    ] {
        refused(&app, &id, "request-customer-info", bad, &[]).await;
    }
    assert_accepted(&anchor, &sender, "sep31-sender").await;
    assert_accepted(&anchor, &receiver, "sep31-receiver").await;
    assert_eq!(anchor.status_of(&id).await, "pending_receiver");

    // A field the type does not list can be asked for too.
    act(
        &app,
        &id,
        "request-customer-info",
        json!({"receiver_fields": {"id_number": "needed for this amount"}}),
    )
    .await;
    let seen = anchor
        .kyc_get(&[("transaction_id", &id), ("type", "sep31-receiver")])
        .await;
    assert_eq!(seen["status"], "NEEDS_INFO", "{seen}");
    assert_eq!(seen["fields"]["id_number"]["optional"], false, "{seen}");
    assert_accepted(&anchor, &sender, "sep31-sender").await;

    // Asked once, not twice; the second request touches no customer.
    refused(
        &app,
        &id,
        "request-customer-info",
        json!({"sender_fields": {"first_name": "misspelt"}}),
        &["pending_customer_info_update"],
    )
    .await;
    assert_accepted(&anchor, &sender, "sep31-sender").await;

    // The receiver sends it: the transaction resumes.
    anchor
        .kyc_put(json!({"id": receiver, "type": "sep31-receiver", "id_number": "X1234567"}))
        .await;
    assert_eq!(anchor.status_of(&id).await, "pending_receiver");
}

// ---- request-transaction-info and PATCH ------------------------------------------------------------

async fn transaction_info_round_trip(db: Db) {
    let app = spawn(&db, PURPOSE).await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor
        .create(
            &sender,
            &receiver,
            json!({"fields": {"transaction": {"purpose": "gift"}}}),
        )
        .await;
    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    anchor.register_callback(&id, &url).await;
    let good = json!({
        "message": "tell us more",
        "fields": {
            "purpose": {"description": "why the money is sent", "choices": ["gift", "salary"]},
            "invoice": {"description": "the invoice number", "optional": true},
        },
    });

    refused(
        &app,
        &id,
        "request-transaction-info",
        good.clone(),
        &["pending_sender", "pending_transaction_info_update"],
    )
    .await;
    pay(&app, &id).await;
    for bad in [
        json!({}),
        json!({"message": "tell us more"}),
        json!({"fields": {}}),
        json!({"fields": []}),
        json!({"fields": "purpose"}),
        json!({"fields": {"purpose": {}}}),
        json!({"fields": {"purpose": "why"}}),
        json!({"fields": {"purpose": {"description": ""}}}),
        json!({"fields": {"purpose": {"description": "  "}}}),
        json!({"fields": {"purpose": {"description": 5}}}),
        json!({"fields": {"purpose": {"description": "a\u{0}"}}}),
        json!({"fields": {"pur\u{0}pose": {"description": "why"}}}),
        json!({"fields": {"purpose": {"description": "why", "optional": "yes"}}}),
        json!({"fields": {"purpose": {"description": "why", "choices": "gift"}}}),
        json!({"fields": {"purpose": {"description": "why", "choices": [1, 2]}}}),
        json!({"fields": {"purpose": {"description": "why", "choices": []}}}),
        json!({"message": ["x"], "fields": {"purpose": {"description": "why"}}}),
        json!([{"fields": {}}]),
    ] {
        refused(&app, &id, "request-transaction-info", bad, &[]).await;
    }

    let answer = act(&app, &id, "request-transaction-info", good.clone()).await;
    assert_eq!(answer["status"], "pending_transaction_info_update");
    let expected = json!({
        "transaction": {
            "purpose": {"description": "why the money is sent", "choices": ["gift", "salary"]},
            "invoice": {"description": "the invoice number", "optional": true},
        }
    });
    assert_eq!(answer["required_info_updates"], expected);
    assert_eq!(answer["required_info_message"], "tell us more");
    let sep31 = anchor.transaction(&id).await;
    assert_eq!(sep31["transaction"]["required_info_updates"], expected);
    assert_eq!(
        sep31["transaction"]["required_info_message"],
        "tell us more"
    );
    assert_eq!(
        events_of(&answer).last().unwrap(),
        &event(
            "pending_transaction_info_update",
            "operator",
            "transaction information requested"
        )
    );
    refused(
        &app,
        &id,
        "request-transaction-info",
        good.clone(),
        &["pending_transaction_info_update"],
    )
    .await;
    refused(
        &app,
        &id,
        "request-customer-info",
        json!({"sender_fields": {"email_address": "bounces"}}),
        &[
            "pending_transaction_info_update",
            "pending_customer_info_update",
        ],
    )
    .await;

    // The sending anchor's PATCH: only what was asked, everything required, as asked.
    let before = show(&app, &id).await;
    for bad in [
        json!({}),
        json!({"fields": {"purpose": "salary"}}),
        json!({"fields": {"transaction": {"invoice": "INV-7"}}}),
        json!({"fields": {"transaction": {"purpose": "salary", "colour": "red"}}}),
        json!({"fields": {"transaction": {"purpose": 5}}}),
        json!({"fields": {"transaction": {"purpose": "lottery"}}}),
    ] {
        let (status, body) = anchor.patch(&id, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        error_of(&body);
    }
    assert_eq!(
        show(&app, &id).await,
        before,
        "a refused PATCH changes nothing"
    );

    let (status, body) = anchor
        .patch(
            &id,
            json!({"fields": {"transaction": {"purpose": "salary", "invoice": "INV-7"}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["transaction"]["status"], "pending_receiver");
    assert!(
        body["transaction"].get("required_info_updates").is_none(),
        "{body}"
    );
    assert!(
        body["transaction"].get("required_info_message").is_none(),
        "{body}"
    );
    let detail = show(&app, &id).await;
    assert_eq!(
        detail["fields"],
        json!({"purpose": "salary", "invoice": "INV-7"})
    );
    assert_eq!(
        events_of(&detail).last().unwrap(),
        &event(
            "pending_receiver",
            &format!("sending_anchor:{}", anchor.account()),
            "transaction fields updated (PATCH)"
        )
    );
    let (status, body) = anchor
        .patch(&id, json!({"fields": {"transaction": {"purpose": "gift"}}}))
        .await;
    assert_eq!(status, 400, "nothing is asked any more: {body}");

    // Only optional fields asked: an empty answer will do.
    act(
        &app,
        &id,
        "request-transaction-info",
        json!({"fields": {"invoice": {"description": "the invoice number", "optional": true}}}),
    )
    .await;
    assert_eq!(
        anchor.transaction(&id).await["transaction"].get("required_info_message"),
        None,
        "no message was given"
    );
    let (status, body) = anchor
        .patch(&id, json!({"fields": {"transaction": {}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["transaction"]["status"], "pending_receiver");

    let got = wallet.wait_for(5, WITHIN).await;
    let statuses: Vec<String> = got.iter().map(callback_status).collect();
    assert_eq!(
        statuses,
        [
            "pending_receiver",
            "pending_transaction_info_update",
            "pending_receiver",
            "pending_transaction_info_update",
            "pending_receiver",
        ]
    );
    assert_eq!(got[4].json(), anchor.transaction(&id).await);
    for delivery in &got {
        verified(delivery, &app.server_key.public_key(), &url);
    }
}

// ---- error ----------------------------------------------------------------------------------------

async fn error_finishes_a_transaction(db: Db) {
    let app = spawn(&db, "").await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let unpaid = anchor.create(&sender, &receiver, json!({})).await;
    let paid = anchor.create(&sender, &receiver, json!({})).await;
    pay(&app, &paid).await;

    for bad in [
        json!({}),
        json!({"message": ""}),
        json!({"message": "   "}),
        json!({"message": 5}),
        json!({"message": null}),
        json!({"message": ["x"]}),
        json!({"message": "a\u{0}b"}),
        json!({"reason": "wrong key"}),
        json!(["message"]),
    ] {
        refused(&app, &unpaid, "error", bad, &[]).await;
    }

    // Anything unfinished may fail, paid or not.
    let answer = act(
        &app,
        &unpaid,
        "error",
        json!({"message": "  compliance hold  "}),
    )
    .await;
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["status_message"], "compliance hold");
    assert_eq!(
        events_of(&answer).last().unwrap(),
        &event("error", "operator", "marked as error by an operator")
    );
    let sep31 = anchor.transaction(&unpaid).await;
    assert_eq!(sep31["transaction"]["status"], "error");
    assert_eq!(sep31["transaction"]["status_message"], "compliance hold");

    // A form body does as well as JSON.
    let (status, answer) = admin_raw(
        &app,
        Method::POST,
        &format!("/admin/transactions/{paid}/error"),
        Some("application/x-www-form-urlencoded"),
        b"message=payout+rejected+by+the+bank".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status_message"], "payout rejected by the bank");

    // Nothing follows error.
    for id in [&unpaid, &paid] {
        refused(
            &app,
            id,
            "error",
            json!({"message": "again"}),
            &["from error to error"],
        )
        .await;
        refused(
            &app,
            id,
            "request-customer-info",
            json!({"sender_fields": {"email_address": "bounces"}}),
            &["error", "pending_customer_info_update"],
        )
        .await;
        refused(
            &app,
            id,
            "request-transaction-info",
            json!({"fields": {"purpose": {"description": "why"}}}),
            &["error", "pending_transaction_info_update"],
        )
        .await;
        refused(
            &app,
            id,
            "refund",
            json!({"payments": [{"id": "cd".repeat(32), "amount": "100"}]}),
            &[],
        )
        .await;
    }
    let seen = anchor
        .kyc_get(&[("id", &sender), ("type", "sep31-sender")])
        .await;
    assert_eq!(
        seen["status"], "ACCEPTED",
        "no customer was touched: {seen}"
    );

    // Operators racing on one transaction: exactly one error is recorded, reported once.
    let raced = anchor.create(&sender, &receiver, json!({})).await;
    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    anchor.register_callback(&raced, &url).await;
    pay(&app, &raced).await;
    wallet.wait_for(1, WITHIN).await;
    let path = format!("/admin/transactions/{raced}/error");
    let attempts = (0..8).map(|i| {
        let path = path.clone();
        let app = &app;
        async move { admin_post(app, &path, json!({"message": format!("operator {i}")})).await }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        assert!(*status == 200 || *status == 400, "{answers:?}");
        if *status == 400 {
            assert!(error_of(body).contains("from error to error"), "{body}");
        }
    }
    let detail = show(&app, &raced).await;
    assert_eq!(&detail, won[0]);
    let errors = events_of(&detail)
        .into_iter()
        .filter(|(to, _, _)| to == "error")
        .count();
    assert_eq!(errors, 1, "{detail}");
    let got = wallet.wait_for(2, WITHIN).await;
    assert_eq!(callback_status(&got[1]), "error");
    assert_eq!(got[1].json(), anchor.transaction(&raced).await);
    assert_eq!(
        got[1].json()["transaction"]["status_message"],
        detail["status_message"]
    );
    verified(&got[1], &app.server_key.public_key(), &url);
    wallet.stays_at(2, Duration::from_millis(1000)).await;
}

// ---- refund ---------------------------------------------------------------------------------------

async fn refunds_partial_then_full(db: Db) {
    let app = spawn(&db, "").await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    anchor.register_callback(&id, &url).await;
    let (r1, r2, r3) = ("a1".repeat(32), "b2".repeat(32), "c3".repeat(32));

    // Nothing to refund before the payment.
    refused(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": r1, "amount": "100"}]}),
        &["no payment"],
    )
    .await;
    pay(&app, &id).await;
    wallet.wait_for(1, WITHIN).await;

    let huge = "79228162514264337593543950335";
    for bad in [
        json!({}),
        json!({"payments": []}),
        json!({"payments": {}}),
        json!({"payments": "r1"}),
        json!({"payments": [{"amount": "10"}]}),
        json!({"payments": [{"id": "", "amount": "10"}]}),
        json!({"payments": [{"id": 5, "amount": "10"}]}),
        json!({"payments": [{"id": "x".repeat(129), "amount": "10"}]}),
        json!({"payments": [{"id": "a\u{0}b", "amount": "10"}]}),
        json!({"payments": [{"id": r1}]}),
        json!({"payments": [{"id": r1, "amount": null}]}),
        json!({"payments": [{"id": r1, "amount": "0"}]}),
        json!({"payments": [{"id": r1, "amount": "-1"}]}),
        json!({"payments": [{"id": r1, "amount": -1}]}),
        json!({"payments": [{"id": r1, "amount": "ten"}]}),
        json!({"payments": [{"id": r1, "amount": "1.00000001"}]}),
        json!({"payments": [{"id": r1, "amount": true}]}),
        json!({"payments": [{"id": r1, "amount": "10", "fee": "-1"}]}),
        json!({"payments": [{"id": r1, "amount": "10", "fee": "x"}]}),
        json!({"payments": [{"id": r1, "amount": "10"}, "r2"]}),
        // More than amount_in, at once or in total.
        json!({"payments": [{"id": r1, "amount": "100.0000001"}]}),
        json!({"payments": [{"id": r1, "amount": "60"}, {"id": r2, "amount": "40.5"}]}),
        // Amounts beyond any Stellar amount, whose sum no decimal holds.
        json!({"payments": [{"id": r1, "amount": huge}, {"id": r2, "amount": huge}]}),
        json!({"payments": [{"id": r1, "amount": "10", "fee": huge}, {"id": r2, "amount": "10", "fee": huge}]}),
        json!({"payments": [{"id": r1, "amount": huge}]}),
        json!([{"id": r1, "amount": "10"}]),
    ] {
        refused(&app, &id, "refund", bad, &[]).await;
    }

    // A partial refund is recorded; the status stays.
    let answer = act(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": r1, "amount": "40.00", "fee": "0.5"}]}),
    )
    .await;
    assert_eq!(answer["status"], "pending_receiver");
    assert_eq!(
        answer["refunds"],
        json!({
            "amount_refunded": "40",
            "amount_fee": "0.5",
            "payments": [{"id": r1, "amount": "40", "fee": "0.5"}],
        })
    );
    assert_eq!(
        anchor.transaction(&id).await["transaction"]["refunds"],
        answer["refunds"]
    );
    assert_eq!(answer, show(&app, &id).await);
    // What is paid out shrinks by the refund and its fee (SEP-31's amounts invariant).
    let amount_fee = Decimal::from_str(answer["amount_fee"].as_str().unwrap()).unwrap();
    let out = |answer: &Value| Decimal::from_str(answer["amount_out"].as_str().unwrap()).unwrap();
    assert_eq!(
        out(&answer),
        Decimal::from(100) - amount_fee - Decimal::from(40) - Decimal::new(5, 1)
    );
    // The sending anchor hears of it, though the status did not change.
    let heard = wallet.wait_for(2, WITHIN).await;
    assert_eq!(heard[1].json()["transaction"]["refunds"], answer["refunds"]);
    verified(&heard[1], &app.server_key.public_key(), &url);
    // The history shows it.
    let last = answer["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["from"], &last["to"], &last["actor"], &last["reason"]),
        (
            &json!("pending_receiver"),
            &json!("pending_receiver"),
            &json!("operator"),
            &json!("partial refund recorded")
        )
    );

    // A retried request does not record the same refund payment twice.
    refused(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": r1, "amount": "40.00", "fee": "0.5"}]}),
        &["already recorded"],
    )
    .await;

    // What would pass amount_in is refused whole, and nothing is recorded.
    refused(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": r2, "amount": "60.0000001"}]}),
        &["100.0000001", "100"],
    )
    .await;

    // JSON numbers are amounts too; a missing fee is 0.
    let answer = act(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": r2, "amount": 30, "fee": 0.25}]}),
    )
    .await;
    assert_eq!(answer["status"], "pending_receiver");
    assert_eq!(answer["refunds"]["amount_refunded"], "70");
    assert_eq!(answer["refunds"]["amount_fee"], "0.75");
    assert_eq!(
        out(&answer),
        Decimal::from(100) - amount_fee - Decimal::from(70) - Decimal::new(75, 2)
    );
    // Refunds that would leave less than nothing to pay out are refused.
    refused(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": r3, "amount": "29.9", "fee": "5"}]}),
        &["less than nothing"],
    )
    .await;

    // Refunds are recorded while the sending anchor corrects something, too.
    act(
        &app,
        &id,
        "request-transaction-info",
        json!({"fields": {"purpose": {"description": "why the money is sent"}}}),
    )
    .await;
    let answer = act(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": r3, "amount": "30"}]}),
    )
    .await;
    assert_eq!(answer["status"], "refunded");
    assert_eq!(
        answer["refunds"],
        json!({
            "amount_refunded": "100",
            "amount_fee": "0.75",
            "payments": [
                {"id": r1, "amount": "40", "fee": "0.5"},
                {"id": r2, "amount": "30", "fee": "0.25"},
                {"id": r3, "amount": "30", "fee": "0"},
            ],
        })
    );
    assert_eq!(
        events_of(&answer).last().unwrap(),
        &event("refunded", "operator", "refunded in full")
    );
    let sep31 = anchor.transaction(&id).await;
    assert_eq!(sep31["transaction"]["status"], "refunded");
    assert_eq!(sep31["transaction"]["refunds"], answer["refunds"]);
    // Refunded in full: nothing is paid out.
    assert_eq!(sep31["transaction"]["amount_out"], "0");
    // Each status change was reported, in order; the last with the whole refund.
    let got = wait_until(&wallet, "refunded").await;
    let mut statuses: Vec<String> = got.iter().map(callback_status).collect();
    statuses.dedup();
    assert_eq!(
        statuses,
        [
            "pending_receiver",
            "pending_transaction_info_update",
            "refunded"
        ]
    );
    let last = got.last().unwrap();
    assert_eq!(last.json(), sep31);
    verified(last, &app.server_key.public_key(), &url);

    // Refunded is final.
    refused(
        &app,
        &id,
        "refund",
        json!({"payments": [{"id": "d4".repeat(32), "amount": "1"}]}),
        &["refunded"],
    )
    .await;
    refused(
        &app,
        &id,
        "error",
        json!({"message": "late"}),
        &["refunded", "error"],
    )
    .await;

    // A full refund in one request, paid in two payments.
    let other = anchor.create(&sender, &receiver, json!({})).await;
    pay(&app, &other).await;
    let answer = act(
        &app,
        &other,
        "refund",
        json!({"payments": [{"id": r1, "amount": "50"}, {"id": r2, "amount": "50", "fee": "1"}]}),
    )
    .await;
    assert_eq!(answer["status"], "refunded");
    assert_eq!(answer["refunds"]["amount_refunded"], "100");
    assert_eq!(answer["refunds"]["amount_fee"], "1");
}

// ---- malformed input ------------------------------------------------------------------------------

async fn malformed_requests_get_4xx_json(db: Db) {
    let app = spawn(&db, "").await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    pay(&app, &id).await;
    let before = show(&app, &id).await;
    let actions = [
        "request-customer-info",
        "request-transaction-info",
        "error",
        "refund",
    ];

    // Odd ids: a NUL or bytes that are not UTF-8 are 400, anything else unknown is 404.
    let long = "x".repeat(5000);
    for (segment, expected) in [
        ("%00", 400),
        ("a%00b", 400),
        ("%FF", 400),
        ("%C3%28", 400),
        ("no-such-id", 404),
        ("%F0%9F%92%A9", 404),
        ("a%2Fb", 404),
        ("%20", 404),
        (long.as_str(), 404),
        ("%27%20OR%20%271%27%3D%271", 404),
    ] {
        let (status, body) = admin_raw(
            &app,
            Method::GET,
            &format!("/admin/transactions/{segment}"),
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(status, expected, "GET {segment}: {body}");
        error_of(&body);
        let valid = [
            json!({"sender_fields": {"email_address": "bounces"}}),
            json!({"fields": {"purpose": {"description": "why"}}}),
            json!({"message": "stop"}),
            json!({"payments": [{"id": "cd".repeat(32), "amount": "1"}]}),
        ];
        for (action, body) in actions.iter().zip(valid) {
            let (status, answer) = admin_raw(
                &app,
                Method::POST,
                &format!("/admin/transactions/{segment}/{action}"),
                Some("application/json"),
                body.to_string().into_bytes(),
            )
            .await;
            assert_eq!(status, expected, "{action} {segment}: {answer}");
            error_of(&answer);
        }
    }

    // Bodies that are not what they claim, or not any accepted kind.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<(Option<&str>, Vec<u8>, u16)> = vec![
        (Some("application/json"), b"{".to_vec(), 400),
        (Some("application/json"), b"{\"message\":}".to_vec(), 400),
        (Some("application/json"), b"".to_vec(), 400),
        (Some("application/json"), b"\xff\xfe".to_vec(), 400),
        (Some("application/json"), b"[]".to_vec(), 400),
        (Some("application/json"), b"null".to_vec(), 400),
        (Some("application/json"), b"\"message\"".to_vec(), 400),
        (Some("application/json"), b"12".to_vec(), 400),
        (Some("application/json"), deep.into_bytes(), 400),
        (
            Some("application/x-www-form-urlencoded"),
            b"%%%".to_vec(),
            400,
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"payments=1&fields=2".to_vec(),
            400,
        ),
        (None, b"{not json".to_vec(), 400),
        (None, Vec::new(), 400),
        (Some("text/xml"), b"<message>x</message>".to_vec(), 415),
        (
            Some("multipart/form-data; boundary=x"),
            b"--x--".to_vec(),
            415,
        ),
        (Some("application/json"), vec![b' '; 3 * 1024 * 1024], 413),
    ];
    for action in actions {
        for (content_type, body, expected) in &bodies {
            let (status, answer) = admin_raw(
                &app,
                Method::POST,
                &format!("/admin/transactions/{id}/{action}"),
                *content_type,
                body.clone(),
            )
            .await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            assert_eq!(
                status, *expected,
                "{action} {content_type:?} {shown:?}: {answer}"
            );
            error_of(&answer);
        }
    }
    assert_eq!(show(&app, &id).await, before, "no malformed request acted");

    // Wrong methods and unknown endpoints, in JSON.
    for (method, path, expected) in [
        (Method::POST, "/admin/transactions".to_owned(), 405),
        (Method::DELETE, format!("/admin/transactions/{id}"), 405),
        (Method::PUT, format!("/admin/transactions/{id}"), 405),
        (Method::POST, format!("/admin/transactions/{id}"), 405),
        (Method::GET, format!("/admin/transactions/{id}/refund"), 405),
        (Method::GET, format!("/admin/transactions/{id}/error"), 405),
        (
            Method::POST,
            format!("/admin/transactions/{id}/complete"),
            404,
        ),
        (Method::GET, format!("/admin/transactions/{id}/events"), 404),
        (Method::GET, "/admin/transaction".to_owned(), 404),
    ] {
        let (status, body) = admin_raw(&app, method.clone(), &path, None, Vec::new()).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        error_of(&body);
    }
    assert_eq!(show(&app, &id).await, before);
}

// ---- customers on a business server -------------------------------------------------------------

/// A business server whose customers are ACCEPTED unless told otherwise.
#[derive(Clone, Default)]
struct Business {
    statuses: Arc<Mutex<HashMap<String, String>>>,
    created: Arc<Mutex<u32>>,
}

impl Business {
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .fallback(business_handler)
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        format!("http://{addr}")
    }

    fn set(&self, id: &str, status: &str) {
        self.statuses
            .lock()
            .unwrap()
            .insert(id.to_owned(), status.to_owned());
    }
}

async fn business_handler(
    State(business): State<Business>,
    method: Method,
    uri: Uri,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    match (method, uri.path()) {
        (Method::GET, "/customer") => {
            let Some(id) = query.get("id") else {
                return axum::Json(json!({"status": "NEEDS_INFO", "fields": {}})).into_response();
            };
            let status = business
                .statuses
                .lock()
                .unwrap()
                .get(id)
                .cloned()
                .unwrap_or_else(|| "ACCEPTED".into());
            let mut body = json!({"id": id, "status": status});
            if status == "NEEDS_INFO" {
                body["fields"] = json!({
                    "email_address": {"type": "string", "description": "a working email address"}
                });
            }
            axum::Json(body).into_response()
        }
        (Method::PUT, "/customer") => {
            let mut created = business.created.lock().unwrap();
            *created += 1;
            axum::Json(json!({"id": format!("biz-{created}")})).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn business_server_customers(db: Db) {
    let business = Business::default();
    let url = business.start().await;
    let app = spawn(&db, &format!("[kyc]\nbusiness_url = \"{url}\"\n")).await;
    let anchor = SendingAnchor::login(&app).await;
    let (sender, receiver) = anchor.customers().await;
    let id = anchor.create(&sender, &receiver, json!({})).await;
    pay(&app, &id).await;

    // The business server keeps the fields: capstan cannot mark them.
    refused(
        &app,
        &id,
        "request-customer-info",
        json!({"sender_fields": {"email_address": "bounces"}}),
        &["business server"],
    )
    .await;

    // The operator has the business server ask for the field, then asks the sending anchor.
    business.set(&sender, "NEEDS_INFO");
    let answer = act(
        &app,
        &id,
        "request-customer-info",
        json!({"message": "the sender's email bounces"}),
    )
    .await;
    assert_eq!(answer["status"], "pending_customer_info_update");
    let seen = anchor
        .kyc_get(&[("transaction_id", &id), ("type", "sep31-sender")])
        .await;
    assert_eq!(seen["status"], "NEEDS_INFO", "{seen}");
    assert_eq!(seen["id"], sender.as_str());

    // The business server accepts the correction and tells capstan: it resumes at once.
    business.set(&sender, "ACCEPTED");
    let (status, body) = admin_post(
        &app,
        &format!("/admin/customers/{sender}/notify"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(anchor.status_of(&id).await, "pending_receiver");
    assert_eq!(
        events_of(&show(&app, &id).await).last().unwrap(),
        &event(
            "pending_receiver",
            "kyc",
            "the customers' information was updated and accepted"
        )
    );
}
