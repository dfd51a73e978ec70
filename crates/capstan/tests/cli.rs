//! The `capstan` binary itself: no configuration at all, `init`, `migrate`, restarts and
//! configuration errors.

mod common;

use std::path::Path;
use std::process::Command;

use common::FakeHorizon;
use common::process::{Keep, Process, capstan_in, free_port};
use serde_json::json;
use stellar::{Keypair, Network};

fn capstan(dir: &Path) -> Command {
    capstan_in(dir)
}

struct Served {
    process: Process,
    url: String,
}

impl Served {
    /// Starts `capstan serve` in `dir` with only the listen address and Horizon URL set, and
    /// waits until it answers.
    async fn start(dir: &Path, horizon: &str) -> Served {
        let port = free_port();
        let mut cmd = capstan(dir);
        cmd.arg("serve")
            .env("CAPSTAN_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAPSTAN_STELLAR_HORIZON_URL", horizon);
        let mut process = Process::spawn(cmd, Keep::Stdout);
        let url = format!("http://127.0.0.1:{port}");
        process.wait_healthy(&url).await;
        Served { process, url }
    }

    /// Stops it with SIGTERM, checks it exits cleanly, and returns its banner.
    async fn stop(self) -> String {
        self.process.stop().await
    }

    async fn signing_key(&self) -> String {
        let text = reqwest::get(format!("{}/.well-known/stellar.toml", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let toml: toml::Table = text.parse().unwrap();
        toml["SIGNING_KEY"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn serve_without_configuration_is_a_working_development_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let horizon = FakeHorizon::start().await;
    let served = Served::start(dir.path(), &horizon.url).await;
    assert!(
        dir.path().join("capstan.db").exists(),
        "the SQLite file is in the working directory"
    );

    // A full SEP-10 login against the defaults (testnet, home domain localhost:8000).
    let signing_key = served.signing_key().await;
    let client = Keypair::random();
    let http = reqwest::Client::new();
    let challenge: serde_json::Value = http
        .get(format!("{}/auth", served.url))
        .query(&[("account", client.public_key().to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        challenge["network_passphrase"],
        Network::testnet().passphrase()
    );
    let signed = stellar::sep10::sign_challenge(
        challenge["transaction"].as_str().unwrap(),
        &Network::testnet(),
        &[&client],
    )
    .unwrap();
    let token: serde_json::Value = http
        .post(format!("{}/auth", served.url))
        .json(&json!({"transaction": signed}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(token["token"].as_str().is_some(), "{token}");

    let banner = served.stop().await;
    assert!(
        banner.contains("listening on http://127.0.0.1:"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("signing key: {signing_key}")),
        "{banner}"
    );
    assert!(banner.contains("sqlite://capstan.db"), "{banner}");
    assert!(banner.contains("capstan init"), "{banner}");

    // A restart keeps the same identity.
    let again = Served::start(dir.path(), &horizon.url).await;
    assert_eq!(again.signing_key().await, signing_key);
    again.stop().await;
}

#[tokio::test]
async fn init_writes_a_configuration_that_serves() {
    let dir = tempfile::tempdir().unwrap();
    let out = capstan(dir.path()).arg("init").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("capstan.toml")).unwrap();
    let seed_line = text
        .lines()
        .find(|l| l.starts_with("signing_seed"))
        .unwrap();
    let seed = seed_line.split('"').nth(1).unwrap();
    let expected_key = Keypair::from_secret_seed(seed)
        .unwrap()
        .public_key()
        .to_string();

    let again = capstan(dir.path()).arg("init").output().unwrap();
    assert!(
        !again.status.success(),
        "init must not overwrite without --force"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // ./capstan.toml is picked up without --config.
    let horizon = FakeHorizon::start().await;
    let served = Served::start(dir.path(), &horizon.url).await;
    assert_eq!(served.signing_key().await, expected_key);
    let banner = served.stop().await;
    assert!(banner.contains("config:      capstan.toml"), "{banner}");
    assert!(!banner.contains("generated:"), "{banner}");
}

#[test]
fn migrate_applies_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let out = capstan(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    assert!(dir.path().join("capstan.db").exists());
}

/// A PostgreSQL database reached through a loopback port that nothing listens on until
/// [`LateDatabase::comes_up`]: a database server that comes up late.
struct LateDatabase {
    /// The database's URL, with the late port.
    url: String,
    port: u16,
    /// host:port of the real server.
    database: String,
}

impl LateDatabase {
    fn behind(url: &str) -> LateDatabase {
        let mut url = url::Url::parse(url).unwrap();
        let database = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let port = free_port();
        url.set_port(Some(port)).unwrap();
        LateDatabase {
            url: url.to_string(),
            port,
            database,
        }
    }

    /// `capstan <command>` in `dir` on this database, waiting up to a minute for it, its
    /// output piped.
    fn spawn(&self, dir: &Path, command: &str) -> std::process::Child {
        capstan(dir)
            .arg(command)
            .env("CAPSTAN_DATABASE_URL", &self.url)
            .env("CAPSTAN_DATABASE_CONNECT_WAIT_SECS", "60")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// From now on, connections to the late port reach the database.
    async fn comes_up(self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let database = self.database;
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let database = database.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(database).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }
}

/// A process started before its PostgreSQL server answers waits for it
/// (`database.connect_wait_secs`) instead of exiting.
#[tokio::test]
async fn migrate_waits_for_a_database_that_is_not_up_yet() {
    let Some(url) = common::postgres_url("migrate_waits_for_a_database").await else {
        return;
    };
    let late = LateDatabase::behind(&url);
    let dir = tempfile::tempdir().unwrap();
    let child = late.spawn(dir.path(), "migrate");
    // Longer than one connection attempt's own timeout (10 s), so the process must retry.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    late.comes_up().await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("waiting for it"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
}

/// A SIGTERM that reaches `capstan execute` while it is still starting (here: waiting for
/// its database) stops it cleanly once it has started, as `serve` does: the signal is
/// listened for from the first moment, not only once the executor runs. Before, the
/// signal's default action killed the process.
#[tokio::test]
async fn a_sigterm_while_starting_stops_execute_cleanly() {
    let Some(url) = common::postgres_url("a_sigterm_while_starting").await else {
        return;
    };
    let late = LateDatabase::behind(&url);
    let dir = tempfile::tempdir().unwrap();
    let mut child = late.spawn(dir.path(), "execute");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the SIGTERM killed capstan execute while it waited for its database"
    );
    late.comes_up().await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("executing payouts"),
        "{stderr}"
    );
    assert!(stderr.contains("shutting down"), "{stderr}");
}

#[test]
fn bad_configuration_stops_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, named) in [
        ("CAPSTAN_STELLAR_NETWORK", "tesnet", "stellar.network"),
        (
            "CAPSTAN_STELLAR_SIGNING_SEED",
            "SNOTASEED",
            "stellar.signing_seed",
        ),
        ("CAPSTAN_AUTH_JWT_SECRET", "short", "auth.jwt_secret"),
        ("CAPSTAN_SERVER_LISTNE", "x", "CAPSTAN_SERVER_LISTNE"),
    ] {
        let out = capstan(dir.path())
            .arg("serve")
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(named), "{key}: {stderr}");
        assert!(
            !stderr.contains(value)
                || key == "CAPSTAN_STELLAR_NETWORK"
                || key == "CAPSTAN_SERVER_LISTNE",
            "secret values are not echoed: {stderr}"
        );
    }
    let out = capstan(dir.path())
        .args(["--config", "missing.toml", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    assert!(
        !dir.path().join("capstan.db").exists(),
        "nothing starts half configured"
    );
}
