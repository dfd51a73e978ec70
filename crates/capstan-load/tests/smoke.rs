//! The load tool run end to end, briefly, on the real `capstan` binary: every HTTP scenario
//! answers without an error, and the watcher and executor benchmarks pay what they should
//! (they panic when a process did not). The figures themselves are not checked; they are
//! measurements (BENCHMARKS.md).
//!
//! `capstan` is another package's binary, so its path is found next to this package's own
//! (`cargo test --workspace` builds both into the same folder). When it is not there, the
//! tests say so and skip.

use std::path::PathBuf;
use std::process::Command;

fn capstan_binary(test: &str) -> Option<PathBuf> {
    let load = PathBuf::from(env!("CARGO_BIN_EXE_capstan-load"));
    let capstan = load.with_file_name(format!("capstan{}", std::env::consts::EXE_SUFFIX));
    if capstan.is_file() {
        Some(capstan)
    } else {
        println!(
            "SKIPPED {test}: {} is not built (run `cargo test --workspace`, or `cargo build -p capstan` first)",
            capstan.display()
        );
        None
    }
}

/// Runs the tool; its standard output, once it exited successfully.
fn load(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_capstan-load"))
        .args(args)
        .output()
        .expect("capstan-load runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "capstan-load {args:?}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn every_http_scenario_runs_without_an_error() {
    let Some(capstan) = capstan_binary("every_http_scenario_runs_without_an_error") else {
        return;
    };
    let capstan = capstan.display().to_string();
    let out = load(&[
        "--spawn",
        &capstan,
        "-c",
        "4",
        "-d",
        "0.3",
        "--warm-up",
        "0",
        "all",
    ]);
    for scenario in [
        "baseline",
        "toml",
        "info",
        "login",
        "customer",
        "transaction",
        "get",
        "mixed",
    ] {
        let row = out
            .lines()
            .rev()
            .find(|l| l.starts_with(&format!("| {scenario} |")))
            .unwrap_or_else(|| panic!("no row for {scenario}:\n{out}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | scenario | req/op | ok ops/s | req/s | vs baseline | p50 | p90 | p99 | max | errors | ...
        assert_eq!(cells[10], "0", "errors in {row}");
        let rate: f64 = cells[3]
            .parse()
            .unwrap_or_else(|_| panic!("a rate in {row}"));
        assert!(rate > 0.0, "{row}");
    }
    assert!(
        out.contains("capstan serve stopped cleanly on SIGTERM"),
        "{out}"
    );
}

#[test]
fn the_watcher_and_executor_benchmarks_pay_what_they_should() {
    let Some(capstan) = capstan_binary("the_watcher_and_executor_benchmarks_pay_what_they_should")
    else {
        return;
    };
    let capstan = capstan.display().to_string();
    let out = load(&[
        "--spawn",
        &capstan,
        "--payments",
        "50",
        "watcher",
        "executor",
    ]);
    assert!(
        out.contains("RESULT backend=sqlite payments=50 "),
        "the watcher's result:\n{out}"
    );
    for processes in [1, 2] {
        assert!(
            out.contains(&format!("| sqlite | {processes} | 50 |")),
            "the executor's result with {processes} process(es):\n{out}"
        );
    }
}

#[test]
fn process_benchmarks_need_a_binary_and_run_alone() {
    for (args, says) in [
        (&["watcher"][..], "need --spawn"),
        (
            &["--spawn", "capstan", "watcher", "toml"][..],
            "on their own",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_capstan-load"))
            .args(args)
            .output()
            .expect("capstan-load runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
