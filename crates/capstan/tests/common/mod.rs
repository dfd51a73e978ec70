//! Black-box test harness: the real anchor on a real port with a real database, a fake
//! Horizon that answers in Horizon's JSON shapes, and a small SEP-10 client.
#![allow(dead_code)]

pub mod callbacks;
pub mod fake_business;
pub mod process;
pub mod stoppable;
pub mod world;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use capstan::{AppState, Config, Running};
use serde_json::{Value, json};
use stellar::{Keypair, Network};
use tokio::net::TcpListener;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Serves `router` on 127.0.0.1 at a free port.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

// ---- fake Horizon ---------------------------------------------------------------------

#[derive(Clone, Default)]
pub struct FakeHorizon {
    accounts: Arc<Mutex<HashMap<String, Value>>>,
    /// When set, every request gets this status (Horizon down or failing).
    failing: Arc<Mutex<Option<u16>>>,
    pub url: String,
}

impl FakeHorizon {
    pub async fn start() -> FakeHorizon {
        let mut horizon = FakeHorizon::default();
        let router = Router::new()
            .route("/accounts/{id}", get(account))
            .with_state(horizon.clone());
        horizon.url = format!("http://{}", serve(router).await);
        horizon
    }

    /// Registers an account with its signers (key, weight) and medium threshold.
    pub fn add_account(&self, account: &str, signers: &[(&str, u32)], med_threshold: u32) {
        let signers: Vec<Value> = signers.iter().map(|(key, weight)| json!({"key": key, "weight": weight, "type": "ed25519_public_key", "sponsor": null})).collect();
        let body = json!({
            "id": account,
            "account_id": account,
            "sequence": "123456789",
            "subentry_count": 0,
            "thresholds": {"low_threshold": 0, "med_threshold": med_threshold, "high_threshold": med_threshold},
            "flags": {"auth_required": false, "auth_revocable": false, "auth_immutable": false, "auth_clawback_enabled": false},
            "balances": [{"balance": "10000.0000000", "asset_type": "native", "buying_liabilities": "0.0000000", "selling_liabilities": "0.0000000"}],
            "signers": signers,
            "data": {},
            "paging_token": account,
        });
        self.accounts
            .lock()
            .unwrap()
            .insert(account.to_owned(), body);
    }

    pub fn fail_with(&self, status: Option<u16>) {
        *self.failing.lock().unwrap() = status;
    }
}

async fn account(State(h): State<FakeHorizon>, Path(id): Path<String>) -> Response {
    if let Some(status) = *h.failing.lock().unwrap() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, Json(json!({"type": "https://stellar.org/horizon-errors/server_error", "title": "Internal Server Error", "status": status.as_u16()}))).into_response();
    }
    match h.accounts.lock().unwrap().get(&id) {
        Some(body) => Json(body.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "type": "https://stellar.org/horizon-errors/not_found",
                "title": "Resource Missing",
                "status": 404,
                "detail": "The resource at the url requested was not found."
            })),
        )
            .into_response(),
    }
}

// ---- the anchor under test ---------------------------------------------------------------

pub struct TestApp {
    pub running: Running,
    pub url: String,
    pub horizon: FakeHorizon,
    pub server_key: Keypair,
    pub network: Network,
    pub http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Default)]
pub struct AppOptions {
    /// Extra TOML appended to the generated test configuration.
    pub toml: String,
    /// `None`: a fresh SQLite file in a temporary directory.
    pub database_url: Option<String>,
    pub extra_routes: Option<Router<AppState>>,
    /// An embedder's own integrations.
    pub sep31_receiver: Option<Arc<dyn capstan::sep31::integration::Sep31Receiver>>,
    pub fees: Option<Arc<dyn capstan::sep31::integration::Fees>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(AppOptions::default()).await
    }

    pub async fn spawn_with(options: AppOptions) -> TestApp {
        let horizon = FakeHorizon::start().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let server_key = Keypair::random();
        let (dir, database_url) = match options.database_url {
            Some(url) => (None, url),
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
                (Some(dir), url)
            }
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{port}\"\n\
             [stellar]\nhorizon_url = \"{}\"\nsigning_seed = \"{}\"\n\
             [auth]\njwt_secret = \"{JWT_SECRET}\"\n\
             [database]\nurl = \"{database_url}\"\n\
             [watcher]\nenabled = false\n\
             [rails]\nenabled = false\n",
            horizon.url,
            server_key.secret_seed(),
        );
        let config = merge_sections(&text, &options.toml);
        let config = Config::from_parts(&config, Vec::new()).expect("test configuration");
        let network = config.network.clone();
        let extensions = capstan::Extensions {
            routes: options.extra_routes,
            sep31_receiver: options.sep31_receiver,
            fees: options.fees,
            ..Default::default()
        };
        let running = capstan::start_with(listener, config, extensions)
            .await
            .expect("anchor starts");
        let url = running.base_url();
        TestApp {
            running,
            url,
            horizon,
            server_key,
            network,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub fn home_domain(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request")
    }

    /// SEP-31 `POST /transactions` with a session token; returns (status, JSON body).
    pub async fn post_transaction(&self, token: &str, body: Value) -> (u16, Value) {
        json_of(
            self.http
                .post(format!("{}/sep31/transactions", self.url))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// `GET /auth` with the given query pairs; returns (status, JSON body).
    pub async fn challenge(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/auth", self.url))
            .query(query)
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    /// `POST /auth` with a JSON body.
    pub async fn post_token_json(&self, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/auth", self.url))
            .json(&body)
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    /// `POST /auth` with a form body.
    pub async fn post_token_form(&self, transaction: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/auth", self.url))
            .form(&[("transaction", transaction)])
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    /// A challenge for `account` (+ memo), signed by `signers`.
    pub async fn signed_challenge(
        &self,
        account: &str,
        memo: Option<&str>,
        signers: &[&Keypair],
    ) -> String {
        let mut query = vec![("account", account)];
        if let Some(memo) = memo {
            query.push(("memo", memo));
        }
        let (status, body) = self.challenge(&query).await;
        assert_eq!(status, 200, "challenge failed: {body}");
        stellar::sep10::sign_challenge(
            body["transaction"].as_str().unwrap(),
            &self.network,
            signers,
        )
        .unwrap()
    }

    /// A full login: challenge for `account` (+ memo), signed by `signers`, traded for a token.
    pub async fn login(
        &self,
        account: &str,
        memo: Option<&str>,
        signers: &[&Keypair],
    ) -> (u16, Value) {
        let signed = self.signed_challenge(account, memo, signers).await;
        self.post_token_json(json!({ "transaction": signed })).await
    }

    pub async fn token_for(&self, key: &Keypair, memo: Option<&str>) -> String {
        let (status, body) = self
            .login(&key.public_key().to_string(), memo, &[key])
            .await;
        assert_eq!(status, 200, "login failed: {body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response is not JSON (status {status}): {text:?}"));
    (status, body)
}

/// Adds the test's own TOML to the harness's base configuration, section by section.
fn merge_sections(base: &str, extra: &str) -> String {
    let mut table: toml::Table = base.parse().expect("base test TOML");
    let extra: toml::Table = extra.parse().expect("test TOML");
    for (key, value) in extra {
        match (table.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => mine.extend(theirs),
            (_, value) => {
                table.insert(key, value);
            }
        }
    }
    toml::to_string(&table).expect("serialise test TOML")
}

/// Each test body runs once on SQLite and once on PostgreSQL (skipped, with a printed
/// notice, without CAPSTAN_TEST_POSTGRES_URL): `name => name_sqlite, name_postgres;`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test]
        async fn $sqlite() {
            $name(None).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let Some(url) = crate::common::postgres_url(stringify!($name)).await else {
                return;
            };
            $name(Some(url)).await;
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// Like [`on_both_backends!`], for tests that need the database URL itself (several
/// processes or apps on one database): on SQLite a file in a fresh temporary directory.
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $name(format!("sqlite://{}", dir.path().join("capstan.db").display())).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let Some(url) = crate::common::postgres_url(stringify!($name)).await else {
                return;
            };
            $name(url).await;
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both_databases;

// ---- PostgreSQL ----------------------------------------------------------------------

/// A fresh schema in the test PostgreSQL, or `None` (with a printed notice) when
/// `CAPSTAN_TEST_POSTGRES_URL` is not set.
pub async fn postgres_url(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("CAPSTAN_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED {test} on PostgreSQL: CAPSTAN_TEST_POSTGRES_URL is not set");
        return None;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let schema = format!(
        "capstan_test_{now}_{}",
        hex::encode(stellar::random_bytes::<6>())
    );
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("connect to CAPSTAN_TEST_POSTGRES_URL");
    // Earlier runs' schemas: dropped once they are an hour old, so no running test loses its own.
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'capstan_test_%'",
    )
    .fetch_all(&pool)
    .await
    .expect("list test schemas");
    for name in old {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        if created + 3600 < now {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&pool)
            .await;
        }
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

// ---- SEP-12 and the admin API ------------------------------------------------------------

/// The admin API key the KYC tests configure (`[admin] api_key`).
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

impl TestApp {
    /// KYC_SERVER.
    pub fn kyc_url(&self) -> String {
        format!("{}/kyc", self.url)
    }

    /// The admin API's base URL; the test must have configured `[admin]` (see
    /// [`admin_toml`]).
    pub fn admin_url(&self) -> String {
        let addr = self
            .running
            .admin_addr
            .expect("the admin API is configured for this test");
        format!("http://{addr}")
    }
}

/// TOML that turns on the admin API on a free port with [`ADMIN_KEY`].
pub fn admin_toml() -> String {
    format!("[admin]\nlisten = \"127.0.0.1:0\"\napi_key = \"{ADMIN_KEY}\"\n")
}
