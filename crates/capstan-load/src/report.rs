//! The figures: one table row per scenario, the errors seen, and the server's memory.

use std::fmt::Write;

use crate::runner::Measurement;

/// The server's resident memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the most it has been resident since it started.
    pub peak_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Memory, String> {
        let path = format!("/proc/{pid}/status");
        let status =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("{path} has no {name}"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }
}

/// CPU time a process has used, user and system, in clock ticks of `/proc/<pid>/stat`.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime) = (
        fields.get(11)?.parse::<u64>().ok()?,
        fields.get(12)?.parse::<u64>().ok()?,
    );
    Some(utime + stime)
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time per operation, in microseconds, from ticks used over `ops` operations.
fn cpu_per_op(ticks: Option<u64>, ops: u64) -> String {
    match ticks {
        Some(t) if ops > 0 => format!("{:.0}", t as f64 / TICKS_PER_SECOND * 1e6 / ops as f64),
        _ => "–".into(),
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A latency in microseconds, written in milliseconds.
fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

pub const HEADER: &str = "| scenario | req/op | ok ops/s | req/s | vs baseline | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU µs/op | tool CPU µs/op | server RSS / peak |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

/// CPU ticks used during a measurement, by the server (when its pid is known) and by this
/// tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: Option<u64>,
    pub tool: Option<u64>,
}

/// One row of [`HEADER`]. `baseline` is the baseline's rate in the same run.
pub fn row(m: &Measurement, baseline: Option<f64>, cpu: Cpu, memory: Option<Memory>) -> String {
    let rate = m.rate();
    let ratio = match baseline {
        Some(b) if b > 0.0 => format!("{:.0} %", 100.0 * rate / b),
        _ => "–".into(),
    };
    let memory = match memory {
        Some(m) => format!("{} / {}", mib(m.rss_kib), mib(m.peak_kib)),
        None => "–".into(),
    };
    let h = &m.latency;
    format!(
        "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        m.scenario.name(),
        m.scenario.requests(),
        rate,
        rate * m.scenario.requests() as f64,
        ratio,
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        m.errors,
        cpu_per_op(cpu.server, m.ok + m.errors),
        cpu_per_op(cpu.tool, m.ok + m.errors),
        memory,
    )
}

/// The kept error lines of a run, if it had errors.
pub fn errors(m: &Measurement) -> Option<String> {
    if m.errors == 0 {
        return None;
    }
    let mut out = format!(
        "{}: {} errors in {:.1} s; the first distinct ones:\n",
        m.scenario.name(),
        m.errors,
        m.elapsed.as_secs_f64()
    );
    for (line, times) in &m.first_errors {
        let _ = writeln!(out, "  {times:>7} × {line}");
    }
    Some(out)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_memory_and_cpu_time() {
        let memory = Memory::of(std::process::id()).unwrap();
        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
        assert!(cpu_ticks("self").is_some());
        assert!(cpu_ticks(&std::process::id().to_string()).is_some());
    }

    #[test]
    fn cpu_per_op_is_in_microseconds() {
        // 2 ticks of 10 ms over 100 operations.
        assert_eq!(cpu_per_op(Some(2), 100), "200");
        assert_eq!(cpu_per_op(Some(2), 0), "–");
        assert_eq!(cpu_per_op(None, 100), "–");
    }
}
