//! capstan-load: drives a running capstan over HTTP with a fixed number of connections for a
//! fixed time, and prints for each scenario the rate, the latency percentiles and the
//! errors, each rate also as a ratio to the `/health` baseline of the same run. With
//! `--pid` (or `--spawn`) it also reports the server's resident memory. The `watcher` and
//! `executor` scenarios run the benchmarks of those processes instead (`pipeline`).

mod client;
mod pipeline;
mod report;
mod runner;
mod scenarios;
mod spawn;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use report::Memory;
use scenarios::{Fixture, Scenario, Target};

#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Scenarios to run, in order; `baseline` always runs first.
    #[arg(value_enum, required = true)]
    scenarios: Vec<Scenario>,
    /// The anchor's address.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8000",
        conflicts_with = "spawn"
    )]
    url: String,
    /// Start this capstan binary on a fresh SQLite database instead (and time its start-up).
    #[arg(long, value_name = "CAPSTAN_BINARY")]
    spawn: Option<PathBuf>,
    /// Where the spawned server's log goes (default: a temporary file). The server reads
    /// `RUST_LOG` from this environment.
    #[arg(long, value_name = "FILE", requires = "spawn")]
    server_log: Option<PathBuf>,
    /// `database.max_connections` of the spawned server (default: the server's own).
    #[arg(long, value_name = "N", requires = "spawn")]
    db_connections: Option<u32>,
    /// The server's process id, to report its resident memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Connections, each with one request in flight at a time.
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured per scenario.
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds run before each measurement and not counted.
    #[arg(long, default_value_t = 1.0)]
    warm_up: f64,
    /// Payments (`watcher`) or payouts (`executor`) per run.
    #[arg(long, default_value_t = 10_000)]
    payments: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("capstan-load: {message}");
            ExitCode::from(2)
        }
    }
}

/// `Ok(false)` when some request failed.
async fn run(args: Args) -> Result<bool, String> {
    let positive = |s: f64| s.is_finite() && s > 0.0;
    if args.connections == 0
        || !positive(args.duration)
        || !(positive(args.warm_up) || args.warm_up == 0.0)
    {
        return Err("--connections and --duration must be positive, --warm-up not negative".into());
    }
    println!("{}", machine());
    if args.scenarios.iter().any(|s| s.is_process()) {
        return run_processes(&args).await;
    }

    let mut spawned = match &args.spawn {
        Some(bin) => {
            let spawned =
                spawn::Spawned::start(bin, args.server_log.clone(), args.db_connections).await?;
            println!(
                "capstan serve ({}): ready in {:.0} ms on a new database, {:.0} ms on the existing one; log {}",
                spawned.url,
                spawned.first_start.as_secs_f64() * 1000.0,
                spawned.start.as_secs_f64() * 1000.0,
                spawned.log_path().display()
            );
            Some(spawned)
        }
        None => None,
    };
    let url = spawned.as_ref().map_or(args.url.clone(), |s| s.url.clone());
    let pid = args.pid.or_else(|| spawned.as_ref().and_then(|s| s.pid()));

    let target = Arc::new(Target::discover(&url).await?);
    if let Some(pid) = pid {
        // Idle: up, discovered, before any load.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = Memory::of(pid)?;
        println!(
            "server pid {pid} idle: RSS {}, peak {}",
            report::mib(idle.rss_kib),
            report::mib(idle.peak_kib)
        );
    }

    let mut order = vec![Scenario::Baseline];
    for s in &args.scenarios {
        let named: &[Scenario] = match s {
            Scenario::All => &Scenario::EACH,
            one => std::slice::from_ref(one),
        };
        for s in named {
            if !order.contains(s) {
                order.push(*s);
            }
        }
    }

    let mut fixtures: Vec<Fixture> = (0..args.connections).map(|_| Fixture::new()).collect();
    if order.iter().any(|s| s.needs_fixtures()) {
        let tasks: Vec<_> = fixtures
            .into_iter()
            .map(|mut fixture| {
                let target = target.clone();
                tokio::spawn(async move { fixture.prepare(&target).await.map(|()| fixture) })
            })
            .collect();
        fixtures = Vec::new();
        for task in tasks {
            let fixture = task
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("preparing the sending anchors: {e}"))?;
            fixtures.push(fixture);
        }
    }
    let fixtures: Vec<Arc<Fixture>> = fixtures.into_iter().map(Arc::new).collect();

    let warm_up = Duration::from_secs_f64(args.warm_up);
    let duration = Duration::from_secs_f64(args.duration);
    println!(
        "{} connections, {:.1} s warm-up, {:.1} s measured per scenario",
        args.connections, args.warm_up, args.duration
    );
    let mut rows = Vec::new();
    let mut baseline = None;
    let mut clean = true;
    for scenario in order {
        let m = runner::run(pid, target.clone(), &fixtures, scenario, warm_up, duration).await;
        if scenario == Scenario::Baseline {
            baseline = Some(m.rate());
        }
        let memory = pid.map(Memory::of).transpose()?;
        let row = report::row(&m, baseline, m.cpu, memory);
        eprintln!("{row}");
        if let Some(errors) = report::errors(&m) {
            eprint!("{errors}");
            clean = false;
        }
        rows.push(row);
    }

    println!("\n{}", report::HEADER);
    for row in rows {
        println!("{row}");
    }
    println!("\n{}", load_average());
    if let Some(spawned) = &mut spawned {
        spawned.stop().await?;
        println!("capstan serve stopped cleanly on SIGTERM");
    }
    Ok(clean)
}

/// The `watcher` and `executor` benchmarks, each with the binary given to `--spawn`.
async fn run_processes(args: &Args) -> Result<bool, String> {
    if !args.scenarios.iter().all(|s| s.is_process()) {
        return Err("`watcher` and `executor` run on their own, without HTTP scenarios".into());
    }
    let Some(bin) = &args.spawn else {
        return Err("`watcher` and `executor` need --spawn <capstan binary>".into());
    };
    // The processes run in a directory of their own.
    let bin = std::fs::canonicalize(bin).map_err(|e| format!("--spawn {}: {e}", bin.display()))?;
    if args.payments == 0 {
        return Err("--payments must be positive".into());
    }
    for scenario in &args.scenarios {
        match scenario {
            Scenario::Watcher => pipeline::watcher::bench(&bin, args.payments).await,
            _ => pipeline::executor::bench(&bin, args.payments).await,
        }
    }
    println!("{}", load_average());
    Ok(true)
}

/// Cores, CPU model and load average, for the record that goes with the figures.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim())
        .unwrap_or("unknown CPU");
    format!("machine: {cores} cores, {model}; {}", load_average())
}

fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    format!("load average (1, 5, 15 min): {}", fields.join(" "))
}
