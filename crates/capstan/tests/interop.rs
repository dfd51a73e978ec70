//! Interoperability: independent clients built on the Python `stellar-sdk` drive the running
//! anchor, and what they report is checked here.
//! - tests/interop/sep10_client.py logs in with SEP-10; the token it gets is verified here.
//! - tests/interop/sep31_client.py plays a SEP-31 sending anchor from stellar.toml to a
//!   signed status callback; its summary is checked against the database here.
//!
//! The Python interpreter is `CAPSTAN_TEST_PYTHON`, else `<workspace>/.venv`'s. Without one
//! that can `import stellar_sdk` the tests are skipped with a notice, unless
//! `CAPSTAN_TEST_REQUIRE_INTEROP=1`, which makes them fail instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use common::{ADMIN_KEY, AppOptions, JWT_SECRET, TestApp, admin_toml};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use stellar::{ClientAccount, Keypair};

/// The anchor's default session lifetime (`auth.jwt_lifetime_secs`).
const DEFAULT_JWT_LIFETIME_SECS: u64 = 86_400;

#[cfg(windows)]
const VENV_PYTHON: &str = "Scripts/python.exe";
#[cfg(not(windows))]
const VENV_PYTHON: &str = "bin/python";

// ---- finding Python ----------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

fn client_script() -> PathBuf {
    script("sep10_client.py")
}

/// The interpreter to use, or why there is none.
fn find_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("CAPSTAN_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let venv = workspace_root().join(".venv").join(VENV_PYTHON);
            if !venv.exists() {
                return Err(format!(
                    "CAPSTAN_TEST_PYTHON is not set and {} does not exist",
                    venv.display()
                ));
            }
            venv
        }
    };
    let output = Command::new(&python)
        .args(["-c", "import stellar_sdk"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{} cannot import stellar_sdk: {}",
            python.display(),
            stderr.trim().lines().last().unwrap_or("no error output")
        ));
    }
    Ok(python)
}

/// The interpreter, or `None` after a skip notice. Panics instead of skipping when
/// `CAPSTAN_TEST_REQUIRE_INTEROP=1`.
fn python_or_skip(test: &str) -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FOUND.get_or_init(find_python) {
        Ok(python) => Some(python.clone()),
        Err(reason) => {
            if std::env::var("CAPSTAN_TEST_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!(
                    "{test}: no Python with stellar-sdk and CAPSTAN_TEST_REQUIRE_INTEROP=1: {reason}"
                );
            }
            eprintln!(
                "SKIPPED {test}: no Python with stellar-sdk (set CAPSTAN_TEST_PYTHON or create .venv)"
            );
            eprintln!("  ({reason})");
            None
        }
    }
}

// ---- running the client ------------------------------------------------------------------

/// Command-line arguments for sep10_client.py.
struct ClientArgs {
    args: Vec<String>,
}

impl ClientArgs {
    fn new(app: &TestApp, account: &Keypair) -> Self {
        ClientArgs {
            args: vec![
                "--anchor-url".into(),
                app.url.clone(),
                "--account-secret".into(),
                account.secret_seed(),
            ],
        }
    }

    fn arg(mut self, name: &str, value: impl ToString) -> Self {
        self.args.push(name.to_owned());
        self.args.push(value.to_string());
        self
    }

    fn flag(mut self, name: &str) -> Self {
        self.args.push(name.to_owned());
        self
    }

    fn signer(self, key: &Keypair) -> Self {
        self.arg("--signer", key.secret_seed())
    }
}

/// Runs a script off the runtime thread, so the anchor keeps answering while it waits.
async fn run_script(python: &Path, script: PathBuf, args: Vec<String>) -> Output {
    let python = python.to_owned();
    tokio::task::spawn_blocking(move || Command::new(&python).arg(&script).args(&args).output())
        .await
        .expect("client thread")
        .unwrap_or_else(|e| panic!("cannot run the Python client: {e}"))
}

/// The JSON a script printed, which must have succeeded.
fn json_output(what: &str, output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python {what} failed ({}):\nstderr: {stderr}\nstdout: {stdout}",
        output.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout:?}"))
}

/// Runs the SEP-10 client, which must succeed, and returns the JSON it printed.
async fn run_client_ok(python: &Path, args: ClientArgs) -> Value {
    let output = run_script(python, client_script(), args.args).await;
    json_output("SEP-10 client", &output)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ---- checking what came back -------------------------------------------------------------

/// What every successful login must show, whatever the account: the client found the
/// server's key and domains, and the token verifies with the anchor's secret and carries
/// SEP-10's claims. Returns the verified claims.
fn check_login(app: &TestApp, result: &Value, expected_sub: &str, started: u64) -> Value {
    let home_domain = app.home_domain();
    assert_eq!(
        result["server_signing_key"],
        app.server_key.public_key().to_string()
    );
    assert_eq!(result["home_domain"], home_domain);
    assert_eq!(result["web_auth_domain"], home_domain);
    assert_eq!(result["network_passphrase"], app.network.passphrase());
    assert_eq!(result["challenge"]["matched_home_domain"], home_domain);

    let token = result["token"]
        .as_str()
        .expect("token in the client's output");
    let issuer = format!("{}/auth", app.url);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[&issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .unwrap_or_else(|e| panic!("token does not verify with the anchor's secret: {e}"))
    .claims;

    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["sub"], expected_sub);
    let iat = claims["iat"].as_u64().expect("iat is a number");
    let exp = claims["exp"].as_u64().expect("exp is a number");
    assert_eq!(
        exp,
        iat + DEFAULT_JWT_LIFETIME_SECS,
        "exp - iat must be the default lifetime"
    );
    let finished = unix_now();
    assert!(
        (started..=finished).contains(&iat),
        "iat {iat} is not the time of the login ({started}..={finished})"
    );
    let jti = claims["jti"].as_str().expect("jti is a string");
    assert!(!jti.is_empty(), "jti is empty");
    // The anchor uses the challenge's transaction hash as jti; the SDK computed it apart.
    assert_eq!(
        jti, result["challenge_hash"],
        "jti is not the challenge hash the SDK computed"
    );
    assert_eq!(claims["home_domain"], home_domain);
    // The client's own (unverified) decoding of the payload reads the same claims.
    assert_eq!(claims, result["claims"]);
    claims
}

// ---- the cases ---------------------------------------------------------------------------

#[tokio::test]
async fn python_sdk_logs_in_with_a_new_g_account() {
    let Some(python) = python_or_skip("python_sdk_logs_in_with_a_new_g_account") else {
        return;
    };
    let app = TestApp::spawn().await;
    // Not registered in the fake Horizon: the account does not exist on the network.
    let key = Keypair::random();
    let account = key.public_key().to_string();
    let started = unix_now();

    let result = run_client_ok(&python, ClientArgs::new(&app, &key)).await;

    assert_eq!(result["account"], account);
    assert_eq!(result["challenge"]["client_account_id"], account);
    assert_eq!(result["challenge"]["memo"], Value::Null);
    assert_eq!(result["challenge"]["client_domain"], Value::Null);
    assert_eq!(result["sdk_verified_signers"], json!([account]));
    let claims = check_login(&app, &result, &account, started);
    assert!(claims.get("client_domain").is_none(), "claims: {claims}");
}

#[tokio::test]
async fn python_sdk_logs_in_with_a_g_account_and_an_id_memo() {
    let Some(python) = python_or_skip("python_sdk_logs_in_with_a_g_account_and_an_id_memo") else {
        return;
    };
    let app = TestApp::spawn().await;
    let key = Keypair::random();
    let account = key.public_key().to_string();
    // Above 2^53: a memo that went through a float anywhere would come back changed.
    let memo: u64 = 9_007_199_254_740_993;
    let started = unix_now();

    let result = run_client_ok(&python, ClientArgs::new(&app, &key).arg("--memo", memo)).await;

    assert_eq!(result["challenge"]["client_account_id"], account);
    assert_eq!(result["challenge"]["memo"].as_u64(), Some(memo));
    let claims = check_login(&app, &result, &format!("{account}:{memo}"), started);
    assert!(claims.get("client_domain").is_none(), "claims: {claims}");
}

#[tokio::test]
async fn python_sdk_logs_in_with_a_muxed_account() {
    let Some(python) = python_or_skip("python_sdk_logs_in_with_a_muxed_account") else {
        return;
    };
    let app = TestApp::spawn().await;
    let key = Keypair::random();
    let id: u64 = u64::MAX;
    let muxed = ClientAccount {
        account: key.public_key(),
        memo: Some(id),
        muxed: true,
    }
    .muxed_address()
    .expect("an M address");
    assert!(muxed.starts_with('M'));
    let started = unix_now();

    // This client sends the signed challenge as a form, the other cases as JSON.
    let args = ClientArgs::new(&app, &key)
        .arg("--muxed-id", id)
        .arg("--post-as", "form");
    let result = run_client_ok(&python, args).await;

    // The SDK built the same M address from the key and id as we did.
    assert_eq!(result["account"], muxed);
    assert_eq!(result["challenge"]["client_account_id"], muxed);
    // A muxed account carries its id itself; the transaction has no memo.
    assert_eq!(result["challenge"]["memo"], Value::Null);
    assert_eq!(
        result["sdk_verified_signers"],
        json!([key.public_key().to_string()])
    );
    check_login(&app, &result, &muxed, started);
}

#[tokio::test]
async fn python_sdk_logs_in_with_an_existing_multisig_account() {
    let Some(python) = python_or_skip("python_sdk_logs_in_with_an_existing_multisig_account")
    else {
        return;
    };
    let app = TestApp::spawn().await;
    let key = Keypair::random();
    let cosigner = Keypair::random();
    let account = key.public_key().to_string();
    let cosigner_id = cosigner.public_key().to_string();
    // Neither key alone reaches the medium threshold: the anchor must read these signers
    // from Horizon and add up both signatures.
    app.horizon
        .add_account(&account, &[(&account, 1), (&cosigner_id, 2)], 3);
    let started = unix_now();

    let args = ClientArgs::new(&app, &key).signer(&key).signer(&cosigner);
    let result = run_client_ok(&python, args).await;

    assert_eq!(result["challenge"]["client_account_id"], account);
    let mut verified: Vec<&str> = result["sdk_verified_signers"]
        .as_array()
        .expect("signers")
        .iter()
        .map(|s| s.as_str().expect("signer"))
        .collect();
    verified.sort_unstable();
    let mut expected = vec![account.as_str(), cosigner_id.as_str()];
    expected.sort_unstable();
    assert_eq!(verified, expected);
    let claims = check_login(&app, &result, &account, started);
    assert!(claims.get("client_domain").is_none(), "claims: {claims}");
}

#[tokio::test]
async fn python_sdk_logs_in_with_a_client_domain() {
    let Some(python) = python_or_skip("python_sdk_logs_in_with_a_client_domain") else {
        return;
    };
    // The wallet's own domain, serving a stellar.toml with its SIGNING_KEY.
    let domain_key = Keypair::random();
    let toml = format!("SIGNING_KEY = \"{}\"\n", domain_key.public_key());
    let router = Router::new().route(
        "/.well-known/stellar.toml",
        get(move || {
            let toml = toml.clone();
            async move { toml }
        }),
    );
    let client_domain = common::serve(router).await.to_string();
    let app = TestApp::spawn_with(AppOptions {
        toml: "[auth]\nclient_domain = \"required\"\nclient_domain_insecure_http = true\n".into(),
        ..Default::default()
    })
    .await;
    let key = Keypair::random();
    let account = key.public_key().to_string();
    let started = unix_now();

    let args = ClientArgs::new(&app, &key)
        .arg("--client-domain", &client_domain)
        .arg("--client-domain-secret", domain_key.secret_seed());
    let result = run_client_ok(&python, args).await;

    assert_eq!(
        result["challenge"]["client_domain"],
        json!({"domain": client_domain, "source": domain_key.public_key().to_string()}),
        "the challenge's client_domain operation must name the domain, sourced by its key"
    );
    // The SDK counts the client domain's signature apart from the account's signers.
    assert_eq!(result["sdk_verified_signers"], json!([account]));
    let claims = check_login(&app, &result, &account, started);
    assert_eq!(claims["client_domain"], client_domain);
}

#[tokio::test]
async fn anchor_refuses_a_challenge_the_python_sdk_signed_with_the_wrong_key() {
    let test = "anchor_refuses_a_challenge_the_python_sdk_signed_with_the_wrong_key";
    let Some(python) = python_or_skip(test) else {
        return;
    };
    let app = TestApp::spawn().await;
    let key = Keypair::random();
    let stranger = Keypair::random();

    let args = ClientArgs::new(&app, &key)
        .signer(&stranger)
        .flag("--expect-rejection");
    let result = run_client_ok(&python, args).await;

    assert_eq!(result["rejected"], true);
    assert_eq!(result["status"], 400, "result: {result}");
    let error = result["error"].as_str().expect("a JSON error");
    assert!(
        error.contains("signature"),
        "the refusal must be about the signature: {error:?}"
    );
}

// ---- SEP-31: the Python SDK as the sending anchor ------------------------------------------

fn sep31_script() -> PathBuf {
    script("sep31_client.py")
}

/// `value` as a string, or a panic naming `what`.
fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is a string: {value}"))
}

/// The (from, to, actor, reason) of each recorded status change, oldest first.
async fn events(app: &TestApp, id: &str) -> Vec<(Option<String>, String, String, Option<String>)> {
    app.running
        .anchor
        .store
        .transaction_events(id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.from_status, e.to_status, e.actor, e.reason))
        .collect()
}

/// The customer `id` as stored: (account, memo, memo_type) and its fields' (name, value,
/// status).
async fn stored_customer(
    app: &TestApp,
    id: &str,
) -> ((String, String, String), Vec<(String, String, String)>) {
    let store = &app.running.anchor.store;
    let row = store
        .customer_by_id(id)
        .await
        .expect("customer")
        .unwrap_or_else(|| panic!("customer {id} is stored"));
    let mut fields: Vec<(String, String, String)> = store
        .customer_fields(id)
        .await
        .expect("fields")
        .into_iter()
        .map(|f| (f.name, f.value.unwrap_or_default(), f.status))
        .collect();
    fields.sort();
    ((row.account, row.memo, row.memo_type), fields)
}

/// Every field of a customer is stored ACCEPTED under the names the client sent.
fn assert_fields_accepted(fields: &[(String, String, String)], sent: &Value, who: &str) {
    let names: Vec<&str> = fields.iter().map(|(name, _, _)| name.as_str()).collect();
    let sent: Vec<&str> = sent
        .as_array()
        .unwrap_or_else(|| panic!("sent_fields of the {who}"))
        .iter()
        .map(|n| text(n, "field name"))
        .collect();
    assert_eq!(names, sent, "the {who}'s stored fields");
    for (name, value, status) in fields {
        assert_eq!(status, "ACCEPTED", "the {who}'s {name}");
        assert!(!value.is_empty(), "the {who}'s {name} has a value");
    }
}

#[tokio::test]
async fn python_sdk_plays_a_sep31_sending_anchor() {
    let Some(python) = python_or_skip("python_sdk_plays_a_sep31_sending_anchor") else {
        return;
    };
    // The network: a fake Horizon that takes the SDK's signed payment and streams it to the
    // anchor's payment watcher.
    let network = fake_horizon::FakeHorizon::start().await;
    let app = TestApp::spawn_with(AppOptions {
        toml: format!(
            "{}[stellar]\nhorizon_url = \"{}\"\n[watcher]\nenabled = true\nstart = \"0\"\n",
            admin_toml(),
            network.url()
        ),
        ..Default::default()
    })
    .await;
    network.set_network_passphrase(app.network.passphrase());
    // Not known to the fake Horizon: a sending anchor's account the network does not know
    // yet logs in with its own key.
    let key = Keypair::random();
    let account = key.public_key().to_string();
    let actor = format!("sending_anchor:{account}");
    let message = "compliance hold: the receiving bank refused the payout";
    let started = unix_now();

    let args = vec![
        "--anchor-url".to_owned(),
        app.url.clone(),
        "--admin-url".to_owned(),
        app.admin_url(),
        "--admin-key".to_owned(),
        ADMIN_KEY.to_owned(),
        "--account-secret".to_owned(),
        key.secret_seed(),
        "--amount".to_owned(),
        "100".to_owned(),
        "--error-message".to_owned(),
        message.to_owned(),
    ];
    let output = run_script(&python, sep31_script(), args).await;
    let result = json_output("SEP-31 client", &output);
    let finished = unix_now();

    // What the client found in stellar.toml, and who it logged in as.
    assert_eq!(result["account"], account);
    let toml = &result["stellar_toml"];
    assert_eq!(toml["SIGNING_KEY"], app.server_key.public_key().to_string());
    assert_eq!(toml["WEB_AUTH_ENDPOINT"], format!("{}/auth", app.url));
    assert_eq!(toml["KYC_SERVER"], app.kyc_url());
    assert_eq!(toml["DIRECT_PAYMENT_SERVER"], format!("{}/sep31", app.url));
    assert_eq!(toml["NETWORK_PASSPHRASE"], app.network.passphrase());
    assert_eq!(result["home_domain"], app.home_domain());
    assert_eq!(result["token_claims"]["sub"], account);
    assert_eq!(result["token_claims"]["iss"], format!("{}/auth", app.url));

    // /info: the demo asset with its first funding method and the two SEP-31 types.
    let asset = &app.running.anchor.receive_assets[0];
    let info = &result["info"];
    assert_eq!(info["asset_code"], asset.code);
    assert_eq!(info["funding_method"], asset.settings.funding_methods[0]);
    assert_eq!(info["sender_type"], "sep31-sender");
    assert_eq!(info["receiver_type"], "sep31-receiver");

    // SEP-12: the default types' fields, one refused value each, then ACCEPTED.
    let sender = &result["customers"]["sender"];
    let receiver = &result["customers"]["receiver"];
    assert_eq!(
        sender["required_fields"],
        json!(["email_address", "first_name", "last_name"])
    );
    assert_eq!(sender["optional_fields"], json!(["mobile_number"]));
    assert_eq!(
        receiver["required_fields"],
        json!([
            "bank_account_number",
            "bank_number",
            "email_address",
            "first_name",
            "last_name"
        ])
    );
    assert_eq!(receiver["optional_fields"], json!([]));
    assert_eq!(sender["refused"]["status"], 400);
    assert_eq!(sender["refused"]["field"], "mobile_number");
    assert_eq!(receiver["refused"]["status"], 400);
    assert_eq!(receiver["refused"]["field"], "email_address");
    for (who, customer, memo) in [("sender", sender, "1"), ("receiver", receiver, "2")] {
        assert_eq!(customer["status"], "ACCEPTED", "{who}: {customer}");
        assert_eq!(customer["memo"], memo);
        let id = text(&customer["id"], "customer id");
        let (identity, fields) = stored_customer(&app, id).await;
        // Filed under the sending anchor's account and the memo of its user.
        assert_eq!(
            identity,
            (account.clone(), memo.to_owned(), "id".to_owned()),
            "{who}"
        );
        assert_fields_accepted(&fields, &customer["sent_fields"], who);
        // The refused value was never stored.
        let refused = text(&customer["refused"]["value"], "refused value");
        assert!(
            fields.iter().all(|(_, value, _)| value != refused),
            "the {who}'s refused value {refused:?} is stored: {fields:?}"
        );
    }
    let sender_id = text(&sender["id"], "sender id");
    let receiver_id = text(&receiver["id"], "receiver id");

    // The transaction created with both customers: pending_sender, paid to the asset's
    // distribution account with an id memo, and left alone by the operator.
    let distribution = asset.distribution_account.to_string();
    let first = &result["first"];
    let first_id = text(&first["id"], "first id");
    assert_eq!(first["created"]["id"], first_id);
    assert_eq!(first["created"]["stellar_account_id"], distribution);
    assert_eq!(first["created"]["stellar_memo_type"], "id");
    assert_eq!(first["transaction"]["status"], "pending_sender");
    assert_eq!(first["status_before_payment"], "pending_sender");
    let first_memo = text(&first["created"]["stellar_memo"], "first memo");
    let store = &app.running.anchor.store;
    let row = store
        .transaction(first_id)
        .await
        .expect("read")
        .expect("the first transaction is stored");
    assert_eq!(row.sending_anchor, account);
    assert_eq!(row.asset_code, asset.code);
    assert_eq!(row.amount_in, "100");
    assert_eq!(row.sender_id.as_deref(), Some(sender_id));
    assert_eq!(row.receiver_id.as_deref(), Some(receiver_id));
    assert_eq!(
        row.stellar_account_id.as_deref(),
        Some(distribution.as_str())
    );
    assert_eq!(row.stellar_memo.as_deref(), Some(first_memo));
    assert_eq!(
        row.callback_url.as_deref(),
        result["callback_urls"]["first"].as_str()
    );

    // Paid through the network with the SDK: the transaction the SDK signed and submitted
    // is the one the watcher matched.
    let paid_hash = text(&first["paid_hash"], "paid hash");
    assert_eq!(network.submitted(), [paid_hash.to_owned()]);
    assert_eq!(first["horizon_answer_hash"], paid_hash);
    assert_eq!(first["funded"]["status"], "pending_receiver");
    assert_eq!(first["funded"]["stellar_transaction_id"], paid_hash);
    assert!(row.paid);
    assert_eq!(row.stellar_transaction_id.as_deref(), Some(paid_hash));
    let payments = store
        .list_incoming_payments(&capstan::store::PaymentFilter {
            transaction_id: Some(first_id.to_owned()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("payments");
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].outcome, "matched");
    assert_eq!(payments[0].from_account, account);
    assert_eq!(payments[0].memo.as_deref(), Some(first_memo));
    // Both correction flows, each back to pending_receiver.
    assert_eq!(first["receiver_flagged"]["status"], "REJECTED");
    assert_eq!(first["receiver_after_fix"], "ACCEPTED");
    assert_eq!(first["resumed_status"], "pending_receiver");
    assert_eq!(
        first["required_info_updates"]["transaction"]["receiver_routing_number"]["description"],
        "the receiving bank's routing number"
    );
    assert_eq!(first["patched_status"], "pending_receiver");
    assert_eq!(row.status, "pending_receiver");
    let fields: Value = serde_json::from_str(&row.fields).expect("fields JSON");
    assert_eq!(fields["receiver_routing_number"], "021000021");
    let trail: Vec<(Option<String>, String, String)> = events(&app, first_id)
        .await
        .into_iter()
        .map(|(from, to, actor, _)| (from, to, actor))
        .collect();
    let step = |from: &str, to: &str, actor: &str| {
        (Some(from.to_owned()), to.to_owned(), actor.to_owned())
    };
    assert_eq!(
        trail,
        [
            (None, "pending_sender".to_owned(), actor.clone()),
            step("pending_sender", "pending_receiver", "watcher"),
            step(
                "pending_receiver",
                "pending_customer_info_update",
                "operator"
            ),
            step("pending_customer_info_update", "pending_receiver", "kyc"),
            step(
                "pending_receiver",
                "pending_transaction_info_update",
                "operator"
            ),
            step(
                "pending_transaction_info_update",
                "pending_receiver",
                &actor
            ),
        ]
    );
    // One signed callback per change, in order (each verified by the client).
    assert_eq!(
        first["callback_statuses"],
        json!([
            "pending_receiver",
            "pending_customer_info_update",
            "pending_receiver",
            "pending_transaction_info_update",
            "pending_receiver"
        ])
    );
    assert_eq!(
        first["final"],
        serde_json::to_value(capstan::sep31::transactions::transaction_body(&row)).unwrap()["transaction"]
    );

    // The transaction created without customers: waited in pending_receiver, became
    // pending_sender once SEP-12 linked both parties, then the operator failed it.
    let second = &result["second"];
    let second_id = text(&second["id"], "second id");
    assert_eq!(second["created"], json!({ "id": second_id }));
    assert_eq!(second["waiting_status"], "pending_receiver");
    assert_eq!(
        second["statuses_while_linking"],
        json!(["pending_receiver", "pending_sender"])
    );
    assert_eq!(second["payable"]["status"], "pending_sender");
    assert_eq!(second["payable"]["stellar_account_id"], distribution);
    let second_memo = text(&second["payable"]["stellar_memo"], "second memo");
    assert_ne!(second_memo, first_memo);
    let linked_sender = text(&second["linked"]["sender"]["id"], "linked sender");
    let linked_receiver = text(&second["linked"]["receiver"]["id"], "linked receiver");
    for (who, id) in [("sender", linked_sender), ("receiver", linked_receiver)] {
        assert_eq!(second["linked"][who]["status"], "ACCEPTED");
        let ((owner, _, _), fields) = stored_customer(&app, id).await;
        assert_eq!(
            owner, account,
            "the linked {who} belongs to the sending anchor"
        );
        assert!(!fields.is_empty(), "the linked {who} has its fields");
        assert!(
            fields.iter().all(|(_, _, status)| status == "ACCEPTED"),
            "the linked {who}: {fields:?}"
        );
    }
    let row = store
        .transaction(second_id)
        .await
        .expect("read")
        .expect("the second transaction is stored");
    assert_eq!(row.status, "error");
    assert_eq!(row.status_message.as_deref(), Some(message));
    assert_eq!(row.sending_anchor, account);
    assert_eq!(row.sender_id.as_deref(), Some(linked_sender));
    assert_eq!(row.receiver_id.as_deref(), Some(linked_receiver));
    assert_eq!(row.stellar_memo.as_deref(), Some(second_memo));
    assert!(!row.paid);
    assert_eq!(
        row.callback_url.as_deref(),
        result["callback_urls"]["second"].as_str()
    );
    let trail: Vec<(Option<String>, String, String)> = events(&app, second_id)
        .await
        .into_iter()
        .map(|(from, to, actor, _)| (from, to, actor))
        .collect();
    assert_eq!(
        trail,
        [
            (None, "pending_receiver".to_owned(), actor.clone()),
            (
                Some("pending_receiver".to_owned()),
                "pending_sender".to_owned(),
                "kyc".to_owned()
            ),
            (
                Some("pending_sender".to_owned()),
                "error".to_owned(),
                "operator".to_owned()
            ),
        ]
    );

    // The one callback: to the failed transaction's URL, its GET body, signed and fresh.
    let callback = &result["callback"];
    assert_eq!(callback["count"], 1);
    assert_eq!(callback["path"], "/sep31/callback/second");
    assert_eq!(callback["signature_verified"], true);
    assert_eq!(callback["body_equals_get"], true);
    let t = callback["t"].as_u64().expect("t is a number");
    assert!(
        (started..=finished).contains(&t),
        "t={t} is not within the run ({started}..={finished})"
    );
    assert_eq!(
        callback["body"],
        serde_json::to_value(capstan::sep31::transactions::transaction_body(&row)).unwrap(),
        "the callback body is the stored transaction's"
    );
    assert_eq!(
        callback["body"]["transaction"],
        result["failed"]["transaction"]
    );
    assert_eq!(callback["body"]["transaction"]["status"], "error");
    assert_eq!(callback["body"]["transaction"]["status_message"], message);
    // Delivered, and nothing else waiting.
    assert_eq!(store.callback_backlog().await.expect("backlog"), (0, 0));
}
