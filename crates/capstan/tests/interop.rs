//! Interoperability: an independent SEP-10 client, the Python `stellar-sdk`, logs in to the
//! running anchor (tests/interop/sep10_client.py) and the token it gets is checked here.
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
use common::{AppOptions, JWT_SECRET, TestApp};
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

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/sep10_client.py")
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

/// Runs the script off the runtime thread, so the anchor keeps answering while it waits.
async fn run_client(python: &Path, args: ClientArgs) -> Output {
    let python = python.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(client_script())
            .args(&args.args)
            .output()
    })
    .await
    .expect("client thread")
    .unwrap_or_else(|e| panic!("cannot run the Python client: {e}"))
}

/// Runs the script, which must succeed, and returns the JSON it printed.
async fn run_client_ok(python: &Path, args: ClientArgs) -> Value {
    let output = run_client(python, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python SEP-10 client failed ({}):\nstderr: {stderr}\nstdout: {stdout}",
        output.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout:?}"))
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
