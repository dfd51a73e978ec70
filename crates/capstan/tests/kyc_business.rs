//! SEP-12 with `[kyc] business_url`: customers live on the anchor's business server, faked
//! here in memory. Everything goes through capstan's public HTTP API (and its admin API);
//! the fake records every request it gets, so each test can tell what was forwarded and
//! what never left capstan.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use common::callbacks::{Recorder, signature_of, signed_host, verified};
use common::fake_business::{FakeBusiness, Recorded};
use common::{ADMIN_KEY, AppOptions, TestApp, admin_toml, json_of};
use serde_json::{Value, json};
use stellar::Keypair;

const BUSINESS_KEY: &str = "business-key-0123456789";

// ---- the fake business server --------------------------------------------------------------

#[derive(Debug, Clone)]
struct FakeCustomer {
    account: String,
    memo: Option<String>,
    fields: BTreeMap<String, String>,
    files: BTreeMap<String, String>,
    status: String,
}

/// The business server's customers.
#[derive(Default)]
struct Customers {
    customers: BTreeMap<String, FakeCustomer>,
    created: u32,
}

type Business = FakeBusiness<Customers>;

impl FakeBusiness<Customers> {
    async fn with_customers() -> Business {
        Business::start(Customers::default(), business_handler).await
    }

    /// The business's own decision, made outside SEP-12.
    fn set_status(&self, id: &str, status: &str) {
        self.state()
            .customers
            .get_mut(id)
            .expect("a customer of the business server")
            .status = status.to_owned();
    }

    fn customer(&self, id: &str) -> Option<FakeCustomer> {
        self.state().customers.get(id).cloned()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn customer_json(id: &str, customer: &FakeCustomer) -> Value {
    let provided: serde_json::Map<String, Value> = customer
        .fields
        .keys()
        .chain(customer.files.keys())
        .map(|name| {
            (
                name.clone(),
                json!({"type": "string", "description": name, "status": "ACCEPTED"}),
            )
        })
        .collect();
    json!({"id": id, "status": customer.status, "provided_fields": provided})
}

fn business_handler(inner: &mut Customers, recorded: &Recorded) -> Response {
    let q = &recorded.query;
    match (recorded.method.as_str(), recorded.path.as_str()) {
        ("GET", "/customer") => {
            if let Some(id) = q.get("id") {
                return match inner.customers.get(id) {
                    Some(c) if Some(&c.account) == q.get("account") => {
                        axum::Json(customer_json(id, c)).into_response()
                    }
                    _ => error(
                        StatusCode::NOT_FOUND,
                        &format!("customer not found for id: {id}"),
                    ),
                };
            }
            let found = inner.customers.iter().find(|(_, c)| {
                Some(&c.account) == q.get("account") && c.memo.as_ref() == q.get("memo")
            });
            match found {
                Some((id, c)) => axum::Json(customer_json(id, c)).into_response(),
                None => axum::Json(json!({
                    "status": "NEEDS_INFO",
                    "fields": {"first_name": {"type": "string", "description": "first name"}},
                }))
                .into_response(),
            }
        }
        ("PUT", "/customer") => {
            let body = recorded.body.clone().unwrap_or_default();
            let text = |key: &str| body[key].as_str().map(str::to_owned);
            let map = |key: &str| -> BTreeMap<String, String> {
                serde_json::from_value(body[key].clone()).unwrap_or_default()
            };
            let account = text("account").unwrap_or_default();
            let id = match text("id") {
                Some(id) if inner.customers.contains_key(&id) => id,
                Some(id) => {
                    return error(
                        StatusCode::NOT_FOUND,
                        &format!("customer not found for id: {id}"),
                    );
                }
                None => {
                    let memo = text("memo");
                    let known = inner
                        .customers
                        .iter()
                        .find(|(_, c)| c.account == account && c.memo == memo)
                        .map(|(id, _)| id.clone());
                    match known {
                        Some(id) => id,
                        None => {
                            inner.created += 1;
                            let id = format!("biz-{}", inner.created);
                            inner.customers.insert(
                                id.clone(),
                                FakeCustomer {
                                    account,
                                    memo,
                                    fields: BTreeMap::new(),
                                    files: BTreeMap::new(),
                                    status: "PROCESSING".into(),
                                },
                            );
                            id
                        }
                    }
                }
            };
            let customer = inner.customers.get_mut(&id).unwrap();
            customer.fields.extend(map("fields"));
            customer.files.extend(map("files"));
            axum::Json(json!({ "id": id })).into_response()
        }
        ("DELETE", path) if path.starts_with("/customer/") => {
            let account = path.trim_start_matches("/customer/").to_owned();
            let before = inner.customers.len();
            inner
                .customers
                .retain(|_, c| !(c.account == account && c.memo.as_ref() == q.get("memo")));
            if inner.customers.len() == before {
                error(StatusCode::NOT_FOUND, "the bank has no such customer")
            } else {
                axum::Json(json!({})).into_response()
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint on the business server",
        ),
    }
}

// ---- the anchor ------------------------------------------------------------------------------

struct Setup {
    app: TestApp,
    business: Business,
}

/// The anchor forwarding to a fresh fake business server; `kyc_extra` is TOML appended
/// after `[kyc]`'s own keys (more keys, or `[kyc.types.*]` tables).
async fn setup(database_url: Option<String>, kyc_extra: &str) -> Setup {
    let business = Business::with_customers().await;
    let toml = format!(
        "[kyc]\nbusiness_url = \"{}\"\nbusiness_api_key = \"{BUSINESS_KEY}\"\nbusiness_timeout_secs = 1\n{kyc_extra}\n{}",
        business.url,
        admin_toml()
    );
    let app = TestApp::spawn_with(AppOptions {
        toml,
        database_url,
        ..Default::default()
    })
    .await;
    Setup { app, business }
}

/// A client account and its SEP-10 token (`memo` for a token of one user of a shared account).
async fn client(app: &TestApp, memo: Option<&str>) -> (Keypair, String, String) {
    let key = Keypair::random();
    let token = app.token_for(&key, memo).await;
    let account = key.public_key().to_string();
    (key, account, token)
}

async fn get_customer(app: &TestApp, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}/customer", app.kyc_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .expect("request");
    json_of(response).await
}

async fn put_customer(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    json_of(response).await
}

async fn delete_customer(app: &TestApp, token: &str, account: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .delete(format!("{}/customer/{account}", app.kyc_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
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
        .expect("request");
    json_of(response).await
}

fn sender(first_name: &str) -> Value {
    json!({
        "type": "sep31-sender",
        "first_name": first_name,
        "last_name": "Lovelace",
        "email_address": "ada@example.com",
    })
}

fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn bearer() -> Option<String> {
    Some(format!("Bearer {BUSINESS_KEY}"))
}

// ---- the tests -------------------------------------------------------------------------------

/// Each test runs on SQLite, and on PostgreSQL when CAPSTAN_TEST_POSTGRES_URL is set.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(None).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let Some(url) = crate::common::postgres_url(stringify!($name)).await else {
                        return;
                    };
                    super::$name(Some(url)).await;
                }
            }
        )*
    };
}

on_both_backends!(
    put_get_and_delete_are_forwarded,
    ids_of_other_callers_never_reach_the_business_server,
    business_errors_pass_through_or_become_502,
    slow_business_server_is_503,
    stopped_business_server_is_503,
    sep9_values_are_checked_before_forwarding,
    uploads_reach_the_business_server_as_file_ids,
    notify_sends_a_signed_callback,
    decisions_belong_to_the_business_server,
);

async fn put_get_and_delete_are_forwarded(database_url: Option<String>) {
    let Setup { app, business } = setup(database_url, "").await;
    let (_key, account, token) = client(&app, None).await;

    // "007" without memo_type is the id memo 7, forwarded in canonical form.
    let mut body = sender("Ada");
    body["memo"] = json!("007");
    body["mobile_number"] = json!("+14155550123");
    let (status, answer) = put_customer(&app, &token, body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"id": "biz-1"}), "the business's own id");
    let put = business.last_with("PUT");
    assert_eq!(put.path, "/customer");
    assert!(put.query.is_empty(), "{:?}", put.query);
    assert_eq!(put.authorization, bearer());
    assert_eq!(
        put.body,
        Some(json!({
            "account": account,
            "memo": "7",
            "memo_type": "id",
            "type": "sep31-sender",
            "fields": {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email_address": "ada@example.com",
                "mobile_number": "+14155550123",
            },
            "files": {},
            "verifications": {},
        }))
    );

    // By account and memo: the business's answer is the client's.
    let (status, answer) = get_customer(
        &app,
        &token,
        &[("memo", "7"), ("memo_type", "id"), ("type", "sep31-sender")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "biz-1");
    assert_eq!(answer["status"], "PROCESSING");
    assert_eq!(
        answer["provided_fields"]["first_name"]["status"],
        "ACCEPTED"
    );
    let get = business.last_with("GET");
    assert_eq!(get.path, "/customer");
    assert_eq!(get.authorization, bearer());
    assert_eq!(
        get.query,
        query(&[
            ("account", &account),
            ("memo", "7"),
            ("memo_type", "id"),
            ("type", "sep31-sender"),
            ("lang", "en"),
        ])
    );

    // By id, without a type: the default type is named to the business server.
    let (status, answer) = get_customer(&app, &token, &[("id", "biz-1")]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "biz-1");
    assert_eq!(
        business.last_with("GET").query,
        query(&[
            ("account", &account),
            ("id", "biz-1"),
            ("type", "sep31-sender"),
            ("lang", "en"),
        ])
    );

    // An update by id (a whole-account token need not repeat the memo) carries the
    // verification code to the business server, and the same id comes back.
    let (status, answer) = put_customer(
        &app,
        &token,
        json!({"id": "biz-1", "mobile_number_verification": "123456"}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"id": "biz-1"}));
    let put = business.last_with("PUT");
    assert_eq!(put.authorization, bearer());
    assert_eq!(
        put.body,
        Some(json!({
            "account": account,
            "id": "biz-1",
            "fields": {},
            "files": {},
            "verifications": {"mobile_number": "123456"},
        }))
    );
    // The id still names the one customer capstan recorded for (account, memo 7).
    let (status, answer) = get_customer(&app, &token, &[("id", "biz-1")]).await;
    assert_eq!((status, &answer["id"]), (200, &json!("biz-1")), "{answer}");

    // A text memo keeps its type.
    let mut body = sender("Grace");
    body["memo"] = json!("grace");
    body["memo_type"] = json!("text");
    let (status, answer) = put_customer(&app, &token, body).await;
    assert_eq!((status, &answer["id"]), (202, &json!("biz-2")), "{answer}");
    let put = business.last_with("PUT");
    let put = put.body.unwrap();
    assert_eq!(
        (&put["memo"], &put["memo_type"]),
        (&json!("grace"), &json!("text"))
    );

    // DELETE names the account in the path and the memo in the query.
    let (status, answer) = delete_customer(
        &app,
        &token,
        &account,
        json!({"memo": "7", "memo_type": "id"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({}));
    let delete = business.last_with("DELETE");
    assert_eq!(delete.path, format!("/customer/{account}"));
    assert_eq!(delete.query, query(&[("memo", "7"), ("memo_type", "id")]));
    assert_eq!(delete.authorization, bearer());
    assert!(business.customer("biz-1").is_none());
    assert!(
        business.customer("biz-2").is_some(),
        "the other memo's customer stays"
    );

    // capstan forgot who owned the id, so it is unknown without asking the business.
    let seen = business.requests().len();
    let (status, answer) = get_customer(&app, &token, &[("id", "biz-1")]).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"], "customer not found for id: biz-1");
    assert_eq!(business.requests().len(), seen);

    // Deleting again: the business's 404 and its message pass through.
    let (status, answer) = delete_customer(
        &app,
        &token,
        &account,
        json!({"memo": "7", "memo_type": "id"}),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"], "the bank has no such customer");

    // The business erased a customer on its own: DELETE still erases what capstan holds
    // (its record of the id), and says so with 200.
    business.state().customers.remove("biz-2");
    let (status, answer) = delete_customer(
        &app,
        &token,
        &account,
        json!({"memo": "grace", "memo_type": "text"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let seen = business.requests().len();
    let (status, answer) = get_customer(&app, &token, &[("id", "biz-2")]).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(
        business.requests().len(),
        seen,
        "the id is no longer known here"
    );
}

async fn ids_of_other_callers_never_reach_the_business_server(database_url: Option<String>) {
    let Setup { app, business } = setup(database_url, "").await;
    let (alice_key, alice, alice_token) = client(&app, None).await;
    let (_, _, mallory_token) = client(&app, None).await;

    // Alice's account is shared: its customers are told apart by memo.
    let mut alice_customer = sender("Alice");
    alice_customer["memo"] = json!("41");
    let (status, answer) = put_customer(&app, &alice_token, alice_customer).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let receiver = Recorder::default();
    let callback_url = receiver.start("/callback").await;

    // SEP12-09 holds in business mode too: a shared account cannot also register a
    // customer without a memo, and the business server never hears of the attempt.
    let seen = business.requests().len();
    let (status, answer) = put_customer(&app, &alice_token, sender("NoMemo")).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("shared"),
        "{answer}"
    );
    assert_eq!(business.requests().len(), seen);

    let seen = business.requests().len();
    let not_found = json!(format!("customer not found for id: {id}"));
    let (status, answer) = get_customer(&app, &mallory_token, &[("id", &id)]).await;
    assert_eq!((status, &answer["error"]), (404, &not_found), "{answer}");
    let mut update = sender("Mallory");
    update["id"] = json!(id);
    let (status, answer) = put_customer(&app, &mallory_token, update).await;
    assert_eq!((status, &answer["error"]), (404, &not_found), "{answer}");
    let response = app
        .http
        .put(format!("{}/customer/callback", app.kyc_url()))
        .bearer_auth(&mallory_token)
        .json(&json!({"url": callback_url, "id": id}))
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = get_customer(&app, &alice_token, &[("id", "biz-999")]).await;
    assert_eq!(status, 404, "an id capstan never recorded: {answer}");
    assert_eq!(
        business.requests().len(),
        seen,
        "{:?}",
        &business.requests()[seen..]
    );

    // One user of a shared account reaches its own customer only.
    let mut body = sender("Bob");
    body["memo"] = json!("43");
    let (status, answer) = put_customer(&app, &alice_token, body).await;
    assert_eq!(status, 202, "{answer}");
    let id_43 = answer["id"].as_str().unwrap().to_owned();
    let user_42 = app.token_for(&alice_key, Some("42")).await;
    let seen = business.requests().len();
    let (status, answer) = get_customer(&app, &user_42, &[("id", &id_43)]).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(business.requests().len(), seen);
    // The user's own customer: the token's memo is the one forwarded.
    let (status, answer) = put_customer(&app, &user_42, sender("Carol")).await;
    assert_eq!(status, 202, "{answer}");
    let put = business.last_with("PUT").body.unwrap();
    assert_eq!(
        (&put["account"], &put["memo"], &put["memo_type"]),
        (&json!(alice), &json!("42"), &json!("id"))
    );
    // The whole account's token reaches every memo's customer.
    let (status, answer) = get_customer(&app, &alice_token, &[("id", &id_43)]).await;
    assert_eq!((status, &answer["id"]), (200, &json!(id_43)), "{answer}");
}

async fn business_errors_pass_through_or_become_502(database_url: Option<String>) {
    let Setup { app, business } = setup(database_url, "").await;
    let (_, _, token) = client(&app, None).await;

    business.answer_with(
        400,
        r#"{"error": "email_address: this mailbox does not exist"}"#,
        "application/json",
    );
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        "email_address: this mailbox does not exist"
    );

    business.answer_with(
        404,
        r#"{"error": "no customer with this account at the bank"}"#,
        "application/json",
    );
    let (status, answer) = get_customer(&app, &token, &[]).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"], "no customer with this account at the bank");

    let failures = [
        (500, r#"{"error": "database down"}"#, "application/json"),
        (503, "", "text/plain"),
        (200, "<html>maintenance</html>", "text/html"),
        (200, "{\"id\":", "application/json"),
        (200, r#"{"unexpected": true}"#, "application/json"),
        (302, "", "text/plain"),
    ];
    for (code, text, content_type) in failures {
        business.answer_with(code, text, content_type);
        let (status, answer) = get_customer(&app, &token, &[]).await;
        assert_eq!(
            status, 502,
            "GET, business answered {code} {text:?}: {answer}"
        );
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
        let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
        assert_eq!(
            status, 502,
            "PUT, business answered {code} {text:?}: {answer}"
        );
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    // A PUT answer whose id is empty is no id either.
    business.answer_with(200, r#"{"id": ""}"#, "application/json");
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 502, "{answer}");
    // Valid answers padded past the 1 MiB that is read are no answers.
    let padding = " ".repeat(1 << 20);
    let needs_info = json!({
        "status": "NEEDS_INFO",
        "fields": {"first_name": {"type": "string", "description": "first name"}},
    });
    business.answer_with(200, &format!("{needs_info}{padding}"), "application/json");
    let (status, answer) = get_customer(&app, &token, &[]).await;
    assert_eq!(status, 502, "{answer}");
    business.answer_with(
        200,
        &format!(r#"{{"id": "biz-9"}}{padding}"#),
        "application/json",
    );
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 502, "{answer}");

    // None of the failed PUTs registered a customer in capstan.
    business.answer_normally();
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!((status, &answer["id"]), (202, &json!("biz-1")), "{answer}");
    let (status, answer) = json_of(
        app.http
            .get(format!("{}/admin/customers", app.admin_url()))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let ids: Vec<&Value> = answer["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&json!("biz-1")]);

    // A business server that hands another account the same id is not believed: the id
    // stays the first account's.
    let (_, _, other_token) = client(&app, None).await;
    business.answer_with(200, r#"{"id": "biz-1"}"#, "application/json");
    let (status, answer) = put_customer(&app, &other_token, sender("Mallory")).await;
    assert_eq!(status, 502, "{answer}");
    business.answer_normally();
    let (status, answer) = get_customer(&app, &other_token, &[("id", "biz-1")]).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = get_customer(&app, &token, &[("id", "biz-1")]).await;
    assert_eq!((status, &answer["id"]), (200, &json!("biz-1")), "{answer}");
}

async fn slow_business_server_is_503(database_url: Option<String>) {
    let Setup { app, business } = setup(database_url, "").await;
    let (_, _, token) = client(&app, None).await;
    business.delay(Some(Duration::from_secs(4)));

    // Each call is cut off after business_timeout_secs = 1 rather than waiting out the
    // business server's 4 s (or the 10 s default).
    let started = Instant::now();
    let (status, answer) = get_customer(&app, &token, &[]).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{answer}"
    );
    assert!(
        elapsed < Duration::from_millis(3500),
        "GET took {elapsed:?}"
    );
    let started = Instant::now();
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert!(
        elapsed < Duration::from_millis(3500),
        "PUT took {elapsed:?}"
    );
    assert_eq!(business.requests_with("GET").len(), 1);
    assert_eq!(business.requests_with("PUT").len(), 1);

    // Answering in time again works.
    business.delay(None);
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 202, "{answer}");
}

async fn stopped_business_server_is_503(database_url: Option<String>) {
    let Setup { app, mut business } = setup(database_url, "").await;
    let (_, account, token) = client(&app, None).await;
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();

    business.stop().await;
    let (status, answer) = get_customer(&app, &token, &[("id", &id)]).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{answer}"
    );
    let (status, answer) = get_customer(&app, &token, &[]).await;
    assert_eq!(status, 503, "{answer}");
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 503, "{answer}");
    let (status, answer) = delete_customer(&app, &token, &account, json!({})).await;
    assert_eq!(status, 503, "{answer}");
    // The failed DELETE erased nothing here: capstan still knows whose id it is.
    let (status, answer) = json_of(
        app.http
            .get(format!("{}/admin/customers/{id}", app.admin_url()))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &answer["account"]),
        (200, &json!(account)),
        "{answer}"
    );
}

async fn sep9_values_are_checked_before_forwarding(database_url: Option<String>) {
    let kyc = "[kyc.types.sep31-sender]\nfields = [\"first_name\", \"last_name\", \"email_address\"]\noptional = [\"mobile_number\", \"birth_date\", \"photo_id_front\"]\n";
    let Setup { app, business } = setup(database_url, kyc).await;
    let (_, _, token) = client(&app, None).await;

    let with = |key: &str, value: &str| {
        let mut body = sender("Ada");
        body[key] = json!(value);
        body
    };
    let cases = [
        (
            with("email_address", "not-an-email"),
            "invalid email_address",
        ),
        (with("mobile_number", "0412 345"), "invalid mobile_number"),
        (with("birth_date", "1815-12-32"), "invalid birth_date"),
        (
            with("favourite_colour", "blue"),
            "unknown field: favourite_colour",
        ),
        (
            with("bank_account_number", "12345"),
            "bank_account_number is not a field this anchor collects",
        ),
        (
            with("photo_id_front", "aGVsbG8="),
            "photo_id_front is a binary field",
        ),
        (
            with("first_name_file_id", "x"),
            "first_name is not a binary field",
        ),
        (
            with("type", "sep31-receiver"),
            "unknown type: sep31-receiver",
        ),
        (
            {
                let mut body = with("memo", "5");
                body["memo_type"] = json!("number");
                body
            },
            "memo_type \"number\" is not one of id, text, hash",
        ),
        (with("memo", "12345678901234567890123456789"), "longer than"),
    ];
    for (body, expected) in cases {
        let (status, answer) = put_customer(&app, &token, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{body}: {message:?} lacks {expected:?}"
        );
    }
    let (status, answer) = get_customer(&app, &token, &[("type", "nobody")]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        business.requests().is_empty(),
        "rejected requests reached the business server: {:?}",
        business.requests()
    );

    // Valid values go through.
    let (status, answer) = put_customer(&app, &token, with("birth_date", "1815-12-10")).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        business.last_with("PUT").body.unwrap()["fields"]["birth_date"],
        "1815-12-10"
    );
}

async fn uploads_reach_the_business_server_as_file_ids(database_url: Option<String>) {
    let kyc = "[kyc.types.sep31-sender]\nfields = [\"first_name\", \"last_name\", \"email_address\"]\noptional = [\"photo_id_front\", \"photo_id_back\"]\n";
    let Setup { app, business } = setup(database_url, kyc).await;
    let (_, account, token) = client(&app, None).await;
    let mut front = b"\x89PNG\r\n\x1a\n".to_vec();
    front.extend_from_slice(&stellar::random_bytes::<64>());

    let form = reqwest::multipart::Form::new()
        .text("type", "sep31-sender")
        .text("first_name", "Ada")
        .text("last_name", "Lovelace")
        .text("email_address", "ada@example.com")
        .part(
            "photo_id_front",
            reqwest::multipart::Part::bytes(front.clone())
                .file_name("front.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();

    let put = business.last_with("PUT").body.unwrap();
    assert_eq!(
        put["fields"],
        json!({"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.com"})
    );
    let files = put["files"].as_object().expect("files").clone();
    assert_eq!(files.len(), 1, "{put}");
    let file_id = files["photo_id_front"]
        .as_str()
        .expect("a file id")
        .to_owned();
    assert!(
        !put["fields"]
            .as_object()
            .unwrap()
            .contains_key("photo_id_front")
    );

    // The business server fetches the bytes from the admin API.
    let response = app
        .http
        .get(format!("{}/admin/files/{file_id}", app.admin_url()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE.as_str()], "image/png");
    assert_eq!(response.bytes().await.unwrap().as_ref(), front.as_slice());
    let response = app
        .http
        .get(format!("{}/admin/files/{file_id}", app.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the admin API needs its key");

    // The client sees the file as its customer's.
    let response = app
        .http
        .get(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(&token)
        .query(&[("customer_id", &id)])
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["files"],
        json!([{"file_id": file_id, "content_type": "image/png", "size": front.len(), "customer_id": id}])
    );

    // A file uploaded first and named by `<field>_file_id`.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"back of the card".to_vec())
            .file_name("back.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let response = app
        .http
        .post(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_eq!(status, 200, "{answer}");
    let back_id = answer["file_id"].as_str().unwrap().to_owned();
    let (status, answer) = put_customer(
        &app,
        &token,
        json!({"id": id, "photo_id_back_file_id": back_id}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let put = business.last_with("PUT").body.unwrap();
    assert_eq!(put["files"], json!({"photo_id_back": back_id}));
    assert_eq!(put["account"], json!(account));
    assert_eq!(
        business.customer(&id).unwrap().files.len(),
        2,
        "the business server holds both documents"
    );

    // Another account cannot claim these files, and the business server never hears of it.
    let (_, _, other_token) = client(&app, None).await;
    let seen = business.requests().len();
    for reference in [file_id.as_str(), back_id.as_str(), "no-such-file"] {
        let mut body = sender("Mallory");
        body["photo_id_front_file_id"] = json!(reference);
        let (status, answer) = put_customer(&app, &other_token, body).await;
        assert_eq!(status, 400, "{reference}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("photo_id_front_file_id"),
            "{answer}"
        );
    }
    assert_eq!(
        business.requests().len(),
        seen,
        "{:?}",
        &business.requests()[seen..]
    );
    let response = app
        .http
        .get(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(&token)
        .query(&[("customer_id", &id)])
        .send()
        .await
        .unwrap();
    let (_, answer) = json_of(response).await;
    assert_eq!(answer["files"].as_array().unwrap().len(), 2, "{answer}");
}

async fn notify_sends_a_signed_callback(database_url: Option<String>) {
    let Setup { app, business } = setup(database_url, "").await;
    let (_, _, token) = client(&app, None).await;
    let receiver = Recorder::default();
    let callback_url = receiver.start("/callback").await;
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();

    let response = app
        .http
        .put(format!("{}/customer/callback", app.kyc_url()))
        .bearer_auth(&token)
        .json(&json!({"url": callback_url, "id": id}))
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_eq!((status, &answer), (200, &json!({})));

    // The business server decides on its own, then tells capstan.
    business.set_status(&id, "ACCEPTED");
    assert!(receiver.all().is_empty());
    let gets = business.requests_with("GET").len();
    let (status, answer) =
        admin_post(&app, &format!("/admin/customers/{id}/notify"), json!({})).await;
    assert_eq!((status, &answer), (200, &json!({"id": id})));
    assert!(
        business.requests_with("GET").len() > gets,
        "capstan read the customer again"
    );

    let got = receiver.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let callback = &got[0];
    // Signed over <ts>.<host:port>.<body> with the SIGNING_KEY, fresh, in both headers.
    let body = verified(callback, &app.server_key.public_key(), &callback_url);
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["status"], "ACCEPTED");
    let (ts, signed) = signature_of(callback);
    let payload = format!("{ts}.{}.{}", signed_host(&callback_url), callback.body);
    assert!(
        !Keypair::random()
            .public_key()
            .verify(payload.as_bytes(), &signed)
    );

    // Nothing changed since: a second notify sends nothing more.
    let (status, _) = admin_post(&app, &format!("/admin/customers/{id}/notify"), json!({})).await;
    assert_eq!(status, 200);
    receiver.stays_at(1, Duration::from_millis(2500)).await;

    let (status, answer) = admin_post(&app, "/admin/customers/biz-404/notify", json!({})).await;
    assert_eq!(status, 404, "{answer}");
}

async fn decisions_belong_to_the_business_server(database_url: Option<String>) {
    let Setup { app, business } = setup(database_url, "").await;
    let (_, account, token) = client(&app, None).await;
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();

    let seen = business.requests().len();
    let decisions = [
        ("accept", json!({})),
        ("reject", json!({"reason": "sanctioned"})),
        ("request-info", json!({"fields": {"first_name": "blurry"}})),
    ];
    for (action, body) in decisions {
        let (status, answer) =
            admin_post(&app, &format!("/admin/customers/{id}/{action}"), body).await;
        assert_eq!(status, 400, "{action}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains("business server"), "{action}: {message}");
        assert!(message.contains("notify"), "{action}: {message}");
    }
    assert_eq!(business.requests().len(), seen);
    assert_eq!(business.customer(&id).unwrap().status, "PROCESSING");

    // The operator still sees whom the id belongs to.
    let (status, answer) = json_of(
        app.http
            .get(format!("{}/admin/customers/{id}", app.admin_url()))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["account"], json!(account));
    assert_eq!(answer["type"], "sep31-sender");
}

/// Without `business_api_key` nothing is sent in `Authorization`.
#[tokio::test]
async fn no_api_key_sends_no_authorization() {
    let business = Business::with_customers().await;
    let app = TestApp::spawn_with(AppOptions {
        toml: format!("[kyc]\nbusiness_url = \"{}/\"\n", business.url),
        ..Default::default()
    })
    .await;
    let (_, _, token) = client(&app, None).await;
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = get_customer(&app, &token, &[]).await;
    assert_eq!(status, 200, "{answer}");
    let requests = business.requests();
    assert_eq!(requests.len(), 2);
    for request in requests {
        // The configured trailing slash is not doubled.
        assert_eq!(request.path, "/customer");
        assert_eq!(request.authorization, None);
    }
}

/// A business_url where nothing ever listened: refused at once, 503.
#[tokio::test]
async fn unreachable_business_server_is_503() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(AppOptions {
        toml: format!(
            "[kyc]\nbusiness_url = \"http://127.0.0.1:{port}\"\nbusiness_timeout_secs = 1\n"
        ),
        ..Default::default()
    })
    .await;
    let (_, _, token) = client(&app, None).await;
    let (status, answer) = put_customer(&app, &token, sender("Ada")).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{answer}"
    );
}
