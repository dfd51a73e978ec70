//! Throughput of the payout executor with the simulated rails: the real `capstan execute`
//! binary paying out N funded `pending_receiver` transactions, with one process and with
//! two on the same database. The clock runs from the spawn of the first process to the
//! moment the database holds N `completed` transactions; the database is polled every
//! 50 ms, so the figure is good to about 50 ms. Inserting and funding the transactions is
//! setup and is not timed.
//!
//! Each run is checked before its figure counts: N payouts in the simulated rails' ledger,
//! one per transaction, each a completed payout of `amount_out` asked for once
//! (`calls == 1`), and every process exits cleanly on SIGTERM.
//!
//! Run with `capstan-load --spawn <capstan binary> executor` (`--payments` sets N, 10,000 by
//! default). SQLite always; PostgreSQL too when `CAPSTAN_TEST_POSTGRES_URL` is set (a fresh
//! schema per run, dropped afterwards).
//!
//! To see where the time goes: the executors inherit `RUST_LOG` (keep `info` in it, as in
//! `RUST_LOG=info,sqlx::query=debug`: the payouts per process are counted from the
//! `payout round done` lines), and `PAYOUTS_BENCH_LOG=<prefix>` keeps each executor's log
//! as `<prefix>.<backend>.<processes>p.<k>.log`.
//!
//! The figures are measurements for BENCHMARKS.md, never assertions; the run fails only
//! when the payouts were not made as they should have been, or an executor did not run or
//! stop cleanly.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use capstan::sep31::status::Status;
use capstan::store::{Store, TransactionRow};
use futures_util::StreamExt;
use stellar::Keypair;

use super::common::{
    AMOUNT_OUT, BenchProcess, FEE, cpu_secs, fresh_schema, peak_rss_kib, pending_sender,
};

const POLL: Duration = Duration::from_millis(50);
/// How long the executors may take before the run is declared stuck.
const DEADLINE: Duration = Duration::from_secs(900);
/// Memos are `MEMO_BASE + i`: unique in the fresh database.
const MEMO_BASE: u64 = 8_000_000_000;
/// A pause longer than this between two payouts of one process is the executor waiting
/// for its interval (its last pass found nothing it could claim) or stalled.
const GAP: Duration = Duration::from_millis(250);

/// Runs the benchmark with `bin` as the `capstan` binary, with one and with two processes,
/// on SQLite and, when `CAPSTAN_TEST_POSTGRES_URL` is set, on PostgreSQL.
pub async fn bench(bin: &Path, n: usize) {
    let mut backends = vec![Backend::Sqlite];
    match std::env::var("CAPSTAN_TEST_POSTGRES_URL") {
        Ok(base) => backends.push(Backend::Postgres(base)),
        Err(_) => println!(
            "SKIPPED postgres: CAPSTAN_TEST_POSTGRES_URL is not set (for example postgres://root@127.0.0.1:5432/test)"
        ),
    }
    let mut results = Vec::new();
    for backend in &backends {
        for processes in [1, 2] {
            let db = Database::fresh(backend).await;
            results.push(run(bin, &db, processes, n).await);
            db.drop().await;
        }
    }
    summary(&results);
}

// ---- databases ---------------------------------------------------------------------------

enum Backend {
    Sqlite,
    /// `CAPSTAN_TEST_POSTGRES_URL`
    Postgres(String),
}

/// A fresh, migrated database: a SQLite file in a temporary directory, or a PostgreSQL
/// schema of its own (named as the tests name theirs, so they drop it if this run cannot).
/// The directory also holds the executors' configuration and logs.
struct Database {
    name: &'static str,
    url: String,
    dir: tempfile::TempDir,
    /// (base URL, schema) to drop afterwards.
    schema: Option<(String, String)>,
}

impl Database {
    async fn fresh(backend: &Backend) -> Database {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = match backend {
            Backend::Sqlite => Database {
                name: "sqlite",
                url: format!("sqlite://{}", dir.path().join("capstan.db").display()),
                dir,
                schema: None,
            },
            Backend::Postgres(base) => {
                let (url, schema) = fresh_schema(base).await;
                Database {
                    name: "postgres",
                    url,
                    dir,
                    schema: Some((base.clone(), schema)),
                }
            }
        };
        let store = db.connect(2).await;
        store.migrate().await.expect("migrate");
        store.close().await;
        db
    }

    async fn connect(&self, max_connections: u32) -> Store {
        Store::connect(&self.url, max_connections)
            .await
            .expect("connect to the database")
    }

    async fn drop(self) {
        if let Some((base, schema)) = self.schema {
            let pool = sqlx::PgPool::connect(&base)
                .await
                .expect("connect to CAPSTAN_TEST_POSTGRES_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&pool)
            .await
            .expect("drop schema");
            pool.close().await;
        }
    }
}

/// Transactions in `status`, counted in the database (a list would read every row).
async fn count(store: &Store, status: &str) -> usize {
    let sql = "SELECT COUNT(*) FROM transactions WHERE status = $1";
    let n: i64 = match store {
        Store::Sqlite { writer: pool, .. } => {
            sqlx::query_scalar(sql).bind(status).fetch_one(pool).await
        }
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(status).fetch_one(pool).await,
    }
    .expect("count transactions");
    n as usize
}

// ---- the funded transactions (setup) -----------------------------------------------------

struct Fixture {
    issuer: String,
    distribution: String,
    ids: Vec<String>,
    setup: Duration,
}

/// N `pending_sender` transactions, each then funded (`pending_receiver`, paid) as the
/// watcher leaves it. SQLite has one writer at a time; PostgreSQL commits in parallel.
async fn fund(db: &Database, n: usize) -> Fixture {
    let issuer = Keypair::random().public_key().to_string();
    let distribution = Keypair::random().public_key().to_string();
    let sending_anchor = Keypair::random().public_key().to_string();
    let parallel = if db.name == "sqlite" { 1 } else { 8 };
    let store = db.connect(parallel as u32).await;
    let now = capstan::store::unix_now();
    let rows: Vec<TransactionRow> = (0..n as u64)
        .map(|i| pending_sender(MEMO_BASE + i, &sending_anchor, &issuer, &distribution, now))
        .collect();
    let actor = format!("sending_anchor:{sending_anchor}");
    let started = Instant::now();
    futures_util::stream::iter(&rows)
        .map(|row| {
            let (store, actor) = (&store, &actor);
            async move {
                assert!(
                    store.insert_transaction(row, actor).await.expect("insert"),
                    "memo {:?} taken",
                    row.stellar_memo
                );
                let hash = hex::encode(stellar::random_bytes::<32>());
                store
                    .transition(
                        &row.id,
                        Status::PendingReceiver,
                        "benchmark",
                        Some("funded for the benchmark"),
                        |t| {
                            t.paid = true;
                            t.stellar_transaction_id = Some(hash.clone());
                        },
                        |_| String::new(),
                    )
                    .await
                    .expect("fund");
            }
        })
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
    let setup = started.elapsed();
    assert_eq!(count(&store, "pending_receiver").await, n);
    store.close().await;
    Fixture {
        issuer,
        distribution,
        ids: rows.into_iter().map(|r| r.id).collect(),
        setup,
    }
}

fn config_toml(db: &str, issuer: &str, distribution: &str) -> String {
    format!(
        "[database]\nurl = \"{db}\"\n\
         [rails]\nkind = \"simulated\"\n\
         [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\
         [sep31.assets.USDC]\nfee_fixed = \"{FEE}\"\n\
         [kyc.types.individual]\nfields = [\"first_name\"]\n"
    )
}

// ---- the executor processes --------------------------------------------------------------

/// One `capstan execute` process; killed if the benchmark panics before it stops it.
struct Executor {
    process: BenchProcess,
    peak_kib: u64,
    cpu_secs: f64,
}

impl Executor {
    fn spawn(bin: &Path, dir: &Path, config: &Path, k: usize) -> Executor {
        // An executor that finds nothing to claim waits for its interval (10 s by default)
        // or a wake-up from its own process; 1 s keeps such waits visible but short.
        let process = BenchProcess::spawn(
            bin,
            dir,
            config,
            &["execute", "--interval", "1"],
            &format!("execute-{k}.log"),
            Stdio::null(),
        );
        Executor {
            process,
            peak_kib: 0,
            cpu_secs: 0.0,
        }
    }

    /// Panics if it exited; else records its peak RSS and CPU time so far.
    fn sample(&mut self) {
        self.process.assert_running();
        let pid = self.process.pid();
        self.peak_kib = self.peak_kib.max(peak_rss_kib(pid).unwrap_or(0));
        self.cpu_secs = cpu_secs(&pid.to_string()).unwrap_or(self.cpu_secs);
    }
}

/// CPU seconds so far of every process named `postgres` (a server on this machine: its
/// backends and helpers, whoever's connections they serve), by pid.
fn postgres_cpu() -> HashMap<String, f64> {
    let mut cpu = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres"
            && let Some(secs) = cpu_secs(&pid)
        {
            cpu.insert(pid, secs);
        }
    }
    cpu
}

/// CPU the `postgres` processes used since `before` (one that ended meanwhile is missed).
fn postgres_cpu_since(before: &HashMap<String, f64>) -> f64 {
    postgres_cpu()
        .iter()
        .map(|(pid, secs)| secs - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

/// The machine's CPU ticks so far: (busy, all). Busy leaves out idle, iowait and steal.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    // user nice system idle iowait irq softirq steal (guest time is in user already)
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let tick = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let all: u64 = ticks.iter().sum();
    (all - tick(3) - tick(4) - tick(7), all)
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// What an executor's log says: its payouts (the `payout round done` lines, `None` when
/// the log has none, as with a `RUST_LOG` without `info`), the pauses longer than [`GAP`]
/// between consecutive ones (how many, how long in all), and its warnings and errors.
struct LogSummary {
    payouts: Option<usize>,
    pauses: usize,
    paused: Duration,
    warnings: Vec<String>,
}

fn read_log(log: &str) -> LogSummary {
    let done: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("payout round done"))
        .collect();
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = done
        .iter()
        .filter_map(|l| chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next()?).ok())
        .collect();
    let mut summary = LogSummary {
        payouts: (!done.is_empty()).then_some(done.len()),
        pauses: 0,
        paused: Duration::ZERO,
        warnings: log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .map(str::to_owned)
            .collect(),
    };
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).to_std().unwrap_or_default();
        if gap > GAP {
            summary.pauses += 1;
            summary.paused += gap;
        }
    }
    summary
}

// ---- one measured run --------------------------------------------------------------------

/// What one executor process did in a run.
struct Process {
    payouts: Option<usize>,
    peak_kib: u64,
    cpu_secs: f64,
    pauses: usize,
    paused: Duration,
}

struct RunResult {
    backend: &'static str,
    processes: usize,
    n: usize,
    /// From the first spawn to N completed.
    elapsed: Duration,
    /// When the first completed transaction was seen, and how many were done by then.
    first: (Duration, usize),
    per_process: Vec<Process>,
    /// The machine's CPU busy share during the run.
    busy: f64,
    /// CPU seconds of the PostgreSQL server's processes during the run (PostgreSQL only).
    postgres_cpu: Option<f64>,
    /// The 1-minute load average at the start and at the end of the run.
    load: (String, String),
}

async fn run(bin: &Path, db: &Database, processes: usize, n: usize) -> RunResult {
    println!(
        "== payout executor, {}, {processes} process(es), {n} transactions (load {})",
        db.name,
        load()
    );
    let fixture = fund(db, n).await;
    println!(
        "  setup (not timed): {n} transactions inserted and funded in {:.2} s",
        fixture.setup.as_secs_f64()
    );
    let config = db.dir.path().join("execute.toml");
    std::fs::write(
        &config,
        config_toml(&db.url, &fixture.issuer, &fixture.distribution),
    )
    .expect("write the configuration");
    let poller = db.connect(1).await;

    let load_before = load();
    let machine_before = machine_ticks();
    let postgres_before = postgres_cpu();
    let start = Instant::now();
    let mut executors: Vec<Executor> = (0..processes)
        .map(|k| Executor::spawn(bin, db.dir.path(), &config, k))
        .collect();
    let mut first = None;
    let elapsed = loop {
        for e in &mut executors {
            e.sample();
        }
        let done = count(&poller, "completed").await;
        let at = start.elapsed();
        if done > 0 {
            first.get_or_insert((at, done));
        }
        if done >= n {
            break at;
        }
        assert!(
            at < DEADLINE,
            "only {done} of {n} paid out after {} s",
            at.as_secs()
        );
        tokio::time::sleep(POLL).await;
    };
    let machine_after = machine_ticks();
    let busy = machine_after.0.saturating_sub(machine_before.0) as f64
        / machine_after.1.saturating_sub(machine_before.1).max(1) as f64;
    let postgres_cpu = (db.name == "postgres").then(|| postgres_cpu_since(&postgres_before));
    let load_after = load();
    for e in &mut executors {
        e.sample();
    }

    // The check: every transaction completed, each paid once, as the rails' ledger says.
    assert_eq!(count(&poller, "completed").await, n);
    let ledger = poller.simulated_payouts().await.expect("read the ledger");
    assert_eq!(ledger.len(), n, "simulated payouts in the ledger");
    let repeated: Vec<_> = ledger.iter().filter(|p| p.calls != 1).collect();
    assert!(repeated.is_empty(), "asked more than once: {repeated:?}");
    let wrong: Vec<_> = ledger
        .iter()
        .filter(|p| p.outcome != "completed" || p.amount != AMOUNT_OUT)
        .collect();
    assert!(
        wrong.is_empty(),
        "not a completed payout of {AMOUNT_OUT}: {wrong:?}"
    );
    let paid: HashSet<&str> = ledger.iter().map(|p| p.transaction_id.as_str()).collect();
    assert_eq!(paid.len(), n, "one payout per transaction");
    assert!(
        fixture.ids.iter().all(|id| paid.contains(id.as_str())),
        "a transaction has no payout"
    );
    poller.close().await;

    let mut per_process = Vec::new();
    for (k, e) in executors.iter_mut().enumerate() {
        let (status, took) = e.process.terminate();
        assert!(
            status.success(),
            "capstan execute exits cleanly on SIGTERM: {status}; its log:\n{}",
            e.process.log_tail()
        );
        if let Ok(prefix) = std::env::var("PAYOUTS_BENCH_LOG") {
            let file = format!("{prefix}.{}.{processes}p.{k}.log", db.name);
            std::fs::copy(&e.process.log, &file).expect("copy the executor's log");
            println!("  the log of process {k} -> {file}");
        }
        let log = read_log(&e.process.log_text());
        println!(
            "  process {k}: {} payouts, peak RSS {:.1} MiB, CPU {:.2} s, {} pause(s) over {GAP:?} between payouts ({:.2} s in all), {} warning(s), {status} {} ms after SIGTERM",
            log.payouts.map_or("?".into(), |p| p.to_string()),
            e.peak_kib as f64 / 1024.0,
            e.cpu_secs,
            log.pauses,
            log.paused.as_secs_f64(),
            log.warnings.len(),
            took.as_millis()
        );
        if let Some(w) = log.warnings.first() {
            println!("    first warning: {w}");
        }
        per_process.push(Process {
            payouts: log.payouts,
            peak_kib: e.peak_kib,
            cpu_secs: e.cpu_secs,
            pauses: log.pauses,
            paused: log.paused,
        });
    }
    let logged: usize = per_process.iter().filter_map(|p| p.payouts).sum();
    if logged > 0 {
        assert_eq!(logged, n, "the payout rounds in the logs add up to N");
    }

    let secs = elapsed.as_secs_f64();
    let first = first.unwrap_or((elapsed, n));
    println!(
        "  {n} completed in {secs:.2} s: {:.0} payouts/s ({} by the first look at {:.2} s, then {:.0}/s); machine CPU busy {:.0} %{}, load {load_before} -> {load_after}",
        n as f64 / secs,
        first.1,
        first.0.as_secs_f64(),
        rate(n - first.1, elapsed.saturating_sub(first.0)),
        busy * 100.0,
        postgres_cpu.map_or(String::new(), |s| format!(
            ", postgres processes' CPU {s:.2} s"
        ))
    );
    RunResult {
        backend: db.name,
        processes,
        n,
        elapsed,
        first,
        per_process,
        busy,
        postgres_cpu,
        load: (load_before, load_after),
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        f64::NAN
    } else {
        n as f64 / d.as_secs_f64()
    }
}

fn summary(results: &[RunResult]) {
    println!();
    println!(
        "| backend | processes | payouts | time (s) | payouts/s | from the first payout on (/s) | payouts per process | peak RSS (MiB) per process | CPU (s) per process | pauses (s) per process | postgres CPU (s) | machine busy | load |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|---|");
    for r in results {
        let secs = r.elapsed.as_secs_f64();
        let join = |f: &dyn Fn(&Process) -> String| {
            r.per_process.iter().map(f).collect::<Vec<_>>().join(" / ")
        };
        println!(
            "| {} | {} | {} | {secs:.2} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.0} % | {} -> {} |",
            r.backend,
            r.processes,
            r.n,
            r.n as f64 / secs,
            rate(r.n - r.first.1, r.elapsed.saturating_sub(r.first.0)),
            join(&|p| p.payouts.map_or("?".into(), |n| n.to_string())),
            join(&|p| format!("{:.1}", p.peak_kib as f64 / 1024.0)),
            join(&|p| format!("{:.2}", p.cpu_secs)),
            join(&|p| format!("{} ({:.1})", p.pauses, p.paused.as_secs_f64())),
            r.postgres_cpu.map_or("-".into(), |s| format!("{s:.2}")),
            r.busy * 100.0,
            r.load.0,
            r.load.1
        );
    }
}
