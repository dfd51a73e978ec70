//! The fake seen by a real HTTP client (reqwest), reading the raw SSE bytes.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{account, eventually, muxed, open, open_with};
use fake_horizon::{Asset, FIRST_LEDGER, FakeHorizon, Memo, Op, Tx};
use futures_util::StreamExt;
use serde_json::Value;

fn pay(to: &str, amount: &str) -> Op {
    Op::Payment {
        from: None,
        to: to.to_string(),
        asset: Asset::Native,
        amount: amount.to_string(),
    }
}

fn payments_url(h: &FakeHorizon, account: &str, query: &str) -> String {
    format!("{}/accounts/{account}/payments?{query}", h.url())
}

fn token(ledger: u32, op_index: u32) -> String {
    ((i64::from(ledger) << 32) | (1 << 12) | i64::from(op_index)).to_string()
}

#[tokio::test]
async fn opening_message_and_headers() {
    let h = FakeHorizon::start().await;
    assert!(h.url().starts_with("http://127.0.0.1:") && !h.url().ends_with('/'));
    let mut s = open(&payments_url(&h, &account(1), "cursor=now")).await;
    assert_eq!(s.status, 200);
    assert_eq!(
        s.headers["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(s.headers["cache-control"], "no-cache");
    assert_eq!(s.headers["access-control-allow-origin"], "*");
    s.hello().await;
    s.quiet(200).await;
    assert_eq!(h.open_streams(), 1);
    assert_eq!(h.latest_token(), None);
}

#[tokio::test]
async fn records_strictly_after_the_cursor() {
    let h = FakeHorizon::start().await;
    let (me, other) = (account(1), account(2));
    let t1 = h.submit(Tx::new(&other, Memo::None, vec![pay(&me, "1")]));
    let t2 = h.submit(Tx::new(
        &other,
        Memo::None,
        vec![pay(&me, "2"), pay(&other, "9"), pay(&me, "3")],
    ));
    h.submit(Tx::new(&other, Memo::None, vec![pay(&account(3), "4")]));
    assert_eq!(t1, vec![token(FIRST_LEDGER, 1)]);
    assert_eq!(
        t2,
        vec![
            token(FIRST_LEDGER + 1, 1),
            token(FIRST_LEDGER + 1, 2),
            token(FIRST_LEDGER + 1, 3)
        ]
    );
    assert_eq!(h.latest_token(), Some(token(FIRST_LEDGER + 2, 1)));

    // From the first record on: the rest of the records of `me`, in order, nothing of others.
    let mut s = open(&payments_url(&h, &me, &format!("cursor={}", t1[0]))).await;
    s.hello().await;
    let (id, r) = s.record().await;
    assert_eq!(id, t2[0]);
    assert_eq!(r["paging_token"], t2[0].as_str());
    assert_eq!(r["id"], t2[0].as_str());
    assert_eq!(r["amount"], "2.0000000");
    let (id, r) = s.record().await;
    assert_eq!(id, t2[2]);
    assert_eq!(r["amount"], "3.0000000");
    s.quiet(200).await;

    // No cursor: from the start of history.
    let mut s = open(&payments_url(&h, &me, "")).await;
    s.hello().await;
    for expected in [&t1[0], &t2[0], &t2[2]] {
        assert_eq!(&s.record().await.0, expected);
    }
    s.quiet(100).await;

    // The sender sees all its payments (it is the source of every operation).
    let mut s = open(&payments_url(&h, &other, &format!("cursor={}", t2[0]))).await;
    s.hello().await;
    assert_eq!(s.record().await.0, t2[1]);
    assert_eq!(s.record().await.0, t2[2]);
    assert_eq!(s.record().await.1["to"], account(3));
}

#[tokio::test]
async fn cursor_now_sends_only_new_records() {
    let h = FakeHorizon::start().await;
    let me = account(1);
    h.submit(Tx::new(&account(2), Memo::None, vec![pay(&me, "1")]));
    let mut s = open(&payments_url(&h, &me, "cursor=now")).await;
    s.hello().await;
    s.quiet(200).await;
    let new = h.submit(Tx::new(&account(2), Memo::None, vec![pay(&me, "5")]));
    let (id, r) = s.record().await;
    assert_eq!(id, new[0]);
    assert_eq!(r["amount"], "5.0000000");
}

#[tokio::test]
async fn live_push_with_the_joined_transaction() {
    let h = FakeHorizon::start().await;
    let (me, sender) = (account(1), account(2));
    let mut s = open(&payments_url(
        &h,
        &me,
        "cursor=now&join=transactions&limit=200",
    ))
    .await;
    s.hello().await;
    let memos = [
        Memo::None,
        Memo::Id(u64::MAX),
        Memo::Text("héllo".into()),
        Memo::Hash([7; 32]),
        Memo::Return([9; 32]),
    ];
    for memo in memos.iter().cloned() {
        let started = Instant::now();
        let tokens = h.submit(Tx::new(&sender, memo, vec![pay(&me, "12.5")]));
        let (id, r) = s.record().await;
        assert!(started.elapsed() < Duration::from_secs(1), "pushed at once");
        assert_eq!(id, tokens[0]);
        assert_eq!(r["type"], "payment");
        assert_eq!(r["type_i"], 1);
        assert_eq!(r["transaction_successful"], true);
        assert_eq!(r["source_account"], sender);
        assert_eq!(r["from"], sender);
        assert_eq!(r["to"], me);
        assert_eq!(r["asset_type"], "native");
        assert!(r.get("asset_code").is_none());
        assert_eq!(r["amount"], "12.5000000");
        let created_at = r["created_at"].as_str().unwrap();
        assert!(
            created_at.len() == 20 && created_at.ends_with('Z'),
            "{created_at}"
        );
        let tx = &r["transaction"];
        assert_eq!(tx["hash"], r["transaction_hash"]);
        assert_eq!(tx["id"], r["transaction_hash"]);
        assert_eq!(r["transaction_hash"].as_str().unwrap().len(), 64);
        assert_eq!(tx["successful"], true);
        assert_eq!(tx["source_account"], sender);
        assert_eq!(tx["fee_account"], sender);
        assert_eq!(tx["operation_count"], 1);
        let ledger = tx["ledger"].as_u64().unwrap();
        assert_eq!(tx["paging_token"], ((ledger << 32) | (1 << 12)).to_string());
        assert_eq!(id, ((ledger << 32) | (1 << 12) | 1).to_string());
        assert!(tx.get("fee_bump_transaction").is_none() && tx.get("inner_transaction").is_none());
        assert_eq!(
            r["_links"]["transaction"]["href"],
            format!("{}/transactions/{}", h.url(), tx["hash"].as_str().unwrap())
        );
        let memo_type = tx["memo_type"].as_str().unwrap();
        match memo_type {
            "none" => assert!(tx.get("memo").is_none() && tx.get("memo_bytes").is_none()),
            "id" => assert_eq!(tx["memo"], u64::MAX.to_string()),
            "text" => {
                assert_eq!(tx["memo"], "héllo");
                assert_eq!(tx["memo_bytes"], BASE64.encode("héllo"));
            }
            "hash" => assert_eq!(tx["memo"], BASE64.encode([7u8; 32])),
            "return" => assert_eq!(tx["memo"], BASE64.encode([9u8; 32])),
            other => panic!("memo_type {other}"),
        }
    }
}

#[tokio::test]
async fn muxed_addresses() {
    let h = FakeHorizon::start().await;
    let (me, sender) = (account(1), account(2));
    let to = muxed(1, 42);
    let from = muxed(2, 7);
    let mut s = open(&payments_url(&h, &me, "cursor=now&join=transactions")).await;
    s.hello().await;
    h.submit(Tx::new(&from, Memo::None, vec![pay(&to, "1")]));
    let (_, r) = s.record().await;
    assert_eq!(r["to"], me);
    assert_eq!(r["to_muxed"], to);
    assert_eq!(r["to_muxed_id"], "42");
    assert_eq!(r["from"], sender);
    assert_eq!(r["from_muxed"], from);
    assert_eq!(r["from_muxed_id"], "7");
    assert_eq!(r["source_account"], sender);
    assert_eq!(r["source_account_muxed"], from);
    assert_eq!(r["source_account_muxed_id"], "7");
    assert_eq!(r["transaction"]["source_account"], sender);
    assert_eq!(r["transaction"]["account_muxed"], from);
    assert_eq!(r["transaction"]["account_muxed_id"], "7");
    assert_eq!(r["transaction"]["fee_account_muxed"], from);

    // An unmuxed payment has none of the muxed fields.
    h.submit(Tx::new(&sender, Memo::None, vec![pay(&me, "1")]));
    let (_, r) = s.record().await;
    for field in [
        "to_muxed",
        "to_muxed_id",
        "from_muxed",
        "from_muxed_id",
        "source_account_muxed",
    ] {
        assert!(r.get(field).is_none(), "{field}");
    }
}

#[tokio::test]
async fn fee_bump_fields() {
    let h = FakeHorizon::start().await;
    let (me, sender, sponsor) = (account(1), account(2), account(3));
    let mut s = open(&payments_url(&h, &me, "cursor=now&join=transactions")).await;
    s.hello().await;
    let mut tx = Tx::new(
        &sender,
        Memo::Text("inner memo".into()),
        vec![pay(&me, "3")],
    );
    tx.fee_bump = Some(sponsor.clone());
    h.submit(tx);
    let (_, r) = s.record().await;
    let tx = &r["transaction"];
    assert_eq!(tx["hash"], r["transaction_hash"]);
    assert_eq!(tx["fee_bump_transaction"]["hash"], tx["hash"]);
    let inner = tx["inner_transaction"]["hash"].as_str().unwrap();
    assert_eq!(inner.len(), 64);
    assert_ne!(inner, tx["hash"].as_str().unwrap());
    assert_eq!(tx["fee_account"], sponsor);
    assert_eq!(tx["source_account"], sender);
    assert_eq!(tx["memo_type"], "text");
    assert_eq!(tx["memo"], "inner memo");
    assert!(tx["inner_transaction"]["max_fee"].is_string());
    assert!(tx["max_fee"].is_string());
    assert_eq!(tx["fee_bump_transaction"]["signatures"], tx["signatures"]);
    assert!(tx["inner_transaction"]["signatures"].is_array());
    assert_eq!(r["source_account"], sender);
    // The fee source is not a participant of the operation.
    let mut sponsor_stream = open(&payments_url(&h, &sponsor, "")).await;
    sponsor_stream.hello().await;
    sponsor_stream.quiet(100).await;
}

#[tokio::test]
async fn failed_transactions_need_include_failed() {
    let h = FakeHorizon::start().await;
    let (me, sender) = (account(1), account(2));
    let mut failed = Tx::new(
        &sender,
        Memo::None,
        vec![Op::PathPaymentStrictSend {
            from: None,
            to: me.clone(),
            send_asset: Asset::Native,
            send_amount: "10".into(),
            dest_asset: Asset::credit("USDC", &account(9)),
            dest_amount: "9.5".into(),
            dest_min: "9".into(),
        }],
    );
    failed.successful = false;
    let failed_token = h.submit(failed)[0].clone();
    let ok_token = h.submit(Tx::new(&sender, Memo::None, vec![pay(&me, "1")]))[0].clone();

    let mut s = open(&payments_url(&h, &me, "join=transactions")).await;
    s.hello().await;
    assert_eq!(s.record().await.0, ok_token);
    s.quiet(100).await;

    let mut s = open(&payments_url(
        &h,
        &me,
        "include_failed=true&join=transactions",
    ))
    .await;
    s.hello().await;
    let (id, r) = s.record().await;
    assert_eq!(id, failed_token);
    assert_eq!(r["transaction_successful"], false);
    assert_eq!(r["transaction"]["successful"], false);
    assert_eq!(r["type"], "path_payment_strict_send");
    // A failed strict-send has no result: Horizon renders the received amount as zero.
    assert_eq!(r["amount"], "0.0000000");
    assert_eq!(r["source_amount"], "10.0000000");
    assert_eq!(s.record().await.0, ok_token);

    // A live failed transaction is filtered too.
    let mut strict = open(&payments_url(&h, &me, "cursor=now")).await;
    strict.hello().await;
    let mut failed_again = Tx::new(&sender, Memo::None, vec![pay(&me, "2")]);
    failed_again.successful = false;
    h.submit(failed_again.clone());
    strict.quiet(150).await;

    // A misbehaving server sends them anyway.
    h.send_failed_always(true);
    let mut loose = open(&payments_url(&h, &me, "")).await;
    loose.hello().await;
    assert_eq!(loose.record().await.0, failed_token);
    assert_eq!(loose.record().await.0, ok_token);
    let (_, r) = loose.record().await;
    assert_eq!(r["transaction_successful"], false);
    let pushed = h.submit(failed_again)[0].clone();
    assert_eq!(strict.record().await.0, pushed);
}

#[tokio::test]
async fn fail_next_answers_problems() {
    let h = FakeHorizon::start().await;
    let me = account(1);
    h.fail_next(1, 429, Some(7));
    let url = payments_url(&h, &me, "cursor=now");
    let mut s = open(&url).await;
    assert_eq!(s.status, 429);
    assert_eq!(s.headers["retry-after"], "7");
    assert_eq!(
        s.headers["content-type"],
        "application/problem+json; charset=utf-8"
    );
    assert_eq!(s.headers["x-ratelimit-remaining"], "0");
    let body = read_body(&mut s).await;
    assert_eq!(
        body["type"],
        "https://stellar.org/horizon-errors/rate_limit_exceeded"
    );
    assert_eq!(body["title"], "Rate Limit Exceeded");
    assert_eq!(body["status"], 429);
    assert!(body["detail"].is_string());

    let mut s = open(&url).await;
    assert_eq!(s.status, 200);
    s.hello().await;

    h.fail_next(3, 500, None);
    for (status, kind) in [(500, "server_error"), (500, "server_error")] {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert!(r.headers().get("retry-after").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["type"],
            format!("https://stellar.org/horizon-errors/{kind}")
        );
        assert_eq!(body["status"], status);
    }
    h.fail_next(1, 503, None);
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://stellar.org/horizon-errors/service_unavailable"
    );
    assert_eq!(body["title"], "Service Unavailable");
    assert_eq!(reqwest::get(&url).await.unwrap().status().as_u16(), 200);

    let log = h.requests();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200, 500, 500, 503, 200]);
    assert_eq!(log[0].path, format!("/accounts/{me}/payments"));
    assert_eq!(log[0].cursor.as_deref(), Some("now"));
}

async fn read_body(s: &mut common::Sse) -> Value {
    let text = s.text().await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn drop_streams_after_ends_the_body_without_a_message() {
    let h = FakeHorizon::start().await;
    let me = account(1);
    for n in 0..3 {
        h.submit(Tx::new(&account(2), Memo::Id(n), vec![pay(&me, "1")]));
    }
    h.drop_streams_after(Some(2));
    let mut s = open(&payments_url(&h, &me, "")).await;
    s.hello().await;
    s.record().await;
    s.record().await;
    s.ends().await;

    // Live records count too.
    let mut s = open(&payments_url(&h, &me, "cursor=now")).await;
    s.hello().await;
    h.submit(Tx::new(
        &account(2),
        Memo::None,
        vec![pay(&me, "1"), pay(&me, "1"), pay(&me, "1")],
    ));
    s.record().await;
    s.record().await;
    s.ends().await;

    h.drop_streams_after(None);
    let mut s = open(&payments_url(&h, &me, "limit=200")).await;
    s.hello().await;
    for _ in 0..6 {
        s.record().await;
    }
    s.quiet(100).await;
}

#[tokio::test]
async fn set_down_closes_streams_and_answers_503() {
    let h = FakeHorizon::start().await;
    let me = account(1);
    let url = payments_url(&h, &me, "cursor=now");
    let mut s = open(&url).await;
    s.hello().await;
    h.set_down(true);
    s.ends().await;
    eventually("the stream to be dropped", || h.open_streams() == 0).await;
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://stellar.org/horizon-errors/service_unavailable"
    );
    assert_eq!(open(&url).await.status, 503);
    h.set_down(false);
    let mut s = open(&url).await;
    assert_eq!(s.status, 200);
    s.hello().await;
}

#[tokio::test]
async fn close_streams_and_open_streams() {
    let h = FakeHorizon::start().await;
    let mut a = open(&payments_url(&h, &account(1), "cursor=now")).await;
    let mut b = open(&payments_url(&h, &account(2), "cursor=now")).await;
    a.hello().await;
    b.hello().await;
    assert_eq!(h.open_streams(), 2);
    h.close_streams();
    a.ends().await;
    b.ends().await;
    eventually("no open stream", || h.open_streams() == 0).await;

    // A client that goes away is no longer counted.
    let mut c = open(&payments_url(&h, &account(1), "cursor=now")).await;
    c.hello().await;
    assert_eq!(h.open_streams(), 1);
    drop(c);
    eventually("the dropped client to be noticed", || h.open_streams() == 0).await;
}

#[tokio::test]
async fn horizon_ends_a_stream_after_limit_records_with_byebye() {
    let h = FakeHorizon::start().await;
    let me = account(1);
    let tokens: Vec<String> = (0..3)
        .map(|_| h.submit(Tx::new(&account(2), Memo::None, vec![pay(&me, "1")]))[0].clone())
        .collect();
    let mut s = open(&payments_url(&h, &me, "limit=2")).await;
    s.hello().await;
    assert_eq!(s.record().await.0, tokens[0]);
    assert_eq!(s.record().await.0, tokens[1]);
    let bye = s.next().await.expect("byebye");
    assert_eq!(bye.raw, "retry: 10\nevent: close\ndata: \"byebye\"");
    s.ends().await;

    // The default limit is 10, live records included.
    let mut s = open(&payments_url(&h, &me, "cursor=now")).await;
    s.hello().await;
    h.submit_all(
        (0..12)
            .map(|_| Tx::new(&account(2), Memo::None, vec![pay(&me, "1")]))
            .collect(),
    );
    for _ in 0..10 {
        s.record().await;
    }
    assert_eq!(s.next().await.unwrap().event.as_deref(), Some("close"));
    s.ends().await;

    // Unless the test asks for streams that never end.
    h.keep_streams_open(true);
    let mut s = open(&payments_url(&h, &me, "limit=1")).await;
    s.hello().await;
    for _ in 0..15 {
        s.record().await;
    }
    s.quiet(100).await;

    // Invalid limits are 400s, as in Horizon.
    for bad in ["0", "201", "x"] {
        let r = reqwest::get(payments_url(&h, &me, &format!("limit={bad}")))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
    }
}

#[tokio::test]
async fn last_event_id_overrides_the_cursor() {
    let h = FakeHorizon::start().await;
    let me = account(1);
    let t: Vec<String> = (0..3)
        .map(|_| h.submit(Tx::new(&account(2), Memo::None, vec![pay(&me, "1")]))[0].clone())
        .collect();
    let mut s = open_with(&payments_url(&h, &me, "cursor=now"), Some(&t[0])).await;
    s.hello().await;
    assert_eq!(s.record().await.0, t[1]);
    assert_eq!(s.record().await.0, t[2]);
}

#[tokio::test]
async fn json_page() {
    let h = FakeHorizon::start().await;
    let me = account(1);
    let t: Vec<String> = (0..3)
        .map(|_| h.submit(Tx::new(&account(2), Memo::None, vec![pay(&me, "1")]))[0].clone())
        .collect();
    let r = reqwest::get(payments_url(
        &h,
        &me,
        &format!("cursor={}&limit=1&join=transactions", t[0]),
    ))
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/hal+json; charset=utf-8"
    );
    let page: Value = r.json().await.unwrap();
    let records = page["_embedded"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["paging_token"], t[1].as_str());
    assert!(records[0]["transaction"]["hash"].is_string());
    let next = page["_links"]["next"]["href"].as_str().unwrap();
    assert!(
        next.contains(&format!("cursor={}", t[1])) && next.contains("order=asc"),
        "{next}"
    );
    assert!(
        page["_links"]["prev"]["href"]
            .as_str()
            .unwrap()
            .contains("order=desc")
    );

    let page: Value = reqwest::get(payments_url(&h, &me, "order=desc"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens: Vec<&str> = page["_embedded"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["paging_token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, vec![t[2].as_str(), t[1].as_str(), t[0].as_str()]);
    assert!(page["_embedded"]["records"][0].get("transaction").is_none());
}

#[tokio::test]
async fn operation_shapes() {
    let h = FakeHorizon::start().await;
    let (me, sender, issuer) = (account(1), account(2), account(9));
    let mut s = open(&payments_url(&h, &me, "cursor=now&limit=200")).await;
    s.hello().await;
    h.submit(Tx::new(
        &sender,
        Memo::None,
        vec![
            Op::Payment {
                from: None,
                to: me.clone(),
                asset: Asset::credit("USDC", &issuer),
                amount: "0.1".into(),
            },
            Op::Payment {
                from: Some(me.clone()),
                to: sender.clone(),
                asset: Asset::credit("LONGASSET12", &issuer),
                amount: "2".into(),
            },
            Op::PathPaymentStrictReceive {
                from: None,
                to: me.clone(),
                send_asset: Asset::Native,
                send_max: "20".into(),
                send_amount: "19.1234567".into(),
                dest_asset: Asset::credit("EURC", &issuer),
                dest_amount: "10".into(),
            },
            Op::PathPaymentStrictSend {
                from: None,
                to: me.clone(),
                send_asset: Asset::credit("USDC", &issuer),
                send_amount: "5".into(),
                dest_asset: Asset::Native,
                dest_amount: "49.9".into(),
                dest_min: "45".into(),
            },
            Op::CreateAccount {
                from: None,
                account: me.clone(),
                starting_balance: "1".into(),
            },
            Op::AccountMerge {
                from: None,
                into: muxed(1, 5),
            },
        ],
    ));
    let (_, r) = s.record().await;
    assert_eq!(r["asset_type"], "credit_alphanum4");
    assert_eq!(r["asset_code"], "USDC");
    assert_eq!(r["asset_issuer"], issuer);
    assert_eq!(r["amount"], "0.1000000");

    let (_, r) = s.record().await;
    assert_eq!(r["asset_type"], "credit_alphanum12");
    assert_eq!(r["source_account"], me);
    assert_eq!(r["from"], me);

    let (_, r) = s.record().await;
    assert_eq!(r["type"], "path_payment_strict_receive");
    assert_eq!(r["type_i"], 2);
    assert_eq!(r["amount"], "10.0000000");
    assert_eq!(r["asset_code"], "EURC");
    assert_eq!(r["source_amount"], "19.1234567");
    assert_eq!(r["source_max"], "20.0000000");
    assert_eq!(r["source_asset_type"], "native");
    assert!(r.get("source_asset_code").is_none());
    assert!(r.get("destination_min").is_none());
    assert_eq!(r["path"], serde_json::json!([]));

    let (_, r) = s.record().await;
    assert_eq!(r["type"], "path_payment_strict_send");
    assert_eq!(r["type_i"], 13);
    assert_eq!(r["amount"], "49.9000000");
    assert_eq!(r["asset_type"], "native");
    assert_eq!(r["source_amount"], "5.0000000");
    assert_eq!(r["destination_min"], "45.0000000");
    assert_eq!(r["source_asset_code"], "USDC");
    assert!(r.get("source_max").is_none());

    let (_, r) = s.record().await;
    assert_eq!(r["type"], "create_account");
    assert_eq!(r["type_i"], 0);
    assert_eq!(r["account"], me);
    assert_eq!(r["funder"], sender);
    assert_eq!(r["starting_balance"], "1.0000000");
    assert!(r.get("amount").is_none());

    let (_, r) = s.record().await;
    assert_eq!(r["type"], "account_merge");
    assert_eq!(r["type_i"], 8);
    assert_eq!(r["account"], sender);
    assert_eq!(r["into"], me);
    assert_eq!(r["into_muxed"], muxed(1, 5));
    assert_eq!(r["into_muxed_id"], "5");
    assert!(r.get("amount").is_none());

    for r in [&r] {
        for field in ["id", "paging_token", "created_at", "transaction_hash"] {
            assert!(r[field].is_string(), "{field}");
        }
        for link in ["self", "transaction", "effects", "succeeds", "precedes"] {
            assert!(
                r["_links"][link]["href"]
                    .as_str()
                    .unwrap()
                    .starts_with(&h.url()),
                "{link}"
            );
        }
    }
}

#[tokio::test]
async fn errors_for_accounts_and_cursors() {
    let h = FakeHorizon::start().await;
    let r = reqwest::get(format!("{}/accounts/{}", h.url(), account(1)))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json; charset=utf-8"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "https://stellar.org/horizon-errors/not_found");
    assert_eq!(body["title"], "Resource Missing");
    assert_eq!(body["status"], 404);

    let r = reqwest::get(format!("{}/accounts/GABC/payments", h.url()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["extras"]["invalid_field"], "account_id");

    let r = reqwest::get(payments_url(&h, &account(1), "cursor=abc"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://stellar.org/horizon-errors/bad_request"
    );
    assert_eq!(body["extras"]["invalid_field"], "cursor");

    assert_eq!(
        reqwest::get(format!("{}/nowhere", h.url()))
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}

/// A third-party SSE parser (eventsource-stream) reads the stream and follows it across
/// Horizon's `byebye` closes by reconnecting with `cursor=<last id>`, through 2,000 records
/// submitted at once (10,000 take about 0.25 s to submit in a release build, 2-3 s in debug).
#[tokio::test]
async fn a_real_client_follows_bulk_records_across_reconnects() {
    use eventsource_stream::Eventsource;

    let h = FakeHorizon::start().await;
    let me = account(1);
    let sender = account(2);
    let txs: Vec<Tx> = (0..2_000u64)
        .map(|n| Tx::new(&sender, Memo::Id(n), vec![pay(&me, "1")]))
        .collect();
    let started = Instant::now();
    let expected: Vec<String> = h.submit_all(txs).into_iter().flatten().collect();
    let submitted_in = started.elapsed();

    let client = reqwest::Client::new();
    let mut cursor = String::new();
    let mut seen = Vec::with_capacity(expected.len());
    let mut connections = 0;
    while seen.len() < expected.len() {
        connections += 1;
        let response = client
            .get(payments_url(
                &h,
                &me,
                &format!("cursor={cursor}&limit=200&join=transactions"),
            ))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let mut events = response.bytes_stream().eventsource();
        let mut opened = false;
        while let Some(event) = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
        {
            let event = event.unwrap();
            match event.event.as_str() {
                "open" => {
                    assert_eq!(event.data, "\"hello\"");
                    opened = true;
                }
                "close" => assert_eq!(event.data, "\"byebye\""),
                "message" => {
                    let record: Value = serde_json::from_str(&event.data).unwrap();
                    assert_eq!(record["paging_token"], event.id.as_str());
                    assert_eq!(
                        record["transaction"]["memo"],
                        (seen.len() as u64).to_string()
                    );
                    cursor = event.id.clone();
                    seen.push(event.id);
                }
                other => panic!("unexpected event {other}"),
            }
        }
        assert!(opened);
    }
    assert_eq!(seen, expected);
    assert_eq!(connections, 10);
    let total = started.elapsed();
    assert!(
        total < Duration::from_secs(20),
        "submit {submitted_in:?}, total {total:?}"
    );
}
