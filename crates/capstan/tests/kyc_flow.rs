//! SEP-12 end to end against the real `capstan serve` binary: a sending anchor discovers the
//! KYC server from stellar.toml, logs in with SEP-10, registers a sender and a receiver
//! under two memos of its account, registers a callback, and hears the operator's decision
//! as a signed POST.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::http::Method;
use common::callbacks::{self, Recorder};
use common::process::{Keep, Process, capstan_in, free_port};
use common::{FakeHorizon, json_of};
use serde_json::{Value, json};
use stellar::{Keypair, Network, PublicKey};

const ADMIN_KEY: &str = "flow-admin-key-0123456789";

/// `capstan serve` with a configuration file; stopped (and checked to exit cleanly) by
/// [`Served::stop`], killed if the test panics first.
struct Served {
    process: Process,
    url: String,
    admin_url: String,
}

impl Served {
    async fn start(dir: &Path, horizon: &str) -> Served {
        let port = free_port();
        let admin_port = free_port();
        // No signing seed or JWT secret: the anchor generates them, so the test can only
        // learn the signing key the way a client does, from stellar.toml.
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{port}\"\n\n\
             [stellar]\nhorizon_url = \"{horizon}\"\n\n\
             [database]\nurl = \"sqlite://capstan.db\"\n\n\
             [kyc]\nreview = \"manual\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\napi_key = \"{ADMIN_KEY}\"\n"
        );
        std::fs::write(dir.join("anchor.toml"), config).unwrap();
        let mut cmd = capstan_in(dir);
        cmd.args(["--config", "anchor.toml", "serve"]);
        let mut process = Process::spawn(cmd, Keep::Stderr);
        let url = format!("http://127.0.0.1:{port}");
        process.wait_healthy(&url).await;
        Served {
            process,
            url,
            admin_url: format!("http://127.0.0.1:{admin_port}"),
        }
    }

    /// SIGTERM, then a clean exit.
    async fn stop(self) {
        self.process.stop().await;
    }
}

// ---- the sending anchor's client ---------------------------------------------------------

struct Client {
    http: reqwest::Client,
    kyc: String,
    token: String,
}

impl Client {
    async fn get(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/customer", self.kyc))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    async fn put_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .put(format!("{}{path}", self.kyc))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    async fn put_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .put(format!("{}{path}", self.kyc))
            .bearer_auth(&self.token)
            .form(form)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }
}

async fn admin_post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = http
        .post(url)
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

#[tokio::test]
async fn sending_anchor_registers_customers_and_hears_the_operators_decision() {
    let dir = tempfile::tempdir().unwrap();
    let horizon = FakeHorizon::start().await;
    let served = Served::start(dir.path(), &horizon.url).await;
    let http = reqwest::Client::new();

    // Discovery: everything the client needs comes from stellar.toml.
    let text = http
        .get(format!("{}/.well-known/stellar.toml", served.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let toml: toml::Table = text.parse().unwrap();
    let signing_key =
        PublicKey::from_strkey(toml["SIGNING_KEY"].as_str().expect("SIGNING_KEY")).unwrap();
    let kyc_server = toml["KYC_SERVER"].as_str().expect("KYC_SERVER").to_owned();
    let web_auth = toml["WEB_AUTH_ENDPOINT"]
        .as_str()
        .expect("WEB_AUTH_ENDPOINT")
        .to_owned();
    assert_eq!(kyc_server, format!("{}/kyc", served.url));
    let network = Network::from_passphrase(toml["NETWORK_PASSPHRASE"].as_str().unwrap());

    // SEP-10 login of the sending anchor's account (no memo: it files its users under
    // memos of its own choosing, SEP12-08).
    let account = Keypair::random();
    let (status, challenge) = json_of(
        http.get(&web_auth)
            .query(&[("account", account.public_key().to_string())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{challenge}");
    let signed = stellar::sep10::sign_challenge(
        challenge["transaction"].as_str().unwrap(),
        &network,
        &[&account],
    )
    .unwrap();
    let (status, token) = json_of(
        http.post(&web_auth)
            .json(&json!({"transaction": signed}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    let client = Client {
        http: http.clone(),
        kyc: kyc_server.clone(),
        token: token["token"].as_str().unwrap().to_owned(),
    };

    // What each type asks for, before anything is registered.
    let (status, sender) = client.get(&[("type", "sep31-sender")]).await;
    assert_eq!(status, 200, "{sender}");
    assert_eq!(sender["status"], "NEEDS_INFO");
    assert!(sender.get("id").is_none(), "{sender}");
    for name in ["first_name", "last_name", "email_address"] {
        assert_eq!(
            sender["fields"][name]["optional"], false,
            "{name}: {sender}"
        );
        assert!(sender["fields"][name]["description"].is_string());
    }
    assert_eq!(sender["fields"]["email_address"]["type"], "string");
    assert_eq!(sender["fields"]["mobile_number"]["optional"], true);
    let (status, receiver) = client.get(&[("type", "sep31-receiver")]).await;
    assert_eq!(status, 200, "{receiver}");
    assert_eq!(receiver["status"], "NEEDS_INFO");
    let mut receiver_fields: Vec<&String> =
        receiver["fields"].as_object().unwrap().keys().collect();
    receiver_fields.sort();
    assert_eq!(
        receiver_fields,
        [
            "bank_account_number",
            "bank_number",
            "email_address",
            "first_name",
            "last_name"
        ]
    );

    // The sender under memo 1 (JSON).
    let (status, put) = client
        .put_json(
            "/customer",
            json!({
                "memo": "1",
                "type": "sep31-sender",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email_address": "ada@example.com",
                "mobile_number": "+442079460000",
            }),
        )
        .await;
    assert_eq!(status, 202, "{put}");
    let sender_id = put["id"].as_str().unwrap().to_owned();

    // The receiver under memo 2 (form), first with a bad email address: refused, naming the
    // field, and nothing is registered.
    let receiver_form = |email: &'static str| {
        vec![
            ("memo", "2"),
            ("type", "sep31-receiver"),
            ("first_name", "Grace"),
            ("last_name", "Hopper"),
            ("email_address", email),
            ("bank_account_number", "000123456789"),
            ("bank_number", "021000021"),
        ]
    };
    let (status, error) = client
        .put_form("/customer", &receiver_form("not-an-email"))
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("email_address"),
        "{error}"
    );
    let (_, nothing) = client
        .get(&[("memo", "2"), ("type", "sep31-receiver")])
        .await;
    assert_eq!(nothing["status"], "NEEDS_INFO");
    assert!(
        nothing.get("id").is_none(),
        "a refused PUT leaves nothing: {nothing}"
    );

    let (status, put) = client
        .put_form("/customer", &receiver_form("grace@example.com"))
        .await;
    assert_eq!(status, 202, "{put}");
    let receiver_id = put["id"].as_str().unwrap().to_owned();
    assert_ne!(receiver_id, sender_id, "one customer per memo (SEP12-28)");

    // Manual review: both wait for the operator.
    let (_, sender) = client.get(&[("memo", "1"), ("type", "sep31-sender")]).await;
    assert_eq!(sender["id"], sender_id.as_str());
    assert_eq!(sender["status"], "PROCESSING", "{sender}");
    assert_eq!(
        sender["provided_fields"]["first_name"]["status"],
        "PROCESSING"
    );
    let (_, receiver) = client
        .get(&[("memo", "2"), ("type", "sep31-receiver")])
        .await;
    assert_eq!(receiver["id"], receiver_id.as_str());
    assert_eq!(receiver["status"], "PROCESSING", "{receiver}");

    // The callback for the receiver; its type comes from the receiver's own PUT.
    let wallet = Recorder::default();
    let callback_url = wallet.start("/sep12/callback?wallet=flow").await;
    let (status, body) = client
        .put_json(
            "/customer/callback",
            json!({"id": receiver_id, "url": callback_url}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));

    // The operator sees both waiting, and accepts the receiver.
    let (status, pending) = json_of(
        http.get(format!(
            "{}/admin/customers?pending_review=true",
            served.admin_url
        ))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{pending}");
    let mut ids: Vec<&str> = pending["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![sender_id.as_str(), receiver_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        wallet.all().is_empty(),
        "registering is not a status change"
    );
    let (status, decided) = admin_post(
        &http,
        format!("{}/admin/customers/{receiver_id}/accept", served.admin_url),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["statuses"]["sep31-receiver"], "ACCEPTED");

    // The wallet hears of it: a signed POST carrying what GET /customer says.
    let got = wallet.wait_for(1, Duration::from_secs(10)).await;
    let delivery = &got[0];
    assert_eq!(delivery.method, Method::POST);
    assert_eq!(delivery.uri.path(), "/sep12/callback");
    assert_eq!(delivery.uri.query(), Some("wallet=flow"));
    assert_eq!(
        delivery.headers.get("content-type").unwrap(),
        "application/json"
    );
    // Checked the way a wallet does, with the anchor's stellar.toml SIGNING_KEY.
    let posted = callbacks::verified(delivery, &signing_key, &callback_url);
    let (_, now) = client
        .get(&[("id", &receiver_id), ("type", "sep31-receiver")])
        .await;
    assert_eq!(now["status"], "ACCEPTED", "{now}");
    assert_eq!(posted, now, "the callback body is the GET /customer body");
    let (_, by_memo) = client
        .get(&[("memo", "2"), ("type", "sep31-receiver")])
        .await;
    assert_eq!(by_memo["status"], "ACCEPTED");

    // SEP12-35: after ACCEPTED the registration is spent. The operator asks for a field
    // again and accepts the sender; the wallet hears nothing more.
    let (status, asked) = admin_post(
        &http,
        format!(
            "{}/admin/customers/{receiver_id}/request-info",
            served.admin_url
        ),
        json!({"fields": {"bank_number": "this routing number is not in use"}}),
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    assert!(asked["callback"].is_null(), "{asked}");
    let (_, again) = client
        .get(&[("memo", "2"), ("type", "sep31-receiver")])
        .await;
    assert_eq!(again["status"], "NEEDS_INFO", "{again}");
    assert_eq!(
        again["provided_fields"]["bank_number"]["status"],
        "REJECTED"
    );
    let (status, _) = admin_post(
        &http,
        format!("{}/admin/customers/{sender_id}/accept", served.admin_url),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    wallet.stays_at(1, Duration::from_secs(3)).await;

    served.stop().await;
}
