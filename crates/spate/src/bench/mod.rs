//! `spate bench`: benchmarks of the broker and (later) the engine, and the pieces they share:
//! throughput arithmetic, percentiles, a plain-text table, the JSON report (with the raw
//! librdkafka consumer `ceiling` every engine number is compared against), and readers for peak
//! RSS and CPU time.
//!
//! A benchmark is not a test: it prints numbers, it does not judge them. Each one adds a variant
//! to [`Benchmark`] and a module beside `broker.rs`.

pub mod broker;
pub mod direct;
pub mod embedded;
pub mod engine;
pub mod kafka_io;
pub mod receiver;
pub mod report;
pub mod resources;
pub mod stream_job;
pub mod stream_topic;
pub mod target;
pub mod ysb;
pub mod ysb_plot;
pub mod ysb_run;

use clap::{Args, Subcommand};

pub use report::{Ceiling, Report, Table};
pub use resources::{CpuTime, ResourceUsage};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub benchmark: Benchmark,
}

#[derive(Subcommand, Debug)]
pub enum Benchmark {
    /// Produce then consume N records through the broker with rdkafka: the raw client ceiling.
    Broker(broker::BrokerBenchArgs),
    /// Engine throughput (pass-through, word count, window) and fixed per-batch overhead, no Kafka.
    Engine(engine::EngineBenchArgs),
    /// The Yahoo Streaming Benchmark on the direct stream: catch-up, live, sweep, checker.
    Ysb(ysb::YsbBenchArgs),
    /// Direct Kafka stream (pass-through, word count) on a preloaded topic vs the raw consumer.
    Direct(direct::DirectBenchArgs),
    /// Receiver Kafka stream with the write-ahead log off and on, vs the direct stream.
    Receiver(receiver::ReceiverBenchArgs),
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.benchmark {
        Benchmark::Broker(a) => broker::run(a),
        Benchmark::Engine(a) => engine::run(a),
        Benchmark::Ysb(a) => ysb::run(a),
        Benchmark::Direct(a) => direct::run(a),
        Benchmark::Receiver(a) => receiver::run(a),
    }
}

/// Records and bytes moved in some wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl Throughput {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// Megabytes (10^6 bytes, as Kafka's perf tools count) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// Latency (or any) percentiles of a sample, by nearest rank.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (any order; NaNs are dropped), or `None` for an empty sample.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Percentiles {
            count: sorted.len(),
            min: sorted[0],
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            p999: percentile(&sorted, 99.9),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The nearest-rank `p`-th percentile (0..=100) of an ascending, non-empty slice: the smallest
/// value with at least p% of the sample at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// `1234567.8` → `1,234,568`: record rates read better with thousands separators.
pub fn fmt_count(x: f64) -> String {
    let rounded = x.round();
    if !rounded.is_finite() {
        return format!("{x}");
    }
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 99.9), 7.0);
        let p = Percentiles::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((p.count, p.min, p.p50, p.max), (3, 1.0, 2.0, 3.0));
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn throughput_rates() {
        let t = Throughput {
            records: 2_000_000,
            bytes: 200_000_000,
            seconds: 2.0,
        };
        assert_eq!(t.records_per_sec(), 1_000_000.0);
        assert_eq!(t.mb_per_sec(), 100.0);
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(fmt_count(0.0), "0");
        assert_eq!(fmt_count(999.4), "999");
        assert_eq!(fmt_count(1000.0), "1,000");
        assert_eq!(fmt_count(1_234_567.8), "1,234,568");
        assert_eq!(fmt_count(-12_345.0), "-12,345");
    }
}
