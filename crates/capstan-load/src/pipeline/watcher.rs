//! Throughput of the payment watcher: the real `capstan watch` binary catching up on N
//! payments that a fake Horizon on the same machine already holds, each matched by its memo
//! to one of N `pending_sender` transactions. The clock runs from the binary's start to the
//! moment the stream's cursor in the database reaches the fake's latest paging token; the
//! database is polled every 20 ms, so the figure is good to about 20 ms.
//!
//! Run with `capstan-load --spawn <capstan binary> watcher` (`--payments` sets N, 10,000 by
//! default). SQLite always; PostgreSQL too when `CAPSTAN_TEST_POSTGRES_URL` is set (in a
//! fresh schema).
//!
//! To see where the time goes: `WATCHER_BENCH_PERF=<file>` attaches
//! `perf record --call-graph dwarf -o <file>.<backend>` to the watcher for the measured run;
//! `WATCHER_BENCH_LOG=<file>` keeps the watcher's log as `<file>.<backend>` (with
//! `RUST_LOG=info,sqlx::query=debug` it lists every SQL statement with its time).
//!
//! The figures are measurements for BENCHMARKS.md, never assertions; the run fails only
//! when the watcher did not record what it should have.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use capstan::store::{PaymentFilter, Store, TransactionRow};
use fake_horizon::{Asset, FIRST_LEDGER, FakeHorizon, Memo, Op, Tx};
use futures_util::StreamExt;
use stellar::Keypair;

use super::common::{
    AMOUNT_IN, AMOUNT_OUT, BenchProcess, FEE, cpu_secs, peak_rss_kib, pending_sender, postgres_url,
};

const POLL: Duration = Duration::from_millis(20);
/// How long the watcher may take before the run is declared stuck.
const DEADLINE: Duration = Duration::from_secs(600);
/// Memos are `MEMO_BASE + i`: unique in the fresh database.
const MEMO_BASE: u64 = 7_000_000_000;

/// Runs the benchmark with `bin` as the `capstan` binary, on SQLite and, when
/// `CAPSTAN_TEST_POSTGRES_URL` is set, on PostgreSQL.
pub async fn bench(bin: &Path, payments: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite = format!("sqlite://{}", dir.path().join("capstan.db").display());
    run(bin, "sqlite", &sqlite, payments).await;
    match postgres_url().await {
        Some(url) => run(bin, "postgres", &url, payments).await,
        None => println!(
            "SKIPPED postgres: CAPSTAN_TEST_POSTGRES_URL is not set (for example postgres://root@127.0.0.1:5432/test)"
        ),
    }
}

fn config_toml(horizon: &str, db: &str, issuer: &str, distribution: &str) -> String {
    format!(
        "[stellar]\nhorizon_url = \"{horizon}\"\n[database]\nurl = \"{db}\"\n\
         [watcher]\nstart = \"0\"\n\
         [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\
         [sep31.assets.USDC]\nfee_fixed = \"{FEE}\"\n\
         [kyc.types.individual]\nfields = [\"first_name\"]\n"
    )
}

/// The watcher process; killed if the benchmark panics before it stops it.
struct Watcher {
    process: BenchProcess,
    /// The instant the binary printed that it is watching (set up and streaming).
    ready: mpsc::Receiver<Instant>,
}

impl Watcher {
    fn spawn(bin: &Path, dir: &Path, config: &Path) -> Watcher {
        let mut process =
            BenchProcess::spawn(bin, dir, config, &["watch"], "watch.log", Stdio::piped());
        let stdout = process.child.stdout.take().expect("piped stdout");
        let (tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("watching payments") {
                    let _ = tx.send(Instant::now());
                }
            }
        });
        Watcher { process, ready }
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// `perf record` attached to the watcher, when `WATCHER_BENCH_PERF` names an output file.
struct Perf(Option<Child>);

impl Perf {
    fn attach(pid: u32, backend: &str) -> Perf {
        let Ok(file) = std::env::var("WATCHER_BENCH_PERF") else {
            return Perf(None);
        };
        let file = format!("{file}.{backend}");
        let child = Command::new("perf")
            .args([
                "record",
                "--call-graph",
                "dwarf,32768",
                "-F",
                "499",
                "-o",
                &file,
                "-p",
            ])
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf record starts");
        println!("  perf record -> {file}");
        Perf(Some(child))
    }

    fn stop(mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

/// How many payments a cursor covers: the fake puts payment i (0-based) alone in ledger
/// FIRST_LEDGER + i, and a paging token is `ledger << 32 | ...`. The watcher stores its
/// starting cursor ("0") before it records anything.
fn covered(cursor: &str) -> usize {
    let token: i64 = cursor.parse().expect("a numeric cursor");
    ((token >> 32) - i64::from(FIRST_LEDGER) + 1).max(0) as usize
}

async fn run(bin: &Path, backend: &str, url: &str, n: usize) {
    println!("== payment watcher, {backend}, {n} payments");
    let dir = tempfile::tempdir().expect("temporary directory");
    let issuer = Keypair::random().public_key().to_string();
    let distribution = Keypair::random().public_key().to_string();
    let sending_anchor = Keypair::random().public_key().to_string();
    let sender = Keypair::random().public_key().to_string();

    // 1. The transactions (setup, not measured).
    let started = Instant::now();
    let store = Store::connect(url, 8)
        .await
        .expect("connect to the database");
    store.migrate().await.expect("migrate");
    let now = capstan::store::unix_now();
    let rows: Vec<TransactionRow> = (0..n as u64)
        .map(|i| pending_sender(MEMO_BASE + i, &sending_anchor, &issuer, &distribution, now))
        .collect();
    // SQLite has one writer at a time; PostgreSQL commits in parallel.
    let parallel = if backend == "sqlite" { 1 } else { 8 };
    let actor = format!("sending_anchor:{sending_anchor}");
    futures_util::stream::iter(&rows)
        .map(|row| {
            let (store, actor) = (&store, &actor);
            async move {
                assert!(
                    store.insert_transaction(row, actor).await.expect("insert"),
                    "memo {:?} taken",
                    row.stellar_memo
                );
            }
        })
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
    store.close().await;
    let insert_time = started.elapsed();

    // 2. The payments, all on the fake ledger before the watcher starts (setup).
    let started = Instant::now();
    let horizon = FakeHorizon::start().await;
    let txs: Vec<Tx> = (0..n as u64)
        .map(|i| {
            Tx::new(
                &sender,
                Memo::Id(MEMO_BASE + i),
                vec![Op::Payment {
                    from: None,
                    to: distribution.clone(),
                    asset: Asset::credit("USDC", &issuer),
                    amount: AMOUNT_IN.into(),
                }],
            )
        })
        .collect();
    horizon.submit_all(txs);
    let latest = horizon.latest_token().expect("payments were submitted");
    let submit_time = started.elapsed();
    assert_eq!(covered(&latest), n);

    // 3. The watcher, timed until the stored cursor reaches the latest paging token.
    let config = dir.path().join("watch.toml");
    std::fs::write(
        &config,
        config_toml(&horizon.url(), url, &issuer, &distribution),
    )
    .expect("write the configuration");
    let poller = Store::connect(url, 2)
        .await
        .expect("connect to the database");
    let bench_cpu_before = cpu_secs("self").unwrap_or(0.0);

    let start = Instant::now();
    let mut watcher = Watcher::spawn(bin, dir.path(), &config);
    let perf = Perf::attach(watcher.pid(), backend);
    let mut peak_kib = 0;
    let mut ready = None;
    // (time since start, payments covered by the cursor) at the first poll that saw any.
    let mut first: Option<(Duration, usize)> = None;
    let mut halfway: Option<(Duration, usize)> = None;
    let mut watcher_cpu = 0.0;
    let end = loop {
        if ready.is_none() {
            ready = watcher.ready.try_recv().ok();
        }
        peak_kib = peak_kib.max(peak_rss_kib(watcher.pid()).unwrap_or(0));
        watcher_cpu = cpu_secs(&watcher.pid().to_string()).unwrap_or(watcher_cpu);
        let cursor = poller
            .watcher_cursor(&distribution)
            .await
            .expect("read the cursor");
        let at = start.elapsed();
        if let Some(cursor) = &cursor {
            let done = covered(cursor);
            if done > 0 {
                first.get_or_insert((at, done));
            }
            if done * 2 >= n {
                halfway.get_or_insert((at, done));
            }
        }
        if cursor.as_deref() == Some(latest.as_str()) {
            break at;
        }
        watcher.process.assert_running();
        assert!(
            at < DEADLINE,
            "the watcher is stuck at cursor {cursor:?} after {at:?}; its log:\n{}",
            watcher.process.log_tail()
        );
        tokio::time::sleep(POLL).await;
    };
    perf.stop();
    let bench_cpu = cpu_secs("self").unwrap_or(0.0) - bench_cpu_before;
    peak_kib = peak_kib.max(peak_rss_kib(watcher.pid()).unwrap_or(0));

    // 4. Verify: every payment recorded once and matched, the transactions funded.
    let payments = poller
        .list_incoming_payments(&PaymentFilter {
            limit: n as i64 + 1_000,
            ..Default::default()
        })
        .await
        .expect("list payments");
    assert_eq!(payments.len(), n, "payments recorded");
    let unmatched: Vec<_> = payments.iter().filter(|p| p.outcome != "matched").collect();
    assert!(
        unmatched.is_empty(),
        "{} payments not matched, for example {:?}",
        unmatched.len(),
        unmatched.first()
    );
    let step = (n / 100).max(1);
    for row in rows.iter().step_by(step) {
        let t = poller
            .transaction(&row.id)
            .await
            .expect("read a transaction")
            .expect("the transaction exists");
        assert_eq!(t.status, "pending_receiver", "transaction {}", t.id);
        assert!(t.paid, "transaction {}", t.id);
        assert_eq!(
            (t.amount_in.as_str(), t.amount_out.as_str()),
            (AMOUNT_IN, AMOUNT_OUT)
        );
    }
    let (status, _) = watcher.process.terminate();
    if let Ok(file) = std::env::var("WATCHER_BENCH_LOG") {
        let file = format!("{file}.{backend}");
        std::fs::copy(&watcher.process.log, &file).expect("copy the watcher's log");
        println!("  the watcher's log -> {file}");
    }
    assert!(
        status.success(),
        "capstan watch exits cleanly on SIGTERM: {status}; its log:\n{}",
        watcher.process.log_tail()
    );
    poller.close().await;

    // 5. The figures.
    let secs = end.as_secs_f64();
    println!(
        "  setup (not measured): {n} transactions inserted in {:.2} s, {n} payments submitted to the fake Horizon in {:.2} s",
        insert_time.as_secs_f64(),
        submit_time.as_secs_f64()
    );
    if let Some(ready) = ready {
        println!(
            "  process start until it printed \"watching payments\": {:.3} s",
            ready.duration_since(start).as_secs_f64()
        );
    }
    if let Some((at, done)) = first {
        println!(
            "  first payments seen recorded: {:.3} s ({done} payments by then)",
            at.as_secs_f64()
        );
        if done < n && end > at {
            println!(
                "  from then on: {} payments in {:.3} s = {:.0} payments/s",
                n - done,
                (end - at).as_secs_f64(),
                (n - done) as f64 / (end - at).as_secs_f64()
            );
        }
    }
    if let Some((at, done)) = halfway {
        println!(
            "  first half: {done} payments by {:.3} s; second half: {} in {:.3} s",
            at.as_secs_f64(),
            n - done,
            (end - at).as_secs_f64()
        );
    }
    println!(
        "  CPU: watcher process {watcher_cpu:.2} s, benchmark process (fake Horizon, polling) {bench_cpu:.2} s"
    );
    println!(
        "  RESULT backend={backend} payments={n} seconds={secs:.3} matched_per_sec={:.0} peak_rss_mib={:.1}",
        n as f64 / secs,
        peak_kib as f64 / 1024.0
    );
}
