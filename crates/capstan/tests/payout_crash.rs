//! `capstan execute` (the real binary) killed with SIGKILL while it pays out, then started
//! again: every funded transaction is paid exactly once (the simulated rails count the
//! calls per idempotency key), none is left behind. Then a SIGTERM: a clean exit.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use capstan::store::{Store, TransactionFilter};
use common::process::{capstan_in, terminate};
use common::world::world;
use fake_horizon::{Memo, Op, Tx};

const N: usize = 300;

fn execute(dir: &Path) -> Child {
    capstan_in(dir)
        .args(["--config", "execute.toml", "execute", "--interval", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("capstan execute starts")
}

async fn completed(store: &Store) -> usize {
    store
        .list_transactions(&TransactionFilter {
            status: Some("completed".into()),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_killed_executor_pays_each_transaction_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("capstan.db").display());
    // Funded through the watcher by an anchor that does not pay out.
    let w = world(Some(db.clone()), "").await;
    let mut created = Vec::new();
    for _ in 0..N {
        created.push(w.create("5").await);
    }
    let txs: Vec<Tx> = created
        .iter()
        .map(|(_, memo)| {
            Tx::new(
                &w.payer,
                Memo::Id(*memo),
                vec![Op::Payment {
                    from: None,
                    to: w.distribution.clone(),
                    asset: w.usdc(),
                    amount: "5".into(),
                }],
            )
        })
        .collect();
    w.horizon.submit_all(txs);
    w.wait_caught_up().await;
    for (id, _) in &created {
        w.wait_status(id, "pending_receiver").await;
    }
    let (issuer, distribution) = (w.issuer.clone(), w.distribution.clone());
    w.app.running.shutdown().await;

    // A one-second rails timeout: a killed executor's leases run out after 7 s.
    std::fs::write(
        dir.path().join("execute.toml"),
        format!(
            "[database]\nurl = \"{db}\"\n\
             [rails]\nkind = \"simulated\"\ntimeout_secs = 1\n\
             [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\
             [sep31.assets.USDC]\nfee_fixed = \"1\"\n\
             [kyc.types.individual]\nfields = [\"first_name\"]\n"
        ),
    )
    .unwrap();
    let store = Store::connect(&db, 2).await.unwrap();
    let mut first = execute(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = completed(&store).await;
        if n >= N / 6 {
            break;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "capstan execute exited"
        );
        assert!(Instant::now() < deadline, "only {n} paid out");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = completed(&store).await;
    assert!(
        at_kill < N,
        "the kill came after the last payout; nothing was tested"
    );

    let mut second = execute(dir.path());
    let deadline = Instant::now() + Duration::from_secs(90);
    while completed(&store).await < N {
        assert!(
            second.try_wait().unwrap().is_none(),
            "capstan execute exited"
        );
        assert!(
            Instant::now() < deadline,
            "only {} of {N} paid out (killed at {at_kill})",
            completed(&store).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Exactly once: one simulated payout per transaction, each asked for once.
    let ledger = store.simulated_payouts().await.unwrap();
    assert_eq!(ledger.len(), N);
    let repeated: Vec<_> = ledger.iter().filter(|p| p.calls != 1).collect();
    assert!(repeated.is_empty(), "asked more than once: {repeated:?}");
    for (id, _) in &created {
        let paid = store
            .transaction_events(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.to_status == "completed")
            .count();
        assert_eq!(paid, 1, "transaction {id}");
    }

    let status = terminate(&mut second, Duration::from_secs(60)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "capstan execute exits cleanly: {status:?}"
    );
    store.close().await;
}
