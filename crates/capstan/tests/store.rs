//! The store API, run on SQLite always and on PostgreSQL when CAPSTAN_TEST_POSTGRES_URL is
//! set: the same assertions on both backends.

mod common;

use std::time::Duration;

use capstan::sep31::status::Status;
use capstan::store::{
    BatchWritten, Claimed, Funding, PaymentRecord, PaymentRow, RoundEnd, RoundWritten, Store,
    TransactionRow, prepare_transition,
};

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        4,
    )
    .await
    .unwrap();
    (store, dir)
}

async fn postgres(test: &str) -> Option<Store> {
    let url = common::postgres_url(test).await?;
    Some(
        Store::connect(&url, 4)
            .await
            .expect("connect to PostgreSQL"),
    )
}

async fn migrations_apply_and_are_idempotent(store: &Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn generated_secrets_are_kept(store: &Store) {
    store.migrate().await.unwrap();
    let first = store.generated_secret("k", || "one".into()).await.unwrap();
    let second = store.generated_secret("k", || "two".into()).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("one", "one"));
    // Concurrent first uses agree on one value.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .generated_secret("race", move || format!("v{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap());
    }
    values.dedup();
    assert_eq!(values.len(), 1, "{values:?}");
}

/// Concurrent writes, from several threads (on SQLite they are committed in groups:
/// store/sqlite_direct.rs): each pair of transactions shares a memo, so one of each pair is
/// refused and rolls back alone while the writes around it commit.
async fn concurrent_writes_keep_only_what_each_decided(store: &Store) {
    store.migrate().await.unwrap();
    let now = capstan::store::unix_now();
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let store = store.clone();
            let mut row = pending_transaction(i, now);
            row.stellar_memo = Some(format!("{}", 5000 + i % 24));
            tokio::spawn(async move { (i, store.insert_transaction(&row, "test").await.unwrap()) })
        })
        .collect();
    let mut stored = Vec::new();
    for t in tasks {
        let (i, inserted) = t.await.unwrap();
        let found = store.transaction(&format!("tx-{i:03}")).await.unwrap();
        assert_eq!(found.is_some(), inserted, "tx-{i:03}");
        if inserted {
            stored.push(i % 24);
        }
    }
    stored.sort();
    assert_eq!(
        stored,
        (0..24).collect::<Vec<_>>(),
        "one transaction per memo"
    );
    for memo in 0..24 {
        let found = store
            .transaction_by_memo(&format!("{}", 5000 + memo))
            .await
            .unwrap()
            .expect("the memo's transaction");
        assert_eq!(store.transaction_events(&found.id).await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_keep_only_what_each_decided_sqlite() {
    let (store, _dir) = sqlite().await;
    concurrent_writes_keep_only_what_each_decided(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_keep_only_what_each_decided_postgres() {
    let Some(store) = postgres("concurrent_writes_keep_only_what_each_decided").await else {
        return;
    };
    concurrent_writes_keep_only_what_each_decided(&store).await;
}

async fn challenges_are_consumed_once(store: &Store) {
    store.migrate().await.unwrap();
    assert!(store.consume_challenge("aa", 100).await.unwrap());
    assert!(!store.consume_challenge("aa", 100).await.unwrap());
    assert!(store.consume_challenge("bb", 300).await.unwrap());
    // Concurrent consumers: exactly one wins.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_challenge("cc", 500).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1);
    // Purge removes only the expired ones.
    assert_eq!(store.purge_used_challenges(200).await.unwrap(), 1);
    assert!(
        store.consume_challenge("aa", 100).await.unwrap(),
        "expired marker was purged"
    );
    assert!(
        !store.consume_challenge("bb", 300).await.unwrap(),
        "live marker was kept"
    );
}

/// A PUT's write for a customer that a DELETE erased meanwhile writes nothing and says so
/// (the request answers 404, not a foreign-key 500).
async fn fields_of_an_erased_customer_are_not_written(store: &Store) {
    store.migrate().await.unwrap();
    let account = stellar::Keypair::random().public_key().to_string();
    let customer = store
        .find_or_create_customer("c-erased", &account, "", "")
        .await
        .unwrap();
    let write = capstan::store::FieldWrite {
        name: "first_name".into(),
        value: Some("Ana".into()),
        file_id: None,
        status: "ACCEPTED".into(),
        error: None,
        verification_code: None,
    };
    assert!(
        store
            .save_customer_fields(
                &customer.id,
                Some("sep31-sender"),
                std::slice::from_ref(&write),
                &[]
            )
            .await
            .unwrap()
    );
    store.erase_customer(&account, "").await.unwrap();
    assert!(
        !store
            .save_customer_fields(&customer.id, Some("sep31-sender"), &[write], &[])
            .await
            .unwrap()
    );
}

fn field(name: &str, value: &str) -> capstan::store::FieldWrite {
    capstan::store::FieldWrite {
        name: name.into(),
        value: Some(value.into()),
        file_id: None,
        status: "ACCEPTED".into(),
        error: None,
        verification_code: None,
    }
}

/// A new customer is created with its type and fields in one step, read back with them in
/// one query; the same identity again creates nothing. Fields are written several to a
/// statement, and a name given twice keeps its last value, on both backends.
async fn a_new_customer_is_created_once_with_its_fields(store: &Store) {
    store.migrate().await.unwrap();
    let account = stellar::Keypair::random().public_key().to_string();
    // 22 fields, one given twice: statements of 16 and 5 rows.
    let mut writes: Vec<_> = (0..21)
        .map(|i| field(&format!("field_{i:02}"), &format!("value {i}")))
        .collect();
    writes.push(field("field_03", "last"));
    let created = store
        .create_customer(
            "c-new",
            &account,
            "7",
            "id",
            Some("sep31-sender"),
            Some(false),
            &writes,
            &[],
        )
        .await
        .unwrap()
        .expect("a new identity is created");
    assert_eq!(created.id, "c-new");
    assert_eq!(
        (created.memo.as_str(), created.memo_type.as_str()),
        ("7", "id")
    );
    assert_eq!(created.last_type, "sep31-sender");

    let (row, fields) = store
        .customer_with_fields_by_id("c-new")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.account, account);
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<String> = (0..21).map(|i| format!("field_{i:02}")).collect();
    assert_eq!(names, expected);
    assert_eq!(fields[3].value.as_deref(), Some("last"));
    assert_eq!(fields[4].value.as_deref(), Some("value 4"));

    // A concurrent PUT's creation of the same identity finds it taken and writes nothing.
    let again = store
        .create_customer(
            "c-other",
            &account,
            "7",
            "id",
            None,
            None,
            &[field("field_00", "x")],
            &[],
        )
        .await
        .unwrap();
    assert!(again.is_none());
    let (row, fields) = store
        .customer_with_fields_by_identity(&account, "7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.id, "c-new");
    assert_eq!(fields[0].value.as_deref(), Some("value 0"));
    assert!(store.customer_by_id("c-other").await.unwrap().is_none());

    // SEP12-09: the account registered customers with memos, so none without is created;
    // one registered through a transaction is not the account's user and is.
    let unshared = store
        .create_customer("c-unshared", &account, "", "", None, Some(true), &[], &[])
        .await
        .unwrap();
    assert!(unshared.is_none());
    assert!(store.customer_by_id("c-unshared").await.unwrap().is_none());
    let other = stellar::Keypair::random().public_key().to_string();
    store
        .find_or_create_customer("c-single", &other, "", "")
        .await
        .unwrap();
    let shared = store
        .create_customer("c-shared", &other, "5", "id", None, Some(false), &[], &[])
        .await
        .unwrap();
    assert!(shared.is_none());
    let linked = store
        .create_customer(
            "c-linked",
            &other,
            "tx-1:sender",
            "transaction",
            None,
            None,
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(linked.map(|c| c.id).as_deref(), Some("c-linked"));

    // A customer without fields is found, with none.
    let bare = store
        .find_or_create_customer("c-bare", &account, "8", "id")
        .await
        .unwrap();
    assert_eq!(bare.id, "c-bare");
    let (row, fields) = store
        .customer_with_fields_by_id("c-bare")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.id.as_str(), fields.len()), ("c-bare", 0));
    assert!(
        store
            .customer_with_fields_by_id("c-none")
            .await
            .unwrap()
            .is_none()
    );
}

/// The transactions waiting on one customer are those naming it as sender or receiver (once
/// when it is both), in order and page by page; without a customer, all waiting ones.
async fn transactions_waiting_on_a_customer_are_found_by_either_party(store: &Store) {
    store.migrate().await.unwrap();
    let now = capstan::store::unix_now();
    let waiting = |i: usize, sender: Option<&str>, receiver: Option<&str>| {
        let mut t = pending_transaction(i, now + i as i64);
        t.id = format!("w-{i:03}");
        t.status = "pending_receiver".into();
        t.stellar_memo = None;
        t.sender_id = sender.map(str::to_owned);
        t.receiver_id = receiver.map(str::to_owned);
        t
    };
    let rows = [
        waiting(0, Some("alice"), Some("bob")),
        waiting(1, Some("carol"), Some("alice")),
        waiting(2, Some("alice"), Some("alice")),
        waiting(3, Some("bob"), None),
        // Not waiting: paid, or with a memo to pay.
        TransactionRow {
            paid: true,
            ..waiting(4, Some("alice"), Some("bob"))
        },
        TransactionRow {
            stellar_memo: Some("9004".into()),
            ..waiting(5, Some("alice"), Some("bob"))
        },
        // Paid, then waiting for corrected KYC (below).
        TransactionRow {
            paid: true,
            stellar_memo: Some("9006".into()),
            ..waiting(6, None, Some("alice"))
        },
    ];
    for row in &rows {
        assert!(store.insert_transaction(row, "test").await.unwrap());
    }
    store
        .transition(
            "w-006",
            Status::PendingCustomerInfoUpdate,
            "test",
            None,
            |_| {},
            |_| String::new(),
        )
        .await
        .unwrap();
    let ids = |page: Vec<TransactionRow>| page.into_iter().map(|t| t.id).collect::<Vec<_>>();

    let alice = store
        .transactions_waiting_on_customers(Some("alice"), None, 100)
        .await
        .unwrap();
    assert_eq!(ids(alice), ["w-000", "w-001", "w-002", "w-006"]);
    let first = store
        .transactions_waiting_on_customers(Some("alice"), None, 2)
        .await
        .unwrap();
    assert_eq!(ids(first.clone()), ["w-000", "w-001"]);
    let last = first.last().unwrap();
    let next = store
        .transactions_waiting_on_customers(
            Some("alice"),
            Some((last.started_at, last.id.clone())),
            2,
        )
        .await
        .unwrap();
    assert_eq!(ids(next), ["w-002", "w-006"]);
    let bob = store
        .transactions_waiting_on_customers(Some("bob"), None, 100)
        .await
        .unwrap();
    assert_eq!(ids(bob), ["w-000", "w-003"]);
    let all = store
        .transactions_waiting_on_customers(None, None, 100)
        .await
        .unwrap();
    assert_eq!(ids(all), ["w-000", "w-001", "w-002", "w-003", "w-006"]);
}

fn pending_transaction(i: usize, now: i64) -> TransactionRow {
    TransactionRow {
        id: format!("tx-{i:03}"),
        sending_anchor: "GSENDER".into(),
        status: "pending_sender".into(),
        status_message: None,
        asset_code: "USDC".into(),
        asset_issuer: "GISSUER".into(),
        funding_method: "SEPA".into(),
        amount_in: "10".into(),
        amount_fee: "1".into(),
        amount_out: "9".into(),
        fee_details: "[]".into(),
        sender_id: None,
        receiver_id: None,
        stellar_account_id: Some("GDISTRIBUTION".into()),
        stellar_memo_type: Some("id".into()),
        stellar_memo: Some(format!("{}", 1000 + i)),
        refund_memo: None,
        refund_memo_type: None,
        fields: "{}".into(),
        required_info_message: None,
        required_info_updates: None,
        stellar_transaction_id: None,
        external_transaction_id: None,
        refunds: None,
        paid: false,
        version: 0,
        // Every other transaction has a callback URL.
        callback_url: i
            .is_multiple_of(2)
            .then(|| format!("https://sender.example/cb/{i}")),
        started_at: now,
        updated_at: now,
        completed_at: None,
        expires_at: Some(now + 3600),
        conversion: None,
    }
}

fn funding_payment(t: &TransactionRow, now: i64) -> PaymentRecord {
    let next = prepare_transition(t, Status::PendingReceiver, |row| {
        row.paid = true;
        row.stellar_transaction_id = Some(format!("hash-{}", t.id));
        row.expires_at = None;
    })
    .unwrap();
    PaymentRecord {
        payment: PaymentRow {
            id: format!("op-{}", t.id),
            account: "GDISTRIBUTION".into(),
            cursor: format!("cursor-{}", t.id),
            stellar_transaction_id: format!("hash-{}", t.id),
            kind: "payment".into(),
            from_account: "GSENDER".into(),
            to_muxed_id: None,
            asset_code: "USDC".into(),
            asset_issuer: "GISSUER".into(),
            amount: "10".into(),
            memo_type: "id".into(),
            memo: t.stellar_memo.clone(),
            paid_at: now,
            recorded_at: now,
            outcome: "matched".into(),
            reason: None,
            detail: None,
            transaction_id: Some(t.id.clone()),
            resolution: None,
            resolution_note: None,
            resolved_by: None,
            resolved_at: None,
        },
        funding: Some(Funding {
            current: t.clone(),
            callback_body: next
                .callback_url
                .as_ref()
                .map(|_| format!("{{\"id\":\"{}\"}}", t.id)),
            next,
            reason: format!("payment op-{}", t.id),
        }),
    }
}

/// A batch of payments is written in chunks of several rows per statement; it is still one
/// unit: a single stale row anywhere in it writes nothing, and a replay changes nothing.
async fn a_payment_batch_is_written_whole_or_not_at_all(store: &Store) {
    store.migrate().await.unwrap();
    let now = capstan::store::unix_now();
    // 70 rows: four chunks of 16, then smaller ones.
    let mut rows = Vec::new();
    for i in 0..70 {
        let row = pending_transaction(i, now);
        assert!(store.insert_transaction(&row, "test").await.unwrap());
        rows.push(row);
    }
    let batch: Vec<PaymentRecord> = rows.iter().map(|t| funding_payment(t, now)).collect();
    // The last transaction changes after the batch was prepared.
    assert!(
        store
            .link_transaction_customer(&rows[69], false, "receiver-1")
            .await
            .unwrap()
    );
    let written = store
        .record_payments("GDISTRIBUTION", &batch, "cursor-tx-069", "watcher", None)
        .await
        .unwrap();
    assert_eq!(written, BatchWritten::Conflict);
    let ids: Vec<&str> = batch.iter().map(|r| r.payment.id.as_str()).collect();
    assert!(
        store.known_payment_ids(&ids).await.unwrap().is_empty(),
        "no payment of a refused batch is kept"
    );
    assert_eq!(store.watcher_cursor("GDISTRIBUTION").await.unwrap(), None);
    let first = store.transaction("tx-000").await.unwrap().unwrap();
    assert_eq!(
        (first.status.as_str(), first.version),
        ("pending_sender", 0)
    );
    assert_eq!(store.callback_backlog().await.unwrap(), (0, 0));

    // Prepared again from fresh rows, the whole batch goes in.
    let mut fresh_rows = Vec::new();
    for t in &rows {
        fresh_rows.push(store.transaction(&t.id).await.unwrap().unwrap());
    }
    let batch: Vec<PaymentRecord> = fresh_rows.iter().map(|t| funding_payment(t, now)).collect();
    let written = store
        .record_payments("GDISTRIBUTION", &batch, "cursor-tx-069", "watcher", None)
        .await
        .unwrap();
    assert_eq!(
        written,
        BatchWritten::Done {
            new: 70,
            seen_before: 0
        }
    );
    assert_eq!(store.known_payment_ids(&ids).await.unwrap().len(), 70);
    assert_eq!(
        store
            .watcher_cursor("GDISTRIBUTION")
            .await
            .unwrap()
            .as_deref(),
        Some("cursor-tx-069")
    );
    for t in &fresh_rows {
        let stored = store.transaction(&t.id).await.unwrap().unwrap();
        assert_eq!(stored.status, "pending_receiver", "{}", t.id);
        assert!(stored.paid);
        assert_eq!(stored.version, t.version + 1);
        assert_eq!(
            stored.stellar_transaction_id,
            Some(format!("hash-{}", t.id))
        );
        assert_eq!(
            stored.receiver_id.as_deref(),
            (t.id == "tx-069").then_some("receiver-1"),
            "a field the change did not touch is kept"
        );
        let events = store.transaction_events(&t.id).await.unwrap();
        let to: Vec<&str> = events.iter().map(|e| e.to_status.as_str()).collect();
        assert_eq!(to, ["pending_sender", "pending_receiver"], "{}", t.id);
        assert_eq!(events[1].reason, Some(format!("payment op-{}", t.id)));
    }
    // One callback per transaction with a URL, queued in the batch's order.
    let callbacks = store.claim_due_callbacks(100, 60).await.unwrap();
    let subjects: Vec<String> = callbacks.iter().map(|c| c.subject.clone()).collect();
    let expected: Vec<String> = (0..70)
        .step_by(2)
        .map(|i| format!("transaction:tx-{i:03}"))
        .collect();
    assert_eq!(subjects, expected);
    assert_eq!(callbacks[0].url, "https://sender.example/cb/0");
    assert_eq!(callbacks[0].body, r#"{"id":"tx-000"}"#);

    // The same batch again: every payment is known, nothing changes.
    let written = store
        .record_payments("GDISTRIBUTION", &batch, "cursor-tx-069", "watcher", None)
        .await
        .unwrap();
    assert_eq!(
        written,
        BatchWritten::Done {
            new: 0,
            seen_before: 70
        }
    );
    let first = store.transaction("tx-000").await.unwrap().unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(store.transaction_events("tx-000").await.unwrap().len(), 2);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = super::sqlite().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(store) = super::postgres(stringify!($name)).await else { return };
                    assert_eq!(store.backend(), "postgres");
                    super::$name(&store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_apply_and_are_idempotent,
    generated_secrets_are_kept,
    challenges_are_consumed_once,
    fields_of_an_erased_customer_are_not_written,
    a_new_customer_is_created_once_with_its_fields,
    transactions_waiting_on_a_customer_are_found_by_either_party,
    a_payment_batch_is_written_whole_or_not_at_all
);

/// On PostgreSQL an executor's claim passes over the transactions another executor's claim
/// or round end holds (`FOR UPDATE SKIP LOCKED`) and takes the next ones, instead of waiting
/// for them or losing the race for them.
#[tokio::test]
async fn a_claim_passes_over_what_another_claim_holds_postgres() {
    let test = "a_claim_passes_over_what_another_claim_holds";
    let Some(url) = common::postgres_url(test).await else {
        return;
    };
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = capstan::store::unix_now();
    let mut rows = Vec::new();
    for i in 0..10 {
        let row = pending_transaction(i, now);
        assert!(store.insert_transaction(&row, "test").await.unwrap());
        rows.push(row);
    }
    let batch: Vec<PaymentRecord> = rows.iter().map(|t| funding_payment(t, now)).collect();
    let written = store
        .record_payments("GDISTRIBUTION", &batch, "cursor-tx-009", "watcher", None)
        .await
        .unwrap();
    assert!(matches!(written, BatchWritten::Done { new: 10, .. }));

    // The first five, held as another executor's claim holds them while it runs.
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    let locked: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM transactions WHERE id <= 'tx-004' ORDER BY id FOR UPDATE",
    )
    .fetch_all(&mut *held)
    .await
    .unwrap();
    assert_eq!(locked.len(), 5);

    let ids = |claimed: Vec<capstan::store::Claimed>| {
        let mut ids: Vec<String> = claimed.into_iter().map(|c| c.transaction.id).collect();
        ids.sort();
        ids
    };
    let second = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.claim_payouts("second", 10, 60),
    )
    .await
    .expect("the claim waited for the transactions another claim holds")
    .unwrap();
    assert_eq!(
        ids(second),
        ["tx-005", "tx-006", "tx-007", "tx-008", "tx-009"]
    );
    held.rollback().await.unwrap();
    let first = store.claim_payouts("first", 10, 60).await.unwrap();
    assert_eq!(
        ids(first),
        ["tx-000", "tx-001", "tx-002", "tx-003", "tx-004"]
    );
    assert!(
        store
            .claim_payouts("third", 10, 60)
            .await
            .unwrap()
            .is_empty()
    );
}

/// On PostgreSQL a round's end locks its transaction before its payout (store/payouts.rs,
/// `lock_transactions_first!`). Another executor's claim holds the transaction and then
/// writes its payout: the end waits for that claim instead of holding the payout while it
/// waits, which deadlocked the two (PostgreSQL broke the cycle after a second, failing one).
#[tokio::test]
async fn a_round_end_waits_for_a_claim_without_deadlock_postgres() {
    let test = "a_round_end_waits_for_a_claim_without_deadlock";
    let Some(url) = common::postgres_url(test).await else {
        return;
    };
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = capstan::store::unix_now();
    let row = pending_transaction(0, now);
    assert!(store.insert_transaction(&row, "test").await.unwrap());
    let written = store
        .record_payments(
            "GDISTRIBUTION",
            &[funding_payment(&row, now)],
            "cursor-tx-000",
            "watcher",
            None,
        )
        .await
        .unwrap();
    assert!(matches!(written, BatchWritten::Done { new: 1, .. }));
    let mut claimed = store.claim_payouts("first", 10, 60).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let Claimed {
        transaction,
        payout,
        ..
    } = claimed.remove(0);
    let next = prepare_transition(&transaction, Status::Completed, |_| {}).unwrap();

    let other = sqlx::PgPool::connect(&url).await.unwrap();
    let mut claim = other.begin().await.unwrap();
    sqlx::query("SELECT id FROM transactions WHERE id = 'tx-000' FOR UPDATE")
        .fetch_all(&mut *claim)
        .await
        .unwrap();
    let ending = {
        let store = store.clone();
        tokio::spawn(async move {
            let end = RoundEnd {
                state: "done",
                next_attempt_at: 0,
                last_error: None,
                transition: Some((&transaction, &next, "paid out", None)),
            };
            store.end_round(&payout, &end, "executor").await
        })
    };
    // Until the end waits for a lock the claim holds.
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>(waiting)
        .fetch_one(&other)
        .await
        .unwrap()
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the round's end never waited for the claim"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("UPDATE payouts SET updated_at = updated_at WHERE transaction_id = 'tx-000'")
        .execute(&mut *claim)
        .await
        .expect("the claim writes the payout the round's end has not locked");
    claim.commit().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), ending)
        .await
        .expect("the round's end went on after the claim")
        .unwrap()
        .expect("the round's end");
    assert_eq!(ended, RoundWritten::Done);
    assert_eq!(
        store.transaction("tx-000").await.unwrap().unwrap().status,
        "completed"
    );
}

/// Writers that never pause must not grow the SQLite WAL without end: the store's checkpoint
/// thread makes it start over (store/sqlite_direct.rs). 12,000 transactions of four pages
/// or more leave a WAL of about 200 MB if it never starts over.
#[tokio::test]
async fn the_wal_starts_over_while_writers_never_pause() {
    let (store, dir) = sqlite().await;
    store.migrate().await.unwrap();
    let now = capstan::store::unix_now();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..3000 {
                    let row = pending_transaction(w * 3000 + i, now);
                    assert!(store.insert_transaction(&row, "test").await.unwrap());
                }
            })
        })
        .collect();
    // Readers keep the WAL's pages in use too.
    let reading = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut reads = 0u64;
            while store.transaction("tx-11999").await.unwrap().is_none() {
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    assert!(reading.await.unwrap() > 0);
    let wal = std::fs::metadata(dir.path().join("t.db-wal"))
        .unwrap()
        .len();
    eprintln!("WAL high-water mark: {wal} bytes");
    assert!(wal < 100 << 20, "the WAL grew to {wal} bytes");
}

/// On a SQLite file, a request hands its write to the store's writer thread
/// (store/sqlite_direct.rs). A caller that goes away once the write is asked for (a dropped
/// request) does not undo it: the write is done whole, the transaction with its first event,
/// and the writes asked for after it see it.
#[tokio::test]
async fn a_write_whose_caller_went_away_is_done_whole() {
    let (store, dir) = sqlite().await;
    store.migrate().await.unwrap();
    let now = capstan::store::unix_now();
    // Another process's write keeps the writer waiting in SQLite's busy handler.
    let other = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let abandoned = pending_transaction(1, now);
    // The write is handed over on the first poll; the zero timeout then drops the caller.
    let outcome =
        tokio::time::timeout(Duration::ZERO, store.insert_transaction(&abandoned, "test")).await;
    assert!(outcome.is_err(), "the caller was meant to go away first");
    other.execute_batch("COMMIT").unwrap();
    let mut later = pending_transaction(2, now);
    later.stellar_memo = abandoned.stellar_memo.clone();
    assert!(
        !store.insert_transaction(&later, "test").await.unwrap(),
        "the later write sees the memo taken"
    );
    let found = store.transaction("tx-001").await.unwrap();
    assert_eq!(found.as_ref(), Some(&abandoned));
    assert_eq!(store.transaction_events("tx-001").await.unwrap().len(), 1);
    store.close().await;
}

/// An in-memory SQLite database lives in its pool: reads and writes must share it, or the
/// reads would see another, empty database.
#[tokio::test]
async fn an_in_memory_database_is_one_database() {
    let store = Store::connect("sqlite::memory:", 4).await.unwrap();
    store.migrate().await.unwrap();
    let account = stellar::Keypair::random().public_key().to_string();
    store
        .find_or_create_customer("c-memory", &account, "", "")
        .await
        .unwrap();
    let found = store.customer_by_identity(&account, "").await.unwrap();
    assert_eq!(found.map(|c| c.id).as_deref(), Some("c-memory"));
    store.close().await;
}

#[tokio::test]
async fn unreachable_database_is_a_clear_error() {
    let error = Store::connect("postgres://nobody@127.0.0.1:1/none", 1)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot open database"),
        "{error}"
    );
}

/// Two transactions as migration 0008 left them: a converting one, whose SEP-38 terms were
/// an object in `fee_details` (the fee inside it), and a plain one.
const BEFORE_0009: &str = "INSERT INTO transactions (id, sending_anchor, status, asset_code, asset_issuer, funding_method, amount_in, amount_fee, amount_out, fee_details, started_at, updated_at) VALUES \
    ('quoted', 'G', 'pending_sender', 'USDC', 'G', 'PIX', '100', '1', '544.55', '{\"amount_in_asset\":\"stellar:USDC:G\",\"amount_out_asset\":\"iso4217:BRL\",\"quote_id\":\"q\",\"quote_expires_at\":1000,\"price\":\"0.1818\",\"decimals\":2,\"fee\":{\"total\":\"1\",\"asset\":\"stellar:USDC:G\",\"details\":[{\"name\":\"service\",\"amount\":\"1\"}]}}', 1, 1), \
    ('indicative', 'G', 'pending_sender', 'USDC', 'G', 'PIX', '100', '1', '99', '{\"amount_in_asset\":\"stellar:USDC:G\",\"amount_out_asset\":\"iso4217:BRL\",\"decimals\":2,\"fee\":{\"total\":\"1\",\"asset\":\"stellar:USDC:G\"}}', 1, 1), \
    ('plain', 'G', 'pending_sender', 'USDC', 'G', 'PIX', '100', '1', '99', '[{\"name\":\"service\",\"amount\":\"1\"}]', 1, 1)";

/// Migration 0009 moves a converting transaction's terms out of `fee_details` into
/// `conversion`, leaving there the array of fee parts; a plain transaction is untouched.
async fn conversions_move_to_their_own_column(store: Store) {
    store.migrate().await.unwrap();
    let quoted = store.transaction("quoted").await.unwrap().unwrap();
    // Compared as JSON: PostgreSQL's jsonb writes it with spaces.
    let parts: serde_json::Value = serde_json::from_str(&quoted.fee_details).unwrap();
    assert_eq!(
        parts,
        serde_json::json!([{"name": "service", "amount": "1"}])
    );
    let terms: serde_json::Value =
        serde_json::from_str(quoted.conversion.as_deref().unwrap()).unwrap();
    assert_eq!(
        terms,
        serde_json::json!({"amount_in_asset": "stellar:USDC:G", "amount_out_asset": "iso4217:BRL", "quote_id": "q", "quote_expires_at": 1000, "price": "0.1818", "decimals": 2})
    );
    let indicative = store.transaction("indicative").await.unwrap().unwrap();
    assert_eq!(indicative.fee_details, "[]");
    assert!(indicative.conversion.is_some());
    let plain = store.transaction("plain").await.unwrap().unwrap();
    assert_eq!(plain.fee_details, r#"[{"name":"service","amount":"1"}]"#);
    assert_eq!(plain.conversion, None);
}

/// The database at `url` as migration 0008 left it, holding [`BEFORE_0009`].
macro_rules! database_before_0009 {
    ($pool:expr, $migrations:literal) => {{
        let pool = $pool;
        sqlx::migrate!($migrations).run_to(8, &pool).await.unwrap();
        sqlx::raw_sql(BEFORE_0009).execute(&pool).await.unwrap();
        pool.close().await;
    }};
}

#[tokio::test]
async fn conversions_move_to_their_own_column_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let options = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .unwrap()
        .create_if_missing(true);
    database_before_0009!(
        sqlx::SqlitePool::connect_with(options).await.unwrap(),
        "./migrations/sqlite"
    );
    conversions_move_to_their_own_column(Store::connect(&url, 2).await.unwrap()).await;
}

#[tokio::test]
async fn conversions_move_to_their_own_column_postgres() {
    let Some(url) = common::postgres_url("conversions_move_to_their_own_column").await else {
        return;
    };
    database_before_0009!(
        sqlx::PgPool::connect(&url).await.unwrap(),
        "./migrations/postgres"
    );
    conversions_move_to_their_own_column(Store::connect(&url, 2).await.unwrap()).await;
}
