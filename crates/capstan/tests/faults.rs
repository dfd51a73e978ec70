//! Faults: real `capstan serve` processes (three replicas on one PostgreSQL, or the single
//! process on SQLite), a fake Horizon streaming the payments, the simulated rails (whose
//! ledger counts every call per idempotency key) and a callback receiver. A sending anchor
//! creates transactions and pays them while a chaos loop kills processes with SIGKILL at
//! random moments (matching, payouts and callbacks are all under way), starts them again,
//! takes Horizon down and, on PostgreSQL, cuts the database off for a while. At the end it
//! checks and prints, as figures:
//! - every payment was matched exactly once;
//! - no transaction was paid out twice (one ledger row per transaction, one call per key),
//!   and none is stuck: every one completes;
//! - every status change reached the callback receiver at least once, and the repeats carry
//!   the `Idempotency-Key` of the first delivery;
//! - while at least one replica was alive, the API answered (requests to a dead replica go
//!   to the next one, as a load balancer does; a request that no replica answered counts).
//!
//! The short run is part of `cargo test`. The long one:
//! `CAPSTAN_FAULTS_KILLS=1000 cargo test --release -p capstan --test faults -- --nocapture`
//! (with `CAPSTAN_TEST_POSTGRES_URL` for the replicas). `CAPSTAN_FAULTS_RATE` sets the
//! transactions created per second (default 10).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan::store::{PaymentFilter, Store};
use common::callbacks::Recorder;
use common::process::{BIN, command, free_port, terminate};
use fake_horizon::{Asset, FakeHorizon, Memo, Op, Tx};
use serde_json::{Value, json};
use stellar::{Keypair, Network};
use tokio::net::{TcpListener, TcpStream};

const STATUSES: [&str; 3] = ["pending_receiver", "pending_external", "completed"];

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn random_below(n: u64) -> u64 {
    u64::from_le_bytes(stellar::random_bytes::<8>()) % n.max(1)
}

// ---- the processes ----------------------------------------------------------------------------

/// One replica: its configuration file and, while it runs, its process.
struct Replica {
    dir: PathBuf,
    config: String,
    port: u16,
    child: Option<Child>,
}

impl Replica {
    fn start(&mut self) {
        // CAPSTAN_FAULTS_BIN: a copy of the binary, for a long run beside ongoing builds.
        let bin = std::env::var("CAPSTAN_FAULTS_BIN").unwrap_or_else(|_| BIN.to_owned());
        let mut cmd = command(&bin, &self.dir);
        // Each start appends to the replica's log, kept in the run's directory (and shown
        // with CAPSTAN_FAULTS_LOGS=<dir>).
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", self.config)))
            .unwrap();
        let child = cmd
            .args(["--config", &self.config, "serve"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("capstan serve starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// SIGTERM; true when it exits cleanly within 30 s.
    async fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        terminate(&mut child, Duration::from_secs(30))
            .await
            .is_some_and(|status| status.success())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones for a
/// while: the database "stopped" for the replicas, not for the other tests on this server.
struct DbProxy {
    port: u16,
    down: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl DbProxy {
    async fn start(target: String) -> DbProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (down2, connections2) = (down.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if down2.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections2.lock().unwrap().push(task.abort_handle());
            }
        });
        DbProxy {
            port,
            down,
            connections,
        }
    }

    async fn outage(&self, length: Duration) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
        tokio::time::sleep(length).await;
        self.down.store(false, Ordering::SeqCst);
    }
}

// ---- the run ------------------------------------------------------------------------------------

#[derive(Default)]
struct Counts {
    kills: AtomicU64,
    /// Processes that exited by themselves and were started again.
    exits: AtomicU64,
    horizon_outages: AtomicU64,
    database_outages: AtomicU64,
    requests: AtomicU64,
    /// Requests sent to a replica that did not answer (dead, or starting): sent again to the
    /// next one.
    retried: AtomicU64,
    /// Requests no live replica answered, outside the database's outages.
    unanswered: AtomicU64,
    /// ... and during them (and a second after), when no replica can answer.
    unanswered_database_down: AtomicU64,
}

struct Run {
    backend: &'static str,
    /// While the database is cut off, and a second after.
    database_down: AtomicBool,
    replicas: Mutex<Vec<Replica>>,
    http: reqwest::Client,
    counts: Counts,
    /// Chaos goes on until this many kills.
    kills_wanted: u64,
}

impl Run {
    fn ports_alive(&self) -> Vec<u16> {
        self.replicas
            .lock()
            .unwrap()
            .iter_mut()
            .filter_map(|r| r.alive().then_some(r.port))
            .collect()
    }

    /// Sends `request` to the replicas in turn, as a load balancer would, until one
    /// answers below 500. Waits while no replica is alive (the single SQLite process being
    /// restarted); a request that no live replica answered counts as unanswered.
    async fn call(&self, request: impl Fn(&str) -> reqwest::RequestBuilder) -> (u16, Value) {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let alive = self.ports_alive();
            let start = random_below(alive.len() as u64) as usize;
            for i in 0..alive.len() {
                let port = alive[(start + i) % alive.len()];
                let sent = request(&format!("http://127.0.0.1:{port}"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().as_u16() < 500 => {
                        let status = response.status().as_u16();
                        let text = response.text().await.unwrap_or_default();
                        return (status, serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    _ => {
                        self.counts.retried.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if !alive.is_empty() && alive.iter().all(|p| self.ports_alive().contains(p)) {
                // Every replica was alive and none answered.
                if self.database_down.load(Ordering::SeqCst) {
                    &self.counts.unanswered_database_down
                } else {
                    &self.counts.unanswered
                }
                .fetch_add(1, Ordering::Relaxed);
            }
            assert!(Instant::now() < deadline, "no replica answered for 120 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills a random replica (on PostgreSQL only while another one lives), brings it back
    /// after a moment; now and then takes Horizon down or cuts the database off instead.
    async fn chaos(&self, horizon: &FakeHorizon, proxy: Option<&DbProxy>, done: &AtomicBool) {
        let mut round: u64 = 0;
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200 + random_below(900))).await;
            // As a supervisor does: a process that exited by itself (it cannot start while
            // the database is away) is started again.
            for r in self.replicas.lock().unwrap().iter_mut() {
                if r.child.is_some() && !r.alive() {
                    self.counts.exits.fetch_add(1, Ordering::Relaxed);
                    r.kill();
                    r.start();
                }
            }
            // Every seventh action an outage of Horizon, and of the database where there is
            // one to cut off; kills otherwise. Even a short run has each.
            round += 1;
            if round % 7 == 3 {
                self.counts.horizon_outages.fetch_add(1, Ordering::Relaxed);
                horizon.set_down(true);
                tokio::time::sleep(Duration::from_millis(300 + random_below(1500))).await;
                horizon.set_down(false);
                continue;
            }
            if let (Some(proxy), true) = (proxy, round % 7 == 5) {
                self.counts.database_outages.fetch_add(1, Ordering::Relaxed);
                self.database_down.store(true, Ordering::SeqCst);
                proxy
                    .outage(Duration::from_millis(300 + random_below(1500)))
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.database_down.store(false, Ordering::SeqCst);
                continue;
            }
            let victim = {
                let mut replicas = self.replicas.lock().unwrap();
                let alive: Vec<usize> = (0..replicas.len())
                    .filter(|i| replicas[*i].alive())
                    .collect();
                if alive.is_empty() || (self.backend == "postgres" && alive.len() < 2) {
                    None
                } else {
                    let i = alive[random_below(alive.len() as u64) as usize];
                    replicas[i].kill();
                    Some(i)
                }
            };
            if let Some(i) = victim {
                self.counts.kills.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(random_below(800))).await;
                self.replicas.lock().unwrap()[i].start();
            }
        }
    }
}

fn replica_config(
    port: u16,
    public_port: u16,
    horizon: &str,
    db: &str,
    issuer: &str,
    distribution: &str,
) -> String {
    // One public URL for all replicas (they stand behind one name), so tokens and
    // challenges are good on each. No SEP-31 customer types (a KYC type of its own replaces
    // the default sep31-sender and sep31-receiver): a POST is payable at once.
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{public_port}\"\n\n\
         [stellar]\nnetwork = \"testnet\"\nhorizon_url = \"{horizon}\"\n\n\
         [database]\nurl = \"{db}\"\n\n\
         [watcher]\nenabled = true\nstart = \"0\"\nmax_backoff_secs = 1\nlease_secs = 2\n\n\
         [rails]\nkind = \"simulated\"\nenabled = true\nsimulated = \"external\"\n\
         execute_interval_secs = 1\npoll_interval_secs = 1\ntimeout_secs = 2\n\n\
         [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\n\
         [sep31.assets.USDC]\nfee_fixed = \"1\"\n\n\
         [kyc.types.individual]\nfields = [\"first_name\"]\n"
    )
}

/// What the run found, printed as one line of figures.
#[derive(Debug)]
struct Figures {
    transactions: usize,
    payments_matched_once: usize,
    payments_lost_or_doubled: usize,
    payouts: usize,
    paid_twice: usize,
    calls_repeated: usize,
    stuck: usize,
    callbacks_expected: usize,
    callbacks_lost: usize,
    deliveries: usize,
    duplicates_dropped: usize,
}

async fn run_faults(backend: &'static str, db: String, proxy: Option<DbProxy>, replicas: usize) {
    let kills_wanted = setting("CAPSTAN_FAULTS_KILLS", 6);
    let rate = setting("CAPSTAN_FAULTS_RATE", 10).max(1);
    let dir = tempfile::tempdir().unwrap();
    let horizon = FakeHorizon::start().await;
    let issuer = Keypair::random().public_key().to_string();
    let distribution = Keypair::random().public_key().to_string();
    let receiver = Recorder::default();
    let callback_url = receiver.start("/callbacks").await;
    let ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
    let replica_db = match &proxy {
        // The replicas reach PostgreSQL through the proxy; the checks below go direct.
        Some(p) => {
            let mut url = url::Url::parse(&db).unwrap();
            url.set_host(Some("127.0.0.1")).unwrap();
            url.set_port(Some(p.port)).unwrap();
            url.to_string()
        }
        None => db.clone(),
    };
    let mut list = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let config = format!("replica-{i}.toml");
        std::fs::write(
            dir.path().join(&config),
            replica_config(
                *port,
                ports[0],
                &horizon.url(),
                &replica_db,
                &issuer,
                &distribution,
            ),
        )
        .unwrap();
        list.push(Replica {
            dir: dir.path().to_path_buf(),
            config,
            port: *port,
            child: None,
        });
    }
    // The first one alone first: it applies the migrations.
    list[0].start();
    let run = Arc::new(Run {
        backend,
        database_down: AtomicBool::new(false),
        replicas: Mutex::new(list),
        http: reqwest::Client::new(),
        counts: Counts::default(),
        kills_wanted,
    });
    wait_healthy(&run.http, ports[0]).await;
    for i in 1..replicas {
        run.replicas.lock().unwrap()[i].start();
    }
    for port in &ports {
        wait_healthy(&run.http, *port).await;
    }

    // The sending anchor logs in once (the token is good on every replica).
    let key = Keypair::random();
    let payer = key.public_key().to_string();
    let token = login(&run, &key).await;

    let done = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (run, horizon, done) = (run.clone(), horizon.clone(), done.clone());
        tokio::spawn(async move {
            run.chaos(&horizon, proxy.as_ref(), &done).await;
            proxy
        })
    };

    // The workload: transactions created and paid at `rate` per second until the chaos has
    // made its kills.
    let started = Instant::now();
    let mut created: Vec<String> = Vec::new();
    let mut memo_of: HashMap<String, u64> = HashMap::new();
    while run.counts.kills.load(Ordering::Relaxed) < run.kills_wanted || created.len() < 20 {
        let due = started.elapsed().as_secs_f64() * rate as f64;
        if (created.len() as f64) >= due {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let (status, body) = run
            .call(|base| {
                run.http
                    .post(format!("{base}/sep31/transactions"))
                    .bearer_auth(&token)
                    .json(&json!({"amount": "5", "asset_code": "USDC", "funding_method": "SEPA"}))
            })
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let memo: u64 = body["stellar_memo"]
            .as_str()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("a memo in {body}"));
        let (status, body) = run
            .call(|base| {
                run.http
                    .put(format!("{base}/sep31/transactions/{id}/callback"))
                    .bearer_auth(&token)
                    .json(&json!({ "url": callback_url }))
            })
            .await;
        assert!(status == 204, "{status} {body}");
        horizon.submit_all(vec![Tx::new(
            &payer,
            Memo::Id(memo),
            vec![Op::Payment {
                from: None,
                to: distribution.clone(),
                asset: Asset::credit("USDC", &issuer),
                amount: "5".into(),
            }],
        )]);
        memo_of.insert(id.clone(), memo);
        created.push(id);
    }
    let workload_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let _proxy = chaos.await.unwrap();
    for r in run.replicas.lock().unwrap().iter_mut() {
        if !r.alive() {
            r.start();
        }
    }

    // Settling: with every process back, each transaction completes and each status change
    // reaches the receiver. A payout a killed process held waits for its lease (9 s here),
    // a callback for the outbox lease (30 s).
    let store = Store::connect(&db, 2).await.unwrap();
    let settle_start = Instant::now();
    let settle_deadline = settle_start + Duration::from_secs(180);
    let mut stuck: Vec<String>;
    loop {
        stuck = Vec::new();
        for id in &created {
            let t = store.transaction(id).await.unwrap().unwrap();
            if t.status != "completed" {
                stuck.push(format!("{id}: {}", t.status));
            }
        }
        let heard = heard_statuses(&receiver);
        let missing = missing_callbacks(&created, &heard);
        if (stuck.is_empty() && missing == 0) || Instant::now() > settle_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settle_secs = settle_start.elapsed().as_secs_f64();

    // The checks.
    let payments = store
        .list_incoming_payments(&PaymentFilter {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut matched_per_transaction: HashMap<String, usize> = HashMap::new();
    for p in &payments {
        if p.outcome == "matched"
            && let Some(t) = &p.transaction_id
        {
            *matched_per_transaction.entry(t.clone()).or_default() += 1;
        }
    }
    let mut matched_once = 0;
    for id in &created {
        let funded = store
            .transaction_events(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.to_status == "pending_receiver")
            .count();
        if funded == 1 && matched_per_transaction.get(id) == Some(&1) {
            matched_once += 1;
        }
    }
    let ledger = simulated_ledger(&store).await;
    let mut rows_per_transaction: HashMap<&str, usize> = HashMap::new();
    for (_, transaction, _) in &ledger {
        *rows_per_transaction
            .entry(transaction.as_str())
            .or_default() += 1;
    }
    let heard = heard_statuses(&receiver);
    let deliveries = receiver.all();
    let keys: HashSet<String> = deliveries
        .iter()
        .filter_map(|d| d.headers.get("idempotency-key"))
        .map(|k| k.to_str().unwrap().to_owned())
        .collect();
    let figures = Figures {
        transactions: created.len(),
        payments_matched_once: matched_once,
        payments_lost_or_doubled: created.len() - matched_once
            + payments.len().saturating_sub(created.len()),
        payouts: ledger.len(),
        paid_twice: rows_per_transaction.values().filter(|n| **n > 1).count(),
        calls_repeated: ledger.iter().filter(|(_, _, calls)| *calls > 1).count(),
        stuck: stuck.len(),
        callbacks_expected: created.len() * STATUSES.len(),
        callbacks_lost: missing_callbacks(&created, &heard),
        deliveries: deliveries.len(),
        duplicates_dropped: deliveries.len() - keys.len(),
    };
    let c = &run.counts;
    println!(
        "FAULTS backend={backend} replicas={replicas} transactions={} workload_secs={workload_secs:.1} \
         kills={} exits={} horizon_outages={} database_outages={} settle_secs={settle_secs:.1} \
         payments_matched_once={} payments_lost_or_doubled={} payouts={} paid_twice={} \
         calls_repeated={} stuck={} callbacks_expected={} callbacks_lost={} deliveries={} \
         duplicates_dropped={} api_requests={} api_retried={} api_unanswered={} api_unanswered_database_down={}",
        figures.transactions,
        c.kills.load(Ordering::Relaxed),
        c.exits.load(Ordering::Relaxed),
        c.horizon_outages.load(Ordering::Relaxed),
        c.database_outages.load(Ordering::Relaxed),
        figures.payments_matched_once,
        figures.payments_lost_or_doubled,
        figures.payouts,
        figures.paid_twice,
        figures.calls_repeated,
        figures.stuck,
        figures.callbacks_expected,
        figures.callbacks_lost,
        figures.deliveries,
        figures.duplicates_dropped,
        c.requests.load(Ordering::Relaxed),
        c.retried.load(Ordering::Relaxed),
        c.unanswered.load(Ordering::Relaxed),
        c.unanswered_database_down.load(Ordering::Relaxed),
    );
    assert!(stuck.is_empty(), "not completed: {stuck:?}");
    assert_eq!(
        figures.payments_matched_once, figures.transactions,
        "{figures:?}"
    );
    assert_eq!(figures.payments_lost_or_doubled, 0, "{figures:?}");
    assert_eq!(figures.payouts, figures.transactions, "{figures:?}");
    assert_eq!(figures.paid_twice, 0, "{figures:?}");
    assert_eq!(figures.calls_repeated, 0, "{figures:?}");
    assert_eq!(figures.callbacks_lost, 0, "{figures:?}");
    if backend == "postgres" {
        assert_eq!(
            c.unanswered.load(Ordering::Relaxed),
            0,
            "the API answered while a replica lived"
        );
    }
    let mut replicas = std::mem::take(&mut *run.replicas.lock().unwrap());
    for r in &mut replicas {
        assert!(r.stop().await, "a replica did not exit cleanly on SIGTERM");
    }
    store.close().await;
    keep_logs(dir.path());
}

/// Copies the replicas' logs to `CAPSTAN_FAULTS_LOGS`, when set.
fn keep_logs(dir: &std::path::Path) {
    let Ok(to) = std::env::var("CAPSTAN_FAULTS_LOGS") else {
        return;
    };
    let _ = std::fs::create_dir_all(&to);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".log") {
            let _ = std::fs::copy(entry.path(), std::path::Path::new(&to).join(name));
        }
    }
}

async fn wait_healthy(http: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica on {port} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A full SEP-10 login through whichever replica answers.
async fn login(run: &Run, key: &Keypair) -> String {
    let account = key.public_key().to_string();
    let (status, challenge) = run
        .call(|base| {
            run.http
                .get(format!("{base}/auth"))
                .query(&[("account", account.as_str())])
        })
        .await;
    assert_eq!(status, 200, "{challenge}");
    let network = Network::from_passphrase(challenge["network_passphrase"].as_str().unwrap());
    let signed = stellar::sep10::sign_challenge(
        challenge["transaction"].as_str().unwrap(),
        &network,
        &[key],
    )
    .unwrap();
    let (status, token) = run
        .call(|base| {
            run.http
                .post(format!("{base}/auth"))
                .json(&json!({ "transaction": signed }))
        })
        .await;
    assert_eq!(status, 200, "{token}");
    token["token"].as_str().unwrap().to_owned()
}

/// The statuses each transaction's callbacks carried.
fn heard_statuses(receiver: &Recorder) -> BTreeMap<String, HashSet<String>> {
    let mut heard: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for d in receiver.all() {
        let t = &d.json()["transaction"];
        if let (Some(id), Some(status)) = (t["id"].as_str(), t["status"].as_str()) {
            heard
                .entry(id.to_owned())
                .or_default()
                .insert(status.to_owned());
        }
    }
    heard
}

fn missing_callbacks(created: &[String], heard: &BTreeMap<String, HashSet<String>>) -> usize {
    created
        .iter()
        .map(|id| {
            STATUSES
                .iter()
                .filter(|s| !heard.get(id).is_some_and(|h| h.contains(**s)))
                .count()
        })
        .sum()
}

/// (idempotency key, transaction, calls) of every payout the simulated rails were asked for.
async fn simulated_ledger(store: &Store) -> Vec<(String, String, i64)> {
    let sql = "SELECT idempotency_key, transaction_id, calls FROM simulated_payouts";
    match store {
        Store::Sqlite { writer: pool, .. } => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_sqlite_lose_and_double_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("capstan.db").display());
    run_faults("sqlite", db, None, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_three_postgres_replicas_lose_and_double_nothing() {
    let Some(db) = common::postgres_url("faults").await else {
        return;
    };
    let url = url::Url::parse(&db).unwrap();
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let proxy = DbProxy::start(target).await;
    run_faults("postgres", db, Some(proxy), 3).await;
}
