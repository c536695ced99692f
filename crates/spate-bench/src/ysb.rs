//! `spate bench ysb`: the Yahoo Streaming Benchmark job (see [`spate_ysb`]) on the direct
//! stream, against the embedded broker in this process (or `--bootstrap-server`).
//!
//! A run is catch-up (a preloaded topic, read as fast as possible: throughput) or live (a fixed
//! offered rate: latency without coordinated omission). Every run reports records/s, records
//! per CPU-second, batch processing time, end-to-end latency and YSB's time after window close
//! (live), peak RSS, the checker's verdict, and the raw rdkafka consumer ceiling on the same
//! topic with the ratio to it. `--sweep` runs the set behind docs/benchmarks.md: catch-up with
//! JSON and binary records, then live runs at 50% and 10% of the JSON maximum with 10 ms,
//! 100 ms and 1 s batches; `--plot-dir` draws them as SVG.

use crate::error::{BenchError, Result};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::report::Report;
use crate::report::Table;
use crate::resources::ResourceUsage;
use crate::target::{BrokerTarget, TargetArgs};
use crate::ysb_run::{ceiling_of, Mode, RunSpec, YsbRow};
use spate_client::measure::fmt_count;
use spate_ysb::Encoding;

/// Options of `spate bench ysb`.
#[derive(Args, Debug, Clone)]
pub struct YsbBenchArgs {
    /// Events preloaded for a catch-up run.
    #[arg(long, default_value_t = 4_000_000)]
    pub events: u64,
    /// catch-up: read a preloaded topic as fast as possible; live: a fixed offered rate.
    #[arg(long, value_enum, default_value = "catch-up")]
    pub mode: Mode,
    /// Offered events/s of a live run (default 100,000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds a live run offers load for (the first fifth, at least 2 s, is warm-up).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Batch interval: `100ms`, `1s`, or milliseconds.
    #[arg(long, default_value = "100ms", value_parser = parse_interval)]
    pub batch_interval: Duration,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 2)]
    pub partitions: i32,
    /// Binary records (62 bytes, no JSON) instead of YSB's JSON.
    #[arg(long)]
    pub binary: bool,
    /// Run the sweep: catch-up JSON and binary, then live at 50% and at 10% of the JSON
    /// maximum with 10 ms, 100 ms and 1 s batches.
    #[arg(long)]
    pub sweep: bool,
    /// Caps the stream at this many records/s (bounds a catch-up batch's size and memory);
    /// twice this for binary records.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_rate: u64,
    /// Engine worker threads (default: number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Live runs: run the generator as its own process (`spate ysb-generate`), so the job's
    /// CPU time and memory are not the generator's.
    #[arg(long)]
    pub generator_process: bool,
    /// Skip the checker (it re-reads both topics after each run).
    #[arg(long)]
    pub no_check: bool,
    /// Catch-up on this topic, loaded by an earlier run with `--keep-topic` (same `--events`,
    /// `--partitions` and encoding), instead of preloading one: with `--no-ceiling` the process
    /// then holds the job's memory alone.
    #[arg(long, conflicts_with = "sweep")]
    pub topic: Option<String>,
    /// Leave the preloaded input topic on the broker for later runs with `--topic`.
    #[arg(long)]
    pub keep_topic: bool,
    /// Skip the raw consumer ceiling (the report then has no ratios).
    #[arg(long)]
    pub no_ceiling: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write SVG plots (ysb-*.svg) into this directory.
    #[arg(long)]
    pub plot_dir: Option<PathBuf>,
    /// The broker to run against (embedded or external).
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `100ms`, `1s`, `2.5s` or a number of milliseconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    let ms: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (use e.g. 100ms or 1s)"))?;
    if ms.is_nan() || ms * scale < 1.0 {
        return Err(format!(
            "a batch interval of at least 1 ms is needed, got {s:?}"
        ));
    }
    Ok(Duration::from_secs_f64(ms * scale / 1000.0))
}

impl YsbBenchArgs {
    fn spec(&self, mode: Mode, encoding: Encoding, interval: Duration, rate: f64) -> RunSpec {
        RunSpec {
            mode,
            encoding,
            batch_interval: interval,
            partitions: self.partitions.max(1),
            events: self.events,
            rate,
            duration: Duration::from_secs(self.duration.max(3)),
            // Binary records are a quarter of the size: twice the records per batch still
            // take half the memory, and the cap must not be what limits the binary run.
            max_rate: match encoding {
                Encoding::Json => self.max_rate,
                Encoding::Binary => self.max_rate.saturating_mul(2),
            },
            threads: self
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            check: !self.no_check,
            seed: 2015,
            generator_process: self.generator_process,
            input_topic: self.topic.clone(),
            keep_topic: self.keep_topic,
            ceiling: !self.no_ceiling,
        }
    }
}

/// Runs `spate bench ysb`: every run of the chosen sweep against one broker, then prints the
/// table (and writes the JSON report and plots when asked).
pub fn run(args: YsbBenchArgs) -> Result<()> {
    // Checked before any run, so a build without plots does not find out after minutes of work.
    #[cfg(not(feature = "plots"))]
    if args.plot_dir.is_some() {
        return Err(BenchError::InvalidOptions(
            "--plot-dir needs spate-bench's `plots` feature (on by default in `spate`)".into(),
        ));
    }
    if args.topic.is_some() && args.mode == Mode::Live {
        return Err(BenchError::InvalidOptions(
            "--topic reads a preloaded topic: it needs --mode catch-up".into(),
        ));
    }
    let target = BrokerTarget::start(&args.target)?;
    let encoding = if args.binary {
        Encoding::Binary
    } else {
        Encoding::Json
    };
    let mut report: Report<YsbRow> = Report::new("ysb", ysb_config(&args, &target, encoding));
    eprintln!(
        "spate bench ysb: {} at {}, {} partitions",
        target.description, target.bootstrap, args.partitions
    );
    if args.sweep {
        run_sweep(&args, &mut report, &target.bootstrap)?;
    } else {
        let rate = args.rate.unwrap_or(100_000.0);
        run_one(
            &mut report,
            &target.bootstrap,
            args.spec(args.mode, encoding, args.batch_interval, rate),
        )?;
    }
    report.resources = ResourceUsage::now();

    table(&report.results)
        .print()
        .map_err(BenchError::io("could not print the table"))?;
    print_machine(&report, &target);
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    #[cfg(feature = "plots")]
    if let Some(dir) = &args.plot_dir {
        for p in crate::ysb_plot::write_all(dir, &report.results)? {
            eprintln!("wrote {}", p.display());
        }
    }
    if report.results.iter().any(|r| r.check_passed == Some(false)) {
        return Err(BenchError::WrongCounts);
    }
    Ok(())
}

/// The report's `config`: the broker and the sweep's or the single run's options.
fn ysb_config(args: &YsbBenchArgs, target: &BrokerTarget, encoding: Encoding) -> serde_json::Value {
    serde_json::json!({
        "broker": target.description,
        "bootstrap_server": target.bootstrap,
        "partitions": args.partitions,
        "events": args.events,
        "mode": args.mode,
        "rate": args.rate,
        "duration_s": args.duration,
        "batch_interval_ms": args.batch_interval.as_secs_f64() * 1000.0,
        "encoding": encoding,
        "sweep": args.sweep,
        "max_rate": args.max_rate,
        "generator_process": args.generator_process,
        "topic": args.topic,
        "no_ceiling": args.no_ceiling,
    })
}

/// Runs one spec against the broker at `bootstrap`, prints its line, and adds its row and
/// ceiling to the report.
fn run_one(report: &mut Report<YsbRow>, bootstrap: &str, spec: RunSpec) -> Result<YsbRow> {
    let name = spec.name();
    let row = crate::ysb_run::run(bootstrap, &spec).map_err(|e| e.during(name.clone()))?;
    eprintln!(
        "  {name}: {} events/s, {} per CPU-second, {:.0}% of the ceiling{}{}",
        fmt_count(row.records_per_sec),
        fmt_count(row.records_per_cpu_second),
        row.ratio_to_ceiling * 100.0,
        match row.load_offered {
            Some(false) => format!(
                ", LOAD NOT OFFERED (generator sent {} of {} events/s, up to {:.0} ms behind)",
                fmt_count(row.generator_rate.unwrap_or(0.0)),
                fmt_count(row.offered_rate.unwrap_or(0.0)),
                row.generator_max_behind_ms.unwrap_or(0.0)
            ),
            _ => String::new(),
        },
        match row.check_passed {
            Some(true) => ", counts checked",
            Some(false) => ", COUNTS WRONG",
            None => "",
        }
    );
    if row.ceiling_records_per_sec > 0.0 {
        report.ceiling.push(ceiling_of(&row));
    }
    report.results.push(row.clone());
    Ok(row)
}

/// `--sweep`: catch-up with JSON and binary events, then live runs at 50% and 10% of the JSON
/// catch-up maximum with 10, 100 and 1000 ms batches.
fn run_sweep(args: &YsbBenchArgs, report: &mut Report<YsbRow>, bootstrap: &str) -> Result<()> {
    let max_json = run_one(
        report,
        bootstrap,
        args.spec(Mode::CatchUp, Encoding::Json, args.batch_interval, 0.0),
    )?
    .records_per_sec;
    run_one(
        report,
        bootstrap,
        args.spec(Mode::CatchUp, Encoding::Binary, args.batch_interval, 0.0),
    )?;
    // 50% of the catch-up maximum is the load; 10% is where 10 ms batches must
    // hold, and shows the intervals on a box shared with a generator and other work.
    for load in [0.5, 0.1] {
        for ms in [10, 100, 1000] {
            run_one(
                report,
                bootstrap,
                args.spec(
                    Mode::Live,
                    Encoding::Json,
                    Duration::from_millis(ms),
                    (max_json * load).round(),
                ),
            )?;
        }
    }
    Ok(())
}

/// The line under the table: the machine, its load, and what the CPU-seconds include.
fn print_machine(report: &Report<YsbRow>, target: &BrokerTarget) {
    let load = report
        .machine
        .load_average
        .map_or("unknown".to_owned(), |l| format!("{:.2}", l[0]));
    println!(
        "{} CPUs, load average {load} at start, {}; CPU-seconds are the whole process's \
         (broker + engine{}); peak RSS is the job process's",
        report.machine.cpus,
        target.description,
        if report
            .results
            .iter()
            .any(|r| r.mode == Mode::Live && !r.generator_process)
        {
            ", + generator in live runs without --generator-process"
        } else {
            ""
        }
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// A live run's generator: its achieved rate and worst lag, where it ran, and a plain
/// `LOAD NOT OFFERED` when it could not send what was asked (then the row measured the
/// generator or the box, not the job).
fn generator_cell(r: &YsbRow) -> String {
    let (Some(rate), Some(behind)) = (r.generator_rate, r.generator_max_behind_ms) else {
        return "-".into();
    };
    let place = if r.generator_process {
        "own process"
    } else {
        "in process"
    };
    let verdict = match r.load_offered {
        Some(false) => "LOAD NOT OFFERED: ",
        _ => "",
    };
    format!(
        "{verdict}{}/s, ≤{behind:.0} ms behind ({place})",
        fmt_count(rate)
    )
}

fn table(rows: &[YsbRow]) -> Table {
    let mut t = Table::new([
        "run",
        "events",
        "events/s",
        "per CPU-s",
        "ceiling/s",
        "ratio",
        "batch p50/p99/p99.9 ms",
        "e2e p50/p99 ms",
        "close p99 ms",
        "backlog max",
        "generator",
        "RSS MiB (start)",
        "check",
    ]);
    let ms = |v: f64| {
        if v < 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        }
    };
    for r in rows {
        t.row([
            r.name.clone(),
            fmt_count(r.events as f64),
            fmt_count(r.records_per_sec),
            fmt_count(r.records_per_cpu_second),
            if r.ceiling_records_per_sec > 0.0 {
                fmt_count(r.ceiling_records_per_sec)
            } else {
                "-".into()
            },
            if r.ceiling_records_per_sec > 0.0 {
                format!("{:.2}", r.ratio_to_ceiling)
            } else {
                "-".into()
            },
            r.batch_processing_ms.map_or("-".into(), |p| {
                format!("{}/{}/{}", ms(p.p50), ms(p.p99), ms(p.p999))
            }),
            r.end_to_end_ms
                .map_or("-".into(), |p| format!("{}/{}", ms(p.p50), ms(p.p99))),
            r.window_close_ms.map_or("-".into(), |p| ms(p.p99)),
            match (r.backlog_events, r.sustained) {
                (Some(b), Some(ok)) => {
                    format!("{}{}", fmt_count(b.max), if ok { "" } else { " (grew)" })
                }
                _ => "-".into(),
            },
            generator_cell(r),
            match (r.peak_rss_bytes, r.rss_at_start_bytes) {
                (Some(peak), Some(start)) => format!("{:.0} ({:.0})", mib(peak), mib(start)),
                (Some(peak), None) => format!("{:.0}", mib(peak)),
                _ => "-".into(),
            },
            match r.check_passed {
                Some(true) => format!("ok ({} windows)", r.windows),
                Some(false) => format!("{} WRONG", r.mismatches),
                None => "-".into(),
            },
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("250"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("0ms").is_err());
        assert!(parse_interval("fast").is_err());
    }
}
