//! `--spawn`: the tool starts `capstan serve` itself, on a fresh SQLite database in a
//! temporary folder, with a fake Horizon in this process (every account is new to it, so a
//! login is checked against the account's own key). It starts the server twice, first on
//! the new database and then on the existing one, and times each start until `/health`
//! answers 200.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_horizon::FakeHorizon;
use stellar::Keypair;

use crate::client::Conn;

/// How long a start may take before the tool gives up.
const START_LIMIT: Duration = Duration::from_secs(60);

pub struct Spawned {
    bin: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub url: String,
    port: u16,
    /// Start-up to ready on a new database (migrations, generated keys).
    pub first_start: Duration,
    /// Start-up to ready on the database the first start left.
    pub start: Duration,
    _horizon: FakeHorizon,
}

impl Spawned {
    /// `log`: where the server's log goes (default: `capstan.log` in the temporary folder,
    /// removed at the end).
    /// `db_connections`: `database.max_connections` (default: the server's).
    pub async fn start(
        bin: &Path,
        log: Option<PathBuf>,
        db_connections: Option<u32>,
    ) -> Result<Spawned, String> {
        let bin = bin
            .canonicalize()
            .map_err(|e| format!("--spawn {}: {e}", bin.display()))?;
        let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
        let horizon = FakeHorizon::start().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        std::fs::write(
            dir.path().join("anchor.toml"),
            config(port, &horizon.url(), db_connections),
        )
        .map_err(|e| format!("writing the configuration: {e}"))?;
        let log = match log {
            Some(path) => std::path::absolute(&path)
                .map_err(|e| format!("--server-log {}: {e}", path.display()))?,
            None => dir.path().join("capstan.log"),
        };
        let mut spawned = Spawned {
            bin,
            log,
            dir,
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            port,
            first_start: Duration::ZERO,
            start: Duration::ZERO,
            _horizon: horizon,
        };
        spawned.first_start = spawned.launch().await?;
        spawned.stop().await?;
        spawned.start = spawned.launch().await?;
        Ok(spawned)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where the server's log goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Starts the server and waits until `/health` answers 200; the time that took.
    async fn launch(&mut self) -> Result<Duration, String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("the server's log file: {e}"))?;
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(self.dir.path());
        // Only the configuration file speaks, not this shell's CAPSTAN_* settings.
        for (key, _) in std::env::vars() {
            if key.starts_with("CAPSTAN_") {
                cmd.env_remove(key);
            }
        }
        let began = Instant::now();
        let child = cmd
            .args(["--config", "anchor.toml", "serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let addr = ([127, 0, 0, 1], self.port).into();
        let host = format!("127.0.0.1:{}", self.port);
        loop {
            let mut conn = Conn::new(addr, &host);
            if let Ok(reply) = conn.get("/health", None).await
                && reply.status == 200
            {
                return Ok(began.elapsed());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "capstan serve exited with {status}:\n{}",
                    self.log_tail()
                ));
            }
            if began.elapsed() > START_LIMIT {
                return Err(format!(
                    "capstan serve did not answer /health within {START_LIMIT:?}:\n{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// SIGTERM, and a clean exit within 30 s.
    pub async fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "capstan serve exited with {status}:\n{}",
                        self.log_tail()
                    ));
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("capstan serve did not stop within 30 s of SIGTERM".into());
                }
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Testnet, SQLite, automatic KYC review (customers are ACCEPTED at once, so transactions
/// can be created), any sending anchor, one asset with a fixed and a percentage fee. The
/// watcher and the payouts are off: only the HTTP API is measured. The signing key and the
/// JWT secret are generated by the first start and kept in the database.
fn config(port: u16, horizon: &str, db_connections: Option<u32>) -> String {
    let issuer = Keypair::random().public_key();
    let distribution = Keypair::random().public_key();
    let pool = db_connections
        .map(|n| format!("max_connections = {n}\n"))
        .unwrap_or_default();
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{port}\"\n\n\
         [stellar]\nnetwork = \"testnet\"\nhorizon_url = \"{horizon}\"\n\n\
         [database]\nurl = \"sqlite://capstan.db\"\n{pool}\n\
         [kyc]\nreview = \"auto\"\n\n\
         [watcher]\nenabled = false\n\n\
         [rails]\nenabled = false\n\n\
         [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\n\
         [sep31.assets.USDC]\nfunding_methods = [\"SEPA\"]\nfee_fixed = \"1\"\nfee_percent = \"0.5\"\n"
    )
}
