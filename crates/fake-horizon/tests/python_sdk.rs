//! A real client SDK pays through the fake: tests/submit.py, on the Python `stellar-sdk`,
//! submits payments with `Server(url).submit_transaction(tx)`.
//!
//! The interpreter is named by `FAKE_HORIZON_TEST_PYTHON` (one that can `import stellar_sdk`);
//! without it the test prints a `SKIPPED` line and passes.

mod common;

use std::path::Path;
use std::process::Command;

use common::{account, open};
use fake_horizon::FakeHorizon;
use serde_json::Value;

#[tokio::test]
async fn the_python_sdk_submits_payments() {
    let python = match std::env::var("FAKE_HORIZON_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            println!(
                "SKIPPED the_python_sdk_submits_payments: set FAKE_HORIZON_TEST_PYTHON to a Python \
                 that has stellar-sdk"
            );
            return;
        }
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/submit.py");

    let h = FakeHorizon::start().await;
    let (destination, issuer) = (account(1), account(9));
    let mut stream = open(&format!(
        "{}/accounts/{destination}/payments?cursor=now&join=transactions",
        h.url()
    ))
    .await;
    stream.hello().await;

    let url = h.url();
    let args = [destination.clone(), issuer.clone()];
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script)
            .arg(url)
            .args(args)
            .output()
            .expect("run the Python interpreter")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "submit.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("submit.py printed no JSON ({e}):\n{stdout}\n{stderr}"));
    let source = report["source"].as_str().unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);

    // Horizon's hash, the SDK's own and the fake's record of what it received agree.
    let submitted = h.submitted();
    assert_eq!(submitted.len(), 2);
    for (result, hash) in results.iter().zip(&submitted) {
        assert_eq!(result["hash"], result["sdk_hash"]);
        assert_eq!(&result["hash"], hash);
        let response = &result["response"];
        assert_eq!(response["successful"], true);
        assert_eq!(response["source_account"], source);
        assert_eq!(
            response["source_account_sequence"],
            result["sequence"].to_string()
        );
        assert_eq!(response["fee_charged"], "100");
    }
    assert_eq!(results[0]["response"]["memo_type"], "id");
    assert_eq!(results[0]["response"]["memo"], "4242");
    assert_eq!(results[1]["response"]["memo_type"], "none");

    // Without a memo, the SDK checked SEP-29 on the destination first; the fake's 404 let it go on.
    let requests: Vec<(String, u16)> = h
        .requests()
        .iter()
        .filter(|r| !r.path.ends_with("/payments"))
        .map(|r| (r.path.clone(), r.status))
        .collect();
    assert_eq!(
        requests,
        vec![
            ("/transactions".to_string(), 200),
            (format!("/accounts/{destination}"), 404),
            ("/transactions".to_string(), 200),
        ]
    );

    // The anchor's stream carries both payments under the hashes the client got.
    for (memo, hash) in [("4242", &submitted[0]), ("", &submitted[1])] {
        let (_, r) = stream.record().await;
        assert_eq!(&r["transaction_hash"], hash);
        assert_eq!(&r["transaction"]["hash"], hash);
        assert_eq!(r["from"], source);
        assert_eq!(r["to"], destination);
        assert_eq!(r["asset_code"], "USDC");
        assert_eq!(r["asset_issuer"], issuer);
        assert_eq!(r["amount"], "12.5000000");
        if memo.is_empty() {
            assert!(r["transaction"].get("memo").is_none());
        } else {
            assert_eq!(r["transaction"]["memo"], memo);
        }
    }
}
