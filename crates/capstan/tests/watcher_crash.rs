//! Two `capstan watch` processes (the real binary) on one database, as two replicas: one
//! streams, the other stands by. The streaming one is killed with SIGKILL while payments
//! stream in; the other takes the stream over once the lease runs out and resumes from the
//! stored cursor; the killed one is started again and stands by. Every payment is recorded
//! once and funds its transaction once. Then a SIGTERM: clean exits.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use capstan::store::{PaymentFilter, Store};
use common::process::{capstan_in, terminate};
use common::{AppOptions, TestApp, json_of};
use fake_horizon::{Asset, FakeHorizon, Memo, Op, Tx};
use serde_json::json;
use stellar::Keypair;

const PAYMENTS: usize = 400;

fn assets_toml(issuer: &str, distribution: &str) -> String {
    format!(
        "[[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\
         [sep31.assets.USDC]\nfee_fixed = \"1\"\n\
         [kyc.types.individual]\nfields = [\"first_name\"]\n"
    )
}

fn watch(dir: &Path) -> Child {
    capstan_in(dir)
        .args(["--config", "watch.toml", "watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("capstan watch starts")
}

async fn matched(store: &Store) -> usize {
    store
        .list_incoming_payments(&PaymentFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|p| p.outcome == "matched")
        .count()
}

#[tokio::test]
async fn a_killed_replica_is_replaced_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("capstan.db").display());
    let horizon = FakeHorizon::start().await;
    let issuer = Keypair::random().public_key().to_string();
    let distribution = Keypair::random().public_key().to_string();

    // The transactions, created over SEP-31 by an anchor without a watcher.
    let app = TestApp::spawn_with(AppOptions {
        toml: assets_toml(&issuer, &distribution),
        database_url: Some(db.clone()),
        ..Default::default()
    })
    .await;
    let sender = Keypair::random();
    let token = app.token_for(&sender, None).await;
    let mut created = Vec::new();
    for _ in 0..PAYMENTS {
        let response = app
            .http
            .post(format!("{}/sep31/transactions", app.url))
            .bearer_auth(&token)
            .json(&json!({"amount": "5", "asset_code": "USDC", "funding_method": "SEPA"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "{body}");
        let memo: u64 = body["stellar_memo"].as_str().unwrap().parse().unwrap();
        created.push((body["id"].as_str().unwrap().to_owned(), memo));
    }
    app.running.shutdown().await;

    std::fs::write(
        dir.path().join("watch.toml"),
        format!(
            "[stellar]\nhorizon_url = \"{}\"\n[database]\nurl = \"{db}\"\n\
             [watcher]\nstart = \"0\"\nmax_backoff_secs = 1\nlease_secs = 2\n{}",
            horizon.url(),
            assets_toml(&issuer, &distribution)
        ),
    )
    .unwrap();

    // Payments arrive in small groups while the watcher runs, is killed, and runs again.
    let payer = sender.public_key().to_string();
    let submitter = {
        let horizon = horizon.clone();
        let memos: Vec<u64> = created.iter().map(|(_, memo)| *memo).collect();
        let (issuer, distribution) = (issuer.clone(), distribution.clone());
        tokio::spawn(async move {
            for chunk in memos.chunks(10) {
                let txs = chunk
                    .iter()
                    .map(|memo| {
                        Tx::new(
                            &payer,
                            Memo::Id(*memo),
                            vec![Op::Payment {
                                from: None,
                                to: distribution.clone(),
                                asset: Asset::credit("USDC", &issuer),
                                amount: "5".into(),
                            }],
                        )
                    })
                    .collect();
                horizon.submit_all(txs);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };

    let store = Store::connect(&db, 2).await.unwrap();
    let mut first = watch(dir.path());
    let standby = watch(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = matched(&store).await;
        if n >= PAYMENTS / 4 {
            break;
        }
        assert!(first.try_wait().unwrap().is_none(), "capstan watch exited");
        assert!(
            Instant::now() < deadline,
            "the watcher recorded only {n} payments"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The owner's name carries its process id.
    let (owner, _) = store.stream_owner(&distribution).await.unwrap().unwrap();
    let (mut owning, mut other) = if owner.contains(&format!("-{}-", first.id())) {
        (first, standby)
    } else {
        assert!(owner.contains(&format!("-{}-", standby.id())), "{owner}");
        (standby, first)
    };
    owning.kill().unwrap();
    owning.wait().unwrap();
    let killed_at = Instant::now();
    let at_kill = matched(&store).await;

    // The other takes over within the lease (2 s) and a renewal interval.
    loop {
        let (now_owner, _) = store.stream_owner(&distribution).await.unwrap().unwrap();
        if now_owner != owner {
            assert!(
                now_owner.contains(&format!("-{}-", other.id())),
                "{now_owner}"
            );
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no takeover after {:?}",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let takeover = killed_at.elapsed();
    println!("takeover after {takeover:?}");
    let mut restarted = watch(dir.path());
    submitter.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while matched(&store).await < PAYMENTS {
        assert!(other.try_wait().unwrap().is_none(), "capstan watch exited");
        assert!(
            Instant::now() < deadline,
            "only {} of {PAYMENTS} payments recorded",
            matched(&store).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        at_kill < PAYMENTS,
        "the kill came after the last payment; nothing was tested"
    );

    // Exactly once: one record per payment, each matched, each transaction funded once.
    let payments = store
        .list_incoming_payments(&PaymentFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(payments.len(), PAYMENTS);
    assert!(payments.iter().all(|p| p.outcome == "matched"));
    for (id, _) in &created {
        let t = store.transaction(id).await.unwrap().unwrap();
        assert_eq!(t.status, "pending_receiver");
        assert!(t.paid);
        let funded = store
            .transaction_events(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| {
                e.from_status.as_deref() == Some("pending_sender")
                    && e.to_status == "pending_receiver"
            })
            .count();
        assert_eq!(funded, 1, "transaction {id}");
    }

    // SIGTERM: each watcher finishes its batch and exits cleanly.
    for child in [&mut other, &mut restarted] {
        let status = terminate(child, Duration::from_secs(60)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "capstan watch exits cleanly: {status:?}"
        );
    }
    store.close().await;
}
