//! What a benchmark run cost the machine: peak resident memory (`VmHWM` from
//! `/proc/self/status`, the kernel's high-water mark, so a short spike is not missed) and CPU
//! seconds of all threads (getrusage), including librdkafka's and an in-process broker's.

use serde::Serialize;

/// User and system CPU time of the whole process so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CpuTime {
    /// Seconds spent running this process's code.
    pub user_seconds: f64,
    /// Seconds the kernel spent on this process's behalf (syscalls, page faults).
    pub system_seconds: f64,
}

impl CpuTime {
    /// CPU time used by this process (all threads) since it started; zero if getrusage fails.
    pub fn now() -> Self {
        use nix::sys::resource::{getrusage, UsageWho};
        use nix::sys::time::TimeValLike;
        match getrusage(UsageWho::RUSAGE_SELF) {
            Ok(u) => CpuTime {
                user_seconds: u.user_time().num_microseconds() as f64 / 1e6,
                system_seconds: u.system_time().num_microseconds() as f64 / 1e6,
            },
            Err(e) => {
                tracing::warn!("getrusage failed, CPU time will read 0: {e}");
                CpuTime::default()
            }
        }
    }

    /// User plus system seconds.
    pub fn total(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }

    /// CPU time spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user_seconds: self.user_seconds - earlier.user_seconds,
            system_seconds: self.system_seconds - earlier.system_seconds,
        }
    }
}

/// Peak memory and CPU time of the process, as reported at the end of a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResourceUsage {
    /// `VmHWM`: peak resident set size in bytes; `None` where /proc is unavailable.
    pub peak_rss_bytes: Option<u64>,
    /// User and system CPU time of all threads.
    pub cpu: CpuTime,
    /// `cpu`'s total, for readers of the JSON report.
    pub cpu_seconds: f64,
}

impl ResourceUsage {
    /// Peak RSS and CPU time of this process so far.
    pub fn now() -> Self {
        let cpu = CpuTime::now();
        ResourceUsage {
            peak_rss_bytes: peak_rss_bytes(),
            cpu,
            cpu_seconds: cpu.total(),
        }
    }
}

/// The process's peak resident set size (`VmHWM`) in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, "VmHWM:").map(|kb| kb * 1024)
}

/// The process's resident set size now (`VmRSS`) in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, "VmRSS:").map(|kb| kb * 1024)
}

/// Resets the kernel's peak RSS mark (`VmHWM`) to the current RSS (writing `5` to
/// `/proc/self/clear_refs`, Linux 4.0+), so that a later [`peak_rss_bytes`] is the peak of one
/// phase rather than of the whole run. Returns false where that is not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU seconds of this process's threads whose name starts with `prefix` (e.g.
/// `spate-broker`: an in-process broker's runtime threads): their run time in nanoseconds from
/// `/proc/self/task/*/schedstat`, else user + system time from `stat` (10 ms ticks, too coarse
/// for one request); `None` where /proc is unavailable.
pub fn threads_cpu_seconds(prefix: &str) -> Option<f64> {
    // /proc/.../stat reports CPU time in USER_HZ ticks, 100 per second on Linux.
    const TICKS_PER_SECOND: f64 = 100.0;
    let mut seconds = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let read = |file: &str| std::fs::read_to_string(path.join(file)).ok();
        if let Some(ns) = read("schedstat").and_then(|s| schedstat_run_ns(&s)) {
            seconds += ns as f64 / 1e9;
        } else if let Some(t) = read("stat").and_then(|s| stat_cpu_ticks(&s)) {
            seconds += t as f64 / TICKS_PER_SECOND;
        }
    }
    Some(seconds)
}

/// The first field of a `schedstat` line: nanoseconds spent running.
fn schedstat_run_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// utime + stime of a `/proc/.../stat` line (fields 14 and 15; the name in field 2 may hold
/// spaces and parentheses, so fields are counted from its closing parenthesis).
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime = fields.next()?.parse::<u64>().ok()?;
    let stime = fields.next()?.parse::<u64>().ok()?;
    Some(utime + stime)
}

/// Reads a `Name:   1234 kB` line of /proc/<pid>/status.
fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let mut parts = line[field.len()..].split_whitespace();
    let value = parts.next()?.parse::<u64>().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        let status = "Name:\tspate\nVmPeak:\t  9000 kB\nVmHWM:\t   1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(1234));
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(1000));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn stat_lines_give_cpu_ticks() {
        let stat = "42 (spate-broker (x)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
        assert_eq!(
            schedstat_run_ns("592287781 5837326730 199\n"),
            Some(592_287_781)
        );
        assert!(threads_cpu_seconds("no-such-thread-name").is_some_and(|s| s == 0.0));
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let peak = peak_rss_bytes().expect("/proc/self/status has VmHWM on Linux");
        assert!(
            peak > 1 << 20,
            "a test process has more than 1 MiB resident: {peak}"
        );
        // Burn a little CPU so the clock visibly moves.
        let start = CpuTime::now();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(CpuTime::now().since(&start).total() > 0.0);
    }
}
