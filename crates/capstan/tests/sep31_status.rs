//! The SEP-31 status machine against a real database (SQLite always, PostgreSQL when
//! CAPSTAN_TEST_POSTGRES_URL is set): a deterministic random walk of `Store::transition`
//! calls over every status, with random `paid` and amount edits, checked after every step;
//! and transitions racing on one transaction from several tasks.

mod common;

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use capstan::sep31::status::{self, ALL, Facts, Status};
use capstan::sep31::transactions::transaction_body;
use capstan::store::{Store, TransactionRow, TransitionError};
use rust_decimal::Decimal;
use stellar::Keypair;

// ---- the two backends ---------------------------------------------------------------------

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        8,
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

async fn postgres(test: &str) -> Option<Store> {
    let url = common::postgres_url(test).await?;
    let store = Store::connect(&url, 8)
        .await
        .expect("connect to PostgreSQL");
    store.migrate().await.unwrap();
    Some(store)
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (store, _dir) = super::sqlite().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
    random_walk_keeps_every_invariant,
    racing_payment_and_expiry_have_one_winner,
    racing_random_transitions_keep_the_log_consistent,
    transactions_start_only_where_sep31_allows,
    a_payment_once_arrived_cannot_be_undone,
);

// ---- a small deterministic PRNG (SplitMix64) -----------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A Stellar amount in (0, 10^6]: whole stroops.
    fn amount(&mut self) -> Decimal {
        Decimal::new((self.next() % 10_000_000_000_000) as i64 + 1, 7)
    }
}

const SEED: u64 = 0x5E93_1000_0000_0031;

// ---- rows -------------------------------------------------------------------------------------

/// (amount_in, amount_fee, amount_out) with out = in − fee and 0 ≤ fee ≤ in.
fn amounts(rng: &mut Rng) -> (String, String, String) {
    let amount_in = rng.amount();
    let fee = (amount_in * Decimal::new(rng.below(1001) as i64, 3) / Decimal::ONE_HUNDRED)
        .round_dp(7)
        .min(amount_in);
    (
        amount_in.normalize().to_string(),
        fee.normalize().to_string(),
        (amount_in - fee).normalize().to_string(),
    )
}

fn new_row(rng: &mut Rng, n: usize, status: Status) -> TransactionRow {
    let now = capstan::store::unix_now();
    let (amount_in, amount_fee, amount_out) = amounts(rng);
    TransactionRow {
        id: format!("walk-{n}-{}", rng.next()),
        sending_anchor: Keypair::random().public_key().to_string(),
        status: status.as_str().into(),
        status_message: None,
        asset_code: "USDC".into(),
        asset_issuer: Keypair::random().public_key().to_string(),
        funding_method: "SEPA".into(),
        amount_in,
        amount_fee,
        amount_out,
        fee_details: "[]".into(),
        sender_id: None,
        receiver_id: None,
        stellar_account_id: Some(Keypair::random().public_key().to_string()),
        stellar_memo_type: Some("id".into()),
        stellar_memo: Some((rng.next() >> 1).max(1).to_string()),
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
        callback_url: None,
        started_at: now,
        updated_at: now,
        completed_at: None,
        expires_at: Some(now + 3600),
        conversion: None,
    }
}

/// What the test expects of one transaction, from what it did to it.
struct Tracked {
    id: String,
    /// Every status it was in, in order: the first is where it started.
    statuses: Vec<String>,
    /// Version bumps that were not status changes (callback registrations).
    other_writes: i64,
    /// The callback bodies queued for it, in order (only when a callback URL is set).
    callbacks: Option<Vec<String>>,
    /// The row as it was when it reached a terminal status.
    finished: Option<TransactionRow>,
}

async fn insert(store: &Store, rng: &mut Rng, n: usize) -> Tracked {
    let start = if rng.below(3) == 0 {
        Status::PendingReceiver
    } else {
        Status::PendingSender
    };
    let row = new_row(rng, n, start);
    assert!(store.insert_transaction(&row, "test").await.unwrap());
    let mut tracked = Tracked {
        id: row.id.clone(),
        statuses: vec![start.as_str().to_owned()],
        other_writes: 0,
        callbacks: None,
        finished: None,
    };
    // Half of them with a callback URL, so the outbox is checked too.
    if rng.below(2) == 0 {
        store
            .set_transaction_callback(&row.id, "http://127.0.0.1:9/cb")
            .await
            .unwrap();
        tracked.other_writes = 1;
        tracked.callbacks = Some(Vec::new());
    }
    tracked
}

async fn outbox_bodies(store: &Store, id: &str) -> Vec<String> {
    let sql = "SELECT body FROM callback_outbox WHERE subject = $1 ORDER BY id";
    let subject = format!("transaction:{id}");
    match store {
        Store::Sqlite { writer: pool, .. } => sqlx::query_scalar(sql)
            .bind(subject)
            .fetch_all(pool)
            .await
            .unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(subject)
            .fetch_all(pool)
            .await
            .unwrap(),
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("{text:?} is a decimal"))
}

/// Everything that must hold of a transaction after any step.
async fn check_invariants(store: &Store, t: &Tracked) {
    let row = store.transaction(&t.id).await.unwrap().expect("row");
    let events = store.transaction_events(&t.id).await.unwrap();
    // The event log replays exactly the statuses the transaction went through.
    let replayed: Vec<String> = events.iter().map(|e| e.to_status.clone()).collect();
    assert_eq!(replayed, t.statuses, "{}", t.id);
    assert_eq!(events[0].from_status, None);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].from_status.as_deref(),
            Some(pair[0].to_status.as_str())
        );
        assert!(pair[1].at >= pair[0].at);
        assert_eq!(pair[1].actor, "walk");
    }
    assert_eq!(&row.status, t.statuses.last().unwrap());
    assert_eq!(
        events.len() as i64,
        row.version + 1 - t.other_writes,
        "one version per write"
    );
    // Terminal statuses are final: only the last status may be one, and the row does not
    // change at all once it is.
    for s in &t.statuses[..t.statuses.len() - 1] {
        assert!(!Status::parse(s).unwrap().is_terminal(), "{s} was left");
    }
    if let Some(finished) = &t.finished {
        assert_eq!(&row, finished, "a finished transaction changed");
    }
    // What arrives is paid out less the fee.
    assert_eq!(
        dec(&row.amount_out),
        dec(&row.amount_in) - dec(&row.amount_fee),
        "{row:?}"
    );
    assert!(dec(&row.amount_fee) >= Decimal::ZERO);
    assert_eq!(row.completed_at.is_some(), row.status == "completed");
    // One callback per accepted change, with the body of the row it produced.
    let queued = outbox_bodies(store, &t.id).await;
    match &t.callbacks {
        Some(expected) => assert_eq!(&queued, expected),
        None => assert!(queued.is_empty()),
    }
}

// ---- the random walk --------------------------------------------------------------------------

const STEPS: usize = 2000;
const ACTIVE: usize = 6;

async fn random_walk_keeps_every_invariant(store: &Store) {
    let mut rng = Rng(SEED);
    let mut all: Vec<Tracked> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    for n in 0..ACTIVE {
        all.push(insert(store, &mut rng, n).await);
        active.push(n);
    }
    let mut accepted_edges: BTreeSet<(&str, &str)> = BTreeSet::new();
    let (mut accepted, mut refused) = (0, 0);
    for step in 0..STEPS {
        // Mostly unfinished transactions; now and then any, finished ones included.
        let slot = rng.below(active.len());
        let index = if rng.below(10) == 0 {
            rng.below(all.len())
        } else {
            active[slot]
        };
        let id = all[index].id.clone();
        let before = store.transaction(&id).await.unwrap().unwrap();
        // Many targets are steps the rules allow from here (with some `paid`), mostly to
        // unfinished statuses, so the walk gets deep; the rest are any status at all.
        let allowed: Vec<Status> = ALL
            .into_iter()
            .filter(|to| {
                [false, true]
                    .iter()
                    .any(|&paid| status::check(before.status(), *to, Facts { paid }).is_ok())
            })
            .collect();
        let unfinished: Vec<Status> = allowed
            .iter()
            .copied()
            .filter(|s| !s.is_terminal())
            .collect();
        let to = if !unfinished.is_empty() && rng.below(3) == 0 {
            unfinished[rng.below(unfinished.len())]
        } else if !allowed.is_empty() && rng.below(4) == 0 {
            allowed[rng.below(allowed.len())]
        } else {
            ALL[rng.below(ALL.len())]
        };
        let paid_edit = match rng.below(4) {
            0 => Some(true),
            1 => Some(false),
            _ => None,
        };
        let amount_edit = (rng.below(6) == 0).then(|| amounts(&mut rng));
        // The store keeps a recorded payment whatever the edit says.
        let paid = paid_edit.unwrap_or(before.paid) || before.paid;
        let expected = status::check(before.status(), to, Facts { paid });
        let message = format!("step {step}");
        let result = store
            .transition(
                &id,
                to,
                "walk",
                Some(&message),
                |t| {
                    if let Some(paid) = paid_edit {
                        t.paid = paid;
                    }
                    if let Some((amount_in, fee, out)) = &amount_edit {
                        t.amount_in = amount_in.clone();
                        t.amount_fee = fee.clone();
                        t.amount_out = out.clone();
                    }
                    t.status_message = Some(message.clone());
                },
                |t| transaction_body(t).to_string(),
            )
            .await;
        let after = store.transaction(&id).await.unwrap().unwrap();
        let tracked = &mut all[index];
        match (expected, result) {
            (Ok(()), Ok(row)) => {
                accepted += 1;
                accepted_edges.insert((before.status().as_str(), to.as_str()));
                assert_eq!(after, row, "the returned row is the stored one");
                assert_eq!(after.status, to.as_str());
                assert_eq!(after.version, before.version + 1);
                assert_eq!(after.paid, paid);
                assert_eq!(after.status_message.as_deref(), Some(message.as_str()));
                if let Some((amount_in, _, _)) = &amount_edit {
                    assert_eq!(&after.amount_in, amount_in);
                }
                assert!(after.updated_at >= before.updated_at);
                tracked.statuses.push(to.as_str().to_owned());
                if let Some(callbacks) = &mut tracked.callbacks {
                    callbacks.push(transaction_body(&row).to_string());
                }
                if to.is_terminal() {
                    tracked.finished = Some(after.clone());
                }
            }
            (Err(want), Err(TransitionError::Illegal(got))) => {
                refused += 1;
                assert_eq!(got, want, "step {step}");
                assert_eq!(after, before, "a refused transition changed nothing");
            }
            (want, got) => panic!(
                "step {step}: {} → {to} with paid={paid}: the rules say {want:?}, the store {got:?}",
                before.status
            ),
        }
        check_invariants(store, &all[index]).await;
        // A finished transaction is replaced, so the walk keeps going.
        if index == active[slot] && Status::parse(&after.status).unwrap().is_terminal() {
            let n = all.len();
            all.push(insert(store, &mut rng, n).await);
            active[slot] = n;
        }
    }
    for tracked in &all {
        check_invariants(store, tracked).await;
    }
    assert!(accepted > 300 && refused > 300, "{accepted} / {refused}");
    // Every step the rules allow was taken at least once.
    let mut allowed = BTreeSet::new();
    for from in ALL {
        for to in ALL {
            for paid in [false, true] {
                if status::check(from, to, Facts { paid }).is_ok() {
                    allowed.insert((from.as_str(), to.as_str()));
                }
            }
        }
    }
    let missing: Vec<_> = allowed.difference(&accepted_edges).collect();
    assert!(missing.is_empty(), "never taken: {missing:?}");
    // Every status was reached, the terminal ones included.
    let reached: BTreeSet<&str> = all
        .iter()
        .flat_map(|t| t.statuses.iter().map(String::as_str))
        .collect();
    assert_eq!(reached.len(), ALL.len(), "{reached:?}");
}

// ---- races ---------------------------------------------------------------------------------------

async fn racing_payment_and_expiry_have_one_winner(store: &Store) {
    let mut rng = Rng(SEED ^ 1);
    for round in 0..20 {
        let row = new_row(&mut rng, round, Status::PendingSender);
        assert!(store.insert_transaction(&row, "test").await.unwrap());
        // Two watchers matching the payment and two expiry runs, released together.
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        let mut tasks = Vec::new();
        for task in 0..4 {
            let (store, barrier, id) = (store.clone(), barrier.clone(), row.id.clone());
            tasks.push(tokio::spawn(async move {
                let to = if task % 2 == 0 {
                    Status::PendingReceiver
                } else {
                    Status::Expired
                };
                barrier.wait().await;
                let result = store
                    .transition(
                        &id,
                        to,
                        "race",
                        None,
                        |t| {
                            if to == Status::PendingReceiver {
                                t.paid = true;
                            }
                        },
                        |t| transaction_body(t).to_string(),
                    )
                    .await;
                (to, result)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (to, result) = task.await.unwrap();
            match result {
                Ok(_) => winners.push(to),
                // The losers see the winner's write and are refused by the rules.
                Err(TransitionError::Illegal(_)) => {}
                Err(e) => panic!("round {round}: {to}: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = store.transaction(&row.id).await.unwrap().unwrap();
        assert_eq!(stored.status, winners[0].as_str());
        assert_eq!(stored.paid, winners[0] == Status::PendingReceiver);
        assert_eq!(stored.version, 1);
        let events = store.transaction_events(&row.id).await.unwrap();
        assert_eq!(events.len(), 2, "round {round}: {events:?}");
        assert_eq!(events[1].from_status.as_deref(), Some("pending_sender"));
        assert_eq!(events[1].to_status, winners[0].as_str());
    }
}

async fn racing_random_transitions_keep_the_log_consistent(store: &Store) {
    let mut rng = Rng(SEED ^ 2);
    for round in 0..4 {
        let row = new_row(&mut rng, round, Status::PendingSender);
        assert!(store.insert_transaction(&row, "test").await.unwrap());
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        let mut tasks = Vec::new();
        for task in 0..4u64 {
            let (store, barrier, id) = (store.clone(), barrier.clone(), row.id.clone());
            let seed = rng.next() ^ task;
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(seed);
                barrier.wait().await;
                let mut accepted = 0;
                for _ in 0..40 {
                    // Terminal targets rarely, so the transaction lives a while.
                    let to = loop {
                        let to = ALL[rng.below(ALL.len())];
                        if !to.is_terminal() || rng.below(20) == 0 {
                            break to;
                        }
                    };
                    let paid = rng.below(3) != 0;
                    match store
                        .transition(
                            &id,
                            to,
                            "walk",
                            None,
                            |t| t.paid = paid,
                            |t| transaction_body(t).to_string(),
                        )
                        .await
                    {
                        Ok(_) => accepted += 1,
                        Err(TransitionError::Illegal(_) | TransitionError::Busy) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                accepted
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            accepted += task.await.unwrap();
        }
        let stored = store.transaction(&row.id).await.unwrap().unwrap();
        let events = store.transaction_events(&row.id).await.unwrap();
        // One event per accepted transition, chained, ending at the stored status; each
        // step one the rules allow.
        assert_eq!(events.len(), accepted + 1, "round {round}");
        assert_eq!(stored.version as usize, accepted);
        assert_eq!(events.last().unwrap().to_status, stored.status);
        for pair in events.windows(2) {
            let (from, to) = (&pair[0].to_status, &pair[1].to_status);
            assert_eq!(pair[1].from_status.as_ref(), Some(from));
            let (from, to) = (Status::parse(from).unwrap(), Status::parse(to).unwrap());
            assert!(!from.is_terminal(), "{from} was left");
            assert!(
                status::check(from, to, Facts { paid: true }).is_ok()
                    || status::check(from, to, Facts { paid: false }).is_ok(),
                "{from} → {to}"
            );
        }
        assert_eq!(
            dec(&stored.amount_out),
            dec(&stored.amount_in) - dec(&stored.amount_fee)
        );
    }
}

async fn transactions_start_only_where_sep31_allows(store: &Store) {
    let mut rng = Rng(SEED ^ 3);
    for (n, start) in ALL.into_iter().enumerate() {
        let row = new_row(&mut rng, n, start);
        let inserted = store.insert_transaction(&row, "test").await;
        if status::can_start_in(start) {
            assert!(inserted.unwrap(), "{start}");
            let events = store.transaction_events(&row.id).await.unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].to_status, start.as_str());
            assert_eq!(events[0].reason.as_deref(), Some("created"));
        } else {
            assert!(inserted.is_err(), "{start} is no starting status");
            assert!(store.transaction(&row.id).await.unwrap().is_none());
            assert!(store.transaction_events(&row.id).await.unwrap().is_empty());
        }
    }
    assert!(status::can_start_in(Status::PendingSender));
    assert!(status::can_start_in(Status::PendingReceiver));
    // An unknown transaction cannot be moved.
    let result = store
        .transition(
            "no-such-transaction",
            Status::Error,
            "walk",
            None,
            |_| {},
            |_| String::new(),
        )
        .await;
    assert!(matches!(result, Err(TransitionError::NotFound(id)) if id == "no-such-transaction"));
}

async fn a_payment_once_arrived_cannot_be_undone(store: &Store) {
    let mut rng = Rng(SEED ^ 4);
    let row = new_row(&mut rng, 0, Status::PendingSender);
    assert!(store.insert_transaction(&row, "test").await.unwrap());
    store
        .transition(
            &row.id,
            Status::PendingReceiver,
            "test",
            None,
            |t| t.paid = true,
            |_| String::new(),
        )
        .await
        .unwrap();
    // An edit that clears `paid` is ignored, so the paid transaction can neither go back to
    // waiting for a payment nor expire.
    let back = store
        .transition(
            &row.id,
            Status::PendingSender,
            "test",
            None,
            |t| t.paid = false,
            |_| String::new(),
        )
        .await;
    assert!(matches!(back, Err(TransitionError::Illegal(_))), "{back:?}");
    let stored = store.transaction(&row.id).await.unwrap().unwrap();
    assert!(stored.paid);
    assert_eq!(stored.status(), Status::PendingReceiver);
    let moved = store
        .transition(
            &row.id,
            Status::Completed,
            "test",
            None,
            |t| t.paid = false,
            |_| String::new(),
        )
        .await
        .unwrap();
    assert!(moved.paid, "the payment stays recorded");
}
