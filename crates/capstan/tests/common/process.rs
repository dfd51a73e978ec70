//! The capstan binary as a child process, for the tests that run it whole (`serve`, `watch`,
//! `execute`): a free port, a command that does not inherit the test runner's own CAPSTAN_*
//! settings, waiting until it answers `/health`, and a SIGTERM that must end in a clean
//! exit. Waits never block the runtime, which also runs the fake Horizon and the callback
//! receivers the process may still be talking to.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_capstan");

/// How long a process may take to come up, or to exit after SIGTERM.
const WITHIN: Duration = Duration::from_secs(60);

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bin` run in `dir`, without the test runner's CAPSTAN_* settings: the child reads only
/// its configuration file and what the test sets.
pub fn command(bin: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CAPSTAN_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The capstan binary of this build, run in `dir`.
pub fn capstan_in(dir: &Path) -> Command {
    command(BIN, dir)
}

/// SIGTERM, then up to `within` for the exit; `None` if it did not exit (it is killed).
pub async fn terminate(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {}", child.id());
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which output of the process is kept.
#[derive(Debug, Clone, Copy)]
pub enum Keep {
    /// The log.
    Stderr,
    /// The start-up banner of `capstan serve`.
    Stdout,
}

/// A running capstan with one of its outputs collected line by line. Killed if the test
/// drops it while it runs (its output is printed if the test is panicking).
pub struct Process {
    child: Option<Child>,
    lines: Option<JoinHandle<Vec<String>>>,
}

fn collect(output: impl Read + Send + 'static) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        BufReader::new(output)
            .lines()
            .map_while(Result::ok)
            .collect()
    })
}

impl Process {
    pub fn spawn(mut cmd: Command, keep: Keep) -> Process {
        let (stdout, stderr) = match keep {
            Keep::Stderr => (Stdio::null(), Stdio::piped()),
            Keep::Stdout => (Stdio::piped(), Stdio::null()),
        };
        let mut child = cmd
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("capstan starts");
        let lines = match keep {
            Keep::Stderr => collect(child.stderr.take().unwrap()),
            Keep::Stdout => collect(child.stdout.take().unwrap()),
        };
        Process {
            child: Some(child),
            lines: Some(lines),
        }
    }

    /// What it printed; complete once it has exited.
    pub fn output(&mut self) -> String {
        self.lines
            .take()
            .map(|lines| lines.join().unwrap_or_default().join("\n"))
            .unwrap_or_default()
    }

    /// Panics, with its output, if it has exited.
    pub fn check_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("capstan exited with {status}:\n{}", self.output());
        }
    }

    /// Waits until `{url}/health` answers 200.
    pub async fn wait_healthy(&mut self, url: &str) {
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Ok(r) = reqwest::get(format!("{url}/health")).await
                && r.status() == 200
            {
                return;
            }
            self.check_running();
            assert!(
                Instant::now() < deadline,
                "capstan did not come up at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then a clean exit; returns what it printed.
    pub async fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let status = terminate(&mut child, WITHIN).await;
        let output = self.output();
        match status {
            Some(status) => assert!(
                status.success(),
                "capstan exits cleanly: {status}\n{output}"
            ),
            None => panic!("capstan did not stop on SIGTERM:\n{output}"),
        }
        output
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("---- capstan's output ----\n{}", self.output());
            }
        }
    }
}
