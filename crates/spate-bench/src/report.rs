//! How a benchmark presents its results: a plain-text table on stdout and the same numbers as a
//! JSON [`Report`] (`--json PATH`), with the machine, the date, the exact command, and the raw
//! librdkafka consumer [`Ceiling`] measured in the same run, so every engine figure can be read
//! as a fraction of what the client library alone achieves on that box.

use crate::error::{BenchError, Result};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::resources::ResourceUsage;

/// The raw librdkafka consumer's rate for one record size, measured in the same run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ceiling {
    /// Value size of the records read, bytes.
    pub record_size: usize,
    /// Records per second the raw consumer read.
    pub records_per_sec: f64,
    /// Megabytes (10^6 bytes) per second the raw consumer read.
    pub mb_per_sec: f64,
    /// How it was measured, e.g. "rdkafka BaseConsumer, all partitions assigned".
    pub method: String,
}

/// Where the numbers were taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// Cores available to this process.
    pub cpus: usize,
    /// Operating system, as Rust names it (`linux`).
    pub os: String,
    /// CPU architecture, as Rust names it (`x86_64`).
    pub arch: String,
    /// `model name` from `/proc/cpuinfo`, where readable.
    pub cpu_model: Option<String>,
    /// 1, 5 and 15 minute load averages when the run started: on a shared box, other work
    /// competing for the cores shows here and explains a low figure.
    pub load_average: Option<[f64; 3]>,
}

impl Machine {
    /// Describes the machine this process runs on.
    pub fn this() -> Self {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            }),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| parse_loadavg(&s)),
        }
    }
}

/// The first three fields of `/proc/loadavg`.
fn parse_loadavg(s: &str) -> Option<[f64; 3]> {
    let mut fields = s.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

/// One benchmark run, as written by `--json`. `results` holds one object per table row, with
/// raw (unformatted) numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Report<R: Serialize> {
    /// Which benchmark ran (`broker`, `direct`, ...).
    pub benchmark: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    /// The command line that produced the report.
    pub command: String,
    /// Where it ran.
    pub machine: Machine,
    /// The parameters of the run (record counts, sizes, broker mode, client settings).
    pub config: serde_json::Value,
    /// One entry per table row.
    pub results: Vec<R>,
    /// The raw librdkafka consumer ceiling per record size, from this same run.
    pub ceiling: Vec<Ceiling>,
    /// Peak memory and CPU time of the whole run.
    pub resources: ResourceUsage,
}

impl<R: Serialize> Report<R> {
    /// An empty report for `benchmark` with its parameters, stamped with the date, command line
    /// and machine.
    pub fn new(benchmark: &str, config: serde_json::Value) -> Self {
        Report {
            benchmark: benchmark.to_owned(),
            date: utc_now(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine: Machine::this(),
            config,
            results: Vec::new(),
            ceiling: Vec::new(),
            resources: ResourceUsage::now(),
        }
    }

    /// Writes the report as pretty JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json_report(path, self)
    }
}

/// Writes any report (a [`Report`] or one that flattens it with extra sections) as pretty
/// JSON to `path`.
pub fn write_json_report(path: &Path, report: &impl Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json).map_err(BenchError::io(format!(
        "could not write the report to {}",
        path.display()
    )))
}

/// A plain-text table: the first column left-aligned, the others (numbers) right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and no rows.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (one cell per header).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as text, columns padded to their widest cell, one line per row.
    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut push_line = |cells: &[String]| {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = width - cell.chars().count();
                if i == 0 {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        push_line(&self.headers);
        push_line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
        for row in &self.rows {
            push_line(row);
        }
        out
    }

    /// Writes [`Table::render`] to standard output.
    pub fn print(&self) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(self.render().as_bytes())?;
        stdout.flush()
    }
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as an ISO 8601 UTC timestamp (proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_466_433), "2026-11-23T20:40:33Z");
    }

    #[test]
    fn loadavg_parses() {
        assert_eq!(
            parse_loadavg("2.45 1.84 2.91 3/611 27247\n"),
            Some([2.45, 1.84, 2.91])
        );
        assert_eq!(parse_loadavg("garbage"), None);
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(["size", "records/s"]);
        t.row(["100 B", "1,234,567"]);
        t.row(["1 KiB", "12"]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "size   records/s");
        assert_eq!(lines[1], "-----  ---------");
        assert_eq!(lines[2], "100 B  1,234,567");
        assert_eq!(lines[3], "1 KiB         12");
    }

    #[test]
    fn report_serializes_with_ceiling() {
        let mut r: Report<serde_json::Value> = Report::new("broker", serde_json::json!({"n": 1}));
        r.ceiling.push(Ceiling {
            record_size: 100,
            records_per_sec: 1.0,
            mb_per_sec: 0.0001,
            method: "test".into(),
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["benchmark"], "broker");
        assert_eq!(v["ceiling"][0]["record_size"], 100);
        assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
        assert!(v["resources"]["cpu_seconds"].is_number());
    }
}
