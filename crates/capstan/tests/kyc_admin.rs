//! The operator's side of SEP-12 over HTTP: the admin API (its key, its own port, list,
//! show, accept, reject, request-info, notify, files), files kept in a folder, and the
//! callback outbox (retries, restarts). Every test runs on SQLite, and on PostgreSQL when
//! CAPSTAN_TEST_POSTGRES_URL is set.

mod common;

use std::time::{Duration, Instant};

use common::callbacks::{Recorder, verified};
use common::{ADMIN_KEY, AppOptions, TestApp, admin_toml, json_of};
use serde_json::{Value, json};
use stellar::Keypair;
use tokio::net::TcpListener;

// ---- one test, two databases ---------------------------------------------------------------

/// The database a test runs on. A SQLite file lives in a directory the test holds, so the
/// test can open it too, and so can a second anchor started after the first stops.
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

    /// One outbox row per callback queued: (attempts, delivered_at, last_error, lease_until).
    async fn outbox(&self) -> Vec<(i64, Option<i64>, Option<String>, i64)> {
        const SQL: &str = "SELECT attempts, delivered_at, last_error, lease_until FROM callback_outbox ORDER BY id";
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }

    /// Runs one statement with string parameters, as another process sharing the database
    /// would.
    async fn execute(&self, sql: &'static str, binds: &[&str]) {
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(*b);
            }
            query.execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(*b);
            }
            query.execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    /// Whether the database holds the bytes of file `id` itself.
    async fn holds_file_bytes(&self, id: &str) -> bool {
        const SQL: &str = "SELECT data IS NOT NULL FROM customer_files WHERE id = $1";
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let held: bool = sqlx::query_scalar(SQL)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            held
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            let held: bool = sqlx::query_scalar(SQL)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            held
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
    admin_api_needs_its_key_and_its_own_port
        => admin_api_needs_its_key_and_its_own_port_sqlite, admin_api_needs_its_key_and_its_own_port_postgres;
    operator_lists_shows_and_accepts
        => operator_lists_shows_and_accepts_sqlite, operator_lists_shows_and_accepts_postgres;
    rejection_reaches_the_client_and_the_callback
        => rejection_reaches_the_client_and_the_callback_sqlite, rejection_reaches_the_client_and_the_callback_postgres;
    request_info_asks_for_fields_again
        => request_info_asks_for_fields_again_sqlite, request_info_asks_for_fields_again_postgres;
    notify_reports_a_change_made_outside_a_request
        => notify_reports_a_change_made_outside_a_request_sqlite, notify_reports_a_change_made_outside_a_request_postgres;
    operator_downloads_uploaded_files
        => operator_downloads_uploaded_files_sqlite, operator_downloads_uploaded_files_postgres;
    files_dir_holds_the_bytes_and_delete_erases_them
        => files_dir_holds_the_bytes_and_delete_erases_them_sqlite, files_dir_holds_the_bytes_and_delete_erases_them_postgres;
    unattached_uploads_expire
        => unattached_uploads_expire_sqlite, unattached_uploads_expire_postgres;
    failed_callback_is_retried
        => failed_callback_is_retried_sqlite, failed_callback_is_retried_postgres;
    queued_callback_survives_a_restart
        => queued_callback_survives_a_restart_sqlite, queued_callback_survives_a_restart_postgres;
}

// ---- helpers ---------------------------------------------------------------------------------

async fn spawn(db: &Db, kyc_toml: &str) -> TestApp {
    TestApp::spawn_with(AppOptions {
        toml: format!("{}{kyc_toml}", admin_toml()),
        database_url: Some(db.url.clone()),
        ..AppOptions::default()
    })
    .await
}

const MANUAL: &str = "[kyc]\nreview = \"manual\"\n";
const AUTO: &str = "[kyc]\nreview = \"auto\"\n";

/// A SEP-10 authenticated client of the KYC server.
struct Client<'a> {
    app: &'a TestApp,
    key: Keypair,
    token: String,
}

impl<'a> Client<'a> {
    async fn login(app: &'a TestApp) -> Client<'a> {
        let key = Keypair::random();
        let token = app.token_for(&key, None).await;
        Client { app, key, token }
    }

    fn account(&self) -> String {
        self.key.public_key().to_string()
    }

    async fn get(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .app
            .http
            .get(format!("{}/customer", self.app.kyc_url()))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .app
            .http
            .put(format!("{}{path}", self.app.kyc_url()))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    async fn put_multipart(&self, form: reqwest::multipart::Form) -> (u16, Value) {
        let response = self
            .app
            .http
            .put(format!("{}/customer", self.app.kyc_url()))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    async fn upload(&self, content_type: &str, bytes: &[u8]) -> Value {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name("document")
            .mime_str(content_type)
            .unwrap();
        let response = self
            .app
            .http
            .post(format!("{}/customer/files", self.app.kyc_url()))
            .bearer_auth(&self.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn delete(&self) -> (u16, Value) {
        let response = self
            .app
            .http
            .delete(format!(
                "{}/customer/{}",
                self.app.kyc_url(),
                self.account()
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// A sender with every required field, under `memo`; returns its id.
    async fn register_sender(&self, memo: Option<&str>) -> String {
        let mut body = json!({
            "type": "sep31-sender",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email_address": "ada@example.com",
        });
        if let Some(memo) = memo {
            body["memo"] = json!(memo);
        }
        let (status, put) = self.put("/customer", body).await;
        assert_eq!(status, 202, "{put}");
        put["id"].as_str().unwrap().to_owned()
    }

    async fn register_callback(&self, id: &str, url: &str) {
        let (status, body) = self
            .put("/customer/callback", json!({"id": id, "url": url}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

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

fn ids_of(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["customers"]
        .as_array()
        .unwrap_or_else(|| panic!("a customer list: {list}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    ids
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error body: {body}"))
}

/// A port nothing listens on, until the test binds it again.
async fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- the admin API ------------------------------------------------------------------------------

async fn admin_api_needs_its_key_and_its_own_port(db: Db) {
    let app = spawn(&db, MANUAL).await;
    let client = Client::login(&app).await;
    let id = client.register_sender(None).await;
    let list = format!("{}/admin/customers", app.admin_url());

    let response = app.http.get(&list).send().await.unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401, "no key: {body}");
    assert!(body["error"].is_string());
    for header in [
        "Bearer not-the-key-0123456789".to_owned(),
        format!("Bearer {ADMIN_KEY}x"),
        format!("Basic {ADMIN_KEY}"),
        ADMIN_KEY.to_owned(),
        // A client's SEP-10 token is no operator credential.
        format!("Bearer {}", client.token),
    ] {
        let response = app
            .http
            .get(&list)
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }
    // Decisions too, not only reads.
    let response = app
        .http
        .post(format!("{}/admin/customers/{id}/accept", app.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (_, shown) = admin_get(&app, &format!("/admin/customers/{id}")).await;
    assert_eq!(
        shown["fields"]["first_name"]["status"], "PROCESSING",
        "a refused decision changed nothing"
    );

    let (status, body) = admin_get(&app, "/admin/customers").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_of(&body), sorted(&[&id]));

    // The public port serves no admin endpoint, whatever the key; the admin port serves
    // nothing public.
    assert_ne!(app.admin_url(), app.url);
    for path in [
        "/admin/customers".to_owned(),
        format!("/admin/customers/{id}"),
        "/admin/files/x".to_owned(),
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.url))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path} on the public port");
    }
    let response = app
        .http
        .post(format!("{}/admin/customers/{id}/accept", app.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    for path in ["/.well-known/stellar.toml", "/kyc/customer", "/auth"] {
        let (status, _) = admin_get(&app, path).await;
        assert_eq!(status, 404, "{path} on the admin port");
    }
}

async fn operator_lists_shows_and_accepts(db: Db) {
    let app = spawn(&db, MANUAL).await;
    let client = Client::login(&app).await;
    let sender = client.register_sender(Some("1")).await;
    let (status, put) = client
        .put(
            "/customer",
            json!({
                "memo": "2",
                "type": "sep31-receiver",
                "first_name": "Grace",
                "last_name": "Hopper",
                "email_address": "grace@example.com",
                "bank_account_number": "000123456789",
            }),
        )
        .await;
    assert_eq!(status, 202, "{put}");
    let receiver = put["id"].as_str().unwrap().to_owned();

    let (status, all) = admin_get(&app, "/admin/customers").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids_of(&all), sorted(&[&sender, &receiver]));
    let summary = all["customers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == sender.as_str())
        .unwrap();
    assert_eq!(summary["account"], client.account().as_str());
    assert_eq!(summary["memo"], "1");
    assert_eq!(summary["memo_type"], "id");
    assert_eq!(summary["type"], "sep31-sender");
    let (_, pending) = admin_get(&app, "/admin/customers?pending_review=true").await;
    assert_eq!(ids_of(&pending), sorted(&[&sender, &receiver]));

    // Everything held on one customer, with its status for each type.
    let (status, shown) = admin_get(&app, &format!("/admin/customers/{sender}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["id"], sender.as_str());
    assert_eq!(shown["fields"]["first_name"]["value"], "Ada");
    assert_eq!(shown["fields"]["email_address"]["value"], "ada@example.com");
    assert_eq!(shown["fields"]["email_address"]["status"], "PROCESSING");
    assert_eq!(shown["statuses"]["sep31-sender"], "PROCESSING");
    assert_eq!(
        shown["statuses"]["sep31-receiver"], "NEEDS_INFO",
        "the sender has no bank details"
    );
    assert!(shown["callback"].is_null());
    assert_eq!(shown["files"], json!([]));

    let (status, accepted) = admin_post(
        &app,
        &format!("/admin/customers/{sender}/accept"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["statuses"]["sep31-sender"], "ACCEPTED");
    assert_eq!(accepted["statuses"]["sep31-receiver"], "NEEDS_INFO");
    for name in ["first_name", "last_name", "email_address"] {
        assert_eq!(accepted["fields"][name]["status"], "ACCEPTED", "{name}");
    }
    let (_, seen) = client.get(&[("memo", "1"), ("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "ACCEPTED", "{seen}");
    assert_eq!(seen["id"], sender.as_str());
    // Accepting one customer decides nothing for another.
    let (_, other) = client
        .get(&[("memo", "2"), ("type", "sep31-receiver")])
        .await;
    assert_eq!(
        other["status"], "NEEDS_INFO",
        "bank_number is missing: {other}"
    );
    assert_eq!(
        other["provided_fields"]["first_name"]["status"],
        "PROCESSING"
    );

    let (_, pending) = admin_get(&app, "/admin/customers?pending_review=true").await;
    assert_eq!(ids_of(&pending), sorted(&[&receiver]));

    // Paging one at a time reaches every customer exactly once, even when both changed
    // within the same second.
    let (_, page) = admin_get(&app, "/admin/customers?limit=1").await;
    let first = &page["customers"].as_array().unwrap()[..];
    assert_eq!(first.len(), 1, "{page}");
    let next = format!(
        "/admin/customers?limit=1&before={}&before_id={}",
        first[0]["updated_at_unix"],
        first[0]["id"].as_str().unwrap()
    );
    let (status, page) = admin_get(&app, &next).await;
    assert_eq!(status, 200, "{page}");
    let second = ids_of(&page);
    assert_eq!(second.len(), 1, "the second page: {page}");
    let mut both = vec![
        first[0]["id"].as_str().unwrap().to_owned(),
        second[0].clone(),
    ];
    both.sort();
    assert_eq!(both, sorted(&[&sender, &receiver]));
    let last = &page["customers"][0];
    let next = format!(
        "/admin/customers?limit=1&before={}&before_id={}",
        last["updated_at_unix"],
        last["id"].as_str().unwrap()
    );
    let (_, page) = admin_get(&app, &next).await;
    assert_eq!(page["customers"], json!([]), "and no more");

    for bad in [
        "limit=many",
        "before=yesterday",
        "before_id=abc",
        "pending_review=maybe",
    ] {
        let (status, body) = admin_get(&app, &format!("/admin/customers?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = admin_get(&app, "/admin/customers/no-such-customer").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = admin_post(&app, "/admin/customers/no-such-customer/accept", json!({})).await;
    assert_eq!(status, 404);
}

async fn rejection_reaches_the_client_and_the_callback(db: Db) {
    let app = spawn(&db, MANUAL).await;
    let client = Client::login(&app).await;
    let id = client.register_sender(None).await;
    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    client.register_callback(&id, &url).await;

    let path = format!("/admin/customers/{id}/reject");
    for body in [json!({}), json!({"reason": "   "})] {
        let (status, error) = admin_post(&app, &path, body).await;
        assert_eq!(status, 400, "{error}");
        assert!(error_of(&error).contains("reason"), "{error}");
    }
    let (_, still) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(still["status"], "PROCESSING");

    let reason = "the identity document does not match the name given";
    let (status, rejected) = admin_post(&app, &path, json!({"reason": reason})).await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["rejection"], reason);
    assert_eq!(rejected["statuses"]["sep31-sender"], "REJECTED");
    assert_eq!(rejected["statuses"]["sep31-receiver"], "REJECTED");

    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "REJECTED", "{seen}");
    assert_eq!(
        seen["message"], reason,
        "SEP12-13b: REJECTED carries message"
    );
    let got = wallet.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].json(), seen, "the callback body is the GET body");
    verified(&got[0], &app.server_key.public_key(), &url);

    // SEP12-35: REJECTED ends the registration. Lifting the rejection is a change the
    // wallet is not told of until it registers again.
    let (status, lifted) =
        admin_post(&app, &format!("/admin/customers/{id}/accept"), json!({})).await;
    assert_eq!(status, 200, "{lifted}");
    assert!(lifted["rejection"].is_null());
    assert_eq!(lifted["statuses"]["sep31-sender"], "ACCEPTED");
    wallet.stays_at(1, Duration::from_secs(2)).await;
}

async fn request_info_asks_for_fields_again(db: Db) {
    let app = spawn(&db, AUTO).await;
    let client = Client::login(&app).await;
    let id = client.register_sender(None).await;
    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "ACCEPTED", "review = auto: {seen}");
    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    client.register_callback(&id, &url).await;

    let path = format!("/admin/customers/{id}/request-info");
    for (body, named) in [
        (json!({}), "fields"),
        (json!({"fields": {}}), "fields"),
        (json!({"fields": {"shoe_size": "please"}}), "shoe_size"),
        (json!({"fields": {"email_address": " "}}), "email_address"),
    ] {
        let (status, error) = admin_post(&app, &path, body.clone()).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error_of(&error).contains(named), "{body}: {error}");
    }
    let (status, _) = admin_post(
        &app,
        "/admin/customers/no-such-customer/request-info",
        json!({"fields": {"email_address": "bounces"}}),
    )
    .await;
    assert_eq!(status, 404);
    assert!(wallet.all().is_empty(), "refused requests change nothing");

    // One field to send again, and one the sender type only takes when offered.
    let (status, asked) = admin_post(
        &app,
        &path,
        json!({"fields": {
            "email_address": "mail to this address bounces",
            "mobile_number": "a phone number is needed for this amount",
        }}),
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!(asked["fields"]["email_address"]["status"], "REJECTED");
    assert_eq!(asked["statuses"]["sep31-sender"], "NEEDS_INFO");

    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "NEEDS_INFO", "{seen}");
    let email = &seen["provided_fields"]["email_address"];
    assert_eq!(email["status"], "REJECTED");
    assert_eq!(email["error"], "mail to this address bounces");
    assert_eq!(seen["fields"]["email_address"]["optional"], false);
    assert!(seen["fields"]["mobile_number"].is_object(), "{seen}");
    assert!(seen["provided_fields"].get("mobile_number").is_none());
    assert_eq!(
        seen["provided_fields"]["first_name"]["status"], "ACCEPTED",
        "other fields keep their status: {seen}"
    );
    let message = seen["message"].as_str().unwrap();
    assert!(
        message.contains("mail to this address bounces"),
        "{message}"
    );
    assert!(message.contains("a phone number is needed"), "{message}");
    let got = wallet.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].json(), seen);

    // The client sends both; auto review accepts them and the wallet hears ACCEPTED.
    let (status, put) = client
        .put(
            "/customer",
            json!({"email_address": "ada@example.org", "mobile_number": "+14155550100"}),
        )
        .await;
    assert_eq!(status, 202, "{put}");
    assert_eq!(put["id"], id.as_str());
    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "ACCEPTED", "{seen}");
    let got = wallet.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].json(), seen);

    // A field no type lists: once the operator asks for it, the customer may send it (and
    // only then: capstan keeps no data it did not ask for).
    let (status, put) = client
        .put("/customer", json!({"id_number": "X1234567"}))
        .await;
    assert_eq!(status, 400, "{put}");
    assert!(error_of(&put).contains("collects"), "{put}");
    let (status, asked) = admin_post(
        &app,
        &path,
        json!({"fields": {"id_number": "needed for amounts over 1000"}}),
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "NEEDS_INFO", "{seen}");
    assert_eq!(seen["fields"]["id_number"]["optional"], false, "{seen}");
    assert!(
        seen["message"]
            .as_str()
            .unwrap()
            .contains("needed for amounts over 1000")
    );
    let (status, put) = client
        .put("/customer", json!({"id_number": "X1234567"}))
        .await;
    assert_eq!(status, 202, "the operator asked for id_number: {put}");
    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "ACCEPTED", "{seen}");
    let (_, shown) = admin_get(&app, &format!("/admin/customers/{id}")).await;
    assert_eq!(shown["fields"]["id_number"]["value"], "X1234567");
    let (status, put) = client.put("/customer", json!({"occupation": "2512"})).await;
    assert_eq!(status, 400, "a field nobody asked for: {put}");
    assert!(error_of(&put).contains("collects"), "{put}");
}

async fn notify_reports_a_change_made_outside_a_request(db: Db) {
    let app = spawn(&db, MANUAL).await;
    let client = Client::login(&app).await;
    let id = client.register_sender(None).await;
    let wallet = Recorder::default();
    let url = wallet.start("/callback").await;
    client.register_callback(&id, &url).await;

    // Nothing changed: nothing to report.
    let (status, body) =
        admin_post(&app, &format!("/admin/customers/{id}/notify"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    wallet.stays_at(0, Duration::from_millis(1500)).await;

    // A decision written straight to the database (another tool, a request that crashed
    // before looking): notify finds it well before the periodic check would.
    db.execute(
        "UPDATE customer_fields SET status = 'ACCEPTED' WHERE customer_id = $1",
        &[&id],
    )
    .await;
    let (status, _) = admin_post(&app, &format!("/admin/customers/{id}/notify"), json!({})).await;
    assert_eq!(status, 200);
    let got = wallet.wait_for(1, Duration::from_secs(5)).await;
    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "ACCEPTED");
    assert_eq!(got[0].json(), seen);
    verified(&got[0], &app.server_key.public_key(), &url);

    let (status, _) = admin_post(&app, "/admin/customers/no-such-customer/notify", json!({})).await;
    assert_eq!(status, 404);
}

const WITH_PHOTO: &str = "[kyc.types.sep31-sender]\n\
     fields = [\"first_name\", \"last_name\", \"email_address\"]\n\
     optional = [\"photo_id_front\"]\n";

fn sender_with_photo(bytes: &[u8]) -> reqwest::multipart::Form {
    let photo = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name("passport.png")
        .mime_str("image/png")
        .unwrap();
    reqwest::multipart::Form::new()
        .text("type", "sep31-sender")
        .text("first_name", "Ada")
        .text("last_name", "Lovelace")
        .text("email_address", "ada@example.com")
        .part("photo_id_front", photo)
}

async fn admin_file(app: &TestApp, id: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/admin/files/{id}", app.admin_url()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
}

async fn operator_downloads_uploaded_files(db: Db) {
    let app = spawn(&db, &format!("{AUTO}{WITH_PHOTO}")).await;
    let client = Client::login(&app).await;
    let png: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let (status, put) = client.put_multipart(sender_with_photo(&png)).await;
    assert_eq!(status, 202, "{put}");
    let id = put["id"].as_str().unwrap().to_owned();

    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "ACCEPTED", "{seen}");
    assert_eq!(seen["provided_fields"]["photo_id_front"]["type"], "binary");
    let (_, shown) = admin_get(&app, &format!("/admin/customers/{id}")).await;
    let first = shown["fields"]["photo_id_front"]["file_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the field names its file: {shown}"))
        .to_owned();
    assert!(shown["fields"]["photo_id_front"]["value"].is_null());

    // A replacement, uploaded first and then named by its file id (SEP12-37).
    let pdf = b"%PDF-1.7 a scanned passport".to_vec();
    let uploaded = client.upload("application/pdf", &pdf).await;
    let second = uploaded["file_id"].as_str().unwrap().to_owned();
    assert_eq!(uploaded["size"], pdf.len());
    let (status, put) = client
        .put("/customer", json!({"photo_id_front_file_id": second}))
        .await;
    assert_eq!(status, 202, "{put}");
    assert_eq!(put["id"], id.as_str());

    let (_, shown) = admin_get(&app, &format!("/admin/customers/{id}")).await;
    assert_eq!(
        shown["fields"]["photo_id_front"]["file_id"],
        second.as_str()
    );
    let mut listed: Vec<(&str, &str, u64)> = shown["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file_id"].as_str().unwrap(),
                f["content_type"].as_str().unwrap(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (first.as_str(), "image/png", png.len() as u64),
        (second.as_str(), "application/pdf", pdf.len() as u64),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    for (file, content_type, bytes) in [
        (&first, "image/png", &png),
        (&second, "application/pdf", &pdf),
    ] {
        let response = admin_file(&app, file).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..]);
    }
    let response = app
        .http
        .get(format!("{}/admin/files/{first}", app.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "files need the key too");
    assert_eq!(admin_file(&app, "no-such-file").await.status(), 404);
}

/// An upload that no `PUT` names within `kyc.unattached_file_lifetime_secs` can no longer be
/// named or listed, and the purge deletes its record and its bytes; files that customers
/// hold are kept, however old.
async fn unattached_uploads_expire(db: Db) {
    let files = tempfile::tempdir().unwrap();
    let dir = toml::Value::String(files.path().display().to_string());
    let app = spawn(
        &db,
        &format!(
            "[kyc]\nreview = \"auto\"\nfiles_dir = {dir}\nunattached_file_lifetime_secs = 2\n{WITH_PHOTO}"
        ),
    )
    .await;
    let client = Client::login(&app).await;
    let png = b"\x89PNG\r\n\x1a\n attached at once".to_vec();
    let (status, put) = client.put_multipart(sender_with_photo(&png)).await;
    assert_eq!(status, 202, "{put}");
    let id = put["id"].as_str().unwrap().to_owned();
    let (_, shown) = admin_get(&app, &format!("/admin/customers/{id}")).await;
    let photo = shown["fields"]["photo_id_front"]["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Named in time: taken.
    let named = client.upload("application/pdf", b"%PDF-1.7 named").await;
    let named = named["file_id"].as_str().unwrap().to_owned();
    let (status, put) = client
        .put("/customer", json!({"photo_id_front_file_id": named}))
        .await;
    assert_eq!(status, 202, "{put}");
    let loose = client
        .upload("application/pdf", b"%PDF-1.7 never named")
        .await;
    let loose = loose["file_id"].as_str().unwrap().to_owned();

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let listed = app
        .http
        .get(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(&client.token)
        .query(&[("file_id", loose.as_str())])
        .send()
        .await
        .unwrap();
    let (status, listed) = json_of(listed).await;
    assert_eq!((status, listed), (200, json!({"files": []})));
    let (status, put) = client
        .put("/customer", json!({"photo_id_front_file_id": loose}))
        .await;
    assert_eq!(status, 400, "{put}");
    assert!(put["error"].as_str().unwrap().contains("expired"), "{put}");

    // The purge runs every minute; as of an hour later (past the grace a PUT in flight
    // has), it deletes the loose upload and nothing else.
    let later = capstan::store::unix_now() + 3600;
    let deleted = app
        .running
        .anchor
        .files
        .delete_expired(later)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let mut on_disk: Vec<String> = std::fs::read_dir(files.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, sorted(&[&photo, &named]));
    assert_eq!(admin_file(&app, &loose).await.status(), 404);
    assert_eq!(admin_file(&app, &named).await.status(), 200);
    assert_eq!(admin_file(&app, &photo).await.status(), 200);
    assert_eq!(
        app.running
            .anchor
            .files
            .delete_expired(later)
            .await
            .unwrap(),
        0
    );
}

async fn files_dir_holds_the_bytes_and_delete_erases_them(db: Db) {
    let files = tempfile::tempdir().unwrap();
    let dir = toml::Value::String(files.path().display().to_string());
    let app = spawn(
        &db,
        &format!("[kyc]\nreview = \"auto\"\nfiles_dir = {dir}\n{WITH_PHOTO}"),
    )
    .await;
    let client = Client::login(&app).await;
    let png = b"\x89PNG\r\n\x1a\n not really an image".to_vec();
    let (status, put) = client.put_multipart(sender_with_photo(&png)).await;
    assert_eq!(status, 202, "{put}");
    let id = put["id"].as_str().unwrap().to_owned();
    // An upload never attached to a customer is the customer's data all the same.
    let loose = client.upload("application/pdf", b"%PDF-1.7 loose").await;
    let loose = loose["file_id"].as_str().unwrap().to_owned();

    let (_, shown) = admin_get(&app, &format!("/admin/customers/{id}")).await;
    let photo = shown["fields"]["photo_id_front"]["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut on_disk: Vec<String> = std::fs::read_dir(files.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk,
        sorted(&[&photo, &loose]),
        "one file per upload, no leftovers"
    );
    assert_eq!(std::fs::read(files.path().join(&photo)).unwrap(), png);
    assert!(
        !db.holds_file_bytes(&photo).await,
        "with files_dir the database keeps only the record"
    );

    let response = admin_file(&app, &photo).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(&response.bytes().await.unwrap()[..], &png[..]);
    assert_eq!(
        &admin_file(&app, &loose).await.bytes().await.unwrap()[..],
        b"%PDF-1.7 loose"
    );

    let (status, body) = client.delete().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));
    let left: Vec<_> = std::fs::read_dir(files.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the files are erased with the customer: {left:?}"
    );
    assert_eq!(admin_file(&app, &photo).await.status(), 404);
    assert_eq!(admin_file(&app, &loose).await.status(), 404);
    let (status, _) = admin_get(&app, &format!("/admin/customers/{id}")).await;
    assert_eq!(status, 404);
    let (_, seen) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(seen["status"], "NEEDS_INFO");
    assert!(seen.get("id").is_none(), "{seen}");
    let (status, _) = client.delete().await;
    assert_eq!(status, 404, "nothing left to delete");
}

// ---- the callback outbox ---------------------------------------------------------------------------

async fn failed_callback_is_retried(db: Db) {
    let app = spawn(&db, MANUAL).await;
    let client = Client::login(&app).await;
    let id = client.register_sender(None).await;
    let wallet = Recorder::answering(&[500]);
    let url = wallet.start("/callback").await;
    client.register_callback(&id, &url).await;

    let (status, _) = admin_post(&app, &format!("/admin/customers/{id}/accept"), json!({})).await;
    assert_eq!(status, 200);
    let got = wallet.wait_for(2, Duration::from_secs(10)).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap <= Duration::from_secs(5),
        "retried after the first backoff (about 2 s), not at once nor much later: {gap:?}"
    );
    assert_eq!(got[0].body, got[1].body, "the same callback, sent again");
    assert_eq!(got[1].json()["status"], "ACCEPTED");
    verified(&got[1], &app.server_key.public_key(), &url);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = db.outbox().await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        let (attempts, delivered_at, ref last_error, _) = rows[0];
        if delivered_at.is_some() {
            assert_eq!(attempts, 2);
            assert_eq!(*last_error, None);
            break;
        }
        assert!(Instant::now() < deadline, "delivery is recorded: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wallet.stays_at(2, Duration::from_secs(1)).await;
}

async fn queued_callback_survives_a_restart(db: Db) {
    let port = unused_port().await;
    let url = format!("http://127.0.0.1:{port}/callback");
    let app = spawn(&db, MANUAL).await;
    let client = Client::login(&app).await;
    let id = client.register_sender(None).await;
    client.register_callback(&id, &url).await;
    let (status, _) = admin_post(&app, &format!("/admin/customers/{id}/accept"), json!({})).await;
    assert_eq!(status, 200);

    // The wallet is down: the first attempt fails and the callback waits in the outbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = db.outbox().await;
        assert_eq!(rows.len(), 1, "one callback queued: {rows:?}");
        let (attempts, delivered_at, ref last_error, lease_until) = rows[0];
        assert_eq!(delivered_at, None);
        if attempts >= 1 && lease_until == 0 {
            assert!(last_error.is_some());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a first attempt is made: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, backlog) = admin_get(&app, "/admin/callbacks").await;
    assert_eq!(status, 200, "{backlog}");
    assert_eq!(backlog, json!({"waiting": 1, "failed": 0}));
    app.running.shutdown().await;

    // The wallet comes back, then a new anchor process on the same database.
    let wallet = Recorder::default();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    wallet.start_on(listener, "/callback").await;
    let app = spawn(&db, MANUAL).await;
    let got = wallet.wait_for(1, Duration::from_secs(10)).await;
    let body = got[0].json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["status"], "ACCEPTED");
    // Signed at sending time, by the key the anchor has now.
    verified(&got[0], &app.server_key.public_key(), &url);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = db.outbox().await;
        if rows[0].1.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "delivery is recorded: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, backlog) = admin_get(&app, "/admin/callbacks").await;
    assert_eq!(backlog, json!({"waiting": 0, "failed": 0}));
    wallet.stays_at(1, Duration::from_secs(1)).await;
    app.running.shutdown().await;
}
