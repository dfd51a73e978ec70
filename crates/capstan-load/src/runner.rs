//! Runs one scenario: a fixed number of workers, each with its own connection, repeating
//! the scenario's operation back to back for a warm-up and then for the measured duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::Conn;
use crate::report::{Cpu, cpu_ticks};
use crate::scenarios::{Fixture, Scenario, Target};

/// How many distinct error lines a run keeps.
const KEPT_ERRORS: usize = 5;

/// What one scenario's measured part did.
pub struct Measurement {
    pub scenario: Scenario,
    /// Operations that succeeded (every request 2xx).
    pub ok: u64,
    /// Operations that failed: a non-2xx answer or a transport error.
    pub errors: u64,
    /// From the end of the warm-up to the end of the last operation counted.
    pub elapsed: Duration,
    /// Latency of each operation, in microseconds, failures included.
    pub latency: Histogram<u64>,
    /// The first distinct error lines, each with how often it came.
    pub first_errors: Vec<(String, u64)>,
    /// CPU ticks used by the server and this tool during the measured part.
    pub cpu: Cpu,
}

impl Measurement {
    fn new(scenario: Scenario) -> Measurement {
        Measurement {
            scenario,
            ok: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            first_errors: Vec::new(),
            cpu: Cpu::default(),
        }
    }

    fn error(&mut self, line: String) {
        self.errors += 1;
        self.note(line, 1);
    }

    /// Counts an error line among the kept ones, or keeps it if there is room.
    fn note(&mut self, line: String, times: u64) {
        if let Some(kept) = self.first_errors.iter_mut().find(|(l, _)| *l == line) {
            kept.1 += times;
        } else if self.first_errors.len() < KEPT_ERRORS {
            self.first_errors.push((line, times));
        }
    }

    fn merge(&mut self, other: Measurement) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency
            .add(&other.latency)
            .expect("histograms of the same bounds");
        for (line, times) in other.first_errors {
            self.note(line, times);
        }
    }

    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `pid`: the server's, to count the CPU time it uses.
pub async fn run(
    pid: Option<u32>,
    target: Arc<Target>,
    fixtures: &[Arc<Fixture>],
    scenario: Scenario,
    warm_up: Duration,
    duration: Duration,
) -> Measurement {
    let start = Instant::now();
    let measured_from = start + warm_up;
    let end = measured_from + duration;
    let workers: Vec<_> = fixtures
        .iter()
        .map(|fixture| {
            let target = target.clone();
            let fixture = fixture.clone();
            tokio::spawn(async move {
                let mut conn = Conn::new(target.addr, &target.host);
                let mut own = Measurement::new(scenario);
                let mut last = measured_from;
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let result = target.run(scenario, &mut conn, &fixture).await;
                    let done = Instant::now();
                    if began < measured_from {
                        continue;
                    }
                    let micros = done.duration_since(began).as_micros() as u64;
                    own.latency.saturating_record(micros.max(1));
                    match result {
                        Ok(()) => own.ok += 1,
                        Err(line) => own.error(line),
                    }
                    last = done;
                }
                (own, last)
            })
        })
        .collect();
    // CPU time is counted over the measured part only.
    let server_ticks = || pid.and_then(|p| cpu_ticks(&p.to_string()));
    let tool_ticks = || cpu_ticks("self");
    tokio::time::sleep_until(measured_from.into()).await;
    let before = (server_ticks(), tool_ticks());
    tokio::time::sleep_until(end.into()).await;
    let after = (server_ticks(), tool_ticks());
    let mut total = Measurement::new(scenario);
    total.cpu = Cpu {
        server: before.0.zip(after.0).map(|(b, a)| a - b),
        tool: before.1.zip(after.1).map(|(b, a)| a - b),
    };
    let mut last = measured_from;
    for worker in workers {
        match worker.await {
            Ok((own, own_last)) => {
                total.merge(own);
                last = last.max(own_last);
            }
            Err(e) => total.error(format!("a worker failed: {e}")),
        }
    }
    total.elapsed = last.duration_since(measured_from);
    total
}
