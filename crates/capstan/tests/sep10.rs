//! SEP-10 over HTTP against the running anchor, one test (or more) per checklist item of
//! §3.8 (SEP10-nn) and per verification step V1-V15 of §3.5.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use capstan::http::Session;
use common::{AppOptions, JWT_SECRET, TestApp, json_of};
use serde_json::{Value, json};
use stellar::sep10::{sign_challenge, sign_decorated};
use stellar::{Keypair, Network};
use stellar_xdr::{
    Limits, Memo, MuxedAccount, Operation, OperationBody, Preconditions, ReadXdr, TimeBounds,
    TimePoint, Transaction, TransactionEnvelope, TransactionV1Envelope, WriteXdr,
};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn decode(xdr: &str) -> TransactionV1Envelope {
    match TransactionEnvelope::from_xdr_base64(xdr, Limits::none()).expect("valid XDR") {
        TransactionEnvelope::Tx(e) => e,
        other => panic!("not a v1 envelope: {other:?}"),
    }
}

fn data(op: &Operation) -> (String, Vec<u8>) {
    match &op.body {
        OperationBody::ManageData(d) => (
            String::from_utf8(d.data_name.to_vec()).unwrap(),
            d.data_value
                .as_ref()
                .map(|v| v.to_vec())
                .unwrap_or_default(),
        ),
        other => panic!("not ManageData: {other:?}"),
    }
}

fn claims(token: &str, app: &TestApp) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[format!("{}/auth", app.url)]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .expect("token verifies with the configured secret")
    .claims
}

/// A challenge from the server, edited and re-signed with the server's key: reaches each
/// server-side check over HTTP, as a buggy or hostile client could not (it lacks the key),
/// but as a client answering an old or foreign challenge would.
async fn server_signed(
    app: &TestApp,
    account: &Keypair,
    edit: impl FnOnce(&mut Transaction),
) -> String {
    let (_, body) = app
        .challenge(&[("account", &account.public_key().to_string())])
        .await;
    let mut env = decode(body["transaction"].as_str().unwrap());
    edit(&mut env.tx);
    env.signatures = vec![sign_decorated(&app.server_key, &env.tx, &app.network).unwrap()]
        .try_into()
        .unwrap();
    TransactionEnvelope::Tx(env)
        .to_xdr_base64(Limits::none())
        .unwrap()
}

async fn post_signed(app: &TestApp, xdr: &str, signers: &[&Keypair]) -> (u16, Value) {
    let signed = sign_challenge(xdr, &app.network, signers).unwrap();
    app.post_token_json(json!({ "transaction": signed })).await
}

fn assert_error(result: &(u16, Value), status: u16, contains: &str) {
    assert_eq!(result.0, status, "unexpected status, body {}", result.1);
    let error = result.1["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no string 'error' in {}", result.1));
    assert!(
        error.contains(contains),
        "error {error:?} does not mention {contains:?}"
    );
}

// ---- GET /auth --------------------------------------------------------------------------

#[tokio::test]
async fn sep10_02_10_11_12_13_14_15_16_20_challenge_shape() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let before = now();
    let (status, body) = app
        .challenge(&[("account", &client.public_key().to_string())])
        .await;
    assert_eq!(status, 200);
    // SEP10-10, 10a, and [WILD] no other keys.
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["network_passphrase", "transaction"]);
    assert_eq!(
        body["network_passphrase"],
        "Test SDF Network ; September 2015"
    );
    let env = decode(body["transaction"].as_str().unwrap());
    let tx = &env.tx;
    // SEP10-11, 12
    assert_eq!(
        tx.source_account,
        MuxedAccount::Ed25519(stellar_xdr::Uint256(app.server_key.public_key().0))
    );
    assert_eq!(tx.seq_num.0, 0);
    // SEP10-13, 13a
    let Preconditions::Time(bounds) = &tx.cond else {
        panic!("no time bounds")
    };
    assert!(bounds.min_time.0 >= before && bounds.min_time.0 <= now());
    assert_eq!(bounds.max_time.0 - bounds.min_time.0, 900);
    // SEP10-14: no memo without one requested.
    assert_eq!(tx.memo, Memo::None);
    // SEP10-15
    assert_eq!(tx.operations.len(), 2);
    let (name, nonce) = data(&tx.operations[0]);
    assert_eq!(name, format!("{} auth", app.home_domain()));
    assert_eq!(nonce.len(), 64);
    assert_eq!(BASE64.decode(&nonce).unwrap().len(), 48);
    assert_eq!(
        tx.operations[0].source_account,
        Some(MuxedAccount::Ed25519(stellar_xdr::Uint256(
            client.public_key().0
        )))
    );
    // SEP10-16: web_auth_domain is the host (with port) of WEB_AUTH_ENDPOINT.
    let (name, value) = data(&tx.operations[1]);
    assert_eq!(
        (name.as_str(), value.as_slice()),
        ("web_auth_domain", app.home_domain().as_bytes())
    );
    assert_eq!(
        tx.operations[1].source_account,
        Some(MuxedAccount::Ed25519(stellar_xdr::Uint256(
            app.server_key.public_key().0
        )))
    );
    // SEP10-20: exactly one signature, the server's, under the testnet passphrase (SEP10-21).
    assert_eq!(env.signatures.len(), 1);
    let hash = tx.hash(Network::testnet().id()).unwrap();
    assert!(
        app.server_key
            .public_key()
            .verify(&hash, env.signatures[0].signature.as_slice())
    );
    // SEP10-15: fresh nonce each time.
    let (_, again) = app
        .challenge(&[("account", &client.public_key().to_string())])
        .await;
    assert_ne!(
        data(&decode(again["transaction"].as_str().unwrap()).tx.operations[0]).1,
        nonce
    );
}

#[tokio::test]
async fn sep10_05_account_is_required_and_validated() {
    let app = TestApp::spawn().await;
    assert_error(&app.challenge(&[]).await, 400, "account");
    assert_error(&app.challenge(&[("account", "")]).await, 400, "account");
    assert_error(
        &app.challenge(&[("account", "invalid-account")]).await,
        400,
        "not a valid Stellar account",
    );
    // A secret seed, a contract address, a checksum error: all refused.
    for bad in [
        Keypair::random().secret_seed(),
        "CA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUWDA".to_owned(),
        "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGA".to_owned(),
    ] {
        assert_error(
            &app.challenge(&[("account", &bad)]).await,
            400,
            "not a valid Stellar account",
        );
    }
}

#[tokio::test]
async fn sep10_06_14_memo_rules() {
    let app = TestApp::spawn().await;
    let g = Keypair::random().public_key().to_string();
    let (status, body) = app
        .challenge(&[("account", &g), ("memo", "18446744073709551615")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        decode(body["transaction"].as_str().unwrap()).tx.memo,
        Memo::Id(u64::MAX)
    );
    for bad in ["abc", "-1", "1.5", "18446744073709551616", " 1"] {
        assert_error(
            &app.challenge(&[("account", &g), ("memo", bad)]).await,
            400,
            "memo",
        );
    }
    let m = "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAJLK";
    assert_error(
        &app.challenge(&[("account", m), ("memo", "5")]).await,
        400,
        "muxed",
    );
}

#[tokio::test]
async fn sep10_35_muxed_account_is_the_op_source_with_no_memo() {
    let app = TestApp::spawn().await;
    let m = "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAJLK";
    let (status, body) = app.challenge(&[("account", m)]).await;
    assert_eq!(status, 200);
    let env = decode(body["transaction"].as_str().unwrap());
    assert_eq!(env.tx.memo, Memo::None);
    match &env.tx.operations[0].source_account {
        Some(MuxedAccount::MuxedEd25519(med)) => assert_eq!(med.id, 9223372036854775808),
        other => panic!("op 0 source is not muxed: {other:?}"),
    }
}

#[tokio::test]
async fn sep10_07_home_domains() {
    let app = TestApp::spawn_with(AppOptions {
        toml: "[server]\nextra_home_domains = [\"example.com\"]\n".into(),
        ..Default::default()
    })
    .await;
    let client = Keypair::random();
    let g = client.public_key().to_string();
    let (_, default) = app.challenge(&[("account", &g)]).await;
    assert_eq!(
        data(
            &decode(default["transaction"].as_str().unwrap())
                .tx
                .operations[0]
        )
        .0,
        format!("{} auth", app.home_domain())
    );
    let (status, other) = app
        .challenge(&[("account", &g), ("home_domain", "example.com")])
        .await;
    assert_eq!(status, 200);
    let xdr = other["transaction"].as_str().unwrap();
    assert_eq!(data(&decode(xdr).tx.operations[0]).0, "example.com auth");
    // A token for the second home domain names it.
    let (status, body) = post_signed(&app, xdr, &[&client]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["token"].as_str().unwrap(), &app)["home_domain"],
        "example.com"
    );
    assert_error(
        &app.challenge(&[("account", &g), ("home_domain", "evil.com")])
            .await,
        400,
        "home_domain",
    );
}

#[tokio::test]
async fn sep10_03_04_cors_everywhere_and_preflight() {
    let app = TestApp::spawn().await;
    let http = &app.http;
    for response in [
        http.get(format!("{}/auth?account=bad", app.url))
            .send()
            .await
            .unwrap(),
        http.post(format!("{}/auth", app.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        http.get(format!(
            "{}/auth?account={}",
            app.url,
            Keypair::random().public_key()
        ))
        .send()
        .await
        .unwrap(),
        http.get(format!("{}/no-such-endpoint", app.url))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "{}",
            response.url()
        );
    }
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{}/auth", app.url))
        .header("Origin", "https://wallet.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(
        preflight
            .headers()
            .contains_key("access-control-allow-methods")
    );
}

// ---- POST /auth: success --------------------------------------------------------------

#[tokio::test]
async fn sep10_22_23_29_31_new_account_login_by_json_and_form() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let g = client.public_key().to_string();

    let (status, body) = app.login(&g, None, &[&client]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["token"]
    );
    let c = claims(body["token"].as_str().unwrap(), &app);
    assert_eq!(c["iss"], format!("{}/auth", app.url));
    assert_eq!(c["sub"], g);
    let (iat, exp) = (c["iat"].as_u64().unwrap(), c["exp"].as_u64().unwrap());
    assert!(iat.abs_diff(now()) < 5);
    assert_eq!(exp - iat, 86_400);
    assert_eq!(c["jti"].as_str().unwrap().len(), 64);
    assert_eq!(c["home_domain"], app.home_domain());
    assert!(c.get("client_domain").is_none());

    // The same flow with a form body.
    let signed = app.signed_challenge(&g, None, &[&client]).await;
    let (status, body) = app.post_token_form(&signed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["token"].as_str().unwrap(), &app)["sub"], g);
}

#[tokio::test]
async fn sep10_29_36_sub_for_memo_and_muxed_clients() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let g = client.public_key().to_string();
    let (_, one) = app.login(&g, Some("1"), &[&client]).await;
    let (_, two) = app.login(&g, Some("2"), &[&client]).await;
    assert_eq!(
        claims(one["token"].as_str().unwrap(), &app)["sub"],
        format!("{g}:1")
    );
    assert_eq!(
        claims(two["token"].as_str().unwrap(), &app)["sub"],
        format!("{g}:2")
    );

    let muxed = stellar::ClientAccount {
        account: client.public_key(),
        memo: Some(42),
        muxed: true,
    }
    .sub();
    let (status, body) = app.login(&muxed, None, &[&client]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["token"].as_str().unwrap(), &app)["sub"], muxed);
}

#[tokio::test]
async fn sep10_25_existing_account_signers_and_weights() {
    let app = TestApp::spawn().await;
    let master = Keypair::random();
    let (a, b) = (Keypair::random(), Keypair::random());
    let g = master.public_key().to_string();
    app.horizon.add_account(
        &g,
        &[
            (&g, 1),
            (&a.public_key().to_string(), 1),
            (&b.public_key().to_string(), 1),
        ],
        2,
    );

    // Below the medium threshold (SEP10-26).
    assert_error(
        &app.login(&g, None, &[&master]).await,
        400,
        "medium threshold",
    );
    // Two signers reach it; non-master signers alone too.
    assert_eq!(app.login(&g, None, &[&master, &a]).await.0, 200);
    assert_eq!(app.login(&g, None, &[&a, &b]).await.0, 200);
    // SEP10-28: a duplicate and an unknown signature are refused.
    assert_error(
        &app.login(&g, None, &[&master, &master]).await,
        400,
        "same signer",
    );
    assert_error(
        &app.login(&g, None, &[&master, &a, &Keypair::random()])
            .await,
        400,
        "does not belong",
    );
}

#[tokio::test]
async fn sep10_25_server_weight_is_excluded() {
    let app = TestApp::spawn().await;
    let master = Keypair::random();
    let g = master.public_key().to_string();
    app.horizon.add_account(
        &g,
        &[(&g, 1), (&app.server_key.public_key().to_string(), 10)],
        5,
    );
    // A second server signature may not stand in for the client's weight.
    assert_error(
        &app.login(&g, None, &[&master, &app.server_key]).await,
        400,
        "does not belong",
    );
    assert_error(
        &app.login(&g, None, &[&master]).await,
        400,
        "medium threshold",
    );
}

#[tokio::test]
async fn sep10_27_new_account_requires_exactly_the_master_key() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let g = client.public_key().to_string();
    assert_error(
        &app.login(&g, None, &[&Keypair::random()]).await,
        400,
        "does not belong",
    );
    assert_error(
        &app.login(&g, None, &[&client, &Keypair::random()]).await,
        400,
        "does not belong",
    );
    assert_error(
        &app.login(&g, None, &[&client, &client]).await,
        400,
        "same signer",
    );
    assert_error(&app.login(&g, None, &[]).await, 400, "no signature");
}

#[tokio::test]
async fn sep10_32_a_challenge_yields_one_token() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let signed = app
        .signed_challenge(&client.public_key().to_string(), None, &[&client])
        .await;
    assert_eq!(
        app.post_token_json(json!({ "transaction": signed }))
            .await
            .0,
        200
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": signed })).await,
        400,
        "already been used",
    );
    assert_error(
        &app.post_token_form(&signed).await,
        400,
        "already been used",
    );
}

#[tokio::test]
async fn horizon_unavailable_is_a_503_never_a_guess() {
    let app = TestApp::spawn().await;
    app.horizon.fail_with(Some(500));
    let client = Keypair::random();
    let result = app
        .login(&client.public_key().to_string(), None, &[&client])
        .await;
    assert_error(&result, 503, "Horizon");
    app.horizon.fail_with(None);
    assert_eq!(
        app.login(&client.public_key().to_string(), None, &[&client])
            .await
            .0,
        200
    );
}

// ---- POST /auth: each verification step fails on its own --------------------------------

#[tokio::test]
async fn sep10_24_each_verification_step_rejects() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let t = now();

    // V2: source is not the server.
    let xdr = server_signed(&app, &client, |tx| {
        tx.source_account = MuxedAccount::Ed25519(stellar_xdr::Uint256(client.public_key().0))
    })
    .await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "source account",
    );
    // V3: expired, not yet valid, no bounds, infinite.
    let bounds = |min: u64, max: u64| {
        Preconditions::Time(TimeBounds {
            min_time: TimePoint(min),
            max_time: TimePoint(max),
        })
    };
    let xdr = server_signed(&app, &client, |tx| tx.cond = bounds(t - 2000, t - 1000)).await;
    assert_error(&post_signed(&app, &xdr, &[&client]).await, 400, "expired");
    let xdr = server_signed(&app, &client, |tx| tx.cond = bounds(t + 3600, t + 4500)).await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "not yet valid",
    );
    let xdr = server_signed(&app, &client, |tx| tx.cond = Preconditions::None).await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "time bounds",
    );
    let xdr = server_signed(&app, &client, |tx| tx.cond = bounds(t, 0)).await;
    assert_error(&post_signed(&app, &xdr, &[&client]).await, 400, "finite");
    // V4
    let xdr = server_signed(&app, &client, |tx| {
        tx.operations = Vec::new().try_into().unwrap()
    })
    .await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "no operations",
    );
    // V5
    let xdr = server_signed(&app, &client, |tx| {
        let mut ops = tx.operations.to_vec();
        ops[0].source_account = None;
        tx.operations = ops.try_into().unwrap();
    })
    .await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "first operation",
    );
    // V6: a home domain not served here.
    let xdr = server_signed(&app, &client, |tx| {
        let mut ops = tx.operations.to_vec();
        if let OperationBody::ManageData(d) = &mut ops[0].body {
            d.data_name = "evil.example auth".as_bytes().to_vec().try_into().unwrap();
        }
        tx.operations = ops.try_into().unwrap();
    })
    .await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "home domain",
    );
    // V8 / SEP10-19: a non-ManageData op; a ManageData op whose source is not the server.
    let xdr = server_signed(&app, &client, |tx| {
        let mut ops = tx.operations.to_vec();
        ops.push(Operation {
            source_account: None,
            body: OperationBody::Inflation,
        });
        tx.operations = ops.try_into().unwrap();
    })
    .await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "not a ManageData",
    );
    let xdr = server_signed(&app, &client, |tx| {
        let mut ops = tx.operations.to_vec();
        let mut extra = ops[1].clone();
        extra.source_account = ops[0].source_account.clone();
        ops.push(extra);
        tx.operations = ops.try_into().unwrap();
    })
    .await;
    assert_error(&post_signed(&app, &xdr, &[&client]).await, 400, "source");
    // V9
    let xdr = server_signed(&app, &client, |tx| {
        let mut ops = tx.operations.to_vec();
        if let OperationBody::ManageData(d) = &mut ops[1].body {
            d.data_value = Some("evil.example".as_bytes().to_vec().try_into().unwrap());
        }
        tx.operations = ops.try_into().unwrap();
    })
    .await;
    assert_error(
        &post_signed(&app, &xdr, &[&client]).await,
        400,
        "web_auth_domain",
    );
    // V10
    let xdr = server_signed(&app, &client, |tx| {
        tx.seq_num = stellar_xdr::SequenceNumber(7)
    })
    .await;
    assert_error(&post_signed(&app, &xdr, &[&client]).await, 400, "sequence");
    // V11
    let xdr = server_signed(&app, &client, |tx| {
        tx.memo = Memo::Text("hi".as_bytes().to_vec().try_into().unwrap())
    })
    .await;
    assert_error(&post_signed(&app, &xdr, &[&client]).await, 400, "memo");
    // V7: not signed by the server (the client's signature alone).
    let (_, challenge) = app
        .challenge(&[("account", &client.public_key().to_string())])
        .await;
    let mut env = decode(challenge["transaction"].as_str().unwrap());
    env.signatures = Default::default();
    let unsigned = TransactionEnvelope::Tx(env)
        .to_xdr_base64(Limits::none())
        .unwrap();
    assert_error(
        &post_signed(&app, &unsigned, &[&client]).await,
        400,
        "not signed by this server",
    );
    // SEP10-21: signed by the client for another network.
    let wrong_network = sign_challenge(
        challenge["transaction"].as_str().unwrap(),
        &Network::public(),
        &[&client],
    )
    .unwrap();
    assert_error(
        &app.post_token_json(json!({ "transaction": wrong_network }))
            .await,
        400,
        "does not belong",
    );
}

#[tokio::test]
async fn sep10_24_bad_input_is_a_4xx_json_error() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let valid = app
        .signed_challenge(&client.public_key().to_string(), None, &[&client])
        .await;

    assert_error(
        &app.post_token_json(json!({})).await,
        400,
        "missing 'transaction'",
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": {} })).await,
        400,
        "must be a string",
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": 12 })).await,
        400,
        "must be a string",
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": "" })).await,
        400,
        "missing 'transaction'",
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": "not base64 at all!" }))
            .await,
        400,
        "base64",
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": &valid[..valid.len() / 2] }))
            .await,
        400,
        "base64",
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": "A".repeat(20_000) }))
            .await,
        400,
        "too large",
    );
    assert_error(&app.post_token_form("").await, 400, "missing 'transaction'");

    // A fee-bump envelope around a valid challenge.
    let inner = decode(&valid);
    let bump = TransactionEnvelope::TxFeeBump(stellar_xdr::FeeBumpTransactionEnvelope {
        tx: stellar_xdr::FeeBumpTransaction {
            fee_source: MuxedAccount::Ed25519(stellar_xdr::Uint256(client.public_key().0)),
            fee: 400,
            inner_tx: stellar_xdr::FeeBumpTransactionInnerTx::Tx(inner),
            ext: stellar_xdr::FeeBumpTransactionExt::V0,
        },
        signatures: Default::default(),
    });
    let bump = bump.to_xdr_base64(Limits::none()).unwrap();
    assert_error(
        &app.post_token_json(json!({ "transaction": bump })).await,
        400,
        "fee bump",
    );

    // Malformed bodies.
    let post = |body: &'static str, content_type: &'static str| {
        app.http
            .post(format!("{}/auth", app.url))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_error(
        &json_of(post("{not json", "application/json").await.unwrap()).await,
        400,
        "invalid JSON",
    );
    assert_error(
        &json_of(post("<xml/>", "application/xml").await.unwrap()).await,
        415,
        "content type",
    );
    let huge = "transaction=".to_owned() + &"A".repeat(2 * 1024 * 1024);
    let response = app
        .http
        .post(format!("{}/auth", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(response).await, 413, "larger");

    // None of that burned the valid challenge.
    assert_eq!(
        app.post_token_json(json!({ "transaction": valid })).await.0,
        200
    );
}

// ---- client_domain ------------------------------------------------------------------------

/// Serves a stellar.toml with the given SIGNING_KEY line; returns its host:port.
async fn client_domain_server(toml: String) -> String {
    let router = Router::new().route(
        "/.well-known/stellar.toml",
        get(move || async move { toml.clone() }),
    );
    common::serve(router).await.to_string()
}

fn client_domain_app(mode: &str, allowlist: &[&str]) -> AppOptions {
    let list = allowlist
        .iter()
        .map(|d| format!("{d:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    AppOptions {
        toml: format!(
            "[auth]\nclient_domain = \"{mode}\"\nclient_domain_insecure_http = true\nclient_domain_allowlist = [{list}]\n"
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn sep10_08_17_30_client_domain_verified() {
    let wallet = Keypair::random();
    let domain = client_domain_server(format!("SIGNING_KEY = \"{}\"\n", wallet.public_key())).await;
    let app = TestApp::spawn_with(client_domain_app("allowed", &[])).await;
    let client = Keypair::random();
    let (status, body) = app
        .challenge(&[
            ("account", &client.public_key().to_string()),
            ("client_domain", &domain),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let xdr = body["transaction"].as_str().unwrap();
    let env = decode(xdr);
    let op = env
        .tx
        .operations
        .iter()
        .find(|op| data(op).0 == "client_domain")
        .expect("client_domain op");
    assert_eq!(data(op).1, domain.as_bytes());
    assert_eq!(
        op.source_account,
        Some(MuxedAccount::Ed25519(stellar_xdr::Uint256(
            wallet.public_key().0
        )))
    );
    // V14: without the client domain's signature, no token.
    assert_error(
        &post_signed(&app, xdr, &[&client]).await,
        400,
        "client domain",
    );
    let (status, body) = post_signed(&app, xdr, &[&client, &wallet]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["token"].as_str().unwrap(), &app)["client_domain"],
        domain
    );
}

#[tokio::test]
async fn sep10_08_client_domain_fetch_failures_are_400() {
    let app = TestApp::spawn_with(client_domain_app("allowed", &[])).await;
    let g = Keypair::random().public_key().to_string();
    let no_key = client_domain_server("NETWORK_PASSPHRASE = \"x\"\n".into()).await;
    assert_error(
        &app.challenge(&[("account", &g), ("client_domain", &no_key)])
            .await,
        400,
        "SIGNING_KEY",
    );
    let not_toml = client_domain_server("this is = = not toml".into()).await;
    assert_error(
        &app.challenge(&[("account", &g), ("client_domain", &not_toml)])
            .await,
        400,
        "TOML",
    );
    // Nothing listens on port 9 of loopback.
    assert_error(
        &app.challenge(&[("account", &g), ("client_domain", "127.0.0.1:9")])
            .await,
        400,
        "could not fetch",
    );
    assert_error(
        &app.challenge(&[("account", &g), ("client_domain", "https://x.example/")])
            .await,
        400,
        "not a domain",
    );
}

#[tokio::test]
async fn sep10_08_client_domain_policies() {
    let wallet = Keypair::random();
    let domain = client_domain_server(format!("SIGNING_KEY = \"{}\"\n", wallet.public_key())).await;
    let g = Keypair::random().public_key().to_string();
    let has_client_domain_op = |body: &Value| {
        decode(body["transaction"].as_str().unwrap())
            .tx
            .operations
            .iter()
            .any(|op| data(op).0 == "client_domain")
    };

    // off: the parameter is ignored.
    let off = TestApp::spawn_with(client_domain_app("off", &[])).await;
    let (status, body) = off
        .challenge(&[("account", &g), ("client_domain", &domain)])
        .await;
    assert_eq!(status, 200);
    assert!(!has_client_domain_op(&body));

    // allowed with an allow-list: other domains are ignored, listed ones verified.
    let listed = TestApp::spawn_with(client_domain_app("allowed", &["wallet.example"])).await;
    let (status, body) = listed
        .challenge(&[("account", &g), ("client_domain", &domain)])
        .await;
    assert_eq!(status, 200);
    assert!(!has_client_domain_op(&body));

    // required: missing is refused, unlisted is forbidden, listed is verified.
    let required = TestApp::spawn_with(client_domain_app("required", &[&domain])).await;
    assert_error(
        &required.challenge(&[("account", &g)]).await,
        400,
        "client_domain is required",
    );
    assert_error(
        &required
            .challenge(&[("account", &g), ("client_domain", "other.example")])
            .await,
        403,
        "not allowed",
    );
    let (status, body) = required
        .challenge(&[("account", &g), ("client_domain", &domain)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(has_client_domain_op(&body));
}

// ---- the session extractor --------------------------------------------------------------

async fn whoami(session: Session) -> axum::Json<Value> {
    axum::Json(json!({
        "account": session.account().to_string(),
        "memo": session.memo().map(|m| m.to_string()),
        "muxed": session.muxed(),
        "sub": session.sub,
        "client_domain": session.client_domain,
    }))
}

#[tokio::test]
async fn session_extractor_yields_account_memo_and_muxed_id() {
    let app = TestApp::spawn_with(AppOptions {
        extra_routes: Some(Router::new().route("/whoami", get(whoami))),
        ..Default::default()
    })
    .await;
    let client = Keypair::random();
    let g = client.public_key().to_string();
    let ask = |token: Option<String>| {
        let mut request = app.http.get(format!("{}/whoami", app.url));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        async move { json_of(request.send().await.unwrap()).await }
    };

    let plain = app.token_for(&client, None).await;
    let (status, me) = ask(Some(format!("Bearer {plain}"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            me["account"].as_str(),
            me["memo"].as_str(),
            me["muxed"].as_str()
        ),
        (Some(g.as_str()), None, None)
    );

    let with_memo = app.token_for(&client, Some("7")).await;
    let (_, me) = ask(Some(format!("Bearer {with_memo}"))).await;
    assert_eq!(
        (me["account"].as_str(), me["memo"].as_str()),
        (Some(g.as_str()), Some("7"))
    );

    let m = stellar::ClientAccount {
        account: client.public_key(),
        memo: Some(9),
        muxed: true,
    }
    .sub();
    let (_, body) = app.login(&m, None, &[&client]).await;
    let (_, me) = ask(Some(format!("Bearer {}", body["token"].as_str().unwrap()))).await;
    assert_eq!(
        (
            me["account"].as_str(),
            me["memo"].as_str(),
            me["muxed"].as_str()
        ),
        (Some(g.as_str()), Some("9"), Some(m.as_str()))
    );

    // Refusals: 403 with a JSON error.
    assert_error(&ask(None).await, 403, "missing Authorization");
    assert_error(&ask(Some("Basic abc".into())).await, 403, "Bearer");
    assert_error(
        &ask(Some("Bearer not.a.token".into())).await,
        403,
        "not valid",
    );
    let t = now();
    let forge = |secret: &str, iss: String, exp: u64| {
        let claims = json!({"iss": iss, "sub": g, "iat": t - 10, "exp": exp, "jti": "x"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let issuer = format!("{}/auth", app.url);
    assert_error(
        &ask(Some(format!(
            "Bearer {}",
            forge(
                "another-secret-another-secret-0000",
                issuer.clone(),
                t + 600
            )
        )))
        .await,
        403,
        "not valid",
    );
    assert_error(
        &ask(Some(format!(
            "Bearer {}",
            forge(JWT_SECRET, issuer.clone(), t - 600)
        )))
        .await,
        403,
        "expired",
    );
    assert_error(
        &ask(Some(format!(
            "Bearer {}",
            forge(JWT_SECRET, "https://other.example/auth".into(), t + 600)
        )))
        .await,
        403,
        "not valid",
    );
    let (status, _) = ask(Some(format!(
        "Bearer {}",
        forge(JWT_SECRET, issuer, t + 600)
    )))
    .await;
    assert_eq!(status, 200);
}

// ---- the same anchor on PostgreSQL ----------------------------------------------------------

#[tokio::test]
async fn login_and_replay_protection_on_postgres() {
    let Some(database_url) = common::postgres_url("login_and_replay_protection_on_postgres").await
    else {
        return;
    };
    let app = TestApp::spawn_with(AppOptions {
        database_url: Some(database_url),
        ..Default::default()
    })
    .await;
    let health = json_of(app.get("/health").await).await;
    assert_eq!(
        health,
        (
            200,
            json!({"status": "ok", "database": "ok", "version": env!("CARGO_PKG_VERSION")})
        )
    );
    let client = Keypair::random();
    let signed = app
        .signed_challenge(&client.public_key().to_string(), Some("5"), &[&client])
        .await;
    let (status, body) = app.post_token_json(json!({ "transaction": signed })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["token"].as_str().unwrap(), &app)["sub"],
        format!("{}:5", client.public_key())
    );
    assert_error(
        &app.post_token_json(json!({ "transaction": signed })).await,
        400,
        "already been used",
    );
}

// ---- SEP10-09: the signed Authorization header on GET /auth (v3.4) ----------------------

/// A client's request token, built by hand (header, claims, ed25519 signature) so the test
/// does not share the server's JWT code.
fn request_token(key: &Keypair, claims: Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(br#"{"alg":"EdDSA"}"#),
        B64URL.encode(claims.to_string())
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(signature))
}

async fn challenge_with_token(
    app: &TestApp,
    query: &[(&str, &str)],
    token: Option<String>,
) -> (u16, Value) {
    let mut request = app.http.get(format!("{}/auth", app.url)).query(query);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    json_of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn sep10_09_signed_challenge_requests_when_required() {
    let wallet = Keypair::random();
    let domain = client_domain_server(format!("SIGNING_KEY = \"{}\"\n", wallet.public_key())).await;
    let mut options = client_domain_app("allowed", &[&domain]);
    options
        .toml
        .push_str("challenge_request_auth = \"required\"\n");
    let app = TestApp::spawn_with(options).await;
    let client = Keypair::random();
    let g = client.public_key().to_string();
    let endpoint = format!("{}/auth", app.url);
    let t = now();
    let claims = |extra: Value| {
        let mut c = json!({"iat": t, "exp": t + 300, "web_auth_endpoint": endpoint, "account": g});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };

    assert_error(
        &challenge_with_token(&app, &[("account", &g)], None).await,
        401,
        "Missing authorization header",
    );
    let (status, body) = challenge_with_token(
        &app,
        &[("account", &g)],
        Some(request_token(&client, claims(json!({})))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = challenge_with_token(
        &app,
        &[("account", &g), ("memo", "77")],
        Some(request_token(&client, claims(json!({"memo": "77"})))),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Invalid tokens are 400s that say why.
    let cases = [
        (
            request_token(&Keypair::random(), claims(json!({}))),
            "not signed by",
        ),
        (
            request_token(&client, claims(json!({"exp": t - 600}))),
            "expired",
        ),
        (
            request_token(
                &client,
                claims(json!({"web_auth_endpoint": "https://evil.example/auth"})),
            ),
            "web_auth_endpoint",
        ),
        (request_token(&client, claims(json!({"memo": "1"}))), "memo"),
        (
            request_token(
                &client,
                claims(json!({"account": Keypair::random().public_key().to_string()})),
            ),
            "account",
        ),
        ("not-a-jwt".to_owned(), "not valid"),
    ];
    for (token, why) in cases {
        assert_error(
            &challenge_with_token(&app, &[("account", &g)], Some(token)).await,
            400,
            why,
        );
    }

    // With a client domain the token is signed by that domain's SIGNING_KEY.
    let query = [("account", g.as_str()), ("client_domain", domain.as_str())];
    let by_wallet = request_token(&wallet, claims(json!({"client_domain": domain})));
    let (status, body) = challenge_with_token(&app, &query, Some(by_wallet)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        decode(body["transaction"].as_str().unwrap())
            .tx
            .operations
            .iter()
            .any(|op| data(op).0 == "client_domain")
    );
    let by_account = request_token(&client, claims(json!({"client_domain": domain})));
    assert_error(
        &challenge_with_token(&app, &query, Some(by_account)).await,
        400,
        "not signed by",
    );
    // An application whose domain is not allowed is refused.
    let other = request_token(&wallet, claims(json!({"client_domain": "other.example"})));
    assert_error(
        &challenge_with_token(
            &app,
            &[("account", &g), ("client_domain", "other.example")],
            Some(other),
        )
        .await,
        403,
        "not allowed",
    );
}

#[tokio::test]
async fn sep10_09_optional_and_off_modes() {
    let client = Keypair::random();
    let g = client.public_key().to_string();
    let optional = TestApp::spawn_with(AppOptions {
        toml: "[auth]\nchallenge_request_auth = \"optional\"\n".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        challenge_with_token(&optional, &[("account", &g)], None)
            .await
            .0,
        200
    );
    assert_error(
        &challenge_with_token(&optional, &[("account", &g)], Some("garbage".into())).await,
        400,
        "not valid",
    );
    let t = now();
    let good = request_token(
        &client,
        json!({"iat": t, "exp": t + 60, "web_auth_endpoint": format!("{}/auth", optional.url), "account": g}),
    );
    assert_eq!(
        challenge_with_token(&optional, &[("account", &g)], Some(good))
            .await
            .0,
        200
    );

    // Off (the default): a header, even a stale session token, is ignored.
    let off = TestApp::spawn().await;
    assert_eq!(
        challenge_with_token(&off, &[("account", &g)], Some("garbage".into()))
            .await
            .0,
        200
    );
}

// ---- network, lifetime, algorithm -----------------------------------------------------------

#[tokio::test]
async fn sep10_21_public_network_signs_with_the_public_passphrase() {
    let app = TestApp::spawn_with(AppOptions {
        toml: "[stellar]\nnetwork = \"public\"\n[sep31]\nsending_anchors = [\"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"]\n[[assets]]\ncode = \"USDC\"\nissuer = \"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"\ndistribution_account = \"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ\"\n".into(),
        ..Default::default()
    })
    .await;
    let client = Keypair::random();
    let (status, body) = app
        .challenge(&[("account", &client.public_key().to_string())])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["network_passphrase"],
        "Public Global Stellar Network ; September 2015"
    );
    let env = decode(body["transaction"].as_str().unwrap());
    let key = app.server_key.public_key();
    assert!(key.verify(
        &env.tx.hash(Network::public().id()).unwrap(),
        env.signatures[0].signature.as_slice()
    ));
    assert!(!key.verify(
        &env.tx.hash(Network::testnet().id()).unwrap(),
        env.signatures[0].signature.as_slice()
    ));
    // A client that signs for testnet is refused; one that signs for the public network is not.
    let testnet_signed = sign_challenge(
        body["transaction"].as_str().unwrap(),
        &Network::testnet(),
        &[&client],
    )
    .unwrap();
    assert_error(
        &app.post_token_json(json!({ "transaction": testnet_signed }))
            .await,
        400,
        "does not belong",
    );
    let public_signed = sign_challenge(
        body["transaction"].as_str().unwrap(),
        &Network::public(),
        &[&client],
    )
    .unwrap();
    assert_eq!(
        app.post_token_json(json!({ "transaction": public_signed }))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn sep10_33_token_lifetime_is_configured() {
    let app = TestApp::spawn_with(AppOptions {
        toml: "[auth]\njwt_lifetime_secs = 600\n".into(),
        ..Default::default()
    })
    .await;
    let client = Keypair::random();
    let token = app.token_for(&client, None).await;
    let c = claims(&token, &app);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 600);
}

#[tokio::test]
async fn sep10_34_unsigned_and_foreign_algorithm_tokens_are_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    let app = TestApp::spawn_with(AppOptions {
        extra_routes: Some(Router::new().route("/whoami", get(whoami))),
        ..Default::default()
    })
    .await;
    let g = Keypair::random().public_key().to_string();
    let t = now();
    let payload = B64URL.encode(
        json!({"iss": format!("{}/auth", app.url), "sub": g, "iat": t, "exp": t + 600, "jti": "x"})
            .to_string(),
    );
    let alg_none = format!(
        "{}.{payload}.",
        B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let response = app
        .http
        .get(format!("{}/whoami", app.url))
        .header("Authorization", format!("Bearer {alg_none}"))
        .send()
        .await
        .unwrap();
    assert_error(&json_of(response).await, 403, "not valid");
    let key = Keypair::random();
    let eddsa = request_token(
        &key,
        json!({"iss": format!("{}/auth", app.url), "sub": g, "iat": t, "exp": t + 600, "jti": "x"}),
    );
    let response = app
        .http
        .get(format!("{}/whoami", app.url))
        .header("Authorization", format!("Bearer {eddsa}"))
        .send()
        .await
        .unwrap();
    assert_error(&json_of(response).await, 403, "not valid");
}

#[tokio::test]
async fn corrupted_challenges_get_4xx_never_5xx() {
    let app = TestApp::spawn().await;
    let client = Keypair::random();
    let signed = app
        .signed_challenge(&client.public_key().to_string(), None, &[&client])
        .await;
    let bytes = BASE64.decode(&signed).unwrap();
    for round in 0..60 {
        let mut mutated = bytes.clone();
        let [a, b, c] = stellar::random_bytes::<3>();
        let at = usize::from(u16::from_le_bytes([a, b])) % mutated.len();
        if round % 2 == 0 {
            mutated[at] ^= c | 1;
        } else {
            mutated.truncate(at);
        }
        let (status, body) = app
            .post_token_json(json!({ "transaction": BASE64.encode(&mutated) }))
            .await;
        assert!(
            (400..500).contains(&status),
            "status {status} for a corrupted challenge: {body}"
        );
        assert!(body["error"].is_string());
    }
}
