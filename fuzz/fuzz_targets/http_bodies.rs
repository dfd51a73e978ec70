//! The request bodies of SEP-12 and SEP-31 on hostile input, through capstan's real router
//! (every layer, extractor and handler; SQLite in a temporary directory). Each input is one
//! request, sent with `tower::ServiceExt::oneshot`. The anchor must never answer 5xx (a
//! panic in a handler shows as a 500 from the panic-catching layer), and every 4xx must be
//! the JSON `{"error": "..."}` the SEPs name.
//!
//! Input layout (the first three bytes are taken modulo, so ASCII digits work in seeds):
//! - byte 0, endpoint (mod 8): 0 PUT /kyc/customer, 1 PUT /kyc/customer/callback,
//!   2 PUT /kyc/customer/verification, 3 POST /kyc/customer/files,
//!   4 POST /sep31/transactions, 5 PATCH /sep31/transactions/{id},
//!   6 PUT /sep31/transactions/{id}/callback, 7 POST /auth;
//! - byte 1, content type (mod 8): 0 application/json, 1 multipart/form-data with the
//!   boundary on the next line, 2 application/x-www-form-urlencoded, 3 the next line as the
//!   whole Content-Type, 4 none, 5 application/json; charset=utf-8, 6 multipart/form-data
//!   without a boundary, 7 text/plain;
//! - byte 2, token (mod 4): 0 the sending anchor's account, 1 its memo 1 (the sender
//!   customer), 2 its memo 2 (the receiver customer), 3 no Authorization header;
//! - the rest is the body, where `$S`, `$R` and `$T` stand for the sender's and receiver's
//!   customer ids and a SEP-31 transaction created at start-up, so inputs can name real
//!   records.

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use stellar::{ClientAccount, Keypair};
use tower::ServiceExt;

const JWT_SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

const TYPES: &str = r#"
[kyc.types.sep31-sender]
fields = ["first_name", "last_name", "email_address"]
optional = ["mobile_number"]

[kyc.types.sep31-receiver]
fields = ["first_name", "last_name", "email_address", "bank_account_number", "bank_number"]
"#;

struct App {
    runtime: tokio::runtime::Runtime,
    router: Router,
    anchor: capstan::AppState,
    client: Keypair,
    sender: String,
    receiver: String,
    transaction: String,
    _dir: tempfile::TempDir,
}

impl App {
    fn token(&self, memo: Option<u64>) -> String {
        let client = ClientAccount {
            account: self.client.public_key(),
            memo,
            muxed: false,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = self.anchor.jwt.claims(
            client.sub(),
            now,
            "fuzz".into(),
            None,
            self.anchor.config.default_home_domain().to_owned(),
        );
        self.anchor.jwt.issue(&claims).expect("token")
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&[u8]>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(value) = content_type.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            request = request.header(CONTENT_TYPE, value);
        }
        let request = request
            .header(CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("response body");
        (status, bytes.to_vec())
    }

    /// A JSON request that must succeed with `status`; returns the `id` it answers.
    async fn create(&self, method: Method, path: &str, token: &str, body: Value) -> String {
        let (status, bytes) = self
            .send(
                method,
                path,
                Some(token),
                Some(b"application/json"),
                body.to_string().into_bytes(),
            )
            .await;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer["id"].as_str().expect("id").to_owned()
    }
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let server_key = Keypair::from_seed_bytes([7; 32]);
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:8000\"\nbase_url = \"http://127.0.0.1:8000\"\n\
             [stellar]\nhorizon_url = \"http://127.0.0.1:9\"\nsigning_seed = \"{}\"\n\
             [auth]\njwt_secret = \"{JWT_SECRET}\"\n\
             [database]\nurl = \"sqlite://{}\"\n\
             [watcher]\nenabled = false\n\
             [rails]\nenabled = false\n\
             {TYPES}",
            server_key.secret_seed(),
            dir.path().join("capstan.db").display(),
        );
        let config = capstan::Config::from_parts(&text, Vec::new()).expect("configuration");
        let anchor = runtime
            .block_on(capstan::server::open(
                config,
                capstan::Extensions::default(),
            ))
            .expect("anchor opens");
        let router = capstan::http::router(anchor.clone(), None);
        let mut app = App {
            runtime,
            router,
            anchor,
            client: Keypair::from_seed_bytes([9; 32]),
            sender: String::new(),
            receiver: String::new(),
            transaction: String::new(),
            _dir: dir,
        };
        let (sender, receiver, transaction) = app.runtime.block_on(async {
            let sender = app
                .create(
                    Method::PUT,
                    "/kyc/customer",
                    &app.token(Some(1)),
                    json!({"type": "sep31-sender", "first_name": "Ana", "last_name": "Silva",
                           "email_address": "ana@example.com"}),
                )
                .await;
            let receiver = app
                .create(
                    Method::PUT,
                    "/kyc/customer",
                    &app.token(Some(2)),
                    json!({"type": "sep31-receiver", "first_name": "Bruno", "last_name": "Costa",
                           "email_address": "bruno@example.com",
                           "bank_account_number": "12345678", "bank_number": "021000021"}),
                )
                .await;
            let transaction = app
                .create(
                    Method::POST,
                    "/sep31/transactions",
                    &app.token(None),
                    json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA",
                           "sender_id": sender, "receiver_id": receiver}),
                )
                .await;
            (sender, receiver, transaction)
        });
        app.sender = sender;
        app.receiver = receiver;
        app.transaction = transaction;
        app
    })
}

/// Replaces `from` by `to` everywhere in `bytes`.
fn replace(bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    if !bytes.windows(from.len()).any(|w| w == from) {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + to.len());
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// The bytes up to the first newline, and what follows it.
fn line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let app = app();
    let [endpoint, content_type, token, rest @ ..] = data else {
        return;
    };
    let id = &app.transaction;
    let (method, path) = match endpoint % 8 {
        0 => (Method::PUT, "/kyc/customer".to_owned()),
        1 => (Method::PUT, "/kyc/customer/callback".to_owned()),
        2 => (Method::PUT, "/kyc/customer/verification".to_owned()),
        3 => (Method::POST, "/kyc/customer/files".to_owned()),
        4 => (Method::POST, "/sep31/transactions".to_owned()),
        5 => (Method::PATCH, format!("/sep31/transactions/{id}")),
        6 => (Method::PUT, format!("/sep31/transactions/{id}/callback")),
        _ => (Method::POST, "/auth".to_owned()),
    };
    let (content_type, body): (Option<Vec<u8>>, &[u8]) = match content_type % 8 {
        0 => (Some(b"application/json".to_vec()), rest),
        1 => {
            let (boundary, body) = line(rest);
            let mut value = b"multipart/form-data; boundary=".to_vec();
            value.extend_from_slice(boundary);
            (Some(value), body)
        }
        2 => (Some(b"application/x-www-form-urlencoded".to_vec()), rest),
        3 => {
            let (value, body) = line(rest);
            (Some(value.to_vec()), body)
        }
        4 => (None, rest),
        5 => (Some(b"application/json; charset=utf-8".to_vec()), rest),
        6 => (Some(b"multipart/form-data".to_vec()), rest),
        _ => (Some(b"text/plain".to_vec()), rest),
    };
    let token = match token % 4 {
        0 => Some(app.token(None)),
        1 => Some(app.token(Some(1))),
        2 => Some(app.token(Some(2))),
        _ => None,
    };
    let body = replace(body.to_vec(), b"$S", app.sender.as_bytes());
    let body = replace(body, b"$R", app.receiver.as_bytes());
    let body = replace(body, b"$T", app.transaction.as_bytes());

    let (status, answer) = app.runtime.block_on(app.send(
        method.clone(),
        &path,
        token.as_deref(),
        content_type.as_deref(),
        body,
    ));
    let text = String::from_utf8_lossy(&answer);
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {text}"
    );
    if status.is_client_error() {
        let json: Option<Value> = serde_json::from_slice(&answer).ok();
        assert!(
            json.as_ref()
                .and_then(|j| j.get("error"))
                .is_some_and(Value::is_string),
            "{method} {path} answered {status} without a JSON error: {text}"
        );
    }
});
