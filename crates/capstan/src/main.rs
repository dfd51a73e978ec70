use std::path::PathBuf;
use std::process::ExitCode;

use capstan::config::{Config, DEFAULT_CONFIG_FILE};
use capstan::store::redact_url;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// capstan: a Stellar receiving anchor (SEP-1, SEP-10).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: $CAPSTAN_CONFIG, else ./capstan.toml when present, else
    /// built-in development defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the anchor: HTTP API and background work.
    Serve,
    /// Write a commented configuration file with fresh keys.
    Init {
        /// Where to write it.
        #[arg(default_value = DEFAULT_CONFIG_FILE)]
        path: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Run only the payment watcher (and the callbacks it causes), for a deployment that
    /// runs it apart from the API; `serve` runs it too unless watcher.enabled = false.
    Watch,
    /// Pay out funded transactions through the rails (the seeds'
    /// execute_outgoing_transactions); `serve` runs it too unless rails.enabled = false.
    Execute {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
        /// Seconds between passes (default: rails.execute_interval_secs).
        #[arg(long)]
        interval: Option<u64>,
    },
    /// Follow up payouts under way (the seeds' poll_outgoing_transactions).
    Poll {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
        /// Seconds between passes (default: rails.poll_interval_secs).
        #[arg(long)]
        interval: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log lines are written by a thread of their own, buffered, and flushed whenever it has
    // nothing left to write: under load many lines share one write, and no request thread
    // waits on a slow disk or log pipe (each line used to be an unbuffered write on the
    // request's thread). Not lossy: a full queue makes loggers wait, it never drops a line.
    let (log_writer, log_flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("capstan-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = run(cli);
    // Every queued line is out before the last word.
    drop(log_flush);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    match cli.command {
        Command::Init { path, force } => init(&path, force),
        Command::Migrate => runtime.block_on(migrate(cli.config)),
        Command::Serve => runtime.block_on(serve(cli.config)),
        Command::Watch => runtime.block_on(watch(cli.config)),
        Command::Execute { once, interval } => {
            runtime.block_on(pay(cli.config, Worker::Execute, once, interval))
        }
        Command::Poll { once, interval } => {
            runtime.block_on(pay(cli.config, Worker::Poll, once, interval))
        }
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("capstan: {message}");
    ExitCode::FAILURE
}

fn init(path: &std::path::Path, force: bool) -> Result<(), String> {
    if path.exists() && !force {
        return Err(format!(
            "{} already exists; pass --force to replace it",
            path.display()
        ));
    }
    std::fs::write(path, capstan::init::config_template())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "wrote {} with fresh keys; edit it, then run: capstan serve",
        path.display()
    );
    Ok(())
}

async fn migrate(config: Option<PathBuf>) -> Result<(), String> {
    let config = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
    let store = capstan::server::connect_store(&config, 1)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    println!("migrations applied to {}", redact_url(&config.database_url));
    Ok(())
}

async fn serve(config: Option<PathBuf>) -> Result<(), String> {
    // Before the server starts: it answers /health before the banner below is printed.
    let term = listen_for_term();
    let config = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
    let running = capstan::start(config, None)
        .await
        .map_err(|e| e.to_string())?;
    let anchor = &running.anchor;
    let config = &anchor.config;
    println!(
        "capstan {} listening on http://{} ({})",
        env!("CARGO_PKG_VERSION"),
        running.addr,
        config.base_url
    );
    println!("  network:     {}", config.network.passphrase());
    println!("  signing key: {}", anchor.signing_key.public_key());
    println!(
        "  stellar.toml {}/.well-known/stellar.toml",
        config.base_url
    );
    println!("  data:        {}", redact_url(&config.database_url));
    let kyc = &config.kyc;
    match &kyc.business {
        Some(server) => println!("  KYC:         forwarded to {}", server.url),
        None => println!(
            "  KYC:         built-in store, {} review, types {}",
            match kyc.review {
                capstan::config::ReviewMode::Auto => "automatic",
                capstan::config::ReviewMode::Manual => "manual",
            },
            kyc.type_names()
        ),
    }
    if let Some(server) = &config.sep31.business {
        println!(
            "  SEP-31:      sending anchors, transactions and fees decided by {}",
            server.url
        );
    } else if config.sep31.sending_anchors.is_empty() {
        println!(
            "  SEP-31:      any authenticated account may send (set sep31.sending_anchors to those you have agreements with)"
        );
    } else {
        println!(
            "  SEP-31:      {} sending anchor(s) allowed",
            config.sep31.sending_anchors.len()
        );
    }
    print_watcher(anchor, false);
    match (&anchor.rails, config.rails.enabled) {
        (Some(rails), true) => println!(
            "  payouts:     {} rails, executed and polled here",
            rails.name()
        ),
        (Some(rails), false) => println!(
            "  payouts:     {} rails, off in this process (run `capstan execute` and `capstan poll`)",
            rails.name()
        ),
        (None, _) => {
            println!("  payouts:     no rails; funded transactions wait in pending_receiver")
        }
    }
    match running.admin_addr {
        Some(addr) => {
            println!("  admin API:   http://{addr} (Authorization: Bearer <admin.api_key>)")
        }
        None => println!("  admin API:   off (set admin.api_key to serve it)"),
    }
    match &config.file {
        Some(file) => println!("  config:      {}", file.display()),
        None => println!(
            "  config:      built-in development defaults; run `capstan init` to write a capstan.toml"
        ),
    }
    if !anchor.generated.is_empty() {
        println!(
            "  generated:   {} (kept in the database)",
            anchor.generated.join(", ")
        );
    }
    wait_for_signal(term).await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn watch(config: Option<PathBuf>) -> Result<(), String> {
    // As for `serve`: a SIGTERM while it starts stops it cleanly once started.
    let term = listen_for_term();
    let config = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
    let watching = capstan::server::start_watching(config, Default::default())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "capstan {} watching payments ({})",
        env!("CARGO_PKG_VERSION"),
        watching.anchor.config.network.passphrase()
    );
    print_watcher(&watching.anchor, true);
    wait_for_signal(term).await;
    tracing::info!("shutting down");
    watching.shutdown().await;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Worker {
    Execute,
    Poll,
}

async fn pay(
    config: Option<PathBuf>,
    worker: Worker,
    once: bool,
    interval: Option<u64>,
) -> Result<(), String> {
    let config = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(0) = interval {
        return Err("--interval must be at least 1 second".into());
    }
    let rails = &config.rails;
    let every = |default: std::time::Duration| {
        interval
            .map(std::time::Duration::from_secs)
            .unwrap_or(default)
    };
    let (executor, poller) = match worker {
        Worker::Execute => (Some(every(rails.execute_interval)), None),
        Worker::Poll => (None, Some(every(rails.poll_interval))),
    };
    if once {
        let anchor = capstan::server::open(config, Default::default())
            .await
            .map_err(|e| e.to_string())?;
        if anchor.rails.is_none() {
            return Err("no rails are configured (rails.kind = \"none\")".into());
        }
        let n = match worker {
            Worker::Execute => {
                capstan::payout::execute_due(
                    &anchor,
                    &format!("execute-once-{}", std::process::id()),
                )
                .await
            }
            Worker::Poll => capstan::payout::poll_due(&anchor).await,
        };
        // The callbacks those changes queued are sent by whichever process runs the
        // sender (serve, watch, or a looping execute/poll).
        println!("{n} transaction(s) handled");
        anchor.store.close().await;
        return Ok(());
    }
    // As for `serve`: a SIGTERM while it starts stops it cleanly once started. (A `--once`
    // run above keeps the default: SIGTERM ends it at once.)
    let term = listen_for_term();
    let running = capstan::server::start_paying(config, Default::default(), executor, poller)
        .await
        .map_err(|e| e.to_string())?;
    match &running.anchor.rails {
        Some(rails) => println!(
            "capstan {} {} with the {} rails",
            env!("CARGO_PKG_VERSION"),
            if worker == Worker::Execute {
                "executing payouts"
            } else {
                "polling payouts"
            },
            rails.name()
        ),
        None => {
            running.shutdown().await;
            return Err("no rails are configured (rails.kind = \"none\")".into());
        }
    }
    wait_for_signal(term).await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

fn print_watcher(anchor: &capstan::anchor::Anchor, watch_command: bool) {
    let accounts = capstan::watcher::accounts(anchor);
    let watcher = &anchor.config.watcher;
    if !watcher.enabled && !watch_command {
        println!(
            "  watcher:     off in this process (watcher.enabled = false; run `capstan watch`)"
        );
    } else if accounts.is_empty() {
        println!("  watcher:     no asset is received, nothing to watch");
    } else {
        println!(
            "  watcher:     {} account(s) on {}: {}",
            accounts.len(),
            anchor.config.horizon_url,
            accounts.join(", ")
        );
    }
}

/// SIGTERM, listened for from the moment this is called. `serve` calls it before it starts
/// anything: the anchor answers requests before it waits for a signal, and a SIGTERM that
/// comes in between must stop it cleanly rather than kill it.
fn listen_for_term() -> Term {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()
    }
    #[cfg(not(unix))]
    {}
}

#[cfg(unix)]
type Term = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Term = ();

/// Ctrl-C, or the SIGTERM `term` listens for.
async fn wait_for_signal(term: Term) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Some(mut term) = term else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let () = term;
        let _ = ctrl_c.await;
    }
}
