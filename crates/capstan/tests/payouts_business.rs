//! Payouts through rails on the anchor's own service over HTTP: the signed request with the
//! idempotency key, each answer the service can give, retries with the same key, the
//! status poll, and results the service reports later through the operator API.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::on_both_backends;
use common::world::{World, world_with};
use fake_horizon::Memo;
use serde_json::{Value, json};

const API_KEY: &str = "payouts-key-0123456789";

/// One request the service received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A scripted answer: the path it is for, the status, the JSON.
type Answer = (&'static str, u16, Value);

/// A payouts service that answers from a script (status and JSON per request, in order;
/// then `{"status": "completed"}` to /payouts and `{"payouts": []}` to /payouts/status).
#[derive(Clone, Default)]
struct Service {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

async fn answer(
    State(service): State<Service>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let path = uri.path().to_owned();
    service.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers,
        body,
    });
    let mut answers = service.answers.lock().unwrap();
    if let Some(i) = answers.iter().position(|(p, _, _)| *p == path) {
        let (_, status, value) = answers.remove(i).unwrap();
        return (StatusCode::from_u16(status).unwrap(), Json(value));
    }
    if path == "/payouts" {
        (StatusCode::OK, Json(json!({"status": "completed"})))
    } else {
        (StatusCode::OK, Json(json!({"payouts": []})))
    }
}

impl Service {
    async fn start() -> (Service, String) {
        let service = Service::default();
        let router = Router::new()
            .route("/payouts", post(answer))
            .route("/payouts/status", post(answer))
            .with_state(service.clone());
        let addr = common::serve(router).await;
        (service, format!("http://{addr}"))
    }

    fn script(&self, path: &'static str, status: u16, value: Value) {
        self.answers
            .lock()
            .unwrap()
            .push_back((path, status, value));
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

async fn world_paying_through(db: Option<String>, url: &str) -> World {
    world_with(
        db,
        "",
        &format!(
            "[rails]\nenabled = true\nkind = \"business\"\nbusiness_url = \"{url}\"\n\
             business_api_key = \"{API_KEY}\"\nexecute_interval_secs = 1\npoll_interval_secs = 1\n"
        ),
    )
    .await
}

/// The request is the anchor's: the API key, and a signature by the stellar.toml
/// SIGNING_KEY over `<t>.<host:port>.<body>`.
fn check_signed(w: &World, seen: &Seen, url: &str) {
    let auth = seen.headers.get("authorization").unwrap().to_str().unwrap();
    assert_eq!(auth, format!("Bearer {API_KEY}"));
    let header = seen.headers.get("signature").unwrap().to_str().unwrap();
    let (t, s) = header.split_once(", ").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let signature = BASE64.decode(s.strip_prefix("s=").unwrap()).unwrap();
    let host = url.trim_start_matches("http://");
    let payload = format!("{t}.{host}.{}", seen.body);
    assert!(
        w.app
            .running
            .anchor
            .signing_key
            .public_key()
            .verify(payload.as_bytes(), &signature),
        "signed over {payload}"
    );
}

fn body(seen: &Seen) -> Value {
    serde_json::from_str(&seen.body).unwrap()
}

on_both_backends! {
    a_signed_request_pays_out => a_signed_request_pays_out_sqlite, a_signed_request_pays_out_postgres;
    a_failing_service_is_asked_again_with_the_same_key => a_failing_service_is_asked_again_with_the_same_key_sqlite, a_failing_service_is_asked_again_with_the_same_key_postgres;
    a_submitted_payout_is_followed_up => a_submitted_payout_is_followed_up_sqlite, a_submitted_payout_is_followed_up_postgres;
}

async fn a_signed_request_pays_out(db: Option<String>) {
    let (service, url) = Service::start().await;
    let w = world_paying_through(db, &url).await;
    let (id, memo) = w.create("30").await;
    w.pay(Memo::Id(memo), "30");
    let t = w.wait_status(&id, "completed").await;
    let requests = service.seen("/payouts");
    assert_eq!(requests.len(), 1);
    check_signed(&w, &requests[0], &url);
    let sent = body(&requests[0]);
    assert_eq!(sent["idempotency_key"], id.as_str());
    assert_eq!(sent["round"], 1);
    assert_eq!(sent["transaction"]["id"], id.as_str());
    assert_eq!(sent["transaction"]["amount_out"], "29");
    assert_eq!(sent["transaction"]["status"], "pending_receiver");
    assert_eq!(
        sent["transaction"]["stellar_transaction_id"],
        t["stellar_transaction_id"]
    );
    w.app.running.shutdown().await;
}

/// 503 then a malformed answer: retried with the same key until the service answers; a 400
/// is a refusal for good.
async fn a_failing_service_is_asked_again_with_the_same_key(db: Option<String>) {
    let (service, url) = Service::start().await;
    service.script("/payouts", 503, json!({"error": "bank down"}));
    service.script("/payouts", 200, json!({"state": "?"}));
    let w = world_paying_through(db, &url).await;
    let (id, memo) = w.create("30").await;
    w.pay(Memo::Id(memo), "30");
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if w.transaction(&id).await["status"] == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("completed after the retries");
    let keys: Vec<Value> = service
        .seen("/payouts")
        .iter()
        .map(|s| body(s)["idempotency_key"].clone())
        .collect();
    assert_eq!(keys, [json!(id), json!(id), json!(id)]);

    service.script(
        "/payouts",
        400,
        json!({"error": "the receiver's account is closed"}),
    );
    let (refused, memo) = w.create("31").await;
    w.pay(Memo::Id(memo), "31");
    let t = w.wait_status(&refused, "error").await;
    assert!(
        t["status_message"]
            .as_str()
            .unwrap()
            .contains("the receiver's account is closed"),
        "{t}"
    );
    w.app.running.shutdown().await;
}

/// pending_external, then the poll reports it delivered; another is reported through the
/// operator API.
async fn a_submitted_payout_is_followed_up(db: Option<String>) {
    let (service, url) = Service::start().await;
    service.script(
        "/payouts",
        200,
        json!({"status": "pending_external", "external_transaction_id": "bank-1"}),
    );
    service.script(
        "/payouts",
        200,
        json!({"status": "pending_external", "external_transaction_id": "bank-2"}),
    );
    let w = world_paying_through(db, &url).await;
    let (polled, memo) = w.create("30").await;
    w.pay(Memo::Id(memo), "30");
    let t = w.wait_status(&polled, "pending_external").await;
    assert_eq!(t["external_transaction_id"], "bank-1");
    let (reported, memo) = w.create("30").await;
    w.pay(Memo::Id(memo), "30");
    w.wait_status(&reported, "pending_external").await;

    service.script(
        "/payouts/status",
        200,
        json!({"payouts": [{"transaction_id": polled, "status": "completed"}]}),
    );
    w.wait_status(&polled, "completed").await;
    let asked = service.seen("/payouts/status");
    let listed = &body(asked.last().unwrap())["payouts"];
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["external_transaction_id"] == "bank-2"),
        "{listed}"
    );

    // The operator API: bad reports are refused with a reason, a good one applies.
    for (report, expected) in [
        (json!({}), 400),
        (json!({"status": "paid"}), 400),
        (json!({"status": "error"}), 400),
        (json!({"status": "needs_customer_info"}), 400),
        (
            json!({"status": "needs_transaction_info", "fields": {"x": {}}}),
            400,
        ),
        (json!({"status": 5}), 400),
        (json!({"status": "refunded"}), 400),
        (json!({"status": "refunded", "refund": {"id": ""}}), 400),
        (
            json!({"status": "refunded", "refund": {"id": "ab", "fee": -1}}),
            400,
        ),
    ] {
        let (status, answer) = w
            .admin(
                reqwest::Method::POST,
                &format!("/admin/transactions/{reported}/payout"),
                Some(report.clone()),
            )
            .await;
        assert_eq!(status, expected, "{report}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, answer) = w
        .admin(
            reqwest::Method::POST,
            "/admin/transactions/nope/payout",
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/transactions/{reported}/payout"),
            Some(json!({"status": "completed", "external_transaction_id": "bank-2-settled"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["external_transaction_id"], "bank-2-settled");
    // Finished: nothing more to report.
    let (status, _) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/transactions/{reported}/payout"),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(status, 400);
    w.app.running.shutdown().await;
}
