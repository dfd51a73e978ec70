//! The payment watcher, black-box: the real anchor on a real port streams a fake Horizon
//! (`fake-horizon`, Horizon's SSE and JSON shapes), and what it did is read back through
//! SEP-31 `GET /transactions/:id` and the admin API. On SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::world::{World, g, world, world_on, world_toml};
use common::{AppOptions, TestApp, json_of};
use common::{on_both_backends, on_both_databases};
use fake_horizon::{Asset, FakeHorizon, Memo, Op, Tx};
use serde_json::{Value, json};
use stellar::{ClientAccount, Keypair};

// ---- the two backends ---------------------------------------------------------------------

on_both_backends! {
    each_payment_kind_funds_its_transaction => each_payment_kind_funds_its_transaction_sqlite, each_payment_kind_funds_its_transaction_postgres;
    odd_payments_are_held_with_their_reason => odd_payments_are_held_with_their_reason_sqlite, odd_payments_are_held_with_their_reason_postgres;
    failed_outgoing_and_other_records_are_ignored => failed_outgoing_and_other_records_are_ignored_sqlite, failed_outgoing_and_other_records_are_ignored_postgres;
    a_restart_resumes_from_the_stored_cursor => a_restart_resumes_from_the_stored_cursor_sqlite, a_restart_resumes_from_the_stored_cursor_postgres;
    dropped_streams_and_errors_lose_and_double_nothing => dropped_streams_and_errors_lose_and_double_nothing_sqlite, dropped_streams_and_errors_lose_and_double_nothing_postgres;
    the_operator_attaches_or_refunds_held_payments => the_operator_attaches_or_refunds_held_payments_sqlite, the_operator_attaches_or_refunds_held_payments_postgres;
    short_payments_can_be_accepted_by_configuration => short_payments_can_be_accepted_by_configuration_sqlite, short_payments_can_be_accepted_by_configuration_postgres;
}

on_both_databases! {
    two_watchers_record_each_payment_once => two_watchers_record_each_payment_once_sqlite, two_watchers_record_each_payment_once_postgres;
    replicas_stream_an_account_one_at_a_time => replicas_stream_an_account_one_at_a_time_sqlite, replicas_stream_an_account_one_at_a_time_postgres;
}

/// payment, both path payments, a muxed destination carrying the id, and a fee bump: each
/// funds its transaction with what arrived, recording the Stellar transaction.
async fn each_payment_kind_funds_its_transaction(db: Option<String>) {
    let w = world(db, "").await;
    let (plain, plain_memo) = w.create("100").await;
    let (send, send_memo) = w.create("50").await;
    let (receive, receive_memo) = w.create("25.5").await;
    let (muxed, muxed_memo) = w.create("10").await;
    let (bumped, bumped_memo) = w.create("12").await;

    w.pay(Memo::Id(plain_memo), "100");
    let xlm = Asset::Native;
    w.submit(Tx::new(
        &w.payer,
        Memo::Id(send_memo),
        vec![Op::PathPaymentStrictSend {
            from: None,
            to: w.distribution.clone(),
            send_asset: xlm.clone(),
            send_amount: "400".into(),
            dest_asset: w.usdc(),
            dest_amount: "50".into(),
            dest_min: "49".into(),
        }],
    ));
    w.submit(Tx::new(
        &w.payer,
        Memo::Id(receive_memo),
        vec![Op::PathPaymentStrictReceive {
            from: None,
            to: w.distribution.clone(),
            send_asset: xlm,
            send_max: "300".into(),
            send_amount: "290".into(),
            dest_asset: w.usdc(),
            dest_amount: "25.5".into(),
        }],
    ));
    let distribution_key = stellar::PublicKey::from_strkey(&w.distribution).unwrap();
    let to_muxed = ClientAccount {
        account: distribution_key,
        memo: Some(muxed_memo),
        muxed: true,
    }
    .sub();
    w.submit(Tx::new(
        &w.payer,
        Memo::None,
        vec![Op::Payment {
            from: None,
            to: to_muxed,
            asset: w.usdc(),
            amount: "10".into(),
        }],
    ));
    let mut fee_bump = Tx::new(
        &w.payer,
        Memo::Id(bumped_memo),
        vec![Op::Payment {
            from: None,
            to: w.distribution.clone(),
            asset: w.usdc(),
            amount: "12".into(),
        }],
    );
    fee_bump.fee_bump = Some(g(&Keypair::random()));
    w.submit(fee_bump);

    for (id, amount_in, amount_out) in [
        (&plain, "100", "99"),
        (&send, "50", "49"),
        (&receive, "25.5", "24.5"),
        (&muxed, "10", "9"),
        (&bumped, "12", "11"),
    ] {
        let t = w.wait_status(id, "pending_receiver").await;
        assert_eq!(t["amount_in"], amount_in, "{t}");
        assert_eq!(t["amount_fee"], "1", "{t}");
        assert_eq!(t["amount_out"], amount_out, "{t}");
        let hash = t["stellar_transaction_id"].as_str().unwrap_or_default();
        assert_eq!(
            hash.len(),
            64,
            "the funding transaction's hash is recorded: {t}"
        );
    }
    let payments = w.payments("outcome=matched").await;
    assert_eq!(payments.len(), 5);
    for p in &payments {
        assert_eq!(p["outcome"], "matched");
        assert_eq!(p["asset"], format!("USDC:{}", w.issuer));
        let t = w.transaction(p["transaction_id"].as_str().unwrap()).await;
        assert_eq!(t["stellar_transaction_id"], p["stellar_transaction_id"]);
    }
    let kinds: std::collections::BTreeSet<&str> = payments
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "path_payment_strict_receive",
            "path_payment_strict_send",
            "payment"
        ]
        .into_iter()
        .collect()
    );
    let muxed_payment = payments
        .iter()
        .find(|p| p["transaction_id"] == muxed.as_str())
        .unwrap();
    assert_eq!(muxed_payment["to_muxed_id"], muxed_memo.to_string());
    assert_eq!(muxed_payment["memo_type"], "none");
    // The fee-bumped payment names the outer (fee-bump) transaction, as Horizon does.
    let bumped_payment = payments
        .iter()
        .find(|p| p["transaction_id"] == bumped.as_str())
        .unwrap();
    assert_eq!(bumped_payment["memo"], bumped_memo.to_string());

    // The history says who funded it and with what.
    let (status, detail) = w
        .admin(
            reqwest::Method::GET,
            &format!("/admin/transactions/{plain}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let last = detail["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["from"], "pending_sender");
    assert_eq!(last["to"], "pending_receiver");
    assert_eq!(last["actor"], "watcher");
    assert_eq!(detail["payments"].as_array().unwrap().len(), 1);
    w.app.running.shutdown().await;
}

/// Nothing is guessed: each odd payment is recorded, unmatched, with its reason; the
/// transactions stay as they were, and those a memo names show the held payment.
async fn odd_payments_are_held_with_their_reason(db: Option<String>) {
    let w = world(db, "").await;
    let (wrong_asset, wrong_asset_memo) = w.create("20").await;
    let (short, short_memo) = w.create("20").await;
    let (twice, twice_memo) = w.create("20").await;
    let (text_memo, text_memo_memo) = w.create("20").await;

    w.pay(Memo::None, "5");
    w.pay(Memo::Id(4242), "5");
    w.submit(Tx::new(
        &w.payer,
        Memo::Id(wrong_asset_memo),
        vec![Op::Payment {
            from: None,
            to: w.distribution.clone(),
            asset: Asset::credit("USDC", &g(&Keypair::random())),
            amount: "20".into(),
        }],
    ));
    w.pay(Memo::Id(short_memo), "19.9999999");
    w.pay(Memo::Id(twice_memo), "20");
    w.pay(Memo::Id(twice_memo), "20");
    w.pay(Memo::Text(text_memo_memo.to_string()), "20");

    let payments = w.wait_recorded(7).await;
    let held: Vec<&Value> = payments
        .iter()
        .filter(|p| p["outcome"] == "unmatched")
        .collect();
    assert_eq!(held.len(), 6, "{payments:?}");
    let reason_of = |memo: Option<String>, memo_type: &str| -> Vec<String> {
        held.iter()
            .filter(|p| {
                p["memo"].as_str().map(str::to_owned) == memo && p["memo_type"] == memo_type
            })
            .map(|p| p["reason"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(reason_of(None, "none"), ["no_memo"]);
    assert_eq!(reason_of(Some("4242".into()), "id"), ["unknown_memo"]);
    assert_eq!(
        reason_of(Some(wrong_asset_memo.to_string()), "id"),
        ["wrong_asset"]
    );
    assert_eq!(
        reason_of(Some(short_memo.to_string()), "id"),
        ["short_payment"]
    );
    assert_eq!(
        reason_of(Some(twice_memo.to_string()), "id"),
        ["not_awaiting_payment"]
    );
    assert_eq!(
        reason_of(Some(text_memo_memo.to_string()), "text"),
        ["unknown_memo"]
    );
    for p in &held {
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{p}");
        assert!(p["resolution"].is_null());
    }
    // Only the first of the two payments with one memo funded it.
    let t = w.wait_status(&twice, "pending_receiver").await;
    assert_eq!(t["amount_in"], "20");
    for id in [&wrong_asset, &short, &text_memo] {
        assert_eq!(w.transaction(id).await["status"], "pending_sender");
    }
    // The transaction a held payment names shows it in its history.
    let (_, detail) = w
        .admin(
            reqwest::Method::GET,
            &format!("/admin/transactions/{short}"),
            None,
        )
        .await;
    let events = detail["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("short_payment")),
        "{detail}"
    );
    assert_eq!(detail["payments"][0]["reason"], "short_payment");
    // The operator's list of what needs a decision.
    assert_eq!(w.payments("open=true").await.len(), 6);
    w.app.running.shutdown().await;
}

/// A failed transaction (even from a server that sends them), an outgoing payment, and an
/// account creation change nothing and are not recorded; the cursor still moves past them.
async fn failed_outgoing_and_other_records_are_ignored(db: Option<String>) {
    let w = world(db, "").await;
    w.horizon.send_failed_always(true);
    let (id, memo) = w.create("30").await;
    let mut failed = Tx::new(
        &w.payer,
        Memo::Id(memo),
        vec![Op::Payment {
            from: None,
            to: w.distribution.clone(),
            asset: w.usdc(),
            amount: "30".into(),
        }],
    );
    failed.successful = false;
    w.submit(failed);
    w.submit(Tx::new(
        &w.distribution,
        Memo::Id(memo),
        vec![Op::Payment {
            from: None,
            to: w.payer.clone(),
            asset: w.usdc(),
            amount: "30".into(),
        }],
    ));
    w.submit(Tx::new(
        &w.distribution,
        Memo::None,
        vec![Op::CreateAccount {
            from: None,
            account: g(&Keypair::random()),
            starting_balance: "2".into(),
        }],
    ));
    w.wait_caught_up().await;
    assert!(w.payments("").await.is_empty());
    assert_eq!(w.transaction(&id).await["status"], "pending_sender");
    // The real payment still funds it.
    w.pay(Memo::Id(memo), "30");
    w.wait_status(&id, "pending_receiver").await;
    assert_eq!(w.payments("").await.len(), 1);
    w.app.running.shutdown().await;
}

/// Payments made while the anchor was down are caught up on from the stored cursor; none
/// is skipped, none counted twice.
async fn a_restart_resumes_from_the_stored_cursor(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db = db.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("c.db").display()));
    let w = world(Some(db.clone()), "").await;
    let (first, first_memo) = w.create("10").await;
    let (second, second_memo) = w.create("10").await;
    let (third, third_memo) = w.create("10").await;
    w.pay(Memo::Id(first_memo), "10");
    w.wait_status(&first, "pending_receiver").await;
    w.wait_caught_up().await;
    let stored = w
        .app
        .running
        .anchor
        .store
        .watcher_cursor(&w.distribution)
        .await
        .unwrap()
        .unwrap();

    let World {
        app,
        horizon,
        issuer,
        distribution,
        payer,
        sender,
        ..
    } = w;
    let TestApp { running, .. } = app;
    running.shutdown().await;
    // While down: two payments for the waiting transactions.
    for memo in [second_memo, third_memo] {
        horizon.submit(Tx::new(
            &payer,
            Memo::Id(memo),
            vec![Op::Payment {
                from: None,
                to: distribution.clone(),
                asset: Asset::credit("USDC", &issuer),
                amount: "10".into(),
            }],
        ));
    }
    let requests_before = horizon.requests().len();

    let app = TestApp::spawn_with(AppOptions {
        toml: world_toml(&horizon, &issuer, &distribution, "", ""),
        database_url: Some(db),
        ..Default::default()
    })
    .await;
    // The token names the old port as its issuer: log in again.
    let token = app.token_for(&sender, None).await;
    let w = World {
        app,
        horizon,
        issuer,
        distribution,
        token,
        payer,
        sender,
    };
    w.wait_status(&second, "pending_receiver").await;
    w.wait_status(&third, "pending_receiver").await;
    let resumed = &w.horizon.requests()[requests_before..];
    let stream = resumed
        .iter()
        .find(|r| r.path.ends_with("/payments"))
        .expect("the restarted watcher opened a stream");
    assert_eq!(stream.cursor.as_deref(), Some(stored.as_str()));
    assert_eq!(w.payments("").await.len(), 3);
    assert_eq!(w.transaction(&first).await["status"], "pending_receiver");
    w.app.running.shutdown().await;
}

/// Streams that drop every few records, 500s and a 429 with Retry-After, and a Horizon that
/// is down for a while: the watcher never stops, and every payment is matched exactly once.
async fn dropped_streams_and_errors_lose_and_double_nothing(db: Option<String>) {
    let w = world(db, "").await;
    let mut created = Vec::new();
    for _ in 0..12 {
        created.push(w.create("7").await);
    }
    // Streams that end every three records (the open one is closed so the next obeys).
    w.horizon.drop_streams_after(Some(3));
    w.horizon.close_streams();
    for (_, memo) in &created[..6] {
        w.pay(Memo::Id(*memo), "7");
    }
    w.wait_recorded(6).await;
    w.horizon.drop_streams_after(None);
    // Down for a while, then two 500s.
    w.horizon.set_down(true);
    for (_, memo) in &created[6..9] {
        w.pay(Memo::Id(*memo), "7");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    w.horizon.fail_next(2, 500, None);
    w.horizon.set_down(false);
    w.wait_recorded(9).await;
    // Rate limited: a 429 with Retry-After.
    w.horizon.fail_next(1, 429, Some(1));
    w.horizon.close_streams();
    for (_, memo) in &created[9..] {
        w.pay(Memo::Id(*memo), "7");
    }
    for (id, _) in &created {
        w.wait_status(id, "pending_receiver").await;
    }
    let payments = w.wait_recorded(12).await;
    assert_eq!(payments.len(), 12);
    assert!(payments.iter().all(|p| p["outcome"] == "matched"));
    for (id, _) in &created {
        let (_, detail) = w
            .admin(
                reqwest::Method::GET,
                &format!("/admin/transactions/{id}"),
                None,
            )
            .await;
        let funded = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["from"] == "pending_sender" && e["to"] == "pending_receiver")
            .count();
        assert_eq!(funded, 1, "{detail}");
    }
    let statuses: Vec<u16> = w.horizon.requests().iter().map(|r| r.status).collect();
    for status in [503, 500, 429] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
    let (status, health) = json_of(w.app.get("/health").await).await;
    assert_eq!(status, 200);
    let stream = &health["watcher"]["streams"][0];
    assert_eq!(stream["account"], w.distribution.as_str());
    assert!(stream["reconnects"].as_u64().unwrap() >= 3, "{health}");
    assert_eq!(stream["payments_recorded"], 12);
    w.app.running.shutdown().await;
}

/// A held payment is attached to its transaction by the operator (which it then funds, fees
/// recomputed for what arrived) or marked for refund, once.
async fn the_operator_attaches_or_refunds_held_payments(db: Option<String>) {
    let w = world(db, "").await;
    let (short, short_memo) = w.create("20").await;
    let (other, _) = w.create("20").await;
    w.pay(Memo::Id(short_memo), "15");
    w.pay(Memo::None, "20");
    let held = w.wait_recorded(2).await;
    let short_payment = held
        .iter()
        .find(|p| p["reason"] == "short_payment")
        .unwrap();
    let no_memo = held.iter().find(|p| p["reason"] == "no_memo").unwrap();
    let short_id = short_payment["id"].as_str().unwrap();
    let no_memo_id = no_memo["id"].as_str().unwrap();

    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/payments/{short_id}/attach"),
            Some(json!({"transaction_id": short, "note": "customer confirmed 15"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolution"], "attached");
    assert_eq!(body["resolved_by"], "operator");
    let t = w.wait_status(&short, "pending_receiver").await;
    assert_eq!(t["amount_in"], "15");
    assert_eq!(t["amount_fee"], "1");
    assert_eq!(t["amount_out"], "14");

    // Once only.
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/payments/{short_id}/attach"),
            Some(json!({"transaction_id": other})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("resolved"),
        "{body}"
    );
    // Not to a transaction that is no longer waiting.
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/payments/{no_memo_id}/attach"),
            Some(json!({"transaction_id": short})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Errors name the problem.
    for (path, body, expected) in [
        (
            format!("/admin/payments/{no_memo_id}/attach"),
            json!({}),
            400,
        ),
        (
            format!("/admin/payments/{no_memo_id}/attach"),
            json!({"transaction_id": "nope"}),
            404,
        ),
        (
            "/admin/payments/123/attach".to_owned(),
            json!({"transaction_id": other}),
            404,
        ),
        (
            format!("/admin/payments/{no_memo_id}/attach"),
            json!({"transaction_id": 5}),
            400,
        ),
    ] {
        let (status, answer) = w.admin(reqwest::Method::POST, &path, Some(body)).await;
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/payments/{no_memo_id}/refund"),
            Some(json!({"note": "no memo, sender asked"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolution"], "refund");
    assert!(w.payments("open=true").await.is_empty());
    assert_eq!(w.transaction(&other).await["status"], "pending_sender");
    for query in ["outcome=maybe", "open=yes", "limit=x", "before_id=a"] {
        let (status, body) = w
            .admin(
                reqwest::Method::GET,
                &format!("/admin/payments?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    w.app.running.shutdown().await;
}

/// With `short_payments = "accept"`, a short payment funds its transaction with what
/// arrived; one that does not even cover the fee is still held.
async fn short_payments_can_be_accepted_by_configuration(db: Option<String>) {
    let w = world(db, "short_payments = \"accept\"").await;
    let (id, memo) = w.create("20").await;
    let (tiny, tiny_memo) = w.create("20").await;
    w.pay(Memo::Id(memo), "12.5");
    w.pay(Memo::Id(tiny_memo), "0.5");
    let t = w.wait_status(&id, "pending_receiver").await;
    assert_eq!(t["amount_in"], "12.5");
    assert_eq!(t["amount_out"], "11.5");
    let payments = w.wait_recorded(2).await;
    let held = payments
        .iter()
        .find(|p| p["outcome"] == "unmatched")
        .unwrap();
    assert_eq!(held["reason"], "short_payment");
    assert_eq!(w.transaction(&tiny).await["status"], "pending_sender");
    w.app.running.shutdown().await;
}

/// Without a stored cursor the watcher starts where `watcher.start` says: "now" skips the
/// history, a paging token catches up from just after it.
#[tokio::test]
async fn the_first_start_follows_watcher_start() {
    let horizon = FakeHorizon::start().await;
    let issuer = g(&Keypair::random());
    let distribution = g(&Keypair::random());
    let payer = g(&Keypair::random());
    let old = |memo: u64| {
        Tx::new(
            &payer,
            Memo::Id(memo),
            vec![Op::Payment {
                from: None,
                to: distribution.clone(),
                asset: Asset::credit("USDC", &issuer),
                amount: "1".into(),
            }],
        )
    };
    let first = horizon.submit(old(701)).pop().unwrap();
    horizon.submit(old(702));
    let third = horizon.submit(old(703)).pop().unwrap();

    // "now": the history is not read; a payment made afterwards is.
    let w = world_on(
        horizon.clone(),
        issuer.clone(),
        distribution.clone(),
        None,
        "start = \"now\"",
        "",
    )
    .await;
    for _ in 0..400 {
        if w.horizon.open_streams() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let streamed = w
        .horizon
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/payments") && r.cursor.is_some())
        .expect("the watcher opened a stream");
    // "now" is pinned to the newest payment's paging token, and streamed from there.
    assert_eq!(streamed.cursor.as_deref(), Some(third.as_str()));
    w.horizon.submit(old(704));
    let recorded = w.wait_recorded(1).await;
    w.wait_caught_up().await;
    let memos: Vec<&str> = recorded
        .iter()
        .map(|p| p["memo"].as_str().unwrap())
        .collect();
    assert_eq!(memos, ["704"]);
    w.app.running.shutdown().await;

    // A paging token: everything after it, on a fresh database.
    let w = world_on(
        horizon,
        issuer,
        distribution,
        None,
        &format!("start = \"{first}\""),
        "",
    )
    .await;
    w.wait_recorded(3).await;
    w.wait_caught_up().await;
    let mut memos: Vec<String> = w
        .payments("")
        .await
        .iter()
        .map(|p| p["memo"].as_str().unwrap().to_owned())
        .collect();
    memos.sort();
    assert_eq!(memos, ["702", "703", "704"]);
    w.app.running.shutdown().await;
}

/// A transaction's callbacks arrive in the order of its status changes, also when the first
/// one fails and is retried after the second was queued.
#[tokio::test]
async fn callbacks_keep_their_order_through_a_retry() {
    let w = world(None, "").await;
    let (id, memo) = w.create("10").await;
    let wallet = common::callbacks::Recorder::answering(&[500]);
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
    w.pay(Memo::Id(memo), "10");
    wallet.wait_for(1, Duration::from_secs(10)).await;
    // The first callback failed; the operator fails the transaction before its retry.
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/transactions/{id}/error"),
            Some(json!({"message": "compliance hold"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = wallet.wait_for(3, Duration::from_secs(20)).await;
    let statuses: Vec<String> = got
        .iter()
        .map(|d| {
            d.json()["transaction"]["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["pending_receiver", "pending_receiver", "error"]);
    // A retry carries the key of the callback it repeats, so the receiver can drop it; the
    // next callback has its own.
    let keys: Vec<&str> = got
        .iter()
        .map(|d| d.headers["idempotency-key"].to_str().unwrap())
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    w.app.running.shutdown().await;
}

/// The operator cannot attach a held payment to a transaction that was paid already, even
/// while it waits for a correction (which may go back to pending_receiver).
#[tokio::test]
async fn a_held_payment_cannot_fund_a_paid_transaction() {
    let w = world(None, "").await;
    let (id, memo) = w.create("20").await;
    w.pay(Memo::Id(memo), "20");
    w.wait_status(&id, "pending_receiver").await;
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/transactions/{id}/request-transaction-info"),
            Some(json!({"fields": {"purpose": {"description": "why"}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    w.pay(Memo::Id(memo), "5");
    let held = w.wait_recorded(2).await;
    let second = held
        .iter()
        .find(|p| p["outcome"] == "unmatched")
        .expect("the second payment is held");
    assert_eq!(second["reason"], "not_awaiting_payment");
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            &format!("/admin/payments/{}/attach", second["id"].as_str().unwrap()),
            Some(json!({"transaction_id": id})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already paid"),
        "{body}"
    );
    let t = w.transaction(&id).await;
    assert_eq!(t["status"], "pending_transaction_info_update");
    assert_eq!(t["amount_in"], "20");
    w.app.running.shutdown().await;
}

/// A first start "from now" pins now to a paging token and stores it, so a stream that
/// drops before the first payment does not skip the payments made meanwhile.
#[tokio::test]
async fn a_reconnection_before_the_first_payment_skips_nothing() {
    let horizon = FakeHorizon::start().await;
    let issuer = g(&Keypair::random());
    let distribution = g(&Keypair::random());
    let w = world_on(horizon, issuer, distribution, None, "start = \"now\"", "").await;
    let (id, memo) = w.create("10").await;
    for _ in 0..400 {
        if w.horizon.open_streams() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    w.horizon.set_down(true);
    w.pay(Memo::Id(memo), "10");
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.horizon.set_down(false);
    w.wait_status(&id, "pending_receiver").await;
    w.app.running.shutdown().await;
}

/// A record the watcher cannot read is held for the operator with the reason, and the
/// stream goes on to the records after it.
#[tokio::test]
async fn an_unreadable_record_is_held_and_the_stream_goes_on() {
    let issuer = g(&Keypair::random());
    let distribution = g(&Keypair::random());
    let record = |id: u64, amount: &str, memo: u64| {
        let data = json!({
            "id": id.to_string(), "paging_token": id.to_string(), "transaction_successful": true,
            "type": "payment", "transaction_hash": "ab".repeat(32), "from": g(&Keypair::random()),
            "to": distribution, "asset_type": "credit_alphanum4", "asset_code": "USDC",
            "asset_issuer": issuer, "amount": amount,
            "transaction": {"hash": "ab".repeat(32), "memo_type": "id", "memo": memo.to_string(), "successful": true}
        });
        format!("id: {id}\ndata: {data}\n\n")
    };
    let (a_memo, b_memo) = (11, 12);
    // A bad amount, a record that is not JSON, then a good payment; the stream ends there.
    let body = format!(
        "retry: 1000\nevent: open\ndata: \"hello\"\n\n{}id: 150\ndata: {{not json\n\n{}",
        record(100, "1e-7x", a_memo),
        record(200, "5.0000000", b_memo)
    );
    let router = axum::Router::new()
        .route(
            "/accounts/{id}/payments",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("content-type", "text/event-stream")], body) }
            }),
        )
        .route(
            "/accounts/{id}",
            axum::routing::get(|| async { axum::http::StatusCode::NOT_FOUND }),
        );
    let addr = common::serve(router).await;
    let app = TestApp::spawn_with(AppOptions {
        toml: format!(
            "[stellar]\nhorizon_url = \"http://{addr}\"\n\
             [watcher]\nenabled = true\nstart = \"0\"\nmax_backoff_secs = 1\n\
             [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\
             [kyc.types.individual]\nfields = [\"first_name\"]\n{}",
            common::admin_toml()
        ),
        ..Default::default()
    })
    .await;
    let store = &app.running.anchor.store;
    let mut recorded = Vec::new();
    for _ in 0..400 {
        recorded = store
            .known_payment_ids(&["100", "unreadable:150", "200"])
            .await
            .unwrap();
        if recorded.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    recorded.sort();
    assert_eq!(recorded, ["100", "200", "unreadable:150"]);
    for id in ["100", "unreadable:150"] {
        let p = store.incoming_payment(id).await.unwrap().unwrap();
        assert_eq!(p.outcome, "unmatched");
        assert_eq!(p.reason.as_deref(), Some("unreadable"), "{p:?}");
        assert!(p.detail.is_some_and(|d| !d.is_empty()));
    }
    let good = store.incoming_payment("200").await.unwrap().unwrap();
    assert_eq!(good.reason.as_deref(), Some("unknown_memo"));
    assert_eq!(
        store
            .watcher_cursor(&distribution)
            .await
            .unwrap()
            .as_deref(),
        Some("200")
    );
    app.running.shutdown().await;
}

/// Two watchers on one database (as two replicas would run), streams dropping every few
/// records, every memo paid twice: each payment is recorded once and each transaction
/// funded once.
async fn two_watchers_record_each_payment_once(db: String) {
    let w = world(Some(db.clone()), "").await;
    let second = TestApp::spawn_with(AppOptions {
        toml: world_toml(&w.horizon, &w.issuer, &w.distribution, "", ""),
        database_url: Some(db),
        ..Default::default()
    })
    .await;
    let mut created = Vec::new();
    for _ in 0..40 {
        created.push(w.create("3").await);
    }
    w.horizon.drop_streams_after(Some(7));
    w.horizon.close_streams();
    let txs: Vec<Tx> = created
        .iter()
        .flat_map(|(_, memo)| {
            (0..2).map(|_| {
                Tx::new(
                    &w.payer,
                    Memo::Id(*memo),
                    vec![Op::Payment {
                        from: None,
                        to: w.distribution.clone(),
                        asset: w.usdc(),
                        amount: "3".into(),
                    }],
                )
            })
        })
        .collect();
    w.horizon.submit_all(txs);
    w.wait_recorded(80).await;
    w.wait_caught_up().await;
    for (id, _) in &created {
        let events = w
            .app
            .running
            .anchor
            .store
            .transaction_events(id)
            .await
            .unwrap();
        let funded = events
            .iter()
            .filter(|e| {
                e.from_status.as_deref() == Some("pending_sender")
                    && e.to_status == "pending_receiver"
            })
            .count();
        assert_eq!(funded, 1, "{id}");
    }
    let all = w.payments("limit=200").await;
    assert_eq!(all.len(), 80);
    assert_eq!(all.iter().filter(|p| p["outcome"] == "matched").count(), 40);
    second.running.shutdown().await;
    w.app.running.shutdown().await;
}

/// The state of each stream a process shows in `/health`.
fn stream_state(app: &TestApp) -> String {
    let streams = app.running.anchor.streams.snapshot();
    streams
        .first()
        .and_then(|s| s["state"].as_str())
        .unwrap_or("none")
        .to_owned()
}

async fn wait_state(app: &TestApp, state: &str, within: Duration) -> Duration {
    let start = std::time::Instant::now();
    while stream_state(app) != state {
        assert!(
            start.elapsed() < within,
            "the stream is {}, not {state}, after {within:?}",
            stream_state(app)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Two replicas on one database: one streams the account, the other stands by and opens no
/// connection to Horizon; when the first stops, the second takes the stream over within the
/// lease's renewal interval and resumes from the stored cursor; each payment is matched once.
async fn replicas_stream_an_account_one_at_a_time(db: String) {
    let w = world(Some(db.clone()), "lease_secs = 2").await;
    wait_state(&w.app, "streaming", Duration::from_secs(10)).await;
    let second = TestApp::spawn_with(AppOptions {
        toml: world_toml(&w.horizon, &w.issuer, &w.distribution, "lease_secs = 2", ""),
        database_url: Some(db.clone()),
        ..Default::default()
    })
    .await;
    wait_state(&second, "standby", Duration::from_secs(10)).await;
    let (owner, _) = second
        .running
        .anchor
        .store
        .stream_owner(&w.distribution)
        .await
        .unwrap()
        .expect("the stream has an owner");

    let mut created = Vec::new();
    for _ in 0..10 {
        let (id, memo) = w.create("4").await;
        w.pay(Memo::Id(memo), "4");
        created.push(id);
    }
    w.wait_recorded(10).await;
    // Past several renewals: the first keeps the stream, the second never connects.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.horizon.open_streams(), 1);
    assert_eq!(stream_state(&second), "standby");
    let store = second.running.anchor.store.clone();
    assert_eq!(
        store
            .stream_owner(&w.distribution)
            .await
            .unwrap()
            .unwrap()
            .0,
        owner
    );

    // The first stops (and gives the lease up): the second takes over.
    let World {
        app: first,
        horizon,
        payer,
        distribution,
        issuer,
        sender,
        ..
    } = w;
    first.running.shutdown().await;
    let took = wait_state(&second, "streaming", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "took over after {took:?}");
    let (new_owner, _) = store.stream_owner(&distribution).await.unwrap().unwrap();
    assert_ne!(new_owner, owner);
    let token = second.token_for(&sender, None).await;
    for _ in 0..10 {
        let response = second
            .http
            .post(format!("{}/sep31/transactions", second.url))
            .bearer_auth(&token)
            .json(&json!({"amount": "4", "asset_code": "USDC", "funding_method": "SEPA"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "{body}");
        let memo: u64 = body["stellar_memo"].as_str().unwrap().parse().unwrap();
        horizon.submit(Tx::new(
            &payer,
            Memo::Id(memo),
            vec![Op::Payment {
                from: None,
                to: distribution.clone(),
                asset: Asset::credit("USDC", &issuer),
                amount: "4".into(),
            }],
        ));
        created.push(body["id"].as_str().unwrap().to_owned());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for id in &created {
        loop {
            let t = store.transaction(id).await.unwrap().unwrap();
            if t.status == "pending_receiver" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} is {}", t.status);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let funded = store
            .transaction_events(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.to_status == "pending_receiver")
            .count();
        assert_eq!(funded, 1, "{id}");
    }
    let all = store
        .list_incoming_payments(&capstan::store::PaymentFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 20);
    assert!(all.iter().all(|p| p.outcome == "matched"));
    second.running.shutdown().await;
    // A clean stop gives the lease up at once.
    let store = capstan::store::Store::connect(&db, 1).await.unwrap();
    let (_, until) = store.stream_owner(&distribution).await.unwrap().unwrap();
    assert_eq!(until, 0);
}

#[tokio::test]
async fn watcher_configuration_is_checked() {
    for (toml, key) in [
        ("[watcher]\nstart = \"yesterday\"\n", "watcher.start"),
        ("[watcher]\nshort_payments = \"maybe\"\n", "short_payments"),
        (
            "[watcher]\nsilence_timeout_secs = 1\n",
            "watcher.silence_timeout_secs",
        ),
        (
            "[watcher]\nmax_backoff_secs = 0\n",
            "watcher.max_backoff_secs",
        ),
        ("[watcher]\nlease_secs = 1\n", "watcher.lease_secs"),
        ("[watcher]\nstrat = \"now\"\n", "strat"),
    ] {
        let error = capstan::config::Config::from_parts(toml, Vec::new())
            .err()
            .unwrap_or_else(|| panic!("{toml} is refused"));
        assert!(error.to_string().contains(key), "{toml}: {error}");
    }
}
