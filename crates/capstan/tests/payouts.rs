//! Payouts, black-box: a SEP-31 transaction is created over HTTP, paid through the fake
//! Horizon, matched by the watcher, and paid out by the executor through the simulated
//! rails (and followed up by the poller), with signed callbacks at each step. On SQLite and
//! PostgreSQL.

mod common;

use std::time::Duration;

use common::callbacks::{Recorder, verified};
use common::on_both_backends;
use common::world::{World, world_with};
use fake_horizon::{Memo, Op, Tx};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(20);

/// The simulated rails, run every second (the executor is also woken by each payment).
fn rails(extra: &str) -> String {
    format!("[rails]\nenabled = true\nexecute_interval_secs = 1\npoll_interval_secs = 1\n{extra}\n")
}

/// SEP-31 KYC types, so transactions have a sender and a receiver to correct.
const TYPES: &str = "[kyc.types.sep31-sender]\nfields = [\"first_name\", \"last_name\"]\n\
                     [kyc.types.sep31-receiver]\nfields = [\"first_name\", \"bank_account_number\"]\n";

async fn callback(w: &World, id: &str) -> (Recorder, String) {
    let wallet = Recorder::default();
    let url = wallet.start("/cb").await;
    let response = w
        .app
        .http
        .put(format!("{}/sep31/transactions/{id}/callback", w.app.url))
        .bearer_auth(&w.token)
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    (wallet, url)
}

/// The statuses the callbacks carried, each checked as a wallet checks it.
async fn heard(w: &World, wallet: &Recorder, url: &str, n: usize) -> Vec<String> {
    wallet
        .wait_for(n, WITHIN)
        .await
        .iter()
        .map(|d| {
            verified(d, &w.app.server_key.public_key(), url);
            d.json()["transaction"]["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn events(w: &World, id: &str) -> Vec<(String, String)> {
    let (status, detail) = w
        .admin(
            reqwest::Method::GET,
            &format!("/admin/transactions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["to"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn step(to: &str, actor: &str) -> (String, String) {
    (to.to_owned(), actor.to_owned())
}

/// (key, calls) of every simulated payout of the transaction.
async fn ledger(w: &World, id: &str) -> Vec<(String, i64)> {
    w.app
        .running
        .anchor
        .store
        .simulated_payouts()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.transaction_id == id)
        .map(|p| (p.idempotency_key, p.calls))
        .collect()
}

/// SEP-12 PUT under the sending anchor's token with `memo`; returns the customer id.
async fn customer(w: &World, memo: &str, fields: Value) -> String {
    let token = w.app.token_for(&w.sender, Some(memo)).await;
    let response = w
        .app
        .http
        .put(format!("{}/customer", w.app.kyc_url()))
        .bearer_auth(&token)
        .json(&fields)
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_of(response).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn create_with(w: &World, body: Value) -> (String, u64) {
    let response = w
        .app
        .http
        .post(format!("{}/sep31/transactions", w.app.url))
        .bearer_auth(&w.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_of(response).await;
    assert_eq!(status, 201, "{body}");
    let memo = body["stellar_memo"].as_str().unwrap().parse().unwrap();
    (body["id"].as_str().unwrap().to_owned(), memo)
}

/// A transaction with an ACCEPTED sender and receiver, for `amount`.
async fn create_with_customers(w: &World, amount: &str) -> (String, u64, String) {
    let sender = customer(
        w,
        "1",
        json!({"type": "sep31-sender", "first_name": "Ana", "last_name": "Silva"}),
    )
    .await;
    let receiver = customer(
        w,
        "2",
        json!({"type": "sep31-receiver", "first_name": "Bruno", "bank_account_number": "12345678"}),
    )
    .await;
    let (id, memo) = create_with(
        w,
        json!({"amount": amount, "asset_code": "USDC", "funding_method": "SEPA",
               "sender_id": sender, "receiver_id": receiver}),
    )
    .await;
    (id, memo, receiver)
}

on_both_backends! {
    a_payment_is_paid_out_at_once => a_payment_is_paid_out_at_once_sqlite, a_payment_is_paid_out_at_once_postgres;
    a_submitted_payout_completes_on_the_next_poll => a_submitted_payout_completes_on_the_next_poll_sqlite, a_submitted_payout_completes_on_the_next_poll_postgres;
    a_customer_correction_leads_back_to_completed => a_customer_correction_leads_back_to_completed_sqlite, a_customer_correction_leads_back_to_completed_postgres;
    a_transaction_correction_leads_back_to_completed => a_transaction_correction_leads_back_to_completed_sqlite, a_transaction_correction_leads_back_to_completed_postgres;
    a_refused_payout_ends_in_error => a_refused_payout_ends_in_error_sqlite, a_refused_payout_ends_in_error_postgres;
    a_payment_the_rails_send_back_is_refunded => a_payment_the_rails_send_back_is_refunded_sqlite, a_payment_the_rails_send_back_is_refunded_postgres;
    two_executors_pay_each_transaction_once => two_executors_pay_each_transaction_once_sqlite, two_executors_pay_each_transaction_once_postgres;
    rounds_cut_short_are_executed_or_held => rounds_cut_short_are_executed_or_held_sqlite, rounds_cut_short_are_executed_or_held_postgres;
    a_batch_with_a_changed_transaction_is_ended_one_by_one => a_batch_with_a_changed_transaction_is_ended_one_by_one_sqlite, a_batch_with_a_changed_transaction_is_ended_one_by_one_postgres;
}

/// Rails that take batches and complete every payout; while they are called, the operator
/// fails one transaction of the batch.
struct BatchRails {
    store: capstan::store::Store,
    failed_meanwhile: String,
    calls: std::sync::Mutex<Vec<Vec<String>>>,
}

impl capstan::payout::rails::Rails for BatchRails {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn executes_in_batches(&self) -> bool {
        true
    }

    fn execute<'a>(
        &'a self,
        _: &'a capstan::payout::rails::Payout<'a>,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<capstan::payout::rails::Outcome, capstan::payout::rails::RailsError>,
    > {
        Box::pin(async {
            Err(capstan::payout::rails::RailsError::Permanent(
                "these rails are called with batches only".into(),
            ))
        })
    }

    fn execute_all<'a>(
        &'a self,
        payouts: &'a [capstan::payout::rails::Payout<'a>],
    ) -> futures_util::future::BoxFuture<
        'a,
        Vec<Result<capstan::payout::rails::Outcome, capstan::payout::rails::RailsError>>,
    > {
        Box::pin(async move {
            self.calls.lock().unwrap().push(
                payouts
                    .iter()
                    .map(|p| p.idempotency_key.to_owned())
                    .collect(),
            );
            self.store
                .transition(
                    &self.failed_meanwhile,
                    capstan::sep31::status::Status::Error,
                    "operator",
                    Some("failed by the operator"),
                    |_| {},
                    |_| String::new(),
                )
                .await
                .unwrap();
            payouts
                .iter()
                .map(|_| Ok(capstan::payout::rails::Outcome::Completed { external_id: None }))
                .collect()
        })
    }
}

/// Two rounds paid by one call of the rails; one transaction is failed by the operator
/// during the call. The batch's outcomes cannot be written together, so each round is
/// ended alone: the other transaction completes, the failed one keeps its status and its
/// round is held for the operator. Each is paid once.
async fn a_batch_with_a_changed_transaction_is_ended_one_by_one(db: Option<String>) {
    let w = world_with(db, "", "").await;
    let (kept, memo) = w.create("5").await;
    w.pay(Memo::Id(memo), "5");
    let (failed, memo) = w.create("6").await;
    w.pay(Memo::Id(memo), "6");
    w.wait_status(&kept, "pending_receiver").await;
    w.wait_status(&failed, "pending_receiver").await;
    let store = w.app.running.anchor.store.clone();
    let rails = std::sync::Arc::new(BatchRails {
        store: store.clone(),
        failed_meanwhile: failed.clone(),
        calls: Default::default(),
    });
    let mut config = w.app.running.anchor.config.clone();
    config.watcher.enabled = false;
    let anchor = capstan::server::open(
        config,
        capstan::Extensions {
            rails: Some(rails.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    assert_eq!(capstan::payout::execute_due(&anchor, "batch").await, 2);
    let calls = rails.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "one call for the batch: {calls:?}");
    let mut keys = calls[0].clone();
    keys.sort();
    let mut expected = vec![kept.clone(), failed.clone()];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(w.transaction(&kept).await["status"], "completed");
    assert_eq!(w.transaction(&failed).await["status"], "error");
    assert_eq!(store.payout(&kept).await.unwrap().unwrap().state, "done");
    assert_eq!(store.payout(&failed).await.unwrap().unwrap().state, "held");
    assert_eq!(
        events(&w, &kept).await.last().unwrap(),
        &step("completed", "rails")
    );
    // Nothing is paid again.
    assert_eq!(capstan::payout::execute_due(&anchor, "batch").await, 0);
    assert_eq!(rails.calls.lock().unwrap().len(), 1);
    anchor.store.close().await;
    w.app.running.shutdown().await;
}

/// Rails that cannot look a payout up (the trait's default `reconcile`), counting calls.
#[derive(Default)]
struct CountingRails {
    calls: std::sync::Mutex<Vec<String>>,
}

impl capstan::payout::rails::Rails for CountingRails {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn execute<'a>(
        &'a self,
        payout: &'a capstan::payout::rails::Payout<'a>,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<capstan::payout::rails::Outcome, capstan::payout::rails::RailsError>,
    > {
        self.calls
            .lock()
            .unwrap()
            .push(payout.idempotency_key.to_owned());
        Box::pin(async { Ok(capstan::payout::rails::Outcome::Completed { external_id: None }) })
    }
}

/// An executor that crashed after claiming a round but before calling the rails leaves a
/// round that is simply executed; one that crashed during the call leaves a round the rails
/// must account for, and rails that cannot are held for the operator, who releases it.
async fn rounds_cut_short_are_executed_or_held(db: Option<String>) {
    let w = world_with(db, "", "").await;
    let (claimed_only, memo) = w.create("5").await;
    w.pay(Memo::Id(memo), "5");
    w.wait_status(&claimed_only, "pending_receiver").await;
    let store = w.app.running.anchor.store.clone();
    let rails = std::sync::Arc::new(CountingRails::default());
    let mut config = w.app.running.anchor.config.clone();
    config.watcher.enabled = false;
    let anchor = capstan::server::open(
        config,
        capstan::Extensions {
            rails: Some(rails.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Claimed, with a lease that is already over, and never begun.
    let claimed = store.claim_payouts("crashed", 10, 0).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(capstan::payout::execute_due(&anchor, "next").await, 1);
    assert_eq!(w.transaction(&claimed_only).await["status"], "completed");
    assert_eq!(
        *rails.calls.lock().unwrap(),
        std::slice::from_ref(&claimed_only)
    );

    // Begun (executing), then cut short: these rails cannot tell, so it is held.
    let (begun, memo) = w.create("6").await;
    w.pay(Memo::Id(memo), "6");
    w.wait_status(&begun, "pending_receiver").await;
    let claimed = store.claim_payouts("crashed", 10, 0).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .renew_lease(&claimed[0].payout, 0)
        .await
        .unwrap()
        .expect("the round is still the crashed executor's");
    capstan::payout::execute_due(&anchor, "next").await;
    assert_eq!(w.transaction(&begun).await["status"], "pending_receiver");
    assert_eq!(
        rails.calls.lock().unwrap().len(),
        1,
        "not paid again blindly"
    );
    let (status, held) = w
        .admin(reqwest::Method::GET, "/admin/payouts/held", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(held["held"][0]["transaction_id"], begun.as_str());
    // Nothing happens to it until the operator decides.
    capstan::payout::execute_due(&anchor, "next").await;
    assert_eq!(rails.calls.lock().unwrap().len(), 1);
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/transactions/{begun}/payout/retry"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    capstan::payout::execute_due(&anchor, "next").await;
    assert_eq!(w.transaction(&begun).await["status"], "completed");
    assert_eq!(
        *rails.calls.lock().unwrap(),
        [claimed_only.clone(), begun.clone()]
    );
    // Not held any more.
    let (status, _) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/transactions/{begun}/payout/retry"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    anchor.store.close().await;
    w.app.running.shutdown().await;
}

/// POST → payment streamed → pending_receiver → executed → completed.
async fn a_payment_is_paid_out_at_once(db: Option<String>) {
    let w = world_with(db, "", &rails("")).await;
    let (id, memo) = w.create("25").await;
    let (wallet, url) = callback(&w, &id).await;
    w.pay(Memo::Id(memo), "25");
    let t = w.wait_status(&id, "completed").await;
    assert_eq!(t["external_transaction_id"], format!("sim-{id}"));
    assert_eq!(t["amount_out"], "24");
    assert!(
        t["completed_at"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{t}"
    );
    assert_eq!(
        heard(&w, &wallet, &url, 2).await,
        ["pending_receiver", "completed"]
    );
    assert_eq!(
        events(&w, &id).await,
        [
            step("pending_sender", &format!("sending_anchor:{}", w.payer)),
            step("pending_receiver", "watcher"),
            step("completed", "rails"),
        ]
    );
    assert_eq!(ledger(&w, &id).await, [(id.clone(), 1)]);
    w.app.running.shutdown().await;
}

/// ... → pending_external → polled → completed.
async fn a_submitted_payout_completes_on_the_next_poll(db: Option<String>) {
    let w = world_with(db, "", &rails("simulated = \"external\"")).await;
    let (id, memo) = w.create("40").await;
    let (wallet, url) = callback(&w, &id).await;
    w.pay(Memo::Id(memo), "40");
    w.wait_status(&id, "completed").await;
    assert_eq!(
        heard(&w, &wallet, &url, 3).await,
        ["pending_receiver", "pending_external", "completed"]
    );
    let trail: Vec<String> = events(&w, &id)
        .await
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(
        trail,
        [
            "pending_sender",
            "pending_receiver",
            "pending_external",
            "completed"
        ]
    );
    assert_eq!(ledger(&w, &id).await, [(id.clone(), 1)]);
    w.app.running.shutdown().await;
}

/// The rails refuse the receiver's account: pending_customer_info_update, the field shown
/// rejected in SEP-12, corrected, back to pending_receiver by itself, paid in a second
/// round with its own idempotency key.
async fn a_customer_correction_leads_back_to_completed(db: Option<String>) {
    let more = format!("{TYPES}{}", rails("customer_info_amount = \"13.13\""));
    let w = world_with(db, "", &more).await;
    let (id, memo, receiver) = create_with_customers(&w, "13.13").await;
    let (wallet, url) = callback(&w, &id).await;
    w.pay(Memo::Id(memo), "13.13");
    let t = w.wait_status(&id, "pending_customer_info_update").await;
    assert!(
        t["status_message"].as_str().is_some_and(|m| !m.is_empty()),
        "{t}"
    );
    let token = w.app.token_for(&w.sender, Some("2")).await;
    let kyc = |query: String| {
        let http = w.app.http.clone();
        let url = format!("{}/customer?{query}", w.app.kyc_url());
        let token = token.clone();
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            common::json_of(response).await.1
        }
    };
    let seen = kyc(format!("id={receiver}&type=sep31-receiver")).await;
    assert_eq!(seen["status"], "NEEDS_INFO", "{seen}");
    assert_eq!(
        seen["provided_fields"]["bank_account_number"]["status"], "REJECTED",
        "{seen}"
    );
    customer(
        &w,
        "2",
        json!({"id": receiver, "type": "sep31-receiver", "bank_account_number": "87654321"}),
    )
    .await;
    w.wait_status(&id, "completed").await;
    assert_eq!(
        heard(&w, &wallet, &url, 4).await,
        [
            "pending_receiver",
            "pending_customer_info_update",
            "pending_receiver",
            "completed"
        ]
    );
    assert_eq!(
        ledger(&w, &id).await,
        [(id.clone(), 1), (format!("{id}:2"), 1)]
    );
    w.app.running.shutdown().await;
}

/// The rails need a per-transaction field: pending_transaction_info_update, PATCH, back to
/// pending_receiver, paid.
async fn a_transaction_correction_leads_back_to_completed(db: Option<String>) {
    let w = world_with(db, "", &rails("transaction_info_amount = \"14.14\"")).await;
    let (id, memo) = w.create("14.14").await;
    let (wallet, url) = callback(&w, &id).await;
    w.pay(Memo::Id(memo), "14.14");
    let t = w.wait_status(&id, "pending_transaction_info_update").await;
    let wanted = &t["required_info_updates"]["transaction"];
    assert!(
        wanted["receiver_routing_number"]["description"].is_string(),
        "{t}"
    );
    let response = w
        .app
        .http
        .patch(format!("{}/sep31/transactions/{id}", w.app.url))
        .bearer_auth(&w.token)
        .json(&json!({"fields": {"transaction": {"receiver_routing_number": "021000021"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    w.wait_status(&id, "completed").await;
    assert_eq!(
        heard(&w, &wallet, &url, 4).await,
        [
            "pending_receiver",
            "pending_transaction_info_update",
            "pending_receiver",
            "completed"
        ]
    );
    w.app.running.shutdown().await;
}

/// The rails refuse for good: error, with their message.
async fn a_refused_payout_ends_in_error(db: Option<String>) {
    let w = world_with(db, "", &rails("error_amount = \"66.6\"")).await;
    let (id, memo) = w.create("66.6").await;
    let (wallet, url) = callback(&w, &id).await;
    w.pay(Memo::Id(memo), "66.6");
    let t = w.wait_status(&id, "error").await;
    assert!(
        t["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("refused")),
        "{t}"
    );
    assert_eq!(
        heard(&w, &wallet, &url, 2).await,
        ["pending_receiver", "error"]
    );
    w.app.running.shutdown().await;
}

/// The rails cannot pay and send the payment back in full: refunded, with the refund
/// recorded (SEP-31's refunds object) and nothing paid out.
async fn a_payment_the_rails_send_back_is_refunded(db: Option<String>) {
    let w = world_with(db, "", &rails("refund_amount = \"77.7\"")).await;
    let (id, memo) = w.create("77.7").await;
    let (wallet, url) = callback(&w, &id).await;
    w.pay(Memo::Id(memo), "77.7");
    let t = w.wait_status(&id, "refunded").await;
    assert_eq!(t["amount_out"], "0");
    let refunds = &t["refunds"];
    assert_eq!(refunds["amount_refunded"], "77.7", "{t}");
    assert_eq!(refunds["amount_fee"], "0");
    let payments = refunds["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["amount"], "77.7");
    assert_eq!(payments[0]["id"].as_str().unwrap().len(), 64);
    assert_eq!(
        heard(&w, &wallet, &url, 2).await,
        ["pending_receiver", "refunded"]
    );
    w.app.running.shutdown().await;
}

/// Two executors (two pollers of one database, as two processes would be) over a few
/// hundred funded transactions: each is paid out exactly once.
async fn two_executors_pay_each_transaction_once(db: Option<String>) {
    const N: usize = 200;
    // Funded with the app's own executor off.
    let w = world_with(db, "", "").await;
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
    w.wait_recorded(N).await;
    for (id, _) in &created {
        w.wait_status(id, "pending_receiver").await;
    }
    let mut config = w.app.running.anchor.config.clone();
    config.watcher.enabled = false;
    let interval = Some(Duration::from_millis(200));
    let first = capstan::server::start_paying(config.clone(), Default::default(), interval, None)
        .await
        .expect("first executor");
    let second = capstan::server::start_paying(config, Default::default(), interval, None)
        .await
        .expect("second executor");
    for (id, _) in &created {
        w.wait_status(id, "completed").await;
    }
    first.shutdown().await;
    second.shutdown().await;
    let ledger = w
        .app
        .running
        .anchor
        .store
        .simulated_payouts()
        .await
        .unwrap();
    assert_eq!(ledger.len(), N);
    assert!(
        ledger.iter().all(|p| p.calls == 1),
        "paid more than once: {:?}",
        ledger.iter().filter(|p| p.calls > 1).collect::<Vec<_>>()
    );
    for (id, _) in created.iter().take(20) {
        let completed = events(&w, id)
            .await
            .iter()
            .filter(|(to, _)| to == "completed")
            .count();
        assert_eq!(completed, 1);
    }
    w.app.running.shutdown().await;
}
