//! What the watcher and executor benchmarks share: the transactions they start from,
//! inserted directly rather than through the API, which is not what they measure; a
//! PostgreSQL schema of their own; and the `capstan` processes they run and watch.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use capstan::sep31::status::Status;
use capstan::store::TransactionRow;

use crate::report;

/// Each transaction receives this much USDC, pays this fee and pays out the rest.
pub const AMOUNT_IN: &str = "10";
pub const FEE: &str = "1";
pub const AMOUNT_OUT: &str = "9";

/// A transaction as POST /transactions stores it once its customers are known: waiting for
/// the sending anchor's payment to `distribution` with an id memo.
pub fn pending_sender(
    memo: u64,
    sending_anchor: &str,
    issuer: &str,
    distribution: &str,
    now: i64,
) -> TransactionRow {
    TransactionRow {
        id: uuid::Uuid::new_v4().to_string(),
        sending_anchor: sending_anchor.to_owned(),
        status: Status::PendingSender.as_str().into(),
        status_message: None,
        asset_code: "USDC".into(),
        asset_issuer: issuer.to_owned(),
        funding_method: "SEPA".into(),
        amount_in: AMOUNT_IN.into(),
        amount_fee: FEE.into(),
        amount_out: AMOUNT_OUT.into(),
        fee_details: format!(r#"[{{"name":"fixed fee","amount":"{FEE}"}}]"#),
        sender_id: None,
        receiver_id: None,
        stellar_account_id: Some(distribution.to_owned()),
        stellar_memo_type: Some("id".into()),
        stellar_memo: Some(memo.to_string()),
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
        expires_at: Some(now + 86_400),
        conversion: None,
    }
}

/// A fresh schema in `CAPSTAN_TEST_POSTGRES_URL`, as the tests' `postgres_url` makes one
/// (and with the same prefix, so the tests drop it once it is an hour old).
pub async fn postgres_url() -> Option<String> {
    let base = std::env::var("CAPSTAN_TEST_POSTGRES_URL").ok()?;
    Some(fresh_schema(&base).await.0)
}

/// Creates a schema of its own in the PostgreSQL database `base`: the URL that works in it,
/// and its name.
pub async fn fresh_schema(base: &str) -> (String, String) {
    let schema = format!(
        "capstan_test_{}_{}",
        capstan::store::unix_now(),
        hex::encode(stellar::random_bytes::<6>())
    );
    let pool = sqlx::PgPool::connect(base)
        .await
        .expect("connect to CAPSTAN_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    (
        format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    )
}

/// A `capstan` process of a benchmark, its standard error in a log file; killed if the
/// benchmark panics before it stops it.
pub struct BenchProcess {
    pub child: Child,
    pub log: PathBuf,
    /// The command, for messages: "capstan watch".
    what: String,
}

impl BenchProcess {
    /// Runs `bin --config <config> <args>` in `dir`, without the `CAPSTAN_` variables of
    /// this environment (the configuration file is the whole configuration).
    pub fn spawn(
        bin: &Path,
        dir: &Path,
        config: &Path,
        args: &[&str],
        log_name: &str,
        stdout: Stdio,
    ) -> BenchProcess {
        let what = format!("capstan {}", args.first().copied().unwrap_or_default());
        let log = dir.join(log_name);
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("CAPSTAN_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .arg("--config")
            .arg(config)
            .args(args)
            .stdout(stdout)
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        BenchProcess { child, log, what }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics, with the end of its log, if it exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.what,
                self.log_tail()
            );
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then the exit status and how long it took (at most 30 s).
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {}", self.pid());
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} did not exit within 30 s of SIGTERM",
                self.what
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for BenchProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Peak resident memory so far (VmHWM, or VmRSS if larger), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let memory = report::Memory::of(pid).ok()?;
    Some(memory.peak_kib.max(memory.rss_kib))
}

/// CPU time (user + system, every thread) a process used so far, in seconds.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    Some(report::cpu_ticks(pid)? as f64 / report::TICKS_PER_SECOND)
}
