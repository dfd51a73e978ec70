//! A recording callback endpoint, as a wallet or a sending anchor runs one: it records every
//! request and answers with scripted statuses, then 200.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use stellar::PublicKey;
use tokio::net::TcpListener;

/// How often the waiting helpers look again.
const POLL: Duration = Duration::from_millis(25);

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub at: Instant,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: String,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON callback body")
    }

    /// The body, checked to be sent as JSON (`Content-Type: application/json...`).
    pub fn json_body(&self) -> Value {
        let content_type = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "callback content type {content_type:?}"
        );
        self.json()
    }
}

/// Records every request, whatever its method and path; answers with the scripted statuses
/// in turn, then 200.
#[derive(Clone, Default)]
pub struct Recorder {
    got: Arc<Mutex<Vec<Delivery>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Recorder {
    /// A recorder that answers `statuses` to the first requests.
    pub fn answering(statuses: &[u16]) -> Recorder {
        let recorder = Recorder::default();
        recorder.answers.lock().unwrap().extend(statuses);
        recorder
    }

    /// Answers `status` to one more request before answering 200.
    pub fn answer_next(&self, status: u16) {
        self.answers.lock().unwrap().push_back(status);
    }

    /// Serves on 127.0.0.1 at a fresh port; returns `http://127.0.0.1:<port><path>`, the port
    /// explicit (it is part of what is signed).
    pub async fn start(&self, path: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.start_on(listener, path).await
    }

    /// Serves on `listener`; returns the URL of `path` on it.
    pub async fn start_on(&self, listener: TcpListener, path: &str) -> String {
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().fallback(record).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        format!("http://{addr}{path}")
    }

    /// Every request so far, in order of arrival.
    pub fn all(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// Every request so far, once there are at least `n`; fails after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.all();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} callback(s) within {within:?}, got {}: {got:?}",
                got.len()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails as soon as more than `n` requests have arrived, watching for `window`, and
    /// unless exactly `n` have arrived at its end.
    pub async fn stays_at(&self, n: usize, window: Duration) {
        let deadline = Instant::now() + window;
        while Instant::now() < deadline {
            let got = self.all();
            assert!(got.len() <= n, "no further callback expected: {got:?}");
            tokio::time::sleep(POLL).await;
        }
        let got = self.all();
        assert_eq!(got.len(), n, "{got:?}");
    }
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    recorder.got.lock().unwrap().push(Delivery {
        at: Instant::now(),
        method,
        uri,
        headers,
        body,
    });
    let answer = recorder.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(answer).unwrap()
}

/// `host:port` of a callback URL, as the signature covers it.
pub fn signed_host(url: &str) -> String {
    let url = url::Url::parse(url).expect("a callback URL");
    let port = url.port().expect("a callback URL with an explicit port");
    format!("{}:{port}", url.host_str().expect("a host"))
}

/// The `Signature: t=<ts>, s=<b64>` header, checked to equal `X-Stellar-Signature`: the
/// timestamp and the decoded signature.
pub fn signature_of(delivery: &Delivery) -> (i64, Vec<u8>) {
    let header = delivery
        .headers
        .get("signature")
        .expect("a Signature header")
        .to_str()
        .unwrap();
    assert_eq!(
        delivery
            .headers
            .get("x-stellar-signature")
            .and_then(|v| v.to_str().ok()),
        Some(header),
        "the deprecated header carries the same value"
    );
    let (t, s) = header
        .split_once(", ")
        .unwrap_or_else(|| panic!("Signature is \"t=<ts>, s=<sig>\": {header}"));
    let ts: i64 = t.strip_prefix("t=").expect("t=<ts>").parse().unwrap();
    let signature = BASE64
        .decode(s.strip_prefix("s=").expect("s=<sig>"))
        .unwrap();
    (ts, signature)
}

/// The checks a wallet makes on a callback sent to `url`: a POST to its path and query, a
/// JSON body, `Signature` equal to `X-Stellar-Signature`, signed by `key` over
/// `<t>.<host:port>.<body>` (and not over another host), with a fresh `t`. Returns the body.
pub fn verified(delivery: &Delivery, key: &PublicKey, url: &str) -> Value {
    assert_eq!(delivery.method, Method::POST, "{delivery:?}");
    let expected = url::Url::parse(url).expect("a callback URL");
    assert_eq!(delivery.uri.path(), expected.path(), "{delivery:?}");
    assert_eq!(delivery.uri.query(), expected.query(), "{delivery:?}");
    let (ts, signature) = signature_of(delivery);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (ts - now).abs() < 60,
        "the timestamp is the time of sending: t={ts}, now {now}"
    );
    let host = signed_host(url);
    let payload = format!("{ts}.{host}.{}", delivery.body);
    assert!(
        key.verify(payload.as_bytes(), &signature),
        "signed over {payload:?}"
    );
    // The host is part of what is signed: a copy replayed to another receiver fails.
    let elsewhere = format!("{ts}.wallet.example.{}", delivery.body);
    assert!(!key.verify(elsewhere.as_bytes(), &signature));
    delivery.json_body()
}
