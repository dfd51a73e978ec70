//! One test per known attack on an anchor, against the real anchor on a real port: each
//! must be refused with a 4xx JSON `{"error": ...}` that says what was wrong, never a 5xx,
//! and never with another party's data.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use common::on_both_backends;
use common::{AppOptions, JWT_SECRET, TestApp, json_of};
use serde_json::{Map, Value, json};
use stellar::sep10::{ChallengeRequest, build_challenge, sign_challenge};
use stellar::{ClientAccount, Keypair, Network};
use stellar_xdr::{Limits, MuxedAccount, ReadXdr, TransactionEnvelope, WriteXdr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- set-up ------------------------------------------------------------------------------

const TYPES: &str = r#"
[kyc.types.sep31-sender]
fields = ["first_name", "last_name", "email_address"]

[kyc.types.sep31-receiver]
fields = ["first_name", "last_name", "email_address", "bank_account_number", "bank_number"]

[kyc.types.documented]
fields = ["first_name", "photo_id_front"]
"#;

const SENDER: &[(&str, &str)] = &[
    ("type", "sep31-sender"),
    ("first_name", "Ana"),
    ("last_name", "Silva"),
    ("email_address", "ana@example.com"),
];
const RECEIVER: &[(&str, &str)] = &[
    ("type", "sep31-receiver"),
    ("first_name", "Bruno"),
    ("last_name", "Costa"),
    ("email_address", "bruno@example.com"),
    ("bank_account_number", "12345678"),
    ("bank_number", "021000021"),
];

/// The anchor with the customer types above and the test's own TOML.
async fn spawn(db: Option<String>, toml: &str) -> TestApp {
    TestApp::spawn_with(AppOptions {
        toml: format!("{TYPES}\n{toml}"),
        database_url: db,
        ..Default::default()
    })
    .await
}

fn g(key: &Keypair) -> String {
    key.public_key().to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A sending anchor: its account token, and an accepted sender (memo 1) and receiver
/// (memo 2) it registered.
struct Anchor {
    key: Keypair,
    token: String,
    sender: String,
    receiver: String,
}

async fn sending_anchor(app: &TestApp) -> Anchor {
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let sender = register(app, &token, &[SENDER, &[("memo", "1")]].concat()).await;
    let receiver = register(app, &token, &[RECEIVER, &[("memo", "2")]].concat()).await;
    Anchor {
        key,
        token,
        sender,
        receiver,
    }
}

impl Anchor {
    fn body(&self) -> Value {
        json!({
            "amount": "100",
            "asset_code": "USDC",
            "funding_method": "SEPA",
            "sender_id": self.sender,
            "receiver_id": self.receiver,
        })
    }
}

/// (status, JSON body); an empty body (204) is `null`.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    if response.status() == reqwest::StatusCode::NO_CONTENT {
        return (204, Value::Null);
    }
    json_of(response).await
}

fn object(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<Map<String, Value>>(),
    )
}

async fn register(app: &TestApp, token: &str, pairs: &[(&str, &str)]) -> String {
    let (status, body) = send(
        app.http
            .put(format!("{}/customer", app.kyc_url()))
            .bearer_auth(token)
            .json(&object(pairs)),
    )
    .await;
    assert_eq!(status, 202, "PUT /customer: {body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn create(app: &TestApp, a: &Anchor) -> String {
    let (status, body) = send(
        app.http
            .post(format!("{}/sep31/transactions", app.url))
            .bearer_auth(&a.token)
            .json(&a.body()),
    )
    .await;
    assert_eq!(status, 201, "POST /transactions: {body}");
    body["id"].as_str().expect("id").to_owned()
}

/// `status` with `{"error": "..."}` (nothing else) whose message contains `needle`.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, needle: &str) {
    let (code, body) = got;
    assert_eq!(*code, status, "expected {status}, got {code}: {body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error body without a string error: {body}"));
    assert!(
        message.contains(needle),
        "error {message:?} does not mention {needle:?}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
}

/// The answer leaks none of these values.
#[track_caller]
fn assert_no_leak(got: &(u16, Value), secrets: &[&str]) {
    let text = got.1.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked in {text}");
    }
}

on_both_backends! {
    another_anchors_customer_by_id_is_not_found => another_anchors_customer_by_id_is_not_found_sqlite, another_anchors_customer_by_id_is_not_found_postgres;
    another_anchors_transaction_by_id_is_not_found => another_anchors_transaction_by_id_is_not_found_sqlite, another_anchors_transaction_by_id_is_not_found_postgres;
    customer_ids_of_another_anchor_cannot_be_used_in_a_transaction => customer_ids_of_another_anchor_cannot_be_used_in_a_transaction_sqlite, customer_ids_of_another_anchor_cannot_be_used_in_a_transaction_postgres;
    a_replayed_challenge_gets_one_token => a_replayed_challenge_gets_one_token_sqlite, a_replayed_challenge_gets_one_token_postgres;
    forged_tokens_are_refused => forged_tokens_are_refused_sqlite, forged_tokens_are_refused_postgres;
    callback_urls_to_the_server_or_private_hosts_are_refused => callback_urls_to_the_server_or_private_hosts_are_refused_sqlite, callback_urls_to_the_server_or_private_hosts_are_refused_postgres;
}

// ---- another party's data ----------------------------------------------------------------

async fn another_anchors_customer_by_id_is_not_found(db: Option<String>) {
    let app = spawn(db, "").await;
    let victim = sending_anchor(&app).await;
    let attacker = sending_anchor(&app).await;
    let id = victim.sender.clone();
    let secrets = ["Ana", "Silva", "ana@example.com"];
    let kyc = app.kyc_url();

    let got = send(
        app.http
            .get(format!("{kyc}/customer"))
            .bearer_auth(&attacker.token)
            .query(&[("id", id.as_str())]),
    )
    .await;
    assert_error(&got, 404, &format!("customer not found for id: {id}"));
    assert_no_leak(&got, &secrets);

    // Overwriting a field of it, or registering a callback to hear of it.
    let got = send(
        app.http
            .put(format!("{kyc}/customer"))
            .bearer_auth(&attacker.token)
            .json(&json!({"id": id, "last_name": "Mallory"})),
    )
    .await;
    assert_error(&got, 404, "customer not found");
    let got = send(
        app.http
            .put(format!("{kyc}/customer/callback"))
            .bearer_auth(&attacker.token)
            .json(&json!({"id": id, "url": "http://wallet.example/cb"})),
    )
    .await;
    assert_error(&got, 404, "customer not found");

    // Deleting it: only a token of the customer's own account may.
    let got = send(
        app.http
            .delete(format!("{kyc}/customer/{}", g(&victim.key)))
            .bearer_auth(&attacker.token)
            .json(&json!({"memo": "1"})),
    )
    .await;
    assert_error(&got, 403, "own account");

    // The files of it are not listed either.
    let (status, files) = send(
        app.http
            .get(format!("{kyc}/customer/files"))
            .bearer_auth(&attacker.token)
            .query(&[("customer_id", id.as_str())]),
    )
    .await;
    assert_eq!(status, 200, "{files}");
    assert_eq!(files["files"], json!([]), "{files}");

    // The customer is untouched.
    let (status, body) = send(
        app.http
            .get(format!("{kyc}/customer"))
            .bearer_auth(&victim.token)
            .query(&[("id", id.as_str())]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ACCEPTED", "{body}");
    let callback = app
        .running
        .anchor
        .store
        .customer_callback(&id)
        .await
        .unwrap();
    assert!(callback.is_none(), "the attacker's callback was kept");
}

async fn another_anchors_transaction_by_id_is_not_found(db: Option<String>) {
    let app = spawn(db, "").await;
    let victim = sending_anchor(&app).await;
    let attacker = sending_anchor(&app).await;
    let id = create(&app, &victim).await;
    let url = format!("{}/sep31/transactions/{id}", app.url);
    let expected = format!("transaction not found: {id}");
    let secrets = [victim.sender.as_str(), victim.receiver.as_str()];

    let got = send(app.http.get(&url).bearer_auth(&attacker.token)).await;
    assert_error(&got, 404, &expected);
    assert_no_leak(&got, &secrets);
    let got = send(
        app.http
            .patch(&url)
            .bearer_auth(&attacker.token)
            .json(&json!({"fields": {"transaction": {"receiver_routing_number": "1"}}})),
    )
    .await;
    assert_error(&got, 404, &expected);
    let got = send(
        app.http
            .put(format!("{url}/callback"))
            .bearer_auth(&attacker.token)
            .json(&json!({"url": "http://wallet.example/cb"})),
    )
    .await;
    assert_error(&got, 404, &expected);

    // The same answer as an id that does not exist: nothing tells the two apart.
    let unknown = uuid::Uuid::new_v4().to_string();
    let got = send(
        app.http
            .get(format!("{}/sep31/transactions/{unknown}", app.url))
            .bearer_auth(&attacker.token),
    )
    .await;
    assert_error(&got, 404, &format!("transaction not found: {unknown}"));

    // The owner still sees it, without the attacker's callback.
    let (status, body) = send(app.http.get(&url).bearer_auth(&victim.token)).await;
    assert_eq!(status, 200, "{body}");
    let row = app
        .running
        .anchor
        .store
        .transaction(&id)
        .await
        .unwrap()
        .expect("transaction");
    assert_eq!(row.callback_url, None);
}

async fn customer_ids_of_another_anchor_cannot_be_used_in_a_transaction(db: Option<String>) {
    let app = spawn(db, "").await;
    let victim = sending_anchor(&app).await;
    let attacker = sending_anchor(&app).await;
    let post = |body: Value| {
        send(
            app.http
                .post(format!("{}/sep31/transactions", app.url))
                .bearer_auth(&attacker.token)
                .json(&body),
        )
    };
    for field in ["receiver_id", "sender_id"] {
        let mut body = attacker.body();
        let theirs = if field == "receiver_id" {
            &victim.receiver
        } else {
            &victim.sender
        };
        body[field] = json!(theirs);
        let got = post(body).await;
        assert_error(
            &got,
            400,
            &format!("{field} {theirs} is not a customer registered by this sending anchor"),
        );
        assert_no_leak(&got, &["Bruno", "Ana", "12345678"]);
    }
    // Nothing was created for the attacker.
    let (status, _) = post(attacker.body()).await;
    assert_eq!(status, 201);
}

// ---- SEP-10 --------------------------------------------------------------------------------

async fn a_replayed_challenge_gets_one_token(db: Option<String>) {
    let app = spawn(db, "").await;
    let client = Keypair::random();
    let signed = app.signed_challenge(&g(&client), None, &[&client]).await;
    let (status, body) = app.post_token_json(json!({ "transaction": signed })).await;
    assert_eq!(status, 200, "{body}");
    assert_error(
        &app.post_token_json(json!({ "transaction": signed })).await,
        400,
        "this challenge has already been used",
    );
    // As a form body too.
    assert_error(
        &app.post_token_form(&signed).await,
        400,
        "already been used",
    );

    // Replayed at the same moment: one token, whatever the interleaving.
    let signed = app.signed_challenge(&g(&client), None, &[&client]).await;
    let posts = (0..8).map(|_| app.post_token_json(json!({ "transaction": signed })));
    let answers = futures_util::future::join_all(posts).await;
    let tokens = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(tokens, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_error(&(*status, body.clone()), 400, "already been used");
    }
}

/// A challenge as the server builds it, with `network`, `home_domain` and
/// `web_auth_domain` chosen by the test, signed by `server`; then signed by the client for
/// `client_network`.
fn forged_challenge(
    server: &Keypair,
    network: &Network,
    home_domain: &str,
    web_auth_domain: &str,
    client: &Keypair,
) -> String {
    let request = ChallengeRequest {
        client: ClientAccount::parse(&g(client), None).unwrap(),
        home_domain,
        web_auth_domain,
        client_domain: None,
        now: now(),
    };
    let xdr = build_challenge(server, network, &request).unwrap();
    sign_challenge(&xdr, network, &[client]).unwrap()
}

#[tokio::test]
async fn a_challenge_for_another_network_is_refused() {
    let app = spawn(None, "").await;
    let client = Keypair::random();
    let (home, web) = (app.home_domain(), app.home_domain());
    // Built and signed by this server's key, but for the public network.
    let xdr = forged_challenge(&app.server_key, &Network::public(), &home, &web, &client);
    assert_error(
        &app.post_token_json(json!({ "transaction": xdr })).await,
        400,
        "not signed by this server",
    );
    // This network's challenge, signed by the client for another one.
    let (_, challenge) = app.challenge(&[("account", &g(&client))]).await;
    let other = Network::from_passphrase("Attacker Network ; 2024");
    let xdr = sign_challenge(
        challenge["transaction"].as_str().unwrap(),
        &other,
        &[&client],
    )
    .unwrap();
    let (status, body) = app.post_token_json(json!({ "transaction": xdr })).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("signature"),
        "{body}"
    );
}

#[tokio::test]
async fn a_challenge_for_another_home_domain_is_refused() {
    let app = spawn(None, "").await;
    let client = Keypair::random();
    let testnet = Network::testnet();
    let web = app.home_domain();
    let xdr = forged_challenge(
        &app.server_key,
        &testnet,
        "victim-anchor.example",
        &web,
        &client,
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": xdr })).await,
        400,
        "home domain",
    );
    // The right home domain, but another server's web_auth_domain.
    let home = app.home_domain();
    let xdr = forged_challenge(
        &app.server_key,
        &testnet,
        &home,
        "victim-anchor.example",
        &client,
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": xdr })).await,
        400,
        "web_auth_domain",
    );
    // And GET /auth does not hand out challenges for a home domain it does not serve.
    let got = app
        .challenge(&[
            ("account", &g(&client)),
            ("home_domain", "victim-anchor.example"),
        ])
        .await;
    assert_error(&got, 400, "is not served here");
}

#[tokio::test]
async fn a_challenge_not_signed_by_the_server_is_refused() {
    let app = spawn(None, "").await;
    let client = Keypair::random();
    let testnet = Network::testnet();
    let home = app.home_domain();
    // Built by an impostor's key.
    let impostor = Keypair::random();
    let xdr = forged_challenge(&impostor, &testnet, &home, &home, &client);
    assert_error(
        &app.post_token_json(json!({ "transaction": xdr })).await,
        400,
        "source account is not this server's signing key",
    );
    // The server's challenge with its signature replaced by the impostor's.
    let (_, challenge) = app.challenge(&[("account", &g(&client))]).await;
    let mut envelope = match TransactionEnvelope::from_xdr_base64(
        challenge["transaction"].as_str().unwrap(),
        Limits::none(),
    )
    .unwrap()
    {
        TransactionEnvelope::Tx(e) => e,
        other => panic!("not a v1 envelope: {other:?}"),
    };
    assert_eq!(
        envelope.tx.source_account,
        MuxedAccount::Ed25519(stellar_xdr::Uint256(app.server_key.public_key().0))
    );
    let forged = stellar::sep10::sign_decorated(&impostor, &envelope.tx, &testnet).unwrap();
    envelope.signatures = vec![forged].try_into().unwrap();
    let xdr = TransactionEnvelope::Tx(envelope)
        .to_xdr_base64(Limits::none())
        .unwrap();
    let xdr = sign_challenge(&xdr, &testnet, &[&client]).unwrap();
    assert_error(
        &app.post_token_json(json!({ "transaction": xdr })).await,
        400,
        "not signed by this server",
    );
}

// ---- tokens --------------------------------------------------------------------------------

async fn forged_tokens_are_refused(db: Option<String>) {
    let app = spawn(db, "").await;
    let victim = sending_anchor(&app).await;
    let id = create(&app, &victim).await;
    let issuer = format!("{}/auth", app.url);
    let t = now();
    let claims = |iss: &str, exp: u64| json!({"iss": iss, "sub": g(&victim.key), "iat": t - 10, "exp": exp, "jti": "forged"});
    let hs = |alg: jsonwebtoken::Algorithm, secret: &str, claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let alg_none = format!(
        "{}.{}.",
        B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64URL.encode(claims(&issuer, t + 600).to_string())
    );
    // The real token's header and claims with the signature cut off.
    let stripped = {
        let parts: Vec<&str> = victim.token.split('.').collect();
        format!("{}.{}.", parts[0], parts[1])
    };
    use jsonwebtoken::Algorithm::{HS256, HS512};
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", alg_none, "not valid"),
        ("no signature", stripped, "not valid"),
        (
            "wrong key",
            hs(
                HS256,
                "another-secret-another-secret-0000",
                claims(&issuer, t + 600),
            ),
            "not valid",
        ),
        (
            "another algorithm",
            hs(HS512, JWT_SECRET, claims(&issuer, t + 600)),
            "not valid",
        ),
        (
            "expired",
            hs(HS256, JWT_SECRET, claims(&issuer, t - 600)),
            "expired",
        ),
        (
            "wrong issuer",
            hs(
                HS256,
                JWT_SECRET,
                claims("https://victim-anchor.example/auth", t + 600),
            ),
            "not valid",
        ),
    ];
    for (what, token, needle) in cases {
        eprintln!("a token with {what}");
        let got = send(
            app.http
                .get(format!("{}/sep31/transactions/{id}", app.url))
                .bearer_auth(&token),
        )
        .await;
        assert_error(&got, 403, needle);
        assert_no_leak(&got, &[&victim.sender]);
        let got = send(
            app.http
                .get(format!("{}/customer", app.kyc_url()))
                .bearer_auth(&token)
                .query(&[("id", victim.sender.as_str())]),
        )
        .await;
        assert_error(&got, 403, needle);
        assert_no_leak(&got, &["Ana"]);
    }
    // The genuine token still works.
    let (status, _) = send(
        app.http
            .get(format!("{}/sep31/transactions/{id}", app.url))
            .bearer_auth(&victim.token),
    )
    .await;
    assert_eq!(status, 200);
}

// ---- sizes and time ----------------------------------------------------------------------------

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn(
        None,
        "[server]\nmax_body_bytes = 4096\n[kyc]\nmax_file_bytes = 8192\n",
    )
    .await;
    let a = sending_anchor(&app).await;
    let padding = "x".repeat(4096);
    // JSON to SEP-31 and SEP-10.
    let mut body = a.body();
    body["padding"] = json!(padding);
    let got = send(
        app.http
            .post(format!("{}/sep31/transactions", app.url))
            .bearer_auth(&a.token)
            .json(&body),
    )
    .await;
    assert_error(&got, 413, "larger than");
    let got = app.post_token_json(json!({ "transaction": padding })).await;
    assert_error(&got, 413, "larger than");
    // A form body.
    assert_error(&app.post_token_form(&padding).await, 413, "larger than");

    // Uploads: one file above kyc.max_file_bytes, as a file and in a PUT.
    let big = vec![7u8; 8193];
    let part = || {
        reqwest::multipart::Part::bytes(big.clone())
            .file_name("id.png")
            .mime_str("image/png")
            .unwrap()
    };
    let got = send(
        app.http
            .post(format!("{}/customer/files", app.kyc_url()))
            .bearer_auth(&a.token)
            .multipart(reqwest::multipart::Form::new().part("file", part())),
    )
    .await;
    assert_error(&got, 413, "file is larger than the 8192 bytes");
    let form = reqwest::multipart::Form::new()
        .text("type", "documented")
        .text("first_name", "Ana")
        .part("photo_id_front", part());
    let got = send(
        app.http
            .put(format!("{}/customer", app.kyc_url()))
            .bearer_auth(&a.token)
            .multipart(form),
    )
    .await;
    assert_error(&got, 413, "photo_id_front is larger than the 8192 bytes");
    // A whole multipart body far above every limit, in many small parts.
    let mut form = reqwest::multipart::Form::new().text("type", "documented");
    for i in 0..64 {
        form = form.text(format!("x{i}"), "y".repeat(2048));
    }
    let got = send(
        app.http
            .put(format!("{}/customer", app.kyc_url()))
            .bearer_auth(&a.token)
            .multipart(form),
    )
    .await;
    assert!(
        got.0 == 413 || got.0 == 400,
        "a huge multipart body: {got:?}"
    );
    assert!(got.1["error"].is_string(), "{got:?}");
}

/// Sends the headers of a request with a body of `length` bytes, then trickles the body a
/// byte every 200 ms; returns the status line and body of the answer and how long it took.
async fn trickle(app: &TestApp, head: &str, length: usize) -> (String, Value, Duration) {
    let addr = app.running.addr;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let request = format!(
        "{head}\r\nHost: {}\r\nContent-Length: {length}\r\n\r\n",
        app.home_domain()
    );
    writer.write_all(request.as_bytes()).await.unwrap();
    let began = Instant::now();
    let trickler = tokio::spawn(async move {
        for _ in 0..length {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if complete(&got) {
                break;
            }
        }
    })
    .await;
    trickler.abort();
    assert!(
        read.is_ok(),
        "the server held a slow request for 15 s: {:?}",
        String::from_utf8_lossy(&got)
    );
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status_line = head.lines().next().unwrap_or_default().to_owned();
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status_line, body, began.elapsed())
}

/// A whole response: headers, and a body as long as its Content-Length.
fn complete(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

#[tokio::test]
async fn a_slowly_trickled_body_is_timed_out() {
    let app = spawn(None, "[server]\nrequest_timeout_secs = 2\n").await;
    let (status, body, took) = trickle(
        &app,
        "POST /auth HTTP/1.1\r\nContent-Type: application/json",
        1000,
    )
    .await;
    assert!(status.contains(" 408 "), "{status}: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did not arrive within 2 s"),
        "{body}"
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    // An authenticated endpoint too.
    let token = app.token_for(&Keypair::random(), None).await;
    let head = format!(
        "PUT /kyc/customer HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}"
    );
    let (status, body, _) = trickle(&app, &head, 1000).await;
    assert!(status.contains(" 408 "), "{status}: {body}");
    // The server still answers everyone else.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn slowly_trickled_headers_lose_the_connection() {
    let app = spawn(None, "[server]\nrequest_timeout_secs = 2\n").await;
    let stream = tokio::net::TcpStream::connect(app.running.addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let began = Instant::now();
    let trickler = tokio::spawn(async move {
        let _ = writer
            .write_all(b"GET /health HTTP/1.1\r\nHost: anchor\r\nX-Slow: ")
            .await;
        for _ in 0..1000 {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), reader.read_to_end(&mut got)).await;
    trickler.abort();
    assert!(closed.is_ok(), "the server held the connection for 15 s");
    let took = began.elapsed();
    // Closed after request_timeout_secs and a little more, without an answer.
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // Everyone else is still served, on new and on kept-alive connections.
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let response = http
            .get(format!("{}/health", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

// ---- callbacks ---------------------------------------------------------------------------------

async fn callback_urls_to_the_server_or_private_hosts_are_refused(db: Option<String>) {
    // A test network: private addresses are allowed by default (for local wallets), the
    // server itself never.
    let app = spawn(db.clone(), "").await;
    let a = sending_anchor(&app).await;
    let id = create(&app, &a).await;
    let sep31 = |url: String| {
        send(
            app.http
                .put(format!("{}/sep31/transactions/{id}/callback", app.url))
                .bearer_auth(&a.token)
                .json(&json!({ "url": url })),
        )
    };
    let sep12 = |url: String| {
        send(
            app.http
                .put(format!("{}/customer/callback", app.kyc_url()))
                .bearer_auth(&a.token)
                .json(&json!({ "id": a.sender, "url": url })),
        )
    };
    let port = app.running.addr.port();
    for own in [
        format!("{}/kyc/customer", app.url),
        format!("http://localhost:{port}/sep31/transactions"),
        format!("http://[::1]:{port}/auth"),
    ] {
        assert_error(&sep31(own.clone()).await, 400, "this server itself");
        assert_error(&sep12(own).await, 400, "this server itself");
    }
    let (status, _) = sep31("http://127.0.0.1:9/cb".into()).await;
    assert_eq!(status, 204);
    let (status, body) = sep12("http://127.0.0.1:9/cb".into()).await;
    assert_eq!(status, 200, "{body}");
    app.running.shutdown().await;

    // With callbacks.allow_private = false, no loopback, private or link-local host.
    let db = match db {
        Some(_) => common::postgres_url("callbacks_strict").await,
        None => None,
    };
    let app = spawn(db, "[callbacks]\nallow_private = false\n").await;
    let a = sending_anchor(&app).await;
    let id = create(&app, &a).await;
    let sep31 = |url: &str| {
        send(
            app.http
                .put(format!("{}/sep31/transactions/{id}/callback", app.url))
                .bearer_auth(&a.token)
                .json(&json!({ "url": url })),
        )
    };
    let sep12 = |url: &str| {
        send(
            app.http
                .put(format!("{}/customer/callback", app.kyc_url()))
                .bearer_auth(&a.token)
                .json(&json!({ "id": a.sender, "url": url })),
        )
    };
    for private in [
        "http://127.0.0.1:9/cb",
        "http://localhost:9/cb",
        "http://api.localhost/cb",
        "http://10.1.2.3/cb",
        "http://172.16.0.1/cb",
        "http://192.168.1.1/cb",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/cb",
        "http://0.0.0.0:9/cb",
        "http://[::1]:9/cb",
        "http://[fd00::1]/cb",
        "http://[fe80::1]/cb",
        "http://[::ffff:10.0.0.1]/cb",
    ] {
        assert_error(
            &sep31(private).await,
            400,
            "not a loopback or private address",
        );
        assert_error(
            &sep12(private).await,
            400,
            "not a loopback or private address",
        );
    }
    for bad in [
        "file:///etc/passwd",
        "gopher://wallet.example/",
        "not a url",
    ] {
        assert_eq!(sep31(bad).await.0, 400, "{bad}");
        assert_eq!(sep12(bad).await.0, 400, "{bad}");
    }
    // A public host is fine.
    assert_eq!(sep31("http://wallet.example/cb").await.0, 204);
    assert_eq!(sep12("http://wallet.example/cb").await.0, 200);
    let row = app
        .running
        .anchor
        .store
        .transaction(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.callback_url.as_deref(),
        Some("http://wallet.example/cb")
    );
}

// ---- limits ------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_is_rate_limited_per_client_address() {
    let app = spawn(
        None,
        "[server]\nauth_rate_limit_per_minute = 5\nauth_rate_limit_loopback = true\n",
    )
    .await;
    let client = Keypair::random();
    for i in 0..5 {
        let (status, body) = app.challenge(&[("account", &g(&client))]).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let response = app
        .http
        .get(format!("{}/auth", app.url))
        .query(&[("account", g(&client))])
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_error(
        &json_of(response).await,
        429,
        "too many authentication requests",
    );
    // POST /auth shares the bucket.
    assert_error(
        &app.post_token_json(json!({"transaction": "x"})).await,
        429,
        "too many",
    );
    // Other endpoints are not limited.
    for _ in 0..10 {
        assert_eq!(app.get("/.well-known/stellar.toml").await.status(), 200);
    }

    // By default loopback clients (a reverse proxy on the host, local tools) are not limited.
    let app = spawn(None, "[server]\nauth_rate_limit_per_minute = 2\n").await;
    for _ in 0..6 {
        assert_eq!(app.challenge(&[("account", &g(&client))]).await.0, 200);
    }
}

/// Behind a trusted reverse proxy each client has its own bucket, named by the address the
/// proxy appended to X-Forwarded-For; what a client forges to the left of it, or sends to
/// the server directly, changes nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_limited() {
    let app = spawn(
        None,
        "[server]\nauth_rate_limit_per_minute = 2\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]\n",
    )
    .await;
    let client = g(&Keypair::random());
    let challenge = |forwarded_for: &'static str| {
        app.http
            .get(format!("{}/auth", app.url))
            .query(&[("account", client.as_str())])
            .header("x-forwarded-for", forwarded_for)
            .send()
    };
    for forged in ["1.1.1.1, 203.0.113.7", "2.2.2.2, 203.0.113.7"] {
        assert_eq!(challenge(forged).await.unwrap().status(), 200);
    }
    let (status, body) = json_of(challenge("3.3.3.3, 203.0.113.7").await.unwrap()).await;
    assert_error(&(status, body), 429, "too many authentication requests");
    // Another client behind the same proxy has its own bucket.
    assert_eq!(challenge("198.51.100.9").await.unwrap().status(), 200);
}

#[test]
fn limits_have_sane_defaults_and_are_configurable() {
    let config = capstan::Config::from_parts("", Vec::new()).unwrap();
    assert_eq!(config.max_body_bytes, 1024 * 1024);
    assert_eq!(config.kyc.max_file_bytes, 10 * 1024 * 1024);
    assert_eq!(config.request_timeout, Duration::from_secs(30));
    assert_eq!(config.auth_rate_limit_per_minute, 60);
    assert!(!config.auth_rate_limit_loopback);
    assert!(config.callbacks_allow_private, "test networks allow them");
    assert!(config.trusted_proxies.is_empty());
    let e = capstan::Config::from_parts(
        "[server]\ntrusted_proxies = [\"proxy.local\"]\n",
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("server.trusted_proxies") && e.contains("not an IP address"),
        "{e}"
    );

    let text = "[server]\nmax_body_bytes = 2048\nrequest_timeout_secs = 5\n\
                auth_rate_limit_per_minute = 0\n[kyc]\nmax_file_bytes = 4096\n\
                [callbacks]\nallow_private = false\n";
    let config = capstan::Config::from_parts(text, Vec::new()).unwrap();
    assert_eq!(config.max_body_bytes, 2048);
    assert_eq!(config.kyc.max_file_bytes, 4096);
    assert_eq!(config.request_timeout, Duration::from_secs(5));
    assert_eq!(config.auth_rate_limit_per_minute, 0);
    assert!(!config.callbacks_allow_private);
    // From the environment too.
    let env = vec![
        (
            "CAPSTAN_SERVER_AUTH_RATE_LIMIT_PER_MINUTE".to_owned(),
            "7".to_owned(),
        ),
        (
            "CAPSTAN_CALLBACKS_ALLOW_PRIVATE".to_owned(),
            "false".to_owned(),
        ),
    ];
    let config = capstan::Config::from_parts("", env).unwrap();
    assert_eq!(config.auth_rate_limit_per_minute, 7);
    assert!(!config.callbacks_allow_private);

    // The public network refuses private callback hosts unless told otherwise.
    let public = format!(
        "[stellar]\nnetwork = \"public\"\nsigning_seed = \"{}\"\n\
         [auth]\njwt_secret = \"{JWT_SECRET}\"\n\
         [sep31]\nsending_anchors = [\"{}\"]\n\
         [[assets]]\ncode = \"USDC\"\nissuer = \"{}\"\ndistribution_account = \"{}\"\n",
        Keypair::random().secret_seed(),
        g(&Keypair::random()),
        g(&Keypair::random()),
        g(&Keypair::random()),
    );
    let config = capstan::Config::from_parts(&public, Vec::new()).unwrap();
    assert!(!config.callbacks_allow_private);
    let config = capstan::Config::from_parts(
        &format!("{public}[callbacks]\nallow_private = true\n"),
        Vec::new(),
    )
    .unwrap();
    assert!(config.callbacks_allow_private);
}
